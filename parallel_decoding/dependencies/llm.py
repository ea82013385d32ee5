"""Ask the evaluated model itself for the dependency DAG, as a JSON edge list.

The model sees the questions labelled ``Q1..Qn`` (dataset ids are long hashes it would garble) and is asked
for ``{"edges": [{"Q3": "Q1"}]}``, where ``{"Q3": "Q1"}`` means *Q3 needs Q1's answer*, i.e. the edge
Q1 -> Q3 (as in Fzkuji/parallel-agent's planner prompt, whose own label for the key contradicted its example).
The parser also accepts ``{"source": .., "target": ..}`` / ``{"from": .., "to": ..}`` items, list values
(``{"Q3": ["Q1", "Q2"]}``), a bare mapping without ``"edges"``, single-quoted Python literals, code fences,
``<think>`` blocks and prose around the JSON. Confidence is the item's ``confidence`` when given, otherwise
its rank: 1 − 0.5·idx/n (the prompt asks for the most important edges first).

When nothing parseable comes back — or every item names an unknown question — the group falls back to the
heuristic generator and the fallback is counted; an explicit empty list is a valid answer ("no dependencies").
The DAG is built from the questions only, as in the reference's collab strategies: the passage would cost a
long prompt for what is a question-to-question judgement.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.dependencies.edges import DependencyEdge, EdgeGenerator, GeneratedEdges
from parallel_decoding.dependencies.heuristic import heuristic_edges
from parallel_decoding.prompting.literals import literal_values
from parallel_decoding.prompting.thinking import strip_thinking

if TYPE_CHECKING:
    from parallel_decoding.backends.base import Backend

SYSTEM_PLANNER = (
    "You decide which questions need the answer of another question before they can be answered. "
    "Reply with JSON only."
)
PLANNER_INSTRUCTIONS = (
    'List every dependency as {"Qi": "Qj"}, meaning Qi cannot be answered without the answer of Qj. '
    "Use only the labels above, put the most certain dependencies first, and never make a cycle. "
    'Reply with exactly one JSON object of the form {"edges": [{"Q2": "Q1"}]}, '
    'or {"edges": []} if every question can be answered on its own.'
)
_EDGE_LIST_KEYS = ("edges", "dependencies", "deps")
_SOURCE_KEYS = ("source", "from", "prerequisite", "depends_on", "needs", "requires")
_TARGET_KEYS = ("target", "to", "dependent", "question")
_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.MULTILINE)
_LABEL = re.compile(r"^\s*(?:q(?:uestion)?\s*)?[#(]?\s*(\d+)\s*\)?\s*$", re.IGNORECASE)


def planner_labels(group: QuestionGroup) -> list[str]:
    return [f"Q{i + 1}" for i in range(len(group.questions))]


def planner_messages(group: QuestionGroup) -> list[dict[str, str]]:
    lines = "\n".join(f"{label}: {q.text}" for label, q in zip(planner_labels(group), group.questions))
    return [{"role": "system", "content": SYSTEM_PLANNER},
            {"role": "user", "content": f"Questions:\n{lines}\n\n{PLANNER_INSTRUCTIONS}"}]


def label_index(value: Any, count: int) -> int | None:
    """0-based question index of a label such as "Q3", "q3", "Question 3", "3" or 3; None if unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and (match := _LABEL.match(value)):
        number = int(match.group(1))
    else:
        return None
    return number - 1 if 1 <= number <= count else None


def _json_values(text: str) -> list[Any]:
    """Every JSON (or Python-literal) object/array in ``text``, outermost first, in order of appearance."""
    values, covered_until = [], -1
    for start, end, value in literal_values(text):
        if start < covered_until:  # inside a value already taken: its parts are not separate answers
            continue
        values.append(value)
        covered_until = end
    return values


def _get(item: dict, keys: tuple[str, ...]) -> tuple[bool, Any]:
    for key, value in item.items():
        if isinstance(key, str) and key.strip().casefold() in keys:
            return True, value
    return False, None


