"""A sweep in which one job's results.json is damaged: the others are reported, the damaged one is listed."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallel_decoding.report import main as report_main
from parallel_decoding.reporting.collect import collect_sweep
from parallel_decoding.reporting.report import markdown_table
from tests.helpers import run_module


def job(sweep: Path, name: str, size: int, results: bytes | None) -> Path:
    directory = sweep / name
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text(f"- dataset.group_size={size}\n")
    if results is not None:
        (directory / "results.json").write_bytes(results)
    return directory


def results(em: float) -> bytes:
    entry = {"metrics": {"em": em, "f1": em, "lenient": em, "strict": em}, "n_questions": 4,
             "efficiency": {"latency_s": 1.0, "latency_s_per_question": 0.25, "prompt_tokens": 10,
                            "dedup_prompt_tokens": 5, "generated_tokens": 3, "forward_passes": 3,
                            "generate_calls": 1}}
    return json.dumps({"strategies": {"batch": entry}}).encode()


def test_truncated_results_are_listed_and_the_rest_reported(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    job(sweep, "0", 1, results(0.5))
    job(sweep, "1", 2, results(0.75)[:40])  # the job died while writing
    job(sweep, "2", 3, results(0.25))
    job(sweep, "3", 4, None)
    records = collect_sweep(sweep)
    assert [r["job"] for r in records.records] == ["0", "2"] and records.missing_jobs == ["3"]
    assert list(records.broken_jobs) == ["1"] and "truncated JSON" in records.broken_jobs["1"]
    assert "Jobs whose results.json could not be read (left out): 1 (" in markdown_table(records)

    report_main([str(sweep)])  # exit 0: a report of the readable jobs
    out = capsys.readouterr().out
    assert "EM 0.500" in out and "EM 0.250" in out
    assert "job 1 left out: " in out and str(sweep / "1" / "results.json") in out.replace("\n", "")


def test_only_broken_jobs_is_one_line_and_exit_2(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep, "0", 1, b"\xff\xfe not json")
    result = run_module("parallel_decoding.report", str(sweep))  # the command as a user runs it: its own logging
    out = result.stdout.strip()
    assert result.returncode == 2 and "Traceback" not in out + result.stderr
    assert out.startswith(f"no job under {sweep} has a readable results.json; ") and "not UTF-8" in out
    assert len(out.splitlines()) == 1


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=15)
SHAPED = st.fixed_dictionaries({"strategies": st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.fixed_dictionaries({}, optional={"metrics": JSON | st.dictionaries(st.sampled_from(["em", "f1"]), JSON),
                                        "efficiency": JSON, "n_questions": JSON}) | JSON, max_size=2)})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=(SHAPED | JSON).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=60))
def test_any_results_file_is_used_or_listed(tmp_path_factory, content):
    sweep = tmp_path_factory.mktemp("sweep")
    job(sweep, "0", 1, content)
    records = collect_sweep(sweep)
    assert bool(records.broken_jobs) != any(r["job"] == "0" for r in records.records) or \
        (not records.broken_jobs and not records.records)  # a valid file without strategies adds no row
    markdown_table(records)  # renders whatever was read
