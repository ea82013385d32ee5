"""Losses on hand-computed tiny tensors: guidelines / dllm / soft_ce, pretraining divides
by B*L, SFT by B and each row's answer length, the reweight cap, fp32 under bf16, an empty M gives 0; and the
whole objective: prompt untouched, block bias passed on, a shifted model scored from the previous state."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from parallel_decoding.methods.llada.losses import diffusion_loss, row_denominators, scored_positions, token_losses
from parallel_decoding.methods.llada.module import diffusion_objective
from parallel_decoding.methods.llada.noising import NoisedBatch, NoiseSettings, apply_noise

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)

# Row 0's scored token: probabilities [1/4, 1/2, 1/4], target 1 -> CE ln 2.
# Row 1's scored token: uniform over 3, target 0 -> CE ln 3.
LOGITS = torch.tensor([[0.0, LN2, 0.0], [0.0, 0.0, 0.0]])
TARGETS = torch.tensor([1, 0])
ROWS = torch.tensor([0, 1])
P = torch.tensor([0.5, 0.25])


def test_token_cross_entropy_by_hand():
    assert token_losses(LOGITS, TARGETS, "guidelines").tolist() == pytest.approx([LN2, LN3])


def test_soft_ce_by_hand():
    # -log q row 0 = [ln4, ln2, ln4] -> mean 5 ln2 / 3; row 1 = ln3 everywhere
    expected = [0.9 * LN2 + 0.1 * 5 * LN2 / 3, 0.9 * LN3 + 0.1 * LN3]
    assert token_losses(LOGITS, TARGETS, "soft_ce", label_smoothing=0.1).tolist() == pytest.approx(expected)
    assert token_losses(LOGITS, TARGETS, "soft_ce", label_smoothing=0.5)[0].item() == \
        pytest.approx(0.5 * LN2 + 0.5 * 5 * LN2 / 3)


def test_pretraining_divides_by_batch_times_length():
    denominators = row_denominators("pretrain", 2, 4, torch.zeros(2, dtype=torch.long))
    loss = diffusion_loss(LOGITS, TARGETS, ROWS, P, denominators, "guidelines")
    assert loss.item() == pytest.approx((LN2 / 0.5 + LN3 / 0.25) / (2 * 4))


def test_sft_divides_by_batch_and_each_rows_answer_length():
    denominators = row_denominators("sft", 2, 4, torch.tensor([1, 2]))  # answers of 3 and 2 tokens
    loss = diffusion_loss(LOGITS, TARGETS, ROWS, P, denominators, "guidelines")
    assert loss.item() == pytest.approx((LN2 / 0.5 / 3 + LN3 / 0.25 / 2) / 2)


def test_reweight_cap_changes_the_loss_by_hand():
    denominators = row_denominators("pretrain", 2, 4, torch.zeros(2, dtype=torch.long))
    loss = diffusion_loss(LOGITS, TARGETS, ROWS, P, denominators, "dllm", reweight_cap=2.0)
    assert loss.item() == pytest.approx((LN2 * 2 + LN3 * 2) / 8)  # 1/max(0.25, 1/2) = 2, not 4


def test_soft_ce_loss_uses_the_same_weights_and_normaliser():
    denominators = row_denominators("pretrain", 2, 4, torch.zeros(2, dtype=torch.long))
    loss = diffusion_loss(LOGITS, TARGETS, ROWS, P, denominators, "soft_ce", label_smoothing=0.1)
    per_token = [0.9 * LN2 + 0.1 * 5 * LN2 / 3, 0.9 * LN3 + 0.1 * LN3]
    assert loss.item() == pytest.approx((per_token[0] / 0.5 + per_token[1] / 0.25) / 8)


def test_empty_m_gives_zero_with_a_graph():
    logits = torch.zeros(0, 3, requires_grad=True)
    loss = diffusion_loss(logits, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), P,
                          torch.ones(2), "guidelines")
    assert loss.item() == 0.0 and loss.requires_grad


def test_cross_entropy_runs_in_fp32_under_bf16():
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    targets = torch.arange(5)
    denominators = torch.full((1,), 10.0)
    rows = torch.zeros(5, dtype=torch.long)
    for loss_name in ("guidelines", "soft_ce"):
        low = diffusion_loss(logits, targets, rows, torch.tensor([0.3]), denominators, loss_name)
        high = diffusion_loss(logits.float(), targets, rows, torch.tensor([0.3]), denominators, loss_name)
        assert low.dtype == torch.float32
        assert low.item() == high.item()


def test_guidelines_scores_mask_positions_dllm_every_noised_one():
    noisy = torch.tensor([[7, 99, 3, 5]])
    noised = torch.tensor([[True, True, False, False]])  # position 0 was randomly replaced, position 1 masked
    batch = NoisedBatch(noisy, noised, torch.tensor([0.5]))
    assert scored_positions(batch, "guidelines", 99).tolist() == [[False, True, False, False]]
    assert scored_positions(batch, "dllm", 99).tolist() == [[True, True, False, False]]
    assert scored_positions(batch, "soft_ce", 99).tolist() == [[True, True, False, False]]


class _RecordingModel(torch.nn.Module):
    """Uniform logits over 10 ids; records what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(mask_token_id=9, real_vocab_size=9)
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen: dict = {}

    def forward(self, input_ids, attention_bias=None, attention_mask=None, logits_positions=None):
        self.seen = {"input_ids": input_ids, "bias": attention_bias, "mask": attention_mask,
                     "positions": logits_positions}
        n = int(logits_positions.sum())
        return SimpleNamespace(logits=self.scale * torch.zeros(n, 10))


