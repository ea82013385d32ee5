"""The report's intervals, paired comparisons, seeds as mean ± sd, and accuracy under parallelism, on sweep dirs
written from known rows (no model): every number is checked against one computed here independently."""

from __future__ import annotations

import csv
import json
import statistics

import pytest
import yaml

from parallel_decoding.evaluation.recorder import summarize
from parallel_decoding.metrics.parallelism import aup_interval
from parallel_decoding.reporting.report import write_report
from parallel_decoding.reporting.wandb_log import strategy_summary
from tests.helpers import run_module


def _results(size: int, seed: int) -> dict:
    """Two strategies on 4 groups of ``size`` questions; b's hit rate depends on the seed and the size."""
    rows, groups = [], []
    for strategy in ("a", "b"):
        for g in range(4):
            for q in range(size):
                hit = (g + q + seed) % 2 == 0 if strategy == "a" else (g * size + q + seed) % 3 != 0
                rows.append({"strategy": strategy, "group_id": f"g{g}", "question_id": f"q{q}",
                             "prediction": "yes" if hit else "no", "gold": ["yes"], "format_valid": True})
            groups.append({"strategy": strategy, "group_id": f"g{g}", "n_questions": size,
                           "efficiency": {"latency_s": 1.0 + seed, "prompt_tokens": 10, "dedup_prompt_tokens": 5, "computed_prompt_tokens": 10,
                                          "generated_tokens": 4 * size,
                                          "forward_passes": 4 * size if strategy == "a" else 4,
                                          "generate_calls": 1}})
    return {"strategies": summarize(rows, groups), "skipped": {}, "config": {}}


def _predictions(size: int, seed: int) -> list[dict]:
    """The per-question rows behind ``_results`` (what ``predictions.jsonl`` holds), scored."""
    return [{"strategy": s, "group_id": f"g{g}", "question_id": f"q{q}",
             "em": float((g + q + seed) % 2 == 0 if s == "a" else (g * size + q + seed) % 3 != 0)}
            for s in ("a", "b") for g in range(4) for q in range(size)]


