"""Cost-aware selection: thresholds, the cost penalty, ``max_dependencies``, the budget, no cycles — checked on
random candidate sets against properties that do not reuse the selection code (acyclicity by networkx, caps
by counting, and greedy maximality: every eligible edge left out would break a constraint if added)."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from parallel_decoding.dependencies.edges import DependencyEdge, estimate_tokens
from parallel_decoding.dependencies.selection import SelectionPolicy, select_edges

IDS = [f"q{i}" for i in range(8)]


def random_candidates(rng: random.Random, count: int) -> list[DependencyEdge]:
    return [DependencyEdge(*rng.sample(IDS, 2), round(rng.random(), 3)) for _ in range(count)]


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("max_dependencies,budget", [(3, None), (1, None), (2, 120), (None, None)])
def test_selected_edges_form_a_dag_within_caps_and_are_maximal(seed, max_dependencies, budget):
    rng = random.Random(seed)
    tokens = {qid: rng.randint(3, 20) for qid in IDS}
    policy = SelectionPolicy(min_confidence=0.3, cost_weight=0.01, max_dependencies=max_dependencies, budget=budget)
    candidates = random_candidates(rng, 40)
    selected = select_edges(candidates, IDS, policy, tokens)

    graph = nx.DiGraph(s.edge.pair for s in selected)
    graph.add_nodes_from(IDS)
    assert nx.is_directed_acyclic_graph(graph)
    assert len({s.edge.pair for s in selected}) == len(selected)
    if max_dependencies is not None:
        assert max(dict(graph.in_degree()).values()) <= max_dependencies
    spent = sum(s.cost for s in selected)
    if budget is not None:
        assert spent <= budget
    for s in selected:
        assert s.edge.confidence >= 0.3 and s.score > 0
        assert s.cost == tokens[s.edge.source] + policy.answer_tokens + policy.format_overhead
        assert s.score == pytest.approx(s.edge.confidence - 0.01 * s.cost)
    scores = [s.score for s in selected]
    assert scores == sorted(scores, reverse=True)  # accepted best first

    chosen = set(graph.edges)
    for edge in candidates:
        cost = tokens[edge.source] + policy.answer_tokens + policy.format_overhead
        if edge.pair in chosen or edge.confidence < 0.3 or edge.confidence - 0.01 * cost <= 0:
            continue
        capped = max_dependencies is not None and graph.in_degree(edge.target) >= max_dependencies
        cyclic = nx.has_path(graph, edge.target, edge.source)
        over = budget is not None and spent + cost > budget
        assert capped or cyclic or over, f"{edge} was eligible and fits, yet was not selected"


def test_cost_decides_between_equally_confident_prerequisites():
    candidates = [DependencyEdge("long", "t", 0.8), DependencyEdge("short", "t", 0.8)]
    policy = SelectionPolicy(max_dependencies=1)
    selected = select_edges(candidates, ["long", "short", "t"], policy, {"long": 40, "short": 5, "t": 5})
    assert [s.edge.source for s in selected] == ["short"]


def test_threshold_and_penalty_drop_edges():
    candidates = [DependencyEdge("a", "c", 0.34), DependencyEdge("b", "c", 0.9)]
    ids, tokens = ["a", "b", "c"], {"a": 4, "b": 4, "c": 4}
    assert [s.edge.source for s in select_edges(candidates, ids, SelectionPolicy(), tokens)] == ["b"]
    # λ·cost = 0.1 * 18 > 0.9: nothing is worth its cost
    assert select_edges(candidates, ids, SelectionPolicy(cost_weight=0.1), tokens) == []


def test_the_more_confident_edge_of_a_two_cycle_wins_and_duplicates_collapse():
    candidates = [DependencyEdge("a", "b", 0.6), DependencyEdge("b", "a", 0.9), DependencyEdge("b", "a", 0.5),
                  DependencyEdge("a", "a", 1.0), DependencyEdge("a", "zzz", 1.0)]
    selected = select_edges(candidates, ["a", "b"], SelectionPolicy(), {"a": 3, "b": 3})
    assert [(s.edge.pair, s.edge.confidence) for s in selected] == [(("b", "a"), 0.9)]


def test_token_estimate_matches_the_reference_rule():
    assert estimate_tokens("Who founded it?") == 5  # 3 words x 1.4 = 4.2 → 5
    assert estimate_tokens("它在2000年") == 4  # 3 CJK x 0.8 + 4 digits x 0.2 = 3.2 → 4
