"""Layered scheduling: layers against an independent depth recursion, every edge from an earlier layer to a
later one, one generate call per layer, dependents' prompts carrying their prerequisites' answers, and the
ideal-latency re-runs staying out of the measured cost."""

from __future__ import annotations

import random
from functools import lru_cache

import pytest

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.dependencies.scheduler import (CyclicDependencyError, answer_in_layers, dependency_layers,
                                                       ideal_latency)


def random_dag(rng: random.Random, n: int, p: float) -> tuple[list[str], list[tuple[str, str]]]:
    ids = [f"q{i}" for i in range(n)]
    rank = rng.sample(range(n), n)  # a hidden topological order, unrelated to the list order
    edges = [(ids[a], ids[b]) for a in range(n) for b in range(n) if rank[a] < rank[b] and rng.random() < p]
    return ids, edges


@pytest.mark.parametrize("seed", range(30))
def test_layers_are_longest_path_depths_and_edges_point_forward(seed):
    rng = random.Random(seed)
    ids, edges = random_dag(rng, rng.randint(1, 9), rng.choice([0.0, 0.2, 0.5]))
    layers = dependency_layers(ids, edges)
    layer_of = {qid: k for k, layer in enumerate(layers) for qid in layer}
    assert sorted(layer_of) == sorted(ids) and sum(map(len, layers)) == len(ids)

    @lru_cache(maxsize=None)
    def depth(qid: str) -> int:
        return max((depth(s) + 1 for s, t in edges if t == qid), default=0)

    assert layer_of == {qid: depth(qid) for qid in ids}
    assert all(layer_of[s] < layer_of[t] for s, t in edges)
    order = {qid: i for i, qid in enumerate(ids)}
    assert all(layer == sorted(layer, key=order.get) for layer in layers)


def test_a_cycle_is_refused():
    with pytest.raises(CyclicDependencyError):
        dependency_layers(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")])


class RecordingBackend(HFBackend):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[list[str]] = []

    def generate(self, prompts, batch_size=None, max_new_tokens=None):
        self.calls.append([self.tokenizer.decode(p) for p in prompts])
        return super().generate(prompts, batch_size=batch_size, max_new_tokens=max_new_tokens)


@pytest.fixture(scope="module")
def backend(tiny_bundle):
    return RecordingBackend(tiny_bundle, GenerationSettings(max_new_tokens=6))


def chain_group() -> QuestionGroup:
    texts = ["Which company built the stadium?", "Who founded that company?", "Where is the river?",
             "When was the founder born?"]
    questions = tuple(Question(f"q{i}", t, ("x",), 0) for i, t in enumerate(texts))
    return QuestionGroup("chain", questions, contexts=("Some passage about a stadium.",),
                         dependencies=(("q0", "q1"), ("q1", "q3")))


def test_each_layer_is_one_generate_and_dependents_see_their_prerequisites_answers(backend):
    group = chain_group()
    backend.calls.clear()
    with backend.measure() as stats:
        result = answer_in_layers(group, group.dependencies, backend)
    assert [layer.question_ids for layer in result.layers] == [["q0", "q2"], ["q1"], ["q3"]]
    assert len(backend.calls) == 3 and stats.generate_calls == 3
    answers = {p.question_id: p.prediction for p in result.predictions}
    first, second, third = backend.calls
    assert all("Known previous answers:" not in prompt for prompt in first)
    expected_q1 = f"Known previous answers:\n- Which company built the stadium?: {answers['q0'] or '(no answer)'}"
    assert expected_q1 in second[0] and "Some passage about a stadium." in second[0]
    assert f"- Who founded that company?: {answers['q1'] or '(no answer)'}" in third[0]
    assert "Which company built the stadium?:" not in third[0]  # only direct prerequisites are carried
    assert [p.question_id for p in result.predictions] == ["q0", "q1", "q2", "q3"]


def test_batch_size_splits_a_layer_into_calls(backend):
    group = chain_group()
    with backend.measure() as stats:
        answer_in_layers(group, [], backend, batch_size=3)
    assert stats.generate_calls == 2  # one layer of 4 questions, 3 + 1


def test_ideal_latency_reruns_each_layers_slowest_question_outside_the_measured_cost(backend):
    group = chain_group()
    with backend.measure() as stats:
        result = answer_in_layers(group, group.dependencies, backend)
    before = stats.to_dict()
    backend.calls.clear()
    seconds = ideal_latency(result.layers, backend)
    assert seconds > 0 and stats.to_dict() == before
    assert len(backend.calls) == 3 and all(len(call) == 1 for call in backend.calls)
    slowest = result.layers[0].slowest_row()
    assert backend.calls[0][0] == backend.tokenizer.decode(result.layers[0].prompts[slowest])
    lengths = [len(o) for o in result.layers[0].outputs]
    assert len(result.layers[0].outputs[slowest]) == max(lengths)
