"""``batch_shared`` and ``inseq_qa`` answer exactly what ``independent`` answers (greedy, fp32), report the same
efficiency fields, and run from ``evaluate``'s real config."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.decoding import split_shared_prefix
from parallel_decoding.evaluation.runner import run_evaluation
from parallel_decoding.models import build_tiny_qwen3
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.strategies.batch import BatchStrategy
from parallel_decoding.strategies.batch_shared import BatchSharedStrategy
from parallel_decoding.strategies.independent import IndependentStrategy
from parallel_decoding.methods.inseq.strategy import InSequenceQAStrategy
from parallel_decoding.prompting.prompts import single_question_messages
from tests.decoding.conftest import sharpen
from tests.helpers import compose_config


@pytest.fixture(scope="module")
def backend():
    bundle = build_tiny_qwen3()
    sharp = ModelBundle(sharpen(bundle.model), bundle.tokenizer, bundle.name)
    return HFBackend(sharp, GenerationSettings(max_new_tokens=10))


def test_shared_prefix_strategies_equal_independent(backend):
    groups = load_synthetic(context_count=3, min_questions=1, max_questions=6, seed=4).groups
    assert {len(g.questions) for g in groups} != {1}
    for group in groups:
        reference = IndependentStrategy("independent").run(group, backend)
        batch = BatchStrategy("batch").run(group, backend)
        for strategy in (BatchSharedStrategy("batch_shared"), InSequenceQAStrategy("inseq_qa")):
            outcome = strategy.run(group, backend)
            assert [p.raw_output for p in outcome.predictions] == [p.raw_output for p in reference.predictions]
            eff = outcome.efficiency
            assert eff.generated_tokens == reference.efficiency.generated_tokens
            assert eff.prompt_tokens == batch.efficiency.prompt_tokens  # the same prompts were sent
            assert eff.dedup_prompt_tokens == batch.efficiency.dedup_prompt_tokens
            assert eff.generate_calls == 1 and eff.latency_s > 0
            assert 2 <= eff.forward_passes <= 2 + 9  # prefix, branch prompts, at most max_new_tokens - 1 steps


def test_prefix_is_the_common_token_prefix_of_the_chat_prompts(backend):
    group = load_synthetic(context_count=1, min_questions=3, max_questions=3, seed=1).groups[0]
    prompts = [backend.chat_ids(single_question_messages(group, q)) for q in group.questions]
    prefix, branches = split_shared_prefix(prompts)
    context_ids = backend.tokenizer.encode(group.contexts[0])
    assert len(prefix) > len(context_ids)  # system prompt + the whole passage are shared
    assert all(prefix + b == p for b, p in zip(branches, prompts))


def test_evaluate_runs_the_new_strategies(tmp_path):
    cfg = compose_config("evaluate", ["model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=2",
                                      "generation.max_new_tokens=6", "strategies=[independent,batch_shared,inseq_qa]"],
                         output_dir=tmp_path)
    results = run_evaluation(cfg, tmp_path)
    assert set(results["strategies"]) == {"independent", "batch_shared", "inseq_qa"}
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    by_strategy = {}
    for row in rows:
        by_strategy.setdefault(row["strategy"], []).append(row["raw_output"])
    assert by_strategy["batch_shared"] == by_strategy["independent"] == by_strategy["inseq_qa"]
    for name in ("batch_shared", "inseq_qa"):
        eff = results["strategies"][name]["efficiency"]
        assert eff["forward_passes"] > 0 and eff["latency_s"] > 0 and eff["generate_calls"] == 2


@pytest.mark.parametrize("backend_name", ["api", "vllm"])
def test_engine_strategies_are_refused_on_prompt_only_backends(backend_name, tmp_path):
    """The engine needs custom 4D masks and a forked KV cache: the real configs must be refused up front."""
    from parallel_decoding.backends import refuse_unsupported
    from parallel_decoding.config import ConfigError
    from parallel_decoding.strategies import build_strategies

    cfg = compose_config("evaluate", [f"backend={backend_name}", "strategies=[independent,batch_shared,inseq_qa]"],
                         output_dir=tmp_path)
    strategies = build_strategies(cfg)
    refuse_unsupported(strategies[:1], cfg.backend)  # independent only sends prompts
    with pytest.raises(ConfigError, match=r"\['batch_shared', 'inseq_qa'\] need"):
        refuse_unsupported(strategies, cfg.backend)