def test_objective_keeps_the_prompt_and_normalises_sft_by_answer_length():
    model = _RecordingModel()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    attention = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    answer_start = torch.tensor([2, 4])
    loss, n = diffusion_objective(model, ids, attention, answer_start, "sft", NoiseSettings(), "guidelines", 0.1,
                                  None, torch.Generator().manual_seed(0))
    seen = model.seen["input_ids"]
    assert torch.equal(seen[0, :2], ids[0, :2]) and torch.equal(seen[1, :4], ids[1, :4])
    assert torch.equal(model.seen["mask"], attention)
    scored = model.seen["positions"]
    assert n == int(scored.sum()) and not scored[0, :2].any() and not scored[1, :4].any()
    assert model.seen["bias"] is None
    # uniform logits: every scored token costs ln 10, weighted 1/p, divided by B * answer_len of its row
    rows = scored.nonzero()[:, 0]
    generator = torch.Generator().manual_seed(0)
    p = NoiseSettings().eps + (1 - NoiseSettings().eps) * torch.rand(2, generator=generator)
    answer = torch.tensor([4.0, 2.0])
    expected = sum(math.log(10) / p[r].item() / (2 * answer[r].item()) for r in rows.tolist())
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_padding_is_never_noised_in_pretraining():
    model = _RecordingModel()
    ids = torch.arange(1, 9)[None]
    attention = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    for seed in range(5):
        diffusion_objective(model, ids, attention, torch.tensor([0]), "pretrain", NoiseSettings(), "guidelines", 0.1,
                            None, torch.Generator().manual_seed(seed))
        assert not model.seen["positions"][0, :2].any()


def test_objective_passes_the_block_bias_when_block_attention_is_on():
    model = _RecordingModel()
    ids = torch.arange(8)[None].remainder(9)
    diffusion_objective(model, ids, torch.ones_like(ids), torch.tensor([3]), "sft", NoiseSettings(), "guidelines",
                        0.1, 2, torch.Generator().manual_seed(0))
    bias = model.seen["bias"]
    assert bias.shape == (1, 1, 8, 8)
    assert bias[0, 0, 3, 5] < -1e30 and bias[0, 0, 5, 3] == 0  # block 1 cannot see block 2; block 2 sees block 1


def test_a_shifted_models_objective_scores_each_target_from_the_previous_state(shifted_bundle):
    """The objective selects positions through ``logits_positions``, so a shifted model's loss is that of the
    hidden state before each scored position (computed here from the backbone, with the objective's noise)."""
    model = shifted_bundle.model
    ids = torch.randint(0, 5000, (2, 10), generator=torch.Generator().manual_seed(1))
    attention = torch.ones_like(ids)
    answer_start = torch.tensor([3, 3])
    with torch.no_grad():
        loss, n = diffusion_objective(model, ids, attention, answer_start, "sft", NoiseSettings(), "guidelines",
                                      0.1, None, torch.Generator().manual_seed(4))
        noised = apply_noise(ids, torch.arange(10)[None] >= answer_start[:, None], NoiseSettings(),
                             model.config.mask_token_id, generator=torch.Generator().manual_seed(4))
        hidden = model.model(input_ids=noised.input_ids, attention_mask=torch.zeros(2, 1, 10, 10)).last_hidden_state
        expected = 0.0
        for row, position in (noised.input_ids == model.config.mask_token_id).nonzero().tolist():
            logits = model.lm_head(hidden[row, position - 1])  # answer positions: never position 0
            ce = torch.nn.functional.cross_entropy(logits[None], ids[row, position][None]).item()
            expected += ce / noised.p[row].item() / (2 * 7)
    assert n > 0 and loss.item() == pytest.approx(expected, rel=1e-4)
