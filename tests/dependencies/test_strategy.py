"""The collab_* strategies on the tiny model, against independent references: with no edges they decode
exactly what ``batch`` decodes; with the gold DAG they decode exactly what answering each question alone, in
dependency order, with its prerequisites' answers in the prompt decodes; the LLM planner's failure on the
random model falls back to the heuristic for real and is counted; and the evaluate app writes edge quality,
the second table and one HTML view per group."""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from html.parser import HTMLParser

import pytest
from hydra.utils import instantiate

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.dependencies.gold import GoldGenerator
from parallel_decoding.dependencies.heuristic import HeuristicGenerator
from parallel_decoding.dependencies.llm import LLMGenerator
from parallel_decoding.dependencies.quality import compare_edges
from parallel_decoding.strategies import build_strategies, strategy_config
from parallel_decoding.strategies.base import prediction_from_output
from parallel_decoding.strategies.batch import BatchStrategy
from parallel_decoding.dependencies.strategy import CollabStrategy
from parallel_decoding.prompting.prompts import single_question_messages
from tests.helpers import compose_config, run_module

COLLAB = ["collab_heuristic", "collab_llm", "collab_bert", "collab_gold"]


@pytest.fixture(scope="module")
def groups():
    found = load_synthetic(context_count=2, min_questions=4, max_questions=5, seed=0).groups
    assert all(g.dependencies for g in found)
    return found


@pytest.fixture(scope="module")
def backend(tiny_bundle):
    return HFBackend(tiny_bundle, GenerationSettings(max_new_tokens=6))


def raw(outcome):
    return [p.raw_output for p in outcome.predictions]


def test_without_edges_collab_is_batch_token_for_token(groups, backend):
    for group in groups:
        flat = dataclasses.replace(group, dependencies=())
        collab = CollabStrategy("collab_gold", GoldGenerator(), measure_ideal=False).run(flat, backend)
        batch = BatchStrategy("batch", batch_size=64).run(flat, backend)
        assert raw(collab) == raw(batch)
        assert collab.extra["layers"] == 1 and collab.efficiency.generate_calls == 1
        assert collab.efficiency.prompt_tokens == batch.efficiency.prompt_tokens
        assert "edge_tp" not in collab.extra  # no gold DAG, nothing to score


def test_gold_dag_equals_answering_alone_in_dependency_order(groups, backend):
    for group in (g for g in groups if g.dependencies):
        outcome = CollabStrategy("collab_gold", GoldGenerator(), measure_ideal=False).run(group, backend)
        questions = {q.id: q for q in group.questions}

        @lru_cache(maxsize=None)
        def depth(qid):
            return max((depth(s) + 1 for s, t in group.dependencies if t == qid), default=0)

        answers, reference = {}, {}
        for qid in sorted(questions, key=lambda q: (depth(q), [x.id for x in group.questions].index(q))):
            needs = [s for s, t in group.dependencies if t == qid]
            needs.sort(key=[x.id for x in group.questions].index)
            known = "".join(f"\n- {questions[s].text}: {answers[s] or '(no answer)'}" for s in needs)
            messages = single_question_messages(group, questions[qid],
                                                f"Known previous answers:{known}" if needs else "")
            [ids] = backend.generate([backend.chat_ids(messages)])
            reference[qid] = backend.decode(ids)
            answers[qid] = prediction_from_output(qid, reference[qid]).prediction
        assert raw(outcome) == [reference[q.id] for q in group.questions]
        assert outcome.extra["layers"] == max(depth(q) for q in questions) + 1
        assert outcome.efficiency.generate_calls == outcome.extra["layers"]
        assert (outcome.extra["edge_tp"], outcome.extra["edge_fp"], outcome.extra["edge_fn"]) == (
            len(set(group.dependencies)), 0, 0)


def test_llm_planner_on_the_random_model_falls_back_to_the_heuristic_and_counts_it(groups, backend):
    group = groups[0]
    llm = CollabStrategy("collab_llm", LLMGenerator(max_new_tokens=16), measure_ideal=False).run(group, backend)
    heuristic = CollabStrategy("collab_heuristic", HeuristicGenerator(), measure_ideal=False).run(group, backend)
    assert llm.extra["llm_fallbacks"] == 1 and llm.extra["dag"]["fallback"]
    assert llm.extra["dag"]["edges"] == heuristic.extra["dag"]["edges"]
    assert raw(llm) == raw(heuristic)  # same DAG, same answers
    assert llm.efficiency.generate_calls == heuristic.efficiency.generate_calls + 1  # the planner call is billed
    assert llm.efficiency.generated_tokens > heuristic.efficiency.generated_tokens
    assert "llm_fallbacks" not in heuristic.extra


class NodeCounter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.nodes, self.edges = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("class") == "node":
            self.nodes.append(a)
        elif a.get("class") == "edge":
            self.edges.append(a)


