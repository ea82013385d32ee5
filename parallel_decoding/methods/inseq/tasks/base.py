"""What every in-sequence task provides: examples (a prompt plus gold answers where they exist) and a scorer."""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from typing import Any, Iterator

from parallel_decoding.config import ConfigError
from parallel_decoding.data.loading import resolve_data_path


@dataclass(frozen=True)
class TaskExample:
    id: str
    task: str  # "retrieval" | "multidoc_qa" | "planning"
    prompt: str  # the user's request, without the format instruction
    gold: tuple[str, ...] = ()  # acceptable answers; empty = no gold (planning)
    distractors: tuple[str, ...] = ()  # answers that must NOT appear with the gold (other candidates)
    language: str = "en"
    metadata: dict[str, Any] = field(default_factory=dict)


def read_jsonl_rows(path: str) -> Iterator[tuple[int, dict]]:
    resolved = resolve_data_path(path)
    with resolved.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{resolved} line {number + 1} is not JSON: {err}") from err
            if not isinstance(row, dict):
                raise ConfigError(f"{resolved} line {number + 1} is not a JSON object")
            yield number, row


def require(row: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {missing}; have {sorted(row)}")


def normalize(text: str) -> str:
    """SQuAD-style: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _labelled(text: str, label: str) -> list[re.Match]:
    return list(re.finditer(rf"{re.escape(label)}\s*:\s*(.+)", text, flags=re.IGNORECASE))


def answered_in_format(text: str, label: str) -> bool:
    """Whether the response gave its answer after ``label:``, as the format instruction asks (strict metric)."""
    return bool(_labelled(text, label))


def final_answer(text: str, label: str) -> str:
    """The text after the last ``label:`` (e.g. ``name:``/``Answer:``), else the last non-empty line."""
    matches = _labelled(text, label)
    if matches:
        return matches[-1].group(1).strip().strip("{}").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def contains_answer(answer: str, gold: tuple[str, ...], distractors: tuple[str, ...] = ()) -> bool:
    """Correct: some gold answer appears in the extracted answer and no distractor does. Empty is wrong."""
    said = normalize(answer)
    if not said:
        return False
    padded = f" {said} "
    if not any(f" {normalize(g)} " in padded for g in gold if normalize(g)):
        return False
    return not any(f" {normalize(d)} " in padded for d in distractors if normalize(d))


def score_example(example: TaskExample, response: str, label: str) -> dict[str, Any]:
    if not example.gold:
        return {"correct": None, "answer": final_answer(response, label)}
    answer = final_answer(response, label)
    return {"correct": contains_answer(answer, example.gold, example.distractors), "answer": answer}


def check_count(count: int) -> None:
    if count < 1:
        raise ConfigError(f"count must be >= 1, got {count}")