def _items(value: Any) -> tuple[bool, list[Any]]:
    """(recognised, edge items) for one decoded JSON value."""
    if isinstance(value, dict):
        found, inner = _get(value, _EDGE_LIST_KEYS)
        if found:
            if isinstance(inner, dict):
                return True, [{k: v} for k, v in inner.items()]
            return True, list(inner) if isinstance(inner, list) else []
        return False, [{k: v} for k, v in value.items()]  # a bare {"Q3": "Q1", ...} mapping
    if isinstance(value, list):
        return False, list(value)
    return False, []


def _pairs(item: Any, count: int) -> tuple[list[tuple[int, int]], int]:
    """(prerequisite, dependent) index pairs in one item, and how many references were unusable."""
    if not isinstance(item, dict):
        return [], 1
    has_source, source = _get(item, _SOURCE_KEYS)
    has_target, target = _get(item, _TARGET_KEYS)
    if has_source and has_target:
        raw = [(s, target) for s in (source if isinstance(source, list) else [source])]
    else:
        raw = [(s, key) for key, value in item.items() if key not in ("confidence", "reason", "rationale")
               for s in (value if isinstance(value, list) else [value])]
    pairs, bad = [], 0
    for src, dst in raw:
        i, j = label_index(src, count), label_index(dst, count)
        if i is None or j is None or i == j:
            bad += 1
        else:
            pairs.append((i, j))
    return pairs, bad


def parse_edge_list(text: str, count: int) -> tuple[list[tuple[int, int, float]], int] | None:
    """Edges ``(prerequisite, dependent, confidence)`` as 0-based indices, plus the number of unusable items.

    None means the output held no usable edge list (the caller falls back). The first JSON value that is
    recognisably an edge list wins: one with an ``edges`` key (even empty), or one with at least one valid item.
    """
    cleaned = _FENCE.sub("", strip_thinking(text))
    for value in _json_values(cleaned):
        recognised, items = _items(value)
        edges: dict[tuple[int, int], float] = {}
        bad = 0
        for idx, item in enumerate(items):
            pairs, unusable = _pairs(item, count)
            bad += unusable
            confidence = _confidence(item, idx, len(items))
            for pair in pairs:
                edges.setdefault(pair, confidence)
        if edges or (recognised and not items):
            return [(i, j, c) for (i, j), c in edges.items()], bad
    return None


def _confidence(item: Any, idx: int, total: int) -> float:
    if isinstance(item, dict):
        found, value = _get(item, ("confidence",))
        if found and isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
            return float(value)
    return 1.0 - 0.5 * idx / max(total, 1)


class LLMGenerator(EdgeGenerator):
    """The evaluated model plans the DAG (one extra generate call per group, billed to the strategy)."""

    name = "llm"
    can_fall_back = True

    def __init__(self, max_new_tokens: int = 128) -> None:
        self.max_new_tokens = max_new_tokens

    def generate(self, group: QuestionGroup, backend: "Backend") -> GeneratedEdges:
        if len(group.questions) < 2:  # nothing to plan: no call, no fallback
            return GeneratedEdges(edges=[], generator=self.name)
        [output] = backend.generate([backend.chat_ids(planner_messages(group))], max_new_tokens=self.max_new_tokens)
        raw = backend.decode(output)
        parsed = parse_edge_list(raw, len(group.questions))
        if parsed is None:
            return GeneratedEdges(edges=heuristic_edges(group), generator=self.name, fallback=True, raw_output=raw)
        ids = [q.id for q in group.questions]
        edges = [DependencyEdge(ids[i], ids[j], c, f"llm: Q{j + 1} needs Q{i + 1}") for i, j, c in parsed[0]]
        return GeneratedEdges(edges=edges, generator=self.name, raw_output=raw, details={"unusable_items": parsed[1]})
