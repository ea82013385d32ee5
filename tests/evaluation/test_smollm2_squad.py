"""Slow: the README's main command on the real model and the shared SQuAD file (skipped when it is absent)."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.evaluation.recorder import read_jsonl, summarize
from tests.helpers import SQUAD_HALF_A, run_module

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SQUAD_HALF_A.is_file(), reason=f"{SQUAD_HALF_A} not present")]


def test_smollm2_answers_squad_groups_under_every_strategy(tmp_path):
    result = run_module(
        "parallel_decoding.evaluate", "model=smollm2_135m", "dataset=squad", f"dataset.path={SQUAD_HALF_A}",
        "dataset.context_count=3", "generation.max_new_tokens=24",
        "strategies=[independent,sequential,batch,all_in_one]", f"hydra.run.dir={tmp_path}", timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    rows = read_jsonl(tmp_path / "predictions.jsonl")
    assert summarize(rows, read_jsonl(tmp_path / "groups.jsonl")) == results["strategies"]
    by_strategy = {}
    for row in rows:
        by_strategy.setdefault(row["strategy"], {})[row["question_id"]] = row["raw_output"]
    # Greedy fp32: the left-padded batch decodes exactly what each question decodes alone.
    assert by_strategy["batch"] == by_strategy["independent"]
    # A real instruct model reading the passage overlaps the gold answers; a broken prompt or template does not.
    assert results["strategies"]["independent"]["metrics"]["f1"] > 0.15
    assert results["strategies"]["independent"]["efficiency"]["dedup_prompt_tokens"] < \
        results["strategies"]["independent"]["efficiency"]["prompt_tokens"]
