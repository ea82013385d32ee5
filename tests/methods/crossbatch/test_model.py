"""The cross-batch model on the tiny Qwen3: logits, generation, the KV cache and teacher forcing, each against an
independent reference (the model's own forward, HF ``generate``, per-row unpadded forwards, SFT's loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.methods.crossbatch.collator import CrossBatchCollator
from parallel_decoding.methods.crossbatch.generator import crossbatch_generate, left_pad
from parallel_decoding.methods.crossbatch.mixing import CrossBatchMixer, MixerConfig
from parallel_decoding.methods.crossbatch.model import CrossBatchModel, left_padded_positions
from parallel_decoding.methods.crossbatch.state_cache import FrozenStateCache
from parallel_decoding.methods.finetuning import IGNORE_INDEX
from parallel_decoding.methods.sft.collator import SFTCollator
from parallel_decoding.methods.sft.module import answer_loss
from tests.methods.crossbatch.test_mixing import randomise


def group_of(texts: list[str], answers: list[str], context: str = "Ada Lovelace was born in London in 1815.",
             gid: str = "g") -> QuestionGroup:
    questions = tuple(Question(id=f"{gid}-{i}", text=t, answers=(a,)) for i, (t, a) in enumerate(zip(texts, answers)))
    return QuestionGroup(id=gid, questions=questions, contexts=(context,))


GROUP = group_of(["Where was she born?", "In which year was Ada Lovelace, the mathematician, born?", "Who?"],
                 ["London", "1815", "Ada Lovelace"])
OTHER = group_of(["What is it?", "Name the element with the symbol Fe, please."], ["iron", "Fe is iron"],
                 context="Iron is a metal.", gid="h")


def chat_prompts(bundle, group: QuestionGroup) -> list[list[int]]:
    backend_free = CrossBatchCollator(bundle.tokenizer)
    return [list(backend_free.row(group, i).prompt_ids) for i in range(len(group.questions))]


def mixing_model(bundle, trained: bool, **settings) -> CrossBatchModel:
    hidden_size = bundle.model.config.hidden_size
    mixer = CrossBatchMixer(MixerConfig(hidden_size=hidden_size, num_heads=4, **settings))
    if trained:
        randomise(mixer)
    return CrossBatchModel(bundle.model, mixer).eval()


def test_mixed_logits_equal_the_models_own_logits_at_initialisation(lively):
    model = mixing_model(lively, trained=False)
    prompts = chat_prompts(lively, GROUP)
    input_ids, mask = left_pad(prompts, lively.tokenizer.pad_token_id)
    with torch.no_grad():
        out = model.forward_hidden(input_ids, mask, left_padded_positions(mask))
        mixed = model.logits(model.hidden_states(out, -1), torch.zeros(3, dtype=torch.long))
        for row, prompt in enumerate(prompts):  # reference: each prompt alone, no padding, the model's logits
            alone = lively.model(input_ids=torch.tensor([prompt])).logits[0, -1]
            assert torch.allclose(mixed[row], alone, atol=1e-4), row


def test_generation_at_initialisation_is_hf_generate(lively):
    model = mixing_model(lively, trained=False)
    prompts = chat_prompts(lively, GROUP) + chat_prompts(lively, OTHER)
    backend = HFBackend(lively, GenerationSettings(max_new_tokens=10))
    expected = backend.generate(prompts)
    result = crossbatch_generate(model, prompts, [0, 0, 0, 1, 1], max_new_tokens=10,
                                 stop_token_ids=backend.stop_token_ids, pad_token_id=lively.tokenizer.pad_token_id)
    assert result.sequences == expected
    assert len({tuple(s) for s in expected}) > 1  # the rows really differ
    assert result.forward_passes == max(len(s) for s in expected)


def test_mixing_changes_tokens_but_never_the_kv_cache(lively):
    model = mixing_model(lively, trained=True)
    prompts = chat_prompts(lively, GROUP)
    pad, steps = lively.tokenizer.pad_token_id, 6
    mixed = crossbatch_generate(model, prompts, max_new_tokens=steps, stop_token_ids=[], pad_token_id=pad,
                                return_cache=True)
    plain = crossbatch_generate(model, prompts, max_new_tokens=steps, stop_token_ids=[], pad_token_id=pad,
                                mixing=False)
    assert mixed.sequences != plain.sequences  # mixing matters for the chosen tokens
    # Reference cache: one plain forward of the model over exactly the tokens the generator fed it.
    fed = [prompt + seq[:-1] for prompt, seq in zip(prompts, mixed.sequences)]
    input_ids, mask = left_pad(fed, pad)
    with torch.no_grad():
        reference = lively.model(input_ids=input_ids, attention_mask=mask, position_ids=left_padded_positions(mask),
                                 use_cache=True)
    ref_cache = reference.cache if reference.get("cache") is not None else reference.past_key_values
    for layer, ref_layer in zip(mixed.cache.layers, ref_cache.layers):
        real = mask.bool()  # padded slots hold nothing anyone reads
        for got, want in ((layer.keys, ref_layer.keys), (layer.values, ref_layer.values)):
            assert got.shape == want.shape
            assert torch.allclose(got.transpose(1, 2)[real], want.transpose(1, 2)[real], atol=1e-5)


def test_mixing_reaches_only_rows_of_the_same_group(lively):
    model = mixing_model(lively, trained=True)
    pad = lively.tokenizer.pad_token_id
    one, two = chat_prompts(lively, GROUP), chat_prompts(lively, OTHER)
    together = crossbatch_generate(model, one + two, [0, 0, 0, 1, 1], max_new_tokens=6, stop_token_ids=[],
                                   pad_token_id=pad)
    alone = crossbatch_generate(model, one, max_new_tokens=6, stop_token_ids=[], pad_token_id=pad)
    assert together.sequences[:3] == alone.sequences


def test_answers_are_aligned_under_left_padding(lively):
    collator = CrossBatchCollator(lively.tokenizer)
    examples = collator.examples(GROUP) + collator.examples(OTHER)
    rows = [r for ex in examples for r in ex.rows]
    assert len({len(r.prompt_ids) for r in rows}) > 1 and len({len(r.target_ids) for r in rows}) > 1
    batch = collator(examples)
    width = batch["prompt_width"]
    assert width == max(len(r.prompt_ids) for r in rows)
    for i, row in enumerate(rows):
        for t, token in enumerate(row.target_ids):  # answer token t at column max_prompt_len + t
            assert batch["input_ids"][i, width + t] == token == batch["targets"][i, t]
        assert torch.all(batch["targets"][i, len(row.target_ids):] == IGNORE_INDEX)
        first = width - len(row.prompt_ids)
        assert batch["position_ids"][i, first] == 0 and batch["attention_mask"][i, :first].sum() == 0
    assert batch["group_ids"].tolist() == [0, 0, 0, 1, 1]

    # The loss = sum of CE / number of answer tokens, against each row run alone without padding ...
    model = CrossBatchModel(lively.model, None).eval()
    with torch.no_grad():
        loss = model.teacher_forced(batch)["loss"]
        total, count = 0.0, 0
        for row in rows:
            ids = torch.tensor([list(row.prompt_ids) + list(row.target_ids)])
            logits = lively.model(input_ids=ids).logits[0]
            start = len(row.prompt_ids) - 1
            total += F.cross_entropy(logits[start:start + len(row.target_ids)], torch.tensor(row.target_ids),
                                     reduction="sum").item()
            count += len(row.target_ids)
        assert abs(loss.item() - total / count) < 1e-4
        # ... and against SFT's right-padded loss on the same rows (the same prompts and targets)
        sft = SFTCollator(lively.tokenizer)
        sft_loss, n = answer_loss(lively.model, sft([e for g in (GROUP, OTHER) for e in sft.examples(g)]))
        assert n == count and abs(loss.item() - sft_loss.item()) < 1e-4


def test_teacher_forcing_predicts_what_the_generator_generates(lively):
    """Train/inference alignment with mixing on: teacher-forcing the generator's own output gives back, at
    every step, the logits the generator chose from (rows of different prompt lengths, two groups)."""
    model = mixing_model(lively, trained=True)
    prompts = chat_prompts(lively, GROUP) + chat_prompts(lively, OTHER)
    groups = [0, 0, 0, 1, 1]
    generated = crossbatch_generate(model, prompts, groups, max_new_tokens=5, stop_token_ids=[],
                                    pad_token_id=lively.tokenizer.pad_token_id).sequences
    input_ids, mask = left_pad(prompts, lively.tokenizer.pad_token_id)
    width = input_ids.shape[1]
    targets = torch.tensor(generated)
    batch = {"input_ids": torch.cat([input_ids, targets], 1),
             "attention_mask": torch.cat([mask, torch.ones_like(targets)], 1), "targets": targets,
             "group_ids": torch.tensor(groups), "prompt_width": width}
    batch["position_ids"] = left_padded_positions(batch["attention_mask"])
    with torch.no_grad():
        logits = model.teacher_forced(batch)["logits"]  # step-major: [steps * rows, vocab]
    assert logits.argmax(-1).tolist() == targets.transpose(0, 1).flatten().tolist()


def test_the_teacher_forced_loss_uses_the_rows_own_prompt_in_mixing(lively):
    """A sibling's answer ending early stops it being a source from the next step on, as in generation."""
    model = mixing_model(lively, trained=True)
    collator = CrossBatchCollator(lively.tokenizer)
    batch = collator(collator.examples(GROUP))
    hidden, active = model.answer_states(batch)
    assert active.shape == (batch["targets"].shape[1], 3)
    shortest = int(active.sum(0).min())
    assert not active[shortest:].all()
    mixed = model.mix(hidden, batch["group_ids"], active)
    assert torch.isfinite(mixed).all()


