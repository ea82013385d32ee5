"""``method=inseq``: every supervised target is the same branch's next answer token (never a pair across branches), the
in-sequence loss equals the loss of each question trained alone (SFT's collator and loss as the independent
reference), gradients flow, ``predict_step`` runs the three stages, and the experiment trains one step."""

from __future__ import annotations

import copy

import pytest
import torch

from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.decoding import TRUNK
from parallel_decoding.methods.finetuning import IGNORE_INDEX, in_sequence_loss
from parallel_decoding.methods.inseq import InSequenceCollator, InSequenceMethod
from parallel_decoding.methods.inseq.tasks import generate_retrieval
from parallel_decoding.methods.sft import SFTCollator, answer_loss
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.training.optim import build_optimizer
from parallel_decoding.training.pipeline import run_training
from tests.decoding.conftest import sharpen
from tests.helpers import compose_config
from tests.training.runs import TINY


@pytest.fixture(scope="module")
def groups():
    return load_synthetic(context_count=3, min_questions=2, max_questions=4, seed=5).groups


@pytest.fixture
def sharp(tiny_bundle):
    return ModelBundle(sharpen(copy.deepcopy(tiny_bundle.model)), tiny_bundle.tokenizer, tiny_bundle.name)


def test_targets_are_the_same_branchs_next_answer_token(tiny_bundle, groups):
    collator = InSequenceCollator(tiny_bundle.tokenizer)
    for group in groups:
        [ex] = collator.examples(group)
        n_questions = len(group.questions)
        assert set(ex.branch) == {TRUNK, *range(n_questions)}
        assert all(b == TRUNK for b in ex.branch[:ex.prefix_len])
        slots_of = {b: [i for i, x in enumerate(ex.branch) if x == b] for b in range(n_questions)}
        supervised = [t for t, target in enumerate(ex.targets) if target != IGNORE_INDEX]
        for t in supervised:
            mine = slots_of[ex.branch[t]]  # never the prefix, never across branches
            nxt = mine[mine.index(t) + 1]
            assert ex.targets[t] == ex.input_ids[nxt]
        for b, slots in slots_of.items():
            assert [ex.position[s] for s in slots] == list(range(ex.prefix_len, ex.prefix_len + len(slots)))
            answer_text = tiny_bundle.tokenizer.decode([ex.targets[s] for s in slots if ex.targets[s] != IGNORE_INDEX])
            assert answer_text.startswith("<answer>") and answer_text.endswith("</answer><|im_end|>")


def test_loss_equals_each_question_trained_alone(sharp, groups):
    """Masks, positions and labels right <=> the in-sequence loss is the token-weighted mean of the per-question
    SFT losses (each question alone, causal, no mask tricks)."""
    model = sharp.model.eval()
    collator, sft = InSequenceCollator(sharp.tokenizer), SFTCollator(sharp.tokenizer)
    with torch.no_grad():
        loss, n = in_sequence_loss(model, collator([collator.examples(g)[0] for g in groups]))
        total, count = 0.0, 0
        for group in groups:
            for example in sft.examples(group):
                single, k = answer_loss(model, sft([example]))
                total, count = total + float(single) * k, count + k
    assert n == count
    assert float(loss) == pytest.approx(total / count, rel=1e-5)
    batch = collator([collator.examples(g)[0] for g in groups])
    batch["allowed"] = torch.ones_like(batch["allowed"]).tril()  # a leaky causal mask gives another loss
    with torch.no_grad():
        assert float(in_sequence_loss(model, batch)[0]) != pytest.approx(total / count, rel=1e-3)


def test_training_step_updates_the_model(sharp, groups):
    method = InSequenceMethod(sharp, optimizer=lambda m: build_optimizer(m, lr=1e-3))
    collator = method.collator()
    batch = collator([collator.examples(g)[0] for g in groups[:2]])
    loss, n = method.training_loss(batch)
    loss.backward()
    grads = [p.grad for p in method.model.parameters() if p.requires_grad]
    assert n > 0 and torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
    optimizer = build_optimizer(method.model, lr=1e-3)
    optimizer.step()
    assert float(method.training_loss(batch)[0]) < float(loss)


def test_predict_step_runs_the_three_stages(sharp):
    method = InSequenceMethod(sharp, optimizer=lambda m: build_optimizer(m, lr=1e-3), generation={"max_new_tokens": 4},
                              decoding={"max_new_tokens": 30, "branch_max_new_tokens": 4,
                                        "conclusion_max_new_tokens": 4, "max_branches": 2, "max_title_tokens": 2,
                                        "force_outline": True})
    method.model.eval()
    example = generate_retrieval(count=1, num_students=3)[0]
    [row] = method.predict_step([example])
    assert row["mode"] == "parallel" and 1 <= row["branch_count"] <= 2 and row["score"]["correct"] in (True, False)
    [plain] = method.predict_step(["Plan a picnic."])
    assert plain["branch_count"] >= 1 and plain["stage2_tokens"] > 0


def test_experiment_trains_one_step(tmp_path):
    one_step = ["trainer.max_steps=1", "validate_before_fit=false", "test=false", "export=false",
                "data.val_groups=1", "data.test_groups=0", "generation.max_new_tokens=2", "dataset.context_count=3"]
    cfg = compose_config("train", ["+experiment=synthetic_inseq", *TINY[:1], *TINY[2:], *one_step],
                         output_dir=tmp_path)
    assert cfg.method.name == "inseq" and cfg.model.name == "tiny_qwen3"
    results = run_training(cfg)
    assert results["status"] == "ok" and results["global_step"] == 1 and results["method"] == "inseq"