def _sweep(root, sizes, seeds, predictions=False, backends=(None,)):
    job = 0
    for size in sizes:
        for seed in seeds:
            for backend in backends:
                job_dir = root / str(job)
                (job_dir / ".hydra").mkdir(parents=True)
                overrides = [f"dataset.group_size={size}"] + ([f"seed={seed}"] if len(seeds) > 1 else []) \
                    + ([f"backend={backend}"] if backend else [])
                (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
                results = _results(size, seed)
                if backend == "vllm":  # the other engine answers b worse: its AUP must not be pooled with hf's
                    results["strategies"]["b"]["metrics"]["em"] /= 2
                for entry in results["strategies"].values():
                    entry["backend"] = backend
                (job_dir / "results.json").write_text(json.dumps(results))
                if predictions:
                    (job_dir / "predictions.jsonl").write_text(
                        "".join(json.dumps(row) + "\n" for row in _predictions(size, seed)))
                job += 1
    return root


def test_single_seed_report_shows_each_jobs_intervals_and_paired_tests(tmp_path):
    sweep = _sweep(tmp_path, sizes=(2, 3), seeds=(0,))
    write_report(sweep)
    markdown = (sweep / "report.md").read_text()
    long = list(csv.DictReader((sweep / "report_long.csv").open()))
    for job, size in (("0", 2), ("1", 3)):
        results = json.loads((sweep / job / "results.json").read_text())["strategies"]
        em = results["b"]["intervals"]["em"]
        assert f"EM {em['mean']:.3f} [{em['ci_low']:.3f}, {em['ci_high']:.3f}]" in markdown
        paired = results["b"]["paired"]["metrics"]["em"]
        assert f"| {size} | b | {paired['diff']:+.3f} [{paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}] " \
               f"p={paired['p_value']:.3g}" in markdown
        row = next(r for r in long if r["job"] == job and r["strategy"] == "b")
        assert float(row["em_ci_low"]) == em["ci_low"] and float(row["em_p"]) == paired["p_value"]
        assert float(row["tokens_per_forward"]) == results["b"]["parallelism"]["tokens_per_forward"]["mean"]
    assert (sweep / "em_vs_latency.png").stat().st_size > 0


def test_seeds_are_merged_as_mean_and_sd_and_aup_is_over_group_size(tmp_path):
    sweep = _sweep(tmp_path, sizes=(1, 2, 4), seeds=(0, 1, 2))
    write_report(sweep)
    markdown = (sweep / "report.md").read_text()
    assert "Mean ± sd across 3 seeds (seed)" in markdown
    wide = {r["dataset.group_size"]: r for r in csv.DictReader((sweep / "report.csv").open())}
    assert sorted(wide) == ["1", "2", "4"]
    means = {}
    for size in (1, 2, 4):
        ems = [_results(size, seed)["strategies"]["b"]["metrics"]["em"] for seed in (0, 1, 2)]
        means[size] = statistics.fmean(ems)
        assert float(wide[str(size)]["b/em"]) == pytest.approx(means[size])
        assert float(wide[str(size)]["b/em_sd"]) == pytest.approx(statistics.stdev(ems))
        assert int(wide[str(size)]["b/n_seeds"]) == 3
        assert f"EM {means[size]:.3f} ± {statistics.stdev(ems):.3f}" in markdown
    assert len(list(csv.DictReader((sweep / "report_long.csv").open()))) == 9 * 2  # every job kept there
    # AUP of b over group size 1..4: the trapezoid of the seed means, divided by the range 3
    area = (means[1] + means[2]) / 2 * 1 + (means[2] + means[4]) / 2 * 2
    assert "Accuracy under parallelism (em vs dataset.group_size)" in markdown
    assert f"| b | 1 – 4 | 3 | {area / 3:.3f} | {area:.3f} |" in markdown


def test_aup_interval_resamples_each_jobs_groups(tmp_path):
    sweep = _sweep(tmp_path, sizes=(1, 2, 4), seeds=(0, 1), predictions=True)
    write_report(sweep)
    markdown = (sweep / "report.md").read_text()
    points = []
    for job, (size, seed) in enumerate((s, d) for s in (1, 2, 4) for d in (0, 1)):
        rows = [r for r in _predictions(size, seed) if r["strategy"] == "b"]
        groups = sorted({r["group_id"] for r in rows})
        sums = [sum(r["em"] for r in rows if r["group_id"] == g) for g in groups]
        points.append((size, sums, [size] * len(groups)))
    low, high = aup_interval(points)
    means = {s: statistics.fmean(sum(p[1]) / sum(p[2]) for p in points if p[0] == s) for s in (1, 2, 4)}
    area = (means[1] + means[2]) / 2 + (means[2] + means[4])
    assert low <= area / 3 <= high and low < high
    assert f"| b | 1 – 4 | 3 | {area / 3:.3f} [{low:.3f}, {high:.3f}] | {area:.3f} |" in markdown


def test_aup_is_per_backend_in_a_backend_sweep(tmp_path):
    sweep = _sweep(tmp_path, sizes=(1, 2, 4), seeds=(0,), backends=("hf", "vllm"))
    write_report(sweep)
    markdown = (sweep / "report.md").read_text()
    ems = {(s, b): _results(s, 0)["strategies"]["b"]["metrics"]["em"] / (2 if b == "vllm" else 1)
           for s in (1, 2, 4) for b in ("hf", "vllm")}
    for backend in ("hf", "vllm"):
        area = (ems[1, backend] + ems[2, backend]) / 2 + (ems[2, backend] + ems[4, backend])
        assert f"| b | {backend} | 1 – 4 | 3 | {area / 3:.3f} | {area:.3f} |" in markdown


def test_aup_over_measured_tokens_per_forward(tmp_path):
    sweep = _sweep(tmp_path, sizes=(1, 2, 4), seeds=(0,))
    write_report(sweep, degree="tokens_per_forward")
    markdown = (sweep / "report.md").read_text()
    assert "(em vs tokens_per_forward)" in markdown
    assert "| a | — | <2 | — | — |" in markdown  # a decodes one token per call at every size: no range
    assert "| b | 1 – 4 | 3 |" in markdown  # b's tokens per forward = the group size
    result = run_module("parallel_decoding.report", str(sweep), "--degree", "strategy.llada.sampler.threshold")
    assert result.returncode == 2 and "neither a swept override (dataset.group_size)" in " ".join(result.stdout.split())
    assert "Traceback" not in result.stdout + result.stderr


def test_wandb_summary_carries_intervals_paired_and_parallelism():
    results = _results(3, 0)
    summary, columns, rows = strategy_summary(results)
    b = results["strategies"]["b"]
    assert summary["b/em_ci_low"] == b["intervals"]["em"]["ci_low"]
    assert summary["b/em_p"] == b["paired"]["metrics"]["em"]["p_value"]
    assert summary["b/tokens_per_forward"] == b["parallelism"]["tokens_per_forward"]["mean"]
    assert "b/paired_reference" not in summary and "em_ci_high" in columns


def test_cells_of_other_metric_sets_and_of_seed_replicates():
    from parallel_decoding.reporting.uncertainty import aggregate_seeds, metric_text

    assert metric_text({"accuracy": 0.5, "accuracy_ci_low": 0.2, "accuracy_ci_high": 0.8}) == "acc 0.500 [0.200, 0.800]"
    records = [{"job": str(i), "seed": str(i), "strategy": "s", "em": em, "em_ci_low": 0.0, "em_ci_high": 1.0,
                "n_questions": 10} for i, em in enumerate((0.2, 0.4, 0.9))]
    merged, swept = aggregate_seeds(records, ["seed"])
    assert swept == [] and len(merged) == 1
    assert merged[0]["em"] == pytest.approx(0.5) and merged[0]["em_sd"] == pytest.approx(statistics.stdev([.2, .4, .9]))
    assert "em_ci_low" not in merged[0] and merged[0]["n_questions"] == 10 and merged[0]["n_seeds"] == 3
    assert metric_text(merged[0]) == f"EM 0.500 ± {statistics.stdev([.2, .4, .9]):.3f}"
