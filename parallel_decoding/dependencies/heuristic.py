"""Lexical dependency rules, from the reference's ``HeuristicDependencyGenerator`` (Fzkuji/parallel-agent).

For each question, in group order, three rules add edges from *earlier* questions (so the result is acyclic):

- **shared keyword** (confidence 0.55): an earlier question shares a non-stopword token (or a CJK character);
- **reference word** (0.85): the question says "it", "that", "previous", 这, 它, ... — an edge from the
  question just before it;
- **aggregate word** (0.65): "total", "compare", "list", 总共, 比较, ... — edges from every earlier question.

Fixed from the reference: its reference/aggregate tests were substring tests, so "it" fired on "city" and
"with" and "list" on "specialist". English words now match whole words only; Chinese words (no spaces to
split on) still match as substrings.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.dependencies.edges import DependencyEdge, EdgeGenerator, GeneratedEdges

if TYPE_CHECKING:
    from parallel_decoding.backends.base import Backend

STOPWORDS = frozenset(
    "a an the of to and or in on at by for from with as into about than then that this these those which what "
    "when where who whom whose how why is are was were be been being do does did has have had can could will "
    "would should may might must it its they them their there here not no yes s one many much more most some any "
    "name named give tell 请 以及 哪些 什么 的 是 了 吗 呢".split()
)
REFERENCE_WORDS = frozenset(
    "it its that this these those they them their previous above aforementioned former latter".split()
)
REFERENCE_WORDS_CJK = ("上述", "前文", "前面", "前一个", "这", "那", "它", "他们", "他", "她", "其", "这些", "该")
AGGREGATE_WORDS = frozenset("aggregate list compare comparison total sum average overall combined altogether".split())
AGGREGATE_WORDS_CJK = ("总共", "总计", "一共", "合计", "总数", "平均", "列表", "列出", "罗列", "排序", "排名", "比较",
                       "对比", "整体", "全部", "汇总")

SHARED_KEYWORD, REFERENCE, AGGREGATE = 0.55, 0.85, 0.65
_TOKEN = re.compile(r"[^\W_]+")
_CJK_CHAR = re.compile(r"[\u4e00-\u9fff]")


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric runs outside CJK (CJK characters are handled one by one)."""
    return [t for t in _TOKEN.findall(_CJK_CHAR.sub(" ", text.lower()))]


def keywords(text: str) -> set[str]:
    """Non-stopword tokens plus every CJK character (Chinese has no spaces to split words on)."""
    found = {w for w in words(text) if w not in STOPWORDS}
    found.update(ch for ch in _CJK_CHAR.findall(text) if ch not in STOPWORDS)
    return found


def has_reference_word(text: str) -> bool:
    return bool(REFERENCE_WORDS.intersection(words(text))) or any(w in text for w in REFERENCE_WORDS_CJK)


def has_aggregate_word(text: str) -> bool:
    return bool(AGGREGATE_WORDS.intersection(words(text))) or any(w in text for w in AGGREGATE_WORDS_CJK)


def heuristic_edges(group: QuestionGroup) -> list[DependencyEdge]:
    """Candidate edges by the three rules; one edge per (source, target), the most confident rule wins."""
    best: dict[tuple[str, str], DependencyEdge] = {}

    def add(source: str, target: str, confidence: float, reason: str) -> None:
        current = best.get((source, target))
        if current is None or confidence > current.confidence:
            best[(source, target)] = DependencyEdge(source, target, confidence, reason)

    questions = group.questions
    for index, question in enumerate(questions):
        own = keywords(question.text)
        for earlier in questions[:index]:
            shared = own & keywords(earlier.text)
            if shared:
                add(earlier.id, question.id, SHARED_KEYWORD, "shared keyword: " + ", ".join(sorted(shared)[:4]))
        if index > 0 and has_reference_word(question.text):
            add(questions[index - 1].id, question.id, REFERENCE, "reference word")
        if has_aggregate_word(question.text):
            for earlier in questions[:index]:
                add(earlier.id, question.id, AGGREGATE, "aggregate word")
    order = {q.id: i for i, q in enumerate(questions)}
    return sorted(best.values(), key=lambda e: (order[e.target], order[e.source]))


class HeuristicGenerator(EdgeGenerator):
    name = "heuristic"

    def generate(self, group: QuestionGroup, backend: "Backend | None" = None) -> GeneratedEdges:
        return GeneratedEdges(edges=heuristic_edges(group), generator=self.name)
