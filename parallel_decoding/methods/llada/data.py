"""Training data for the diffusion LM: packed pretraining text and SFT (prompt, answer) pairs.

- **Pretraining** (``mode=pretrain``): documents tokenized, each followed by EOS, concatenated and cut into rows
  of exactly ``seq_len`` tokens (the incomplete tail is dropped). Documents come from ``pretrain.source``:
  ``groups`` (the training groups' contexts: the offline default, e.g. the synthetic generator's paragraphs),
  ``hf`` (a Hugging Face text dataset by id, ``text_field`` of ``split``) or ``files`` (local ``.txt`` files,
  one document each, or ``.jsonl`` rows with ``text_field``).
- **SFT** (``mode=sft``): the prompt is what ``evaluate`` sends (the chat template with the batch strategy's
  messages for question groups) and the answer is ``<answer>gold</answer>`` + EOS, as for causal SFT, so the
  diffusion model learns the format it is scored in. ``sft.source=conversations`` reads
  ``{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}], "system": ...}`` rows
  (JSON list or JSONL): every gpt turn is one example whose prompt is the conversation before it.
  Batches have the sampler's layout: prompts left-padded (masked out of attention) so every answer starts at
  the same index, answers EOS-padded to a common window; the EOS padding belongs to the answer (LLaDA's SFT: the
  model learns to fill the rest of its window with EOS). ``sft.pad_answers_to`` makes the window at least
  that long: set it to the sampler's ``gen_length`` and training sees exactly the layout sampling fills.

``examples(group)`` gives one group's examples (what the shared data module and the validation loss use);
``training_examples(groups)`` builds the whole training set from the configured source (``LLaDADataModule``
calls it; packing then runs across documents, and non-group sources become possible).
"""

from __future__ import annotations

import glob
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.methods.datamodule import MethodCollator, QuestionGroupDataModule
from parallel_decoding.methods.finetuning import answer_target
from parallel_decoding.prompting.chat import chat_prompt_ids
from parallel_decoding.prompting.prompts import single_question_messages

log = logging.getLogger(__name__)

PRETRAIN_SOURCES = ("groups", "hf", "files")
SFT_SOURCES = ("groups", "conversations")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


@dataclass(frozen=True)
class DiffusionExample:
    prompt_ids: tuple[int, ...]  # never noised (empty in pretraining)
    answer_ids: tuple[int, ...]  # noised and scored


@dataclass
class PretrainSettings:
    source: str = "groups"
    seq_len: int = 256
    dataset_id: str | None = None  # source=hf
    dataset_config: str | None = None
    split: str = "train"
    text_field: str = "text"
    files: list[str] = field(default_factory=list)  # source=files: paths or globs
    max_documents: int | None = None
    random_length_prob: float = 0.01  # share of training batches cropped to a random length

    def __post_init__(self) -> None:
        if self.source not in PRETRAIN_SOURCES:
            raise ConfigError(f"pretrain.source={self.source!r}; use one of {', '.join(PRETRAIN_SOURCES)}")
        if self.seq_len < 2:
            raise ConfigError(f"pretrain.seq_len must be >= 2, got {self.seq_len}")
        if not 0 <= self.random_length_prob <= 1:
            raise ConfigError("pretrain.random_length_prob must be in [0, 1]")


@dataclass
class SFTSettings:
    source: str = "groups"
    conversations: list[str] = field(default_factory=list)  # source=conversations: JSON / JSONL paths or globs
    max_length: int = 1024  # prompt + answer; longer examples are skipped (counted)
    pad_answers_to: int | None = None  # the answer window every batch row gets at least (the sampler's gen_length)

    def __post_init__(self) -> None:
        if self.source not in SFT_SOURCES:
            raise ConfigError(f"sft.source={self.source!r}; use one of {', '.join(SFT_SOURCES)}")


def _expand(patterns: Iterable[str]) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not matches:
            raise FileNotFoundError(f"no file matches {pattern}")
        paths.extend(Path(m) for m in matches)
    return paths


