"""The same strategies on two backends in one sweep (``-m backend=hf,api`` against a real local server): every
``results.json`` row names its backend, a strategy the server cannot run is a counted skip (not a crashed
job), and the report's table, CSVs and plots carry both backends' rows with the jobs' own numbers."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest

from parallel_decoding.backends.hf import GenerationSettings, HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.evaluation.recorder import RunRecorder, read_jsonl
from parallel_decoding.metrics.efficiency import EfficiencyStats
from parallel_decoding.reporting.collect import collect_sweep
from parallel_decoding.serve import ChatCompletionServer
from parallel_decoding.strategies.base import GroupOutcome, QuestionPrediction
from tests.evaluation.test_evaluate_app import _squad_fixture
from tests.helpers import SQUAD_HALF_A, run_module

STRATEGIES = ["independent", "batch", "batch_shared"]


@pytest.fixture(scope="module")
def backend_sweep(tiny_bundle, tmp_path_factory):
    base = tmp_path_factory.mktemp("backend_sweep")
    squad, sweep = _squad_fixture(base / "squad.json"), base / "sweep"
    with ChatCompletionServer(HFBackend(tiny_bundle, GenerationSettings()), "tiny_qwen3") as server:
        result = run_module(
            "parallel_decoding.evaluate", "-m", "backend=hf,api", "model=tiny_qwen3", "dataset=squad",
            f"dataset.path={squad}", "dataset.min_questions=2", "dataset.max_questions=3",
            "dataset.context_count=null", "generation.max_new_tokens=4", f"strategies=[{','.join(STRATEGIES)}]",
            f"hydra.sweep.dir={sweep}", env={"PARALLEL_DECODING_API_URL": server.url}, timeout=600,
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return sweep, result


def _job(sweep, backend: str) -> dict:
    for job in sorted(p for p in sweep.iterdir() if (p / "results.json").is_file()):
        if f"backend={backend}" in (job / ".hydra" / "overrides.yaml").read_text():
            return json.loads((job / "results.json").read_text())
    raise AssertionError(f"no job ran backend={backend}")


def test_results_name_their_backend_and_skip_what_it_cannot_run(backend_sweep):
    sweep, _ = backend_sweep
    hf, api = _job(sweep, "hf"), _job(sweep, "api")
    assert list(hf["strategies"]) == STRATEGIES and list(api["strategies"]) == ["independent", "batch"]
    assert {e["backend"] for e in hf["strategies"].values()} == {"hf"}
    assert {e["backend"] for e in api["strategies"].values()} == {"api"}
    assert "need the model's hidden states" in api["skipped"]["strategies"]["batch_shared"]
    assert "batch_shared" not in hf["skipped"]["strategies"]
    # the HF backend counts forwards; the server's forwards are its own (0 = not counted, shown as "–")
    assert hf["strategies"]["independent"]["efficiency"]["forward_passes"] > 0
    assert api["strategies"]["independent"]["efficiency"]["forward_passes"] == 0


def test_report_rows_per_backend_hold_the_jobs_numbers(backend_sweep):
    sweep, _ = backend_sweep
    markdown = (sweep / "report.md").read_text()
    assert "| backend | independent | batch | batch_shared |" in markdown
    api_line = next(line for line in markdown.splitlines() if line.startswith("| api |"))
    hf_line = next(line for line in markdown.splitlines() if line.startswith("| hf |"))
    assert api_line.rstrip().endswith("| — |") and "tok/fwd" in hf_line and "fwd –" in api_line
    records = collect_sweep(sweep)
    assert records.swept[-1] == "backend"
    rows = list(csv.DictReader((sweep / "report_long.csv").open()))
    assert sorted((r["backend"], r["strategy"]) for r in rows) == sorted(
        [("hf", s) for s in STRATEGIES] + [("api", "independent"), ("api", "batch")])
    for row in rows:
        entry = _job(sweep, row["backend"])["strategies"][row["strategy"]]
        assert float(row["em"]) == entry["metrics"]["em"]
        assert float(row["latency_s"]) == entry["efficiency"]["latency_s"]
        eff = entry["efficiency"]
        assert int(row["computed_prompt_tokens"]) == eff["computed_prompt_tokens"]
        expected = eff["generated_tokens"] / eff["forward_passes"] if eff["forward_passes"] else 0.0
        assert float(row["generated_tokens_per_forward"]) == pytest.approx(expected, abs=1e-4)
    wide = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["backend"] for r in wide] == ["api", "hf"] and wide[0]["batch_shared/em"] == ""
    assert (sweep / "em_vs_latency.png").stat().st_size > 1000


def _outcome() -> GroupOutcome:
    return GroupOutcome([QuestionPrediction("q1", "x", "<answer>x</answer>", True)], EfficiencyStats(latency_s=1.0))


def test_a_run_is_never_resumed_on_another_backend(tmp_path):
    from parallel_decoding.data.schema import Question, QuestionGroup

    group = QuestionGroup(id="g1", questions=(Question(id="q1", text="Q?", answers=("x",), context_index=None),))
    RunRecorder(tmp_path, backend="hf").write_group("independent", group, _outcome())
    with pytest.raises(ConfigError, match="holds results of backend=hf; resuming it with backend=vllm"):
        RunRecorder(tmp_path, resume=True, backend="vllm")
    recorder = RunRecorder(tmp_path, resume=True, backend="hf")
    assert [r["backend"] for r in read_jsonl(recorder.groups_path)] == ["hf"]
    assert recorder.results({}, {})["strategies"]["independent"]["backend"] == "hf"


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed here")
@pytest.mark.skipif(not SQUAD_HALF_A.is_file(), reason=f"{SQUAD_HALF_A} not present")
def test_hf_and_vllm_rows_side_by_side(tmp_path):
    """``-m backend=hf,vllm`` on SmolLM2 (fp32, SQuAD): the deployed engine's rows next to ours in one report,
    with the answers HF gives (greedy fp32) and vLLM's own costs (engine steps, prompt tokens after cache hits)."""
    sweep = tmp_path / "sweep"
    result = run_module(
        "parallel_decoding.evaluate", "-m", "backend=hf,vllm", "model=smollm2_135m", "dataset=squad",
        f"dataset.path={SQUAD_HALF_A}", "dataset.context_count=2", "dataset.min_questions=3",
        "dataset.max_questions=3", "generation.max_new_tokens=12", "strategies=[independent,batch,batch_shared]",
        f"hydra.sweep.dir={sweep}", timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    hf, vllm = _job(sweep, "hf"), _job(sweep, "vllm")
    assert list(hf["strategies"]) == ["independent", "batch", "batch_shared"], hf["skipped"]
    assert list(vllm["strategies"]) == ["independent", "batch"] and "batch_shared" in vllm["skipped"]["strategies"]
    assert {e["backend"] for e in vllm["strategies"].values()} == {"vllm"}
    for strategy, entry in vllm["strategies"].items():
        assert entry["metrics"] == hf["strategies"][strategy]["metrics"], strategy
        assert entry["efficiency"]["generated_tokens"] == hf["strategies"][strategy]["efficiency"]["generated_tokens"]
    markdown = (sweep / "report.md").read_text()
    assert "| backend | independent | batch | batch_shared |" in markdown
    assert any(line.startswith("| vllm |") for line in markdown.splitlines())
    rows = {(r["backend"], r["strategy"]) for r in csv.DictReader((sweep / "report_long.csv").open())}
    assert rows == {("hf", "independent"), ("hf", "batch"), ("hf", "batch_shared"), ("vllm", "independent"),
                    ("vllm", "batch")}