@pytest.mark.parametrize("name", COLLAB)
def test_configured_strategies_report_layers_quality_and_write_views(name, groups, backend, tmp_path):
    overrides = ["model=tiny_qwen3", "dataset=synthetic", f"strategies=[{name}]"]
    if name == "collab_llm":  # the random model always writes its whole budget
        overrides.append("+strategy.collab_llm.generator.max_new_tokens=12")
    cfg = compose_config("evaluate", overrides, output_dir=tmp_path)
    [strategy] = build_strategies(cfg)
    assert isinstance(strategy, CollabStrategy) and strategy.views_dir == tmp_path / "dag_views" / name
    group = groups[0]
    outcome = strategy.run(group, backend)
    extra = outcome.extra
    edges = [tuple(e[:2]) for e in extra["dag"]["edges"]]
    layer_of = {qid: k for k, layer in enumerate(extra["dag"]["layers"]) for qid in layer}
    assert all(layer_of[s] < layer_of[t] for s, t in edges)
    assert extra["layers"] == len(extra["dag"]["layers"]) and extra["selected_edges"] == len(edges)
    assert extra["ideal_latency_s"] > 0 and extra["dag_latency_s"] >= 0
    counts = compare_edges(edges, group.dependencies)
    assert (extra["edge_tp"], extra["edge_fp"], extra["edge_fn"], extra["edge_groups"]) == (
        counts.tp, counts.fp, counts.fn, 1)
    page = tmp_path / "dag_views" / name / f"{group.id}.html"
    assert extra["dag"]["view"] == str(page)
    parser = NodeCounter()
    parser.feed(page.read_text(encoding="utf-8"))
    assert sorted(n["data-id"] for n in parser.nodes) == sorted(q.id for q in group.questions)
    assert {n["data-id"]: int(n["data-layer"]) for n in parser.nodes} == layer_of
    drawn = {(e["data-source"], e["data-target"]): e["data-status"] for e in parser.edges}
    assert {p for p, status in drawn.items() if status != "missed"} == set(edges)
    assert {p for p, status in drawn.items() if status == "missed"} == set(group.dependencies) - set(edges)


def test_standalone_strategy_yaml_writes_no_views():
    strategy = instantiate(strategy_config("collab_heuristic"), name="collab_heuristic")
    assert strategy.views_dir is None


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("collab") / "run"
    result = run_module(
        "parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=1",
        "dataset.min_questions=4", "dataset.max_questions=5", "generation.max_new_tokens=4",
        f"strategies=[batch,{','.join(COLLAB)}]", "+strategy.collab_llm.generator.max_new_tokens=8",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir, result


@pytest.mark.slow  # the evaluate CLI on FanOutQA (~19 s); the strategies are tested in process above
def test_evaluate_reports_edge_quality_and_the_dependency_table(evaluated):
    run_dir, result = evaluated
    strategies = json.loads((run_dir / "results.json").read_text())["strategies"]
    assert "extra" not in strategies["batch"]
    for name in COLLAB:
        extra = strategies[name]["extra"]
        assert extra["edge_groups"] == 1 and {"edge_precision", "edge_recall", "edge_f1", "layers"} <= set(extra)
        assert extra["layers"] >= 2 and extra["ideal_latency_s"] > 0
        assert len(list((run_dir / "dag_views" / name).glob("*.html"))) == 1
    gold = strategies["collab_gold"]["extra"]
    assert gold["edge_precision"] == gold["edge_recall"] == gold["edge_f1"] == 1.0
    assert strategies["collab_llm"]["extra"]["llm_fallbacks"] == 1
    assert "dependency-aware strategies" in result.stdout and "edge F1" in result.stdout


def test_runs_on_the_api_backend_without_a_local_tokenizer(groups):
    from parallel_decoding.backends.api import ApiBackend
    from parallel_decoding.backends.base import Completion

    backend = ApiBackend("http://127.0.0.1:9/v1", "fake", settings=GenerationSettings(max_new_tokens=5))
    sent = []

    def complete_many(conversations, workers=None, max_tokens=None, **sampling):
        sent.append(conversations)
        return [Completion(f"<answer>a{len(sent)}-{i}</answer>", prompt_tokens=10, completion_tokens=3 + i)
                for i in range(len(conversations))]

    backend.client.complete_many = complete_many
    group = groups[0]
    outcome = CollabStrategy("collab_gold", GoldGenerator()).run(group, backend)
    layers = outcome.extra["dag"]["layers"]
    assert outcome.extra["layers"] == len(layers) >= 2 and outcome.efficiency.generated_tokens > 0
    assert len(sent) == 2 * len(layers)  # one request batch per layer, then one solo re-run per layer (ideal)
    assert all(len(batch) == 1 for batch in sent[len(layers):])
    dependent = next(q for q in group.questions if q.id in layers[1])
    prompt = next(m for batch in sent[1:len(layers)] for conv in batch for m in conv if dependent.text in m["content"])
    assert "Known previous answers:\n- " in prompt["content"] and "a1-" in prompt["content"]