def pack_documents(documents: Iterable[Sequence[int]], eos_id: int, seq_len: int) -> list[DiffusionExample]:
    """Token documents, EOS after each, concatenated and cut into ``seq_len`` rows; the short tail is dropped."""
    rows, buffer = [], []
    for doc in documents:
        buffer.extend(doc)
        buffer.append(eos_id)
        while len(buffer) >= seq_len:
            rows.append(DiffusionExample((), tuple(buffer[:seq_len])))
            buffer = buffer[seq_len:]
    return rows


def group_documents(groups: Iterable[QuestionGroup]) -> list[str]:
    """The distinct contexts of ``groups``, in order."""
    return list(dict.fromkeys(c for g in groups for c in g.contexts if c.strip()))


def load_text_documents(settings: PretrainSettings) -> list[str]:
    """The documents of ``source=hf`` or ``source=files``."""
    if settings.source == "hf":
        if not settings.dataset_id:
            raise ConfigError("pretrain.source=hf needs pretrain.dataset_id (a Hugging Face dataset id)")
        import datasets  # lazy: HF datasets (~1.5 s) only when reading from the hub

        try:
            rows = datasets.load_dataset(settings.dataset_id, settings.dataset_config, split=settings.split,
                                         streaming=True)
        except Exception as err:  # offline, unknown id, gated: one clear line instead of a hub traceback
            raise ConfigError(f"cannot load dataset {settings.dataset_id!r}: {err}") from err
        docs = []
        for row in rows:
            if settings.text_field not in row:
                raise ConfigError(f"dataset {settings.dataset_id} has no field {settings.text_field!r}; "
                                  f"fields: {sorted(row)}")
            docs.append(str(row[settings.text_field]))
            if settings.max_documents and len(docs) >= settings.max_documents:
                break
        return docs
    if not settings.files:
        raise ConfigError("pretrain.source=files needs pretrain.files (paths or globs of .txt / .jsonl files)")
    docs = []
    for path in _expand(settings.files):
        if path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                if line.strip():
                    docs.append(str(json.loads(line)[settings.text_field]))
        else:
            docs.append(path.read_text())
        if settings.max_documents and len(docs) >= settings.max_documents:
            return docs[:settings.max_documents]
    return docs


def load_conversations(patterns: Sequence[str]) -> list[dict[str, Any]]:
    if not patterns:
        raise ConfigError("sft.source=conversations needs sft.conversations (JSON or JSONL files)")
    rows: list[dict[str, Any]] = []
    for path in _expand(patterns):
        text = path.read_text()
        if path.suffix == ".jsonl":
            rows.extend(json.loads(line) for line in text.splitlines() if line.strip())
        else:
            loaded = json.loads(text)
            rows.extend(loaded if isinstance(loaded, list) else [loaded])
    return rows


def conversation_turns(row: dict[str, Any]) -> list[dict[str, str]]:
    """Chat messages of one ``conversations`` row (``system`` first when given)."""
    if "conversations" not in row:
        raise ConfigError(f"a conversation row has no 'conversations' list: {sorted(row)}")
    messages = [{"role": "system", "content": str(row["system"])}] if row.get("system") else []
    for turn in row["conversations"]:
        role = ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise ConfigError(f"unknown speaker {turn.get('from')!r} (use human / gpt / system)")
        messages.append({"role": role, "content": str(turn.get("value", ""))})
    return messages


