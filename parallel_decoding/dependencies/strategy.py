"""Dependency-aware strategies: build a DAG over the group's questions, keep the edges worth their cost, then
answer layer by layer — everything independent in one batch, dependents after their prerequisites with those
answers in their prompts (the collab strategies of Fzkuji/parallel-agent).

One class serves ``collab_heuristic``, ``collab_llm``, ``collab_bert`` and ``collab_gold``; the YAML picks the
generator and the selection policy. Beyond the usual predictions and efficiency, each group's ``extra`` holds
``layers``, ``dag_latency_s`` (generator + selection, inside the measured latency), ``ideal_latency_s``
(see ``dependencies/scheduler.py``), candidate/selected edge counts, ``llm_fallbacks`` for generators that can
fall back, and — when the group has a gold DAG — ``edge_tp/edge_fp/edge_fn/edge_groups``; plus the DAG itself
under ``dag``. With ``run_dir`` set, an HTML view per group goes to ``<run_dir>/dag_views/<strategy>/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from parallel_decoding.backends.base import Backend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.dependencies.edges import EdgeGenerator, GeneratedEdges, estimate_tokens
from parallel_decoding.dependencies.quality import compare_edges, has_gold_dag, precision_recall_f1
from parallel_decoding.dependencies.scheduler import ScheduledAnswers, answer_in_layers, ideal_latency
from parallel_decoding.dependencies.selection import ScoredEdge, SelectionPolicy, select_edges
from parallel_decoding.dependencies.view import DagView, ViewEdge, ViewNode, write_view
from parallel_decoding.metrics.qa import score_prediction
from parallel_decoding.strategies.base import GroupOutcome, QuestionPrediction, Strategy

VIEWS_SUBDIR = "dag_views"


class CollabStrategy(Strategy):
    def __init__(self, name: str, generator: EdgeGenerator, selection: SelectionPolicy | Mapping | None = None,
                 batch_size: int | None = None, measure_ideal: bool = True, run_dir: str | None = None) -> None:
        super().__init__(name)
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 or null (one call per layer), got {batch_size}")
        self.generator = generator
        self.selection = selection if isinstance(selection, SelectionPolicy) else SelectionPolicy(**(selection or {}))
        self.batch_size = batch_size
        self.measure_ideal = measure_ideal
        self.views_dir = Path(run_dir) / VIEWS_SUBDIR / name if run_dir else None

    def plan_and_answer(self, group: QuestionGroup, backend: Backend
                        ) -> tuple[GeneratedEdges, list[ScoredEdge], float, ScheduledAnswers]:
        start = time.perf_counter()
        generated = self.generator.generate(group, backend)
        tokenizer = getattr(backend, "tokenizer", None)  # backend=api has none: estimate instead
        tokens = {q.id: len(tokenizer.encode(q.text, add_special_tokens=False)) if tokenizer is not None
                  else estimate_tokens(q.text) for q in group.questions}
        selected = select_edges(generated.edges, [q.id for q in group.questions], self.selection, tokens)
        dag_seconds = time.perf_counter() - start
        scheduled = answer_in_layers(group, [s.edge.pair for s in selected], backend, self.batch_size)
        return generated, selected, dag_seconds, scheduled

    def answer_group(self, group: QuestionGroup, backend: Backend) -> list[QuestionPrediction]:
        return self.plan_and_answer(group, backend)[3].predictions

    def run(self, group: QuestionGroup, backend: Backend) -> GroupOutcome:
        self.generator.prepare()  # load an encoder before the clock starts
        with backend.measure() as stats:
            generated, selected, dag_seconds, scheduled = self.plan_and_answer(group, backend)
        extra: dict[str, Any] = {
            "layers": len(scheduled.layers),
            "candidate_edges": len(generated.edges),
            "selected_edges": len(selected),
            "dag_latency_s": round(dag_seconds, 6),
        }
        if self.measure_ideal:  # after measure(): the solo re-runs are not part of the schedule's cost
            extra["ideal_latency_s"] = round(ideal_latency(scheduled.layers, backend), 6)
        if self.generator.can_fall_back:
            extra["llm_fallbacks"] = int(generated.fallback)
        predicted = [s.edge.pair for s in selected]
        scored = has_gold_dag(group)
        if scored:
            counts = compare_edges(predicted, group.dependencies)
            extra.update(edge_tp=counts.tp, edge_fp=counts.fp, edge_fn=counts.fn, edge_groups=1)
        extra["dag"] = {
            "generator": generated.generator,
            "fallback": generated.fallback,
            "edges": [[s.edge.source, s.edge.target, round(s.edge.confidence, 4), round(s.score, 4)]
                      for s in selected],
            "layers": [layer.question_ids for layer in scheduled.layers],
        }
        if self.views_dir is not None:
            view = self.view(group, generated, selected, scheduled, extra, stats.latency_s, scored)
            extra["dag"]["view"] = str(write_view(view, self.views_dir, group.id))
        return GroupOutcome(predictions=scheduled.predictions, efficiency=stats, extra=extra)

    def view(self, group: QuestionGroup, generated: GeneratedEdges, selected: list[ScoredEdge],
             scheduled: ScheduledAnswers, extra: dict[str, Any], latency_s: float, scored: bool) -> DagView:
        labels = {q.id: f"Q{i + 1}" for i, q in enumerate(group.questions)}
        by_id = {p.question_id: p for p in scheduled.predictions}
        nodes = []
        for q in group.questions:
            p = by_id[q.id]
            scores = score_prediction(p.prediction, list(q.answers), p.format_valid)
            nodes.append(ViewNode(q.id, labels[q.id], q.text, scheduled.layer_of[q.id], p.prediction,
                                  list(q.answers), scores.em == 1.0, scores.f1,
                                  [labels[s] for s in scheduled.prerequisites[q.id]]))
        gold = set(group.dependencies) if scored else set()
        edges = [ViewEdge(s.edge.source, s.edge.target, s.edge.confidence,
                          ("match" if s.edge.pair in gold else "extra") if scored else "unscored", s.edge.reason)
                 for s in selected]
        chosen = {s.edge.pair for s in selected}
        edges += [ViewEdge(src, dst, None, "missed", "gold") for src, dst in group.dependencies
                  if scored and (src, dst) not in chosen]
        summary: dict[str, Any] = {"strategy": self.name, "group": group.id, "generator": generated.generator,
                                   "questions": len(group.questions), "layers": extra["layers"],
                                   "latency_s": latency_s, "dag_latency_s": extra["dag_latency_s"],
                                   "ideal_latency_s": extra.get("ideal_latency_s"),
                                   "candidate_edges": extra["candidate_edges"],
                                   "selected_edges": extra["selected_edges"]}
        if generated.fallback:
            summary["fallback"] = "LLM output unusable: heuristic edges"
        if scored:
            prf = precision_recall_f1(extra["edge_tp"], extra["edge_fp"], extra["edge_fn"])
            summary.update({f"edge_{k}": v for k, v in prf.items()})
        correct = sum(n.correct for n in nodes)
        summary["exact_match"] = f"{correct}/{len(nodes)}"
        return DagView(f"{self.name} · group {group.id}", nodes, edges, summary, generated.raw_output)
