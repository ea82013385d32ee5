"""The dataset's own dependency DAG (FanOutQA ``depends_on``, synthetic chains) as edges: the upper bound.

A group without gold edges yields none, so ``collab_gold`` on SQuAD is exactly one batched layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.dependencies.edges import DependencyEdge, EdgeGenerator, GeneratedEdges

if TYPE_CHECKING:
    from parallel_decoding.backends.base import Backend


class GoldGenerator(EdgeGenerator):
    name = "gold"

    def generate(self, group: QuestionGroup, backend: "Backend | None" = None) -> GeneratedEdges:
        edges = [DependencyEdge(src, dst, 1.0, "gold") for src, dst in dict.fromkeys(group.dependencies)]
        return GeneratedEdges(edges=edges, generator=self.name)