def test_cached_frozen_states_give_the_uncached_loss_and_skip_the_forward(lively):
    """Rows seen in one batch come back from the cache in another batch (other groups, other padding width) with
    the loss and mixer gradients of a fresh forward; the backbone does not run for that batch."""
    collator = CrossBatchCollator(lively.tokenizer)
    first = collator(collator.examples(GROUP) + collator.examples(OTHER))
    second = collator(collator.examples(OTHER))  # narrower prompts: other padding, other columns
    plain, cached = mixing_model(lively, trained=True), mixing_model(lively, trained=True)
    cached.mixer.load_state_dict(plain.mixer.state_dict())
    cached.state_cache = FrozenStateCache()

    def loss_and_grads(model, batch):
        model.mixer.zero_grad()
        loss = model.teacher_forced(batch)["loss"]
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.mixer.parameters()]

    cached.teacher_forced(first)  # fills the cache
    assert len(cached.state_cache) == 5 and cached.state_cache.misses == 1
    forwards = []
    handle = lively.model.register_forward_hook(lambda *args: forwards.append(1))
    try:
        loss, grads = loss_and_grads(cached, second)
    finally:
        handle.remove()
    assert forwards == [] and cached.state_cache.hits == 1
    reference_loss, reference_grads = loss_and_grads(plain, second)
    assert torch.allclose(loss, reference_loss, atol=1e-5)
    for got, want in zip(grads, reference_grads):  # float32 noise of another padding width, on gradients up to ~20
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
