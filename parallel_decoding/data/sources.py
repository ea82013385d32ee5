"""What the dataset loaders share: reading a hub split or a local JSON/JSONL file, seeded chunking of
unrelated questions into groups, and how multiple-choice questions are written out.

Every loader takes ``path`` (a local file in the dataset's own release format) or a hub id read through
``datasets.load_dataset``; a hub failure names the offline fix instead of a network traceback. SQuAD also looks
in a configured data dir (``choose_source``) before the hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

from parallel_decoding.config import ConfigError
from parallel_decoding.data.loading import PROJECT_ROOT, json_error_line, read_data_text, resolve_data_path
from parallel_decoding.utils.hub import prepare_hub_access

log = logging.getLogger(__name__)

T = TypeVar("T")

CHOICE_LETTERS = "ABCDEFGHIJ"
CHOICE_INSTRUCTION = {
    "en": "Answer with the letter of the correct option.",
    "zh": "请只回答正确选项的字母。",
}


def read_hub_split(hub_id: str, split: str, *, name: str | None = None, revision: str | None = None,
                   dataset: str, fix: str | None = None) -> Iterable[dict[str, Any]]:
    """A hub split as rows; any failure (offline, no cache, a script-only dataset) is one line naming the fix
    (``dataset.path`` unless ``fix`` says more). Offline is detected once, before the hub client's retries."""
    offline = prepare_hub_access()
    try:
        import datasets  # lazy: HF datasets (~1.5 s) only when reading from the hub

        kwargs = {"revision": revision} if revision else {}
        return datasets.load_dataset(hub_id, name, split=split, **kwargs) if name else \
            datasets.load_dataset(hub_id, split=split, **kwargs)
    except Exception as error:  # the hub raises many types (connection, offline mode, missing cache)
        what = f"dataset {hub_id}{f' ({name})' if name else ''} split {split!r}"
        why = (f"the hub cannot be reached ({offline}) and it is not in the local Hugging Face cache" if offline
               else f"{type(error).__name__}: {_short(error)}")
        raise ConfigError(f"{what} is not available: {why}; {fix or f'pass dataset.path=<local {dataset} file>'}") \
            from None


def _short(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class DataSource:
    """Where a dataset is read from: ``path`` (dataset.path), ``data_dir`` (a file found in the configured data
    dir) or ``hub``; ``location`` is the file or the hub id."""

    kind: str
    location: str


def choose_source(dataset: str, *, path: str | None, data_dir: str | None, data_files: Sequence[str],
                  hub_id: str, split: str) -> DataSource:
    """``dataset.path`` first, then the first of ``data_files`` found in ``data_dir``, then the hub; the one
    log line a run gets says which and why."""
    if path:
        resolved = resolve_data_path(path)
        log.info("%s: reading %s (dataset.path)", dataset, resolved)
        return DataSource("path", str(resolved))
    if data_dir:
        root = resolve_data_dir(data_dir)
        for name in data_files:
            candidate = root / name
            if candidate.is_file():
                log.info("%s: reading %s (from the data dir %s)", dataset, candidate.resolve(), root)
                return DataSource("data_dir", str(candidate.resolve()))
        why = f"no dataset.path, and the data dir {root} holds none of {', '.join(data_files) or '(no file names)'}"
    else:
        why = "no dataset.path and no data dir"
    log.info("%s: reading %s split %s from the Hugging Face hub (%s)", dataset, hub_id, split, why)
    return DataSource("hub", hub_id)


def resolve_data_dir(data_dir: str | Path) -> Path:
    """A configured data dir: absolute as is; relative against the cwd, then the project root."""
    given = Path(data_dir).expanduser()
    if given.is_absolute():
        return given
    for candidate in (Path.cwd() / given, PROJECT_ROOT / given):
        if candidate.is_dir():
            return candidate.resolve()
    return (Path.cwd() / given).resolve()


def read_json_records(path: str) -> Any:
    """A local JSON document, or a JSONL file as a list of its rows (blank lines ignored)."""
    resolved, text = read_data_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as document_error:
        lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if not lines or not _parses(lines[0][1]):  # not JSONL either: report the document's own error
            raise ConfigError(json_error_line(resolved, document_error)) from None
        rows = []
        for number, line in lines:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ConfigError(f"data file {resolved} is JSONL but line {number} is not valid JSON: "
                                  f"{error.msg} (column {error.colno})") from None
        return rows


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


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
