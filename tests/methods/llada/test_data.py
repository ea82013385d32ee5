"""Training data: packing, SFT from question groups and from conversations, the answer window, the text sources
(groups, local files, a Hugging Face dataset read from disk) and random-length cropping."""

from __future__ import annotations

import json

import pytest
import torch

from parallel_decoding.config import ConfigError
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.methods.llada.data import (DiffusionCollator, LLaDADataModule, PretrainSettings, SFTSettings,
                                                  conversation_turns, pack_documents)
from parallel_decoding.methods.llada.module import random_length
from parallel_decoding.prompting.chat import chat_prompt_ids
from parallel_decoding.prompting.prompts import single_question_messages


@pytest.fixture(scope="module")
def groups():
    return load_synthetic(context_count=4, min_questions=2, max_questions=3, seed=1).groups


def _collator(tokenizer, mode="sft", **kw):
    pretrain = PretrainSettings(**kw.pop("pretrain", {}))
    sft = SFTSettings(**kw.pop("sft", {}))
    return DiffusionCollator(tokenizer, mode, pretrain, sft)


def test_packing_by_hand():
    rows = pack_documents([[1, 2, 3], [4, 5], [6]], eos_id=9, seq_len=3)
    assert [r.answer_ids for r in rows] == [(1, 2, 3), (9, 4, 5), (9, 6, 9)]
    assert all(r.prompt_ids == () for r in rows)
    assert pack_documents([[1]], eos_id=9, seq_len=3) == []  # a short tail is dropped


def test_sft_example_is_the_evaluate_prompt_then_the_tagged_answer(tiny_causal, groups):
    tokenizer = tiny_causal.tokenizer
    group = groups[0]
    examples = _collator(tokenizer).examples(group)
    assert len(examples) == len(group.questions)
    question = group.questions[0]
    assert list(examples[0].prompt_ids) == chat_prompt_ids(tokenizer, single_question_messages(group, question), False)
    answer = tokenizer.decode(list(examples[0].answer_ids))
    assert answer == f"<answer>{question.answers[0]}</answer><|im_end|>"


def test_batches_have_the_sampler_layout_and_pad_answers_to_sets_the_window(tiny_causal, groups):
    tokenizer = tiny_causal.tokenizer
    examples = _collator(tokenizer).examples(groups[0])[:2]
    plain = _collator(tokenizer)(examples)
    windowed = _collator(tokenizer, sft={"pad_answers_to": 40})(examples)
    width = max(len(e.prompt_ids) for e in examples)
    assert plain["input_ids"].shape[1] == width + max(len(e.answer_ids) for e in examples)
    assert windowed["input_ids"].shape[1] == width + 40
    assert windowed["answer_start"].tolist() == [width, width]
    for row, example in enumerate(examples):
        pad = width - len(example.prompt_ids)
        assert (windowed["input_ids"][row, :pad] == tokenizer.pad_token_id).all()
        assert windowed["attention_mask"][row].tolist() == [0] * pad + [1] * (width - pad + 40)
        end = width + len(example.answer_ids)
        assert windowed["input_ids"][row, pad:end].tolist() == list(example.prompt_ids + example.answer_ids)
        assert (windowed["input_ids"][row, end:] == tokenizer.eos_token_id).all()


def test_max_length_skips_and_counts(tiny_causal, groups):
    collator = _collator(tiny_causal.tokenizer, sft={"max_length": 50})
    assert collator.examples(groups[0]) == []
    assert sum(collator.skipped.values()) == len(groups[0].questions)


