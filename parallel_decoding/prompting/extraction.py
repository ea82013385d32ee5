"""Pull answers out of free-form model output.

Models drift from the requested format in predictable ways (reasoning blocks, JSON instead of tags,
markdown around labels, missing closing tags). Extraction recovers the answer whenever it can, and
records separately whether the requested format was honoured, so the ``strict`` metric can punish
format drift without the other metrics losing correct answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from parallel_decoding.prompting.literals import literal_values
from parallel_decoding.prompting.thinking import strip_thinking

# The body may span lines but not another opening tag: "<answer>a ... <answer>b</answer>" is one
# unclosed answer followed by a closed one, not a single answer containing a tag.
_ANSWER_TAGGED = re.compile(r"<answer\s*>((?:(?!<answer\s*>).)*?)</answer\s*>", re.IGNORECASE | re.DOTALL)
_ANSWER_OPEN = re.compile(r"<answer\s*>", re.IGNORECASE)
_ANSWER_PREFIX = re.compile(
    r"^(?:[*_\s]*(?:final\s+)?answer[*_\s]*[:\-][*_\s]*)+", re.IGNORECASE
)
_FENCE_LINE = re.compile(r"^\s*```[\w-]*\s*$")
# Quotes that commonly wrap a short answer; stripped only when they appear at both ends.
_WRAPPERS = frozenset("\"'`“”‘’«»")


@dataclass(frozen=True)
class ExtractedAnswer:
    """An answer string plus whether the model used the format it was asked for."""

    text: str
    format_valid: bool


def _clean(text: str) -> str:
    """Strip whitespace and wrapping quotes/markdown that carry no answer content."""
    previous = None
    while text != previous:
        previous = text
        text = text.strip().strip("*")
        if len(text) >= 2 and text[0] in _WRAPPERS and text[-1] in _WRAPPERS:
            text = text[1:-1]
    return text


def _value_to_text(value: Any) -> str:
    """JSON answers may be numbers, lists or null; turn them into the plain text a metric compares."""
    if value is None:
        return ""
    if isinstance(value, str):
        tagged = _ANSWER_TAGGED.search(value)
        return tagged.group(1) if tagged else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_to_text(v) for v in value)
    return str(value)


def _iter_json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every parseable ``{...}`` in order of its opening brace, nested ones included."""
    for _, _, value in literal_values(text):
        if isinstance(value, dict):
            yield value


def _get_key(obj: dict[str, Any], key: str) -> tuple[bool, Any]:
    """Case-insensitive key lookup, because models capitalise keys freely."""
    for k, v in obj.items():
        if isinstance(k, str) and k.strip().casefold() == key:
            return True, v
    return False, None


def _first_line(text: str) -> str:
    """First line with content, skipping bare code-fence markers."""
    for line in text.splitlines():
        if line.strip() and not _FENCE_LINE.match(line):
            return line
    return ""


def extract_answer(raw: str) -> ExtractedAnswer:
    """Recover a single answer, preferring the requested ``<answer>`` tags, then JSON, then the first line."""
    text = strip_thinking(raw)

    tagged = _ANSWER_TAGGED.search(text)
    if tagged:
        return ExtractedAnswer(_clean(tagged.group(1)), True)

    opened = _ANSWER_OPEN.search(text)
    if opened:
        rest = text[opened.end() :]
        line = rest.split("\n", 1)[0]
        if not line.strip():
            line = _first_line(rest)
        return ExtractedAnswer(_clean(line), False)

    for obj in _iter_json_objects(text):
        found, value = _get_key(obj, "answer")
        if found:
            return ExtractedAnswer(_clean(_value_to_text(value)), True)

    line = _ANSWER_PREFIX.sub("", _first_line(text))
    return ExtractedAnswer(_clean(line), False)


def _id_alternation(question_ids: list[str]) -> str:
    """Regex alternation of ids, longest first so that overlapping ids prefer the full match."""
    unique = sorted({q.strip() for q in question_ids if q.strip()}, key=len, reverse=True)
    return "|".join(re.escape(q) for q in unique)


