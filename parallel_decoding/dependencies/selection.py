"""Cost-aware edge selection (the reference's ``select_dependency_edges`` in Fzkuji/parallel-agent).

Every dependency costs prompt tokens — the dependent's prompt carries the prerequisite's question and
answer — and time, since the dependent waits a layer. Candidates are filtered and ranked:

    cost  = tokens(prerequisite question) + answer_tokens + format_overhead      (what the prompt grows by)
    score = confidence − cost_weight · cost

Edges with ``confidence < min_confidence`` or ``score <= 0`` are dropped; the rest are accepted greedily, best
score first, unless the dependent already has ``max_dependencies`` prerequisites, the edge would close a cycle
(checked on the accepted graph with networkx), or the summed cost would exceed ``budget``. Ties are broken by
question order, so the selection is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import networkx as nx

from parallel_decoding.config import ConfigError
from parallel_decoding.dependencies.edges import DependencyEdge


@dataclass(frozen=True)
class SelectionPolicy:
    min_confidence: float = 0.35
    cost_weight: float = 0.01  # λ: confidence given up per prompt token a dependency adds
    max_dependencies: int | None = 3  # prerequisites per question; None = no limit
    budget: int | None = None  # total cost (tokens) of all accepted edges of a group; None = no limit
    answer_tokens: int = 8  # expected length of a prerequisite's answer (unknown when the DAG is built)
    format_overhead: int = 6  # the "- ...: ..." line around it

    def __post_init__(self) -> None:
        if self.max_dependencies is not None and self.max_dependencies < 0:
            raise ConfigError(f"max_dependencies must be >= 0 or null, got {self.max_dependencies}")


@dataclass(frozen=True)
class ScoredEdge:
    edge: DependencyEdge
    cost: int
    score: float

    def pair_key(self) -> tuple[str, str]:
        return self.edge.source, self.edge.target


def select_edges(
    candidates: Sequence[DependencyEdge],
    question_ids: Sequence[str],
    policy: SelectionPolicy,
    question_tokens: Mapping[str, int] | Callable[[str], int],
) -> list[ScoredEdge]:
    """The accepted edges, in acceptance order. ``question_tokens`` gives each question's length in tokens."""
    order = {qid: i for i, qid in enumerate(question_ids)}
    tokens = question_tokens if callable(question_tokens) else question_tokens.__getitem__
    scored: dict[tuple[str, str], ScoredEdge] = {}
    for edge in candidates:
        if edge.source not in order or edge.target not in order or edge.source == edge.target:
            continue
        confidence = min(max(edge.confidence, 0.0), 1.0)
        if confidence < policy.min_confidence:
            continue
        cost = tokens(edge.source) + policy.answer_tokens + policy.format_overhead
        item = ScoredEdge(edge, cost, confidence - policy.cost_weight * cost)
        if item.pair_key() not in scored or item.score > scored[item.pair_key()].score:
            scored[item.pair_key()] = item
    ranked = sorted(scored.values(), key=lambda s: (-s.score, order[s.edge.target], order[s.edge.source]))

    graph = nx.DiGraph()
    graph.add_nodes_from(question_ids)
    accepted, spent = [], 0
    for item in ranked:
        source, target = item.edge.source, item.edge.target
        if item.score <= 0:
            break
        if policy.max_dependencies is not None and graph.in_degree(target) >= policy.max_dependencies:
            continue
        if nx.has_path(graph, target, source):  # source -> target would close a cycle
            continue
        if policy.budget is not None and spent + item.cost > policy.budget:
            continue
        graph.add_edge(source, target)
        accepted.append(item)
        spent += item.cost
    return accepted