def test_conversations_give_one_example_per_assistant_turn(tiny_causal, tmp_path):
    tokenizer = tiny_causal.tokenizer
    rows = [{"system": "Be brief.", "conversations": [
        {"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Teal."},
        {"from": "human", "value": "Another?"}, {"from": "gpt", "value": "Ochre."}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}]
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    collator = _collator(tokenizer, sft={"source": "conversations", "conversations": [str(path)]})
    examples = collator.training_examples([])
    assert len(examples) == 3
    second = tokenizer.decode(list(examples[1].prompt_ids))
    assert "Be brief." in second and "Teal." in second and second.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert tokenizer.decode(list(examples[1].answer_ids)) == "Ochre.<|im_end|>"
    assert "system" not in tokenizer.decode(list(examples[2].prompt_ids))
    with pytest.raises(ConfigError, match="speaker"):
        conversation_turns({"conversations": [{"from": "robot", "value": "x"}]})


def test_pretraining_from_groups_packs_across_documents(tiny_causal, groups):
    collator = _collator(tiny_causal.tokenizer, mode="pretrain", pretrain={"seq_len": 64})
    rows = collator.training_examples(groups)
    assert rows and all(len(r.answer_ids) == 64 and r.prompt_ids == () for r in rows)
    text_tokens = sum(len(tiny_causal.tokenizer(c)["input_ids"]) + 1 for g in groups for c in g.contexts)
    assert len(rows) == text_tokens // 64
    per_group = collator.examples(groups[0])  # one group alone: its tail padded, so it always gives rows
    assert per_group and all(len(r.answer_ids) == 64 for r in per_group)
    batch = collator(rows[:3])
    assert batch["input_ids"].shape == (3, 64) and batch["answer_start"].tolist() == [0, 0, 0]
    assert batch["attention_mask"].all()


def test_pretraining_from_local_files(tiny_causal, tmp_path):
    (tmp_path / "a.txt").write_text("one two three four five six seven eight nine ten " * 3)
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "alpha beta gamma delta " * 4}) + "\n")
    collator = _collator(tiny_causal.tokenizer, mode="pretrain",
                         pretrain={"source": "files", "files": [str(tmp_path / "*")], "seq_len": 8,
                                   "text_field": "body"})
    rows = collator.training_examples([])
    text = tiny_causal.tokenizer.decode([t for r in rows for t in r.answer_ids])
    assert text.startswith("one two three") and "ten <|im_end|>alpha beta" in text  # a.txt, EOS, then the jsonl row
    assert all(len(r.answer_ids) == 8 for r in rows)


def test_pretraining_from_a_hugging_face_dataset(tiny_causal, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps({"text": f"document number {i} " * 5})
                                                  for i in range(6)))
    collator = _collator(tiny_causal.tokenizer, mode="pretrain",
                         pretrain={"source": "hf", "dataset_id": str(folder), "seq_len": 16, "max_documents": 4})
    rows = collator.training_examples([])
    text = tiny_causal.tokenizer.decode([t for r in rows for t in r.answer_ids])
    assert "document number 0" in text and "document number 5" not in text


def test_unknown_sources_and_modes_are_refused(tiny_causal):
    with pytest.raises(ConfigError):
        PretrainSettings(source="web")
    with pytest.raises(ConfigError):
        SFTSettings(source="chats")
    with pytest.raises(ConfigError):
        _collator(tiny_causal.tokenizer, mode="rl")
    with pytest.raises(ConfigError, match="files"):
        _collator(tiny_causal.tokenizer, mode="pretrain", pretrain={"source": "files"}).training_examples([])


def test_the_llada_data_module_builds_from_the_configured_source(tiny_causal, groups):
    collator = _collator(tiny_causal.tokenizer, mode="pretrain", pretrain={"seq_len": 32})
    module = LLaDADataModule(groups, collator, batch_size=2, val_groups=1, test_groups=1)
    module.setup()
    assert module.train_examples == collator.training_examples(module.splits.train)


def test_random_length_takes_effect():
    torch.manual_seed(0)
    assert {random_length(20, 0.0) for _ in range(20)} == {20}
    lengths = {random_length(20, 1.0) for _ in range(40)}
    assert len(lengths) > 3 and max(lengths) <= 20 and min(lengths) >= 1
