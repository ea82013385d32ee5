"""What the dataset loaders share: reading a hub split or a local JSON/JSONL file, seeded chunking of
unrelated questions into groups, and how multiple-choice questions are written out.

Every loader takes ``path`` (a local file in the dataset's own release format) or a hub id read through
``datasets.load_dataset``; a hub failure names the offline fix instead of a network traceback.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Iterable, Sequence, TypeVar

from parallel_decoding.config import ConfigError
from parallel_decoding.data.loading import resolve_data_path

T = TypeVar("T")

CHOICE_LETTERS = "ABCDEFGHIJ"
CHOICE_INSTRUCTION = {
    "en": "Answer with the letter of the correct option.",
    "zh": "请只回答正确选项的字母。",
}


def read_hub_split(hub_id: str, split: str, *, name: str | None = None, revision: str | None = None,
                   dataset: str) -> Iterable[dict[str, Any]]:
    """A hub split as rows; any failure (offline, no cache, a script-only dataset) names ``dataset.path``."""
    try:
        import datasets

        kwargs = {"revision": revision} if revision else {}
        return datasets.load_dataset(hub_id, name, split=split, **kwargs) if name else \
            datasets.load_dataset(hub_id, split=split, **kwargs)
    except Exception as error:  # the hub raises many types (connection, offline mode, missing cache)
        raise ConfigError(
            f"dataset {hub_id}{f' ({name})' if name else ''} split {split!r} is not available here; "
            f"pass dataset.path=<local {dataset} file> ({type(error).__name__}: {error})"
        ) from error


def read_json_records(path: str) -> Any:
    """A local JSON document, or a JSONL file as a list of its rows (blank lines ignored)."""
    resolved = resolve_data_path(path)
    text = resolved.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ConfigError(f"{resolved} is neither JSON nor JSONL (line {number}: {error})") from error
        return rows


def chunk_at_random(items: Sequence[T], *, min_size: int, max_size: int | None, seed: int) -> list[list[T]]:
    """Seeded shuffle, then consecutive chunks of a seeded size in [min_size, max_size] (the reference's
    random grouping). The last chunk may be short; ``select_groups`` then skips and counts it."""
    if min_size < 1:
        raise ConfigError(f"min_questions must be >= 1, got {min_size}")
    upper = max_size if max_size is not None else min_size
    if upper < min_size:
        raise ConfigError(f"max_questions ({upper}) is below min_questions ({min_size})")
    rng = random.Random(seed)
    order = list(items)
    rng.shuffle(order)
    chunks, start = [], 0
    while start < len(order):
        size = rng.randint(min_size, upper)
        chunks.append(order[start:start + size])
        start += size
    return chunks


def stable_id(prefix: str, *parts: str) -> str:
    """A short id that depends only on the content (so reruns and resumes see the same ids)."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]
    return f"{prefix}-{digest}"


def choice_options(options: Any) -> dict[str, str]:
    """Options as ``{letter: text}`` from a list (A, B, ... in order) or a letter-keyed dict; empty ones dropped."""
    if isinstance(options, dict):
        pairs = [(str(k).strip().upper(), v) for k, v in options.items()]
    elif isinstance(options, (list, tuple)):
        pairs = list(zip(CHOICE_LETTERS, options))
    else:
        return {}
    return {letter: str(text).strip() for letter, text in sorted(pairs)
            if letter and letter in CHOICE_LETTERS and isinstance(text, (str, int, float)) and str(text).strip()}


def multiple_choice_text(question: str, options: dict[str, str], language: str = "en") -> str:
    """The question as the model sees it: the stem, one ``A. text`` line per option, the answer instruction."""
    lines = "\n".join(f"{letter}. {text}" for letter, text in options.items())
    header = "选项" if language == "zh" else "Options"
    return f"{question.strip()}\n{header}:\n{lines}\n{CHOICE_INSTRUCTION.get(language, CHOICE_INSTRUCTION['en'])}"
