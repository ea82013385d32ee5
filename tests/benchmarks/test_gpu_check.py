"""The GPU check's CPU dry run (tiny model, few tokens): every stage and check runs and passes or reports, so the
script that gets one shot on a GPU cannot rot here; plus the embedded SQuAD lengths and the summary logic."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.benchmarks.gpu_check import collect, main, summary_text
from tests.helpers import SQUAD_HALF_A


@pytest.mark.slow  # about 60 s of CPU (7 Lightning fits, three tiny-model builds, llada sampling)
def test_dry_run_runs_every_stage_and_check(tmp_path, capsys):
    rc = main(["--dry-run", "--in-process", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0, summary["problems"]
    checks = {stage: data["checks"] for stage, data in summary["stages"].items()}
    assert {k for k, c in checks["correctness"].items() if c["status"] == "pass"} >= {
        "strategies_fp32[tiny(dry run)]", "branch2d_fp32[tiny(dry run)]", "crossbatch_fp32[tiny(dry run)]",
        "llada_prefix_cache_fp32[tiny(dry run)]"}
    assert checks["correctness"]["branch2d_fp32[tiny(dry run)]"]["patch_bit_identical_1d"] is True
    assert {k for k, c in checks["training"].items() if c["status"] == "pass"} == {
        f"train_step[{m}]" for m in ("sft", "sft_lora", "crossbatch", "crossbatch:lora_crossbatch", "inseq",
                                     "branch2d", "llada")}
    assert checks["training"]["train_step[sft_lora]"]["grad_norms"]["lora_B"] > 0
    table = checks["speed"]["shared_prefix_summary"]["table"]
    assert set(table) == {"1", "2"} and set(table["2"]) == {"independent", "batch", "batch_shared", "inseq_qa",
                                                            "branch2d"}
    assert all(table["2"][s]["answers_equal_independent"] for s in ("batch", "batch_shared", "inseq_qa"))
    for cache in ("false", "true"):
        assert checks["speed"][f"llada_speed[prefix_cache={cache}]"]["tokens_per_forward"] > 0
    assert "RESULT: all checks passed or reported" in printed


def test_a_failed_check_or_a_killed_stage_is_a_problem(tmp_path):
    (tmp_path / "correctness.json").write_text(json.dumps({"finished": "x", "checks": {
        "a": {"status": "pass"}, "b": {"status": "fail"}, "c": {"status": "info"}}}))
    summary = collect(tmp_path, {"correctness": {"returncode": 0, "killed_after_s": None, "wall_s": 1.0},
                                 "speed": {"returncode": -9, "killed_after_s": 200.0, "wall_s": 200.0}})
    assert not summary["ok"]
    assert summary["problems"] == ["correctness/b: fail", "speed: process killed"]
    assert "KILLED" in summary_text(summary)


@pytest.mark.skipif(not SQUAD_HALF_A.is_file(), reason="needs ../shared/data/squad")
def test_embedded_lengths_are_the_squad_groups_and_synthetic_groups_match_them():
    from parallel_decoding.benchmarks.gpu.workload import group_lengths, load_lengths, squad_lengths, \
        synthetic_groups
    from parallel_decoding.models.tiny import load_qwen_tokenizer

    tokenizer = load_qwen_tokenizer("~/.cache/parallel_decoding/models")
    embedded = load_lengths()
    assert squad_lengths(str(SQUAD_HALF_A), tokenizer=tokenizer) == embedded
    for group, spec in zip(synthetic_groups(tokenizer, embedded), embedded["groups"]):
        got = group_lengths(group, tokenizer)
        assert got["prompt_tokens"] == spec["prompt_tokens"]
        assert got["shared_prefix_tokens"] == spec["shared_prefix_tokens"]
