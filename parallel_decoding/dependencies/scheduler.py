"""Answer a group layer by layer along its dependency DAG.

Layers are the DAG's topological generations (Kahn): layer 0 holds every question without prerequisites and
a question sits one layer after its deepest prerequisite, so every edge goes from an earlier layer to a later
one. Each layer is one batched ``backend.generate`` (``batch_size=None``) — the generate-call count is the
layer count — and a dependent's prompt carries its prerequisites' extracted answers in a
``Known previous answers:`` block before the question (the reference's format).

**Ideal latency.** ``ideal_latency`` is what the schedule would take with unlimited parallel hardware: every
question on its own replica, a layer done when its slowest question is, layers one after another. It is
*measured*, not modelled: after the group (outside the measured region, so nothing is double-billed) the
slowest question of each layer — the one that generated the most tokens, ties to the longer prompt, since
decode steps dominate — is generated again alone with the same prompt, and those solo wall times are summed.
Greedy decoding gives the same tokens alone as in the padded batch, so it is the same work. DAG construction
is not included (the strategy reports it as ``dag_latency_s``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import networkx as nx

from parallel_decoding.backends.base import Backend
from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.strategies.base import QuestionPrediction, prediction_from_output
from parallel_decoding.prompting.prompts import single_question_messages

KNOWN_ANSWERS_HEADER = "Known previous answers:"
NO_ANSWER = "(no answer)"


class CyclicDependencyError(ValueError):
    """Edges handed to the scheduler must form a DAG (selection guarantees it; raw candidates may not)."""


def dependency_layers(question_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Topological generations of the DAG, each in group order; every question appears exactly once."""
    graph = nx.DiGraph()
    graph.add_nodes_from(question_ids)
    graph.add_edges_from(edges)
    if set(graph.nodes) != set(question_ids):
        raise ValueError(f"edges name unknown questions: {sorted(set(graph.nodes) - set(question_ids))}")
    if not nx.is_directed_acyclic_graph(graph):
        raise CyclicDependencyError(f"dependency cycle: {nx.find_cycle(graph)}")
    order = {qid: i for i, qid in enumerate(question_ids)}
    return [sorted(layer, key=order.__getitem__) for layer in nx.topological_generations(graph)]


def known_answers_block(prerequisites: Sequence[tuple[Question, str]]) -> str:
    lines = [f"- {question.text}: {answer.strip() or NO_ANSWER}" for question, answer in prerequisites]
    return "\n".join([KNOWN_ANSWERS_HEADER, *lines])


@dataclass
class LayerRun:
    question_ids: list[str]
    prompts: list[Any]  # token ids (hf, vllm) or messages (api)
    outputs: list[Any]  # token ids, or a Completion on backend=api
    seconds: float  # wall time of the layer's generate call(s)

    def slowest_row(self) -> int:
        return max(range(len(self.outputs)), key=lambda r: (_length(self.outputs[r]), _length(self.prompts[r])))


def _length(item: Any) -> int:
    """Tokens in a prompt/output: token ids on hf/vllm; on backend=api a Completion (server-counted tokens) or
    a messages list (characters, only to break ties)."""
    if hasattr(item, "completion_tokens"):
        return int(item.completion_tokens)
    if item and isinstance(item[0], dict):
        return sum(len(str(m.get("content", ""))) for m in item)
    return len(item)


@dataclass
class ScheduledAnswers:
    predictions: list[QuestionPrediction]  # in group order
    layers: list[LayerRun]
    layer_of: dict[str, int]
    prerequisites: dict[str, list[str]]


def answer_in_layers(group: QuestionGroup, edges: Iterable[tuple[str, str]], backend: Backend,
                     batch_size: int | None = None) -> ScheduledAnswers:
    """Answer every question, one batched generate per layer, dependents seeing their prerequisites' answers."""
    edges = list(edges)
    ids = [q.id for q in group.questions]
    questions = {q.id: q for q in group.questions}
    order = {qid: i for i, qid in enumerate(ids)}
    layers = dependency_layers(ids, edges)
    prerequisites = {qid: sorted({s for s, t in edges if t == qid}, key=order.__getitem__) for qid in ids}
    predictions: dict[str, QuestionPrediction] = {}
    runs = []
    for layer in layers:
        prompts = []
        for qid in layer:
            known = [(questions[p], predictions[p].prediction) for p in prerequisites[qid]]
            block = known_answers_block(known) if known else ""
            prompts.append(backend.chat_ids(single_question_messages(group, questions[qid], block)))
        start = time.perf_counter()
        outputs = backend.generate(prompts, batch_size=batch_size or len(prompts))
        runs.append(LayerRun(list(layer), prompts, outputs, time.perf_counter() - start))
        for qid, output in zip(layer, outputs):
            predictions[qid] = prediction_from_output(qid, backend.decode(output))
    layer_of = {qid: index for index, layer in enumerate(layers) for qid in layer}
    return ScheduledAnswers([predictions[qid] for qid in ids], runs, layer_of, prerequisites)


def ideal_latency(layers: Sequence[LayerRun], backend: Backend) -> float:
    """Σ over layers of the slowest question's solo generate time (see the module doc). Call it outside
    ``backend.measure()``: the solo runs are a measurement of the schedule, not part of its cost."""
    total = 0.0
    for layer in layers:
        prompt = layer.prompts[layer.slowest_row()]
        start = time.perf_counter()
        backend.generate([prompt], batch_size=1)
        total += time.perf_counter() - start
    return total
