"""Dependency-aware answering: DAG generators, cost-aware edge selection, layered scheduling, DAG quality, views.

An edge ``source -> target`` always means *target needs source's answer* (the direction of the gold
``QuestionGroup.dependencies``). The strategies that use this package are in ``dependencies/strategy.py``.
"""

from parallel_decoding.dependencies.edges import DependencyEdge, EdgeGenerator, GeneratedEdges, estimate_tokens
from parallel_decoding.dependencies.gold import GoldGenerator
from parallel_decoding.dependencies.heuristic import HeuristicGenerator
from parallel_decoding.dependencies.llm import LLMGenerator, parse_edge_list
from parallel_decoding.dependencies.quality import EdgeCounts, compare_edges, has_gold_dag, precision_recall_f1
from parallel_decoding.dependencies.selection import ScoredEdge, SelectionPolicy, select_edges

__all__ = [
    "DependencyEdge", "EdgeCounts", "EdgeGenerator", "GeneratedEdges", "GoldGenerator", "HeuristicGenerator",
    "LLMGenerator", "ScoredEdge", "SelectionPolicy", "compare_edges", "estimate_tokens", "has_gold_dag",
    "parse_edge_list", "precision_recall_f1", "select_edges",
]