class DiffusionCollator(MethodCollator):
    """Examples and batches for ``mode`` (pretrain | sft): ``input_ids``, ``attention_mask`` [B, L] and
    ``answer_start`` [B]."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, mode: str, pretrain: PretrainSettings, sft: SFTSettings,
                 enable_thinking: bool = False) -> None:
        super().__init__()
        if mode not in ("pretrain", "sft"):
            raise ConfigError(f"method.mode={mode!r}; use pretrain or sft")
        if tokenizer.eos_token_id is None:
            raise ConfigError("the tokenizer has no EOS token")
        self.tokenizer, self.mode, self.pretrain, self.sft = tokenizer, mode, pretrain, sft
        self.enable_thinking = enable_thinking
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

    @property
    def reads_groups_only(self) -> bool:
        source = self.pretrain.source if self.mode == "pretrain" else self.sft.source
        return source == "groups"

    def _text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _sft_example(self, messages: list[dict[str, str]], answer: str) -> DiffusionExample | None:
        prompt = chat_prompt_ids(self.tokenizer, messages, self.enable_thinking)
        target = self._text_ids(answer) + [self.eos_id]
        if len(prompt) + len(target) > self.sft.max_length:
            self.skip(f"longer than sft.max_length={self.sft.max_length}")
            return None
        return DiffusionExample(tuple(prompt), tuple(target))

    def examples(self, group: QuestionGroup) -> list[DiffusionExample]:
        if self.mode == "pretrain":  # this group's text alone; the tail is padded so every group gives a row
            docs = [self._text_ids(c) + [self.eos_id] for c in group_documents([group])]
            stream = [t for d in docs for t in d]
            n = self.pretrain.seq_len
            return [DiffusionExample((), tuple(stream[i:i + n] + [self.eos_id] * max(0, i + n - len(stream))))
                    for i in range(0, len(stream), n)]
        built = []
        for question in group.questions:
            answer = next(a for a in question.answers if a.strip())
            built.append(self._sft_example(single_question_messages(group, question), answer_target(answer)))
        return [ex for ex in built if ex is not None]

    def training_examples(self, groups: Sequence[QuestionGroup]) -> list[DiffusionExample]:
        """The whole training set from the configured source (``groups`` are the training split)."""
        if self.mode == "pretrain":
            texts = group_documents(groups) if self.pretrain.source == "groups" else load_text_documents(self.pretrain)
            rows = pack_documents((self._text_ids(t) for t in texts), self.eos_id, self.pretrain.seq_len)
            if not rows:
                raise ConfigError(f"the pretraining text ({len(texts)} documents) is shorter than one row of "
                                  f"pretrain.seq_len={self.pretrain.seq_len} tokens")
            log.info("pretraining: %d documents packed into %d rows of %d tokens", len(texts), len(rows),
                     self.pretrain.seq_len)
            return rows
        if self.sft.source == "groups":
            return [ex for g in groups for ex in self.examples(g)]
        built = []
        for row in load_conversations(self.sft.conversations):
            messages = conversation_turns(row)
            for i, message in enumerate(messages):
                if message["role"] == "assistant" and i > 0:
                    built.append(self._sft_example(messages[:i], message["content"]))
        return [ex for ex in built if ex is not None]

    def __call__(self, examples: list[DiffusionExample]) -> dict[str, torch.Tensor]:
        """The sampler's layout: prompts left-padded (padding masked out of attention, positions restarting at
        each prompt's first token) so every answer starts at the same index, then the answer window, EOS-padded.
        ``answer_start`` [B] is where noising may begin (0 in pretraining)."""
        width = max(len(ex.prompt_ids) for ex in examples)
        window = max(len(ex.answer_ids) for ex in examples)
        if self.mode == "sft":
            window = max(window, self.sft.pad_answers_to or 0)
        input_ids = torch.full((len(examples), width + window), self.eos_id, dtype=torch.long)
        attention_mask = torch.ones_like(input_ids)
        for row, ex in enumerate(examples):
            pad = width - len(ex.prompt_ids)
            input_ids[row, :pad] = self.pad_id
            attention_mask[row, :pad] = 0
            input_ids[row, pad:width + len(ex.answer_ids)] = torch.tensor(ex.prompt_ids + ex.answer_ids,
                                                                          dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "answer_start": torch.full((len(examples),), width, dtype=torch.long)}


class LLaDADataModule(QuestionGroupDataModule):
    """The shared data module, except that the training set comes from ``collator.training_examples``: packing
    across documents, and pretraining / SFT sources other than the question groups (``data._target_``)."""

    def setup(self, stage: str | None = None) -> None:
        if self.train_examples is not None:
            return
        if not isinstance(self.collator, DiffusionCollator):
            raise ConfigError("LLaDADataModule serves method=llada only")
        self.train_examples = self.collator.training_examples(self.splits.train)
        if not self.train_examples:
            raise ConfigError(f"no training examples (skipped: {self.collator.skipped})")
        log.info("data: %d training examples, %d val groups, %d test groups; skipped: %s", len(self.train_examples),
                 len(self.splits.val), len(self.splits.test), self.collator.skipped or "none")
