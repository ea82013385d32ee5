"""What every dependency generator produces: weighted edges between a group's questions.

An edge ``source -> target`` means *target needs source's answer*: ``source`` is the prerequisite and is
answered in an earlier layer. This is the direction of ``QuestionGroup.dependencies`` (gold edges are
``(prerequisite_id, dependent_id)``), so predicted and gold edges compare directly.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from parallel_decoding.data.schema import QuestionGroup

if TYPE_CHECKING:  # the backend pulls in torch; generators that never call it need not import it
    from parallel_decoding.backends.base import Backend


@dataclass(frozen=True)
class DependencyEdge:
    source: str  # prerequisite question id
    target: str  # dependent question id (its prompt will carry the source's answer)
    confidence: float  # in [0, 1]; how sure the generator is that the dependency is real
    reason: str = ""  # which rule / model output produced it (shown in the HTML view)

    @property
    def pair(self) -> tuple[str, str]:
        return self.source, self.target


@dataclass
class GeneratedEdges:
    """A generator's candidate edges for one group, before cost-aware selection."""

    edges: list[DependencyEdge]
    generator: str
    fallback: bool = False  # the generator failed and these edges come from the heuristic instead
    raw_output: str | None = None  # what an LLM generator wrote (kept for the view and for debugging)
    details: dict = field(default_factory=dict)  # generator-specific numbers (e.g. the BERT score matrix)


class EdgeGenerator(ABC):
    """Turns a question group into candidate dependency edges."""

    name: str = "generator"
    can_fall_back: bool = False  # True when ``generate`` may return heuristic edges after a failure

    def prepare(self) -> None:
        """Load heavy resources once. Strategies call this outside the measured region, so loading an encoder
        is not billed to the first group's latency."""

    @abstractmethod
    def generate(self, group: QuestionGroup, backend: "Backend") -> GeneratedEdges:
        """Candidate edges between ``group``'s questions (ids as in the group)."""


# -- token estimates (the cost side of cost-aware selection) ------------------------------------------------------
_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_DIGIT = re.compile(r"\d")


def estimate_tokens(text: str) -> int:
    """The reference's tokenizer-free estimate: 1.4 per word, 0.8 per CJK character, 0.2 per digit, rounded up.

    Used when no tokenizer is at hand; strategies count with the model's own tokenizer instead.
    """
    estimate = 1.4 * len(_WORD.findall(text)) + 0.8 * len(_CJK.findall(text)) + 0.2 * len(_DIGIT.findall(text))
    return int(-(-estimate // 1))