def extract_tagged_answers(raw: str, question_ids: list[str]) -> dict[str, ExtractedAnswer]:
    """Recover per-question answers from one all-in-one response (``Q1: <answer>...</answer>`` lines).

    Sources, best first: tagged answers labelled with an id (valid), a JSON object mapping ids to
    answers (valid), then untagged ``Q1: text`` lines (invalid format). Within a source the first
    occurrence of an id wins; ids are matched case-insensitively and only as whole tokens, so ``Q1``
    never picks up ``Q10``. Unknown ids are ignored and unanswered questions are left out.
    """
    if not question_ids:
        return {}
    canonical: dict[str, str] = {}
    for qid in question_ids:
        canonical.setdefault(qid.strip().casefold(), qid)
    ids = _id_alternation(question_ids)
    if not ids:
        return {}
    text = strip_thinking(raw)
    out: dict[str, ExtractedAnswer] = {}

    def put(label: str, answer: ExtractedAnswer) -> None:
        qid = canonical.get(label.strip().casefold())
        if qid is not None and qid not in out:
            out[qid] = answer

    # 1. Id followed by a closed answer tag. Usually only a separator (":", "**:", " - ", ")") lies
    #    between them, but models also restate the question first; any short gap counts as long as it
    #    holds no other id label and no other tag, so a tag is never credited to the wrong question.
    gap = rf"(?:(?!</?answer|(?<!\w)(?:{ids})(?!\w))[\s\S]){{0,300}}?"
    # The body must not run into another tag or onto a line labelled with another id.
    body = rf"(?:(?!<answer\s*>|\n[\s*_(\[>-]*(?:{ids})(?!\w)).)*?"
    tagged = re.compile(
        rf"(?<!\w)({ids})(?!\w){gap}<answer\s*>({body})</answer\s*>", re.IGNORECASE | re.DOTALL
    )
    for m in tagged.finditer(text):
        put(m.group(1), ExtractedAnswer(_clean(m.group(2)), True))

    # 2. A JSON mapping {"Q1": "...", ...}, or records {"id": "Q1", "answer": "..."}.
    if len(out) < len(canonical):
        for obj in _iter_json_objects(text):
            for key, value in obj.items():
                if not isinstance(key, str) or key.strip().casefold() not in canonical:
                    continue
                if isinstance(value, dict):
                    found, value = _get_key(value, "answer")
                    if not found:
                        continue
                put(key, ExtractedAnswer(_clean(_value_to_text(value)), True))
            found_id, rid = _get_key(obj, "id")
            found_ans, value = _get_key(obj, "answer")
            if found_id and found_ans and isinstance(rid, str):
                put(rid, ExtractedAnswer(_clean(_value_to_text(value)), True))

    # 3. Label lines without (closed) tags: "Q1: text", "**Q1**: text", "(Q1) text", "- Q1. text".
    if len(out) < len(canonical):
        label_line = re.compile(
            rf"^\s*(?:[-*•>]+\s*|\d+[.)]\s+)?[(\[]?[*_]*\s*({ids})(?!\w)[*_\s]*[)\]]?[*_\s]*"
            rf"(?:[:.=\-–—]+|(?<=[)\]]))\s*(.*)$",
            re.IGNORECASE,
        )
        lines = text.splitlines()
        for i, line in enumerate(lines):
            m = label_line.match(line)
            if not m:
                continue
            rest = m.group(2)
            if not rest.strip():
                # Answer on the following line, unless that line already belongs to another question.
                nxt = next((ln for ln in lines[i + 1 :] if ln.strip() and not _FENCE_LINE.match(ln)), "")
                rest = "" if label_line.match(nxt) else nxt
            opened = _ANSWER_OPEN.search(rest)
            if opened:
                rest = rest[opened.end() :]
            rest = re.sub(r"</answer\s*>.*", "", rest, flags=re.IGNORECASE)
            rest = _ANSWER_PREFIX.sub("", rest)
            if _clean(rest):
                put(m.group(1), ExtractedAnswer(_clean(rest), False))
    return out
