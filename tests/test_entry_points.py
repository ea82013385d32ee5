"""The entry points as a user runs them (fresh processes, the real Hydra apps): a mistake is one line and exit 2,
reported before torch & co. are imported, and a run that failed before any work leaves no run dir behind. And
every entry point, in this process (fast): one configuration mistake each, one line and exit 2 through
``utils/cli.py``."""

from __future__ import annotations

import importlib
import json
import logging
import signal
import subprocess
import sys
import time

import pytest
from hydra.core.global_hydra import GlobalHydra

from parallel_decoding.config import PROJECT_ROOT
from parallel_decoding.utils.cli import USER_ERROR_EXIT, run_hydra_app
from tests.helpers import run_module

HEAVY = ("torch", "transformers", "lightning")


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line or "error:" in line]


def imported(result: subprocess.CompletedProcess) -> set[str]:
    """Top-level modules named in ``python -X importtime`` output."""
    return {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
            if line.startswith("import time:")}


def test_config_mistakes_are_one_line_before_heavy_imports(tmp_path):
    run_dir = tmp_path / "run"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "parallel_decoding.evaluate",
                             "strategies=[indepndent,batch]", "dataset.context_count=abc", f"hydra.run.dir={run_dir}"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    assert result.returncode == 2, result.stdout + result.stderr[-2000:]
    [line] = error_lines(result)
    assert line.endswith("unknown strategy 'indepndent'; available: all_in_one, batch, batch_shared, branch2d, "
                         "collab_bert, collab_gold, collab_heuristic, collab_hidden, collab_llm, finetuned, independent, "
                         "inseq_qa, llada, lora_crossbatch, lora_lmhead, sequential; dataset.context_count must be an "
                         "integer (or null), got 'abc'")
    assert not imported(result) & set(HEAVY), f"imported {imported(result) & set(HEAVY)} in {elapsed:.1f}s"
    assert not run_dir.exists()  # nothing was written: no run dir left behind
    assert "Traceback" not in result.stdout + result.stderr


def test_zero_training_steps_is_refused_with_the_right_advice(tmp_path):
    result = run_module("parallel_decoding.train", "trainer.max_steps=0", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert line.endswith("trainer.max_steps=0 trains nothing: give a positive number of optimizer steps "
                         "(e.g. trainer.max_steps=300), or trainer.max_steps=-1 with trainer.max_epochs=N")
    assert not (tmp_path / "run").exists()


def test_an_unwritable_run_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_module("parallel_decoding.evaluate", f"hydra.run.dir={blocker / 'run'}")
    assert result.returncode == 2
    assert error_lines(result) == [f"error: cannot write the run dir {blocker / 'run'}: Not a directory; choose "
                                   f"another with hydra.run.dir=<dir>"]


def test_report_of_a_missing_dir_is_one_line(tmp_path):
    result = run_module("parallel_decoding.report", str(tmp_path / "nope"))
    assert result.returncode == 2 and result.stdout.strip() == f"sweep dir {tmp_path / 'nope'} does not exist"


@pytest.mark.slow  # loads the tiny model in a fresh process (~30-60 s on a busy machine)
def test_a_truncated_dataset_file_is_named_and_the_run_dir_removed(tmp_path):
    data = tmp_path / "squad.json"
    data.write_text('{"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "abc')
    result = run_module("parallel_decoding.evaluate", "model=tiny_qwen3", f"dataset.path={data}",
                        f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert f"data file {data} is not valid JSON (it ends early: a truncated file?)" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a real run interrupted once its first group is written
def test_ctrl_c_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=synthetic",
         "dataset.context_count=200", "generation.max_new_tokens=24", "strategies=[sequential]",
         f"hydra.run.dir={run_dir}"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    groups = run_dir / "groups.jsonl"
    while time.monotonic() < deadline and not (groups.is_file() and groups.stat().st_size > 0):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output[-2000:]
    assert [l for l in output.splitlines() if "ERROR" in l][-1].endswith(
        f"interrupted; resume with resume=true hydra.run.dir={run_dir}")
    assert "Traceback" not in output
    assert json.loads((run_dir / "groups.jsonl").read_text().splitlines()[0])


# --- every entry point, in process: one mistake each is one line and exit 2 --------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def run_main(monkeypatch, capsys):
    """``run(module, *argv)`` starts the module as ``python -m module *argv`` does, in this process, and returns
    (exit code, error lines: logged under ``parallel_decoding``, or printed as ``error: ...``)."""
    lines = _Lines()
    package_log = logging.getLogger("parallel_decoding")
    package_log.addHandler(lines)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # run_hydra_app sets it: put back after the test

    def run(module: str, *argv: str) -> tuple[int, list[str]]:
        monkeypatch.setattr(sys, "argv", [module, *argv])
        GlobalHydra.instance().clear()
        entry = importlib.import_module(module)
        with pytest.raises(SystemExit) as exit_:
            if module in HYDRA_APPS:
                run_hydra_app(entry.main)
            else:
                getattr(entry, "_main" if module.endswith(".serve") else "main")()
        output = capsys.readouterr()
        assert "Traceback" not in output.out + output.err
        printed = [line.removeprefix("error: ") for line in output.err.splitlines() if line.startswith("error: ")]
        return exit_.value.code, lines.lines + printed

    yield run
    GlobalHydra.instance().clear()
    package_log.removeHandler(lines)


HYDRA_APPS = ("parallel_decoding.train", "parallel_decoding.evaluate", "parallel_decoding.generate")
# In this process Hydra must not set up logging: its dictConfig closes every handler there is, and a library's
# handler (absl's) then closes the stream pytest captures into.
QUIET_HYDRA = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


def _cases(tmp):
    """(module, argv, start of the one line), one mistake per entry point."""
    run_dir = f"hydra.run.dir={tmp / 'run'}"
    missing = tmp / "missing"
    held = tmp / "held"
    held.mkdir()
    (held / "results.jsonl").write_text('{"id": "x"}\n')
    blocker = tmp / "a-file"
    blocker.write_text("x")
    return {
        "train": ("parallel_decoding.train", ["trainer.max_steps=0", run_dir, *QUIET_HYDRA],
                  "trainer.max_steps=0 trains nothing"),
        "evaluate": ("parallel_decoding.evaluate", ["strategies=[indepndent]", run_dir, *QUIET_HYDRA],
                     "unknown strategy 'indepndent'"),
        "generate": ("parallel_decoding.generate", [f"checkpoint={missing}", run_dir, *QUIET_HYDRA],
                     f"checkpoint={missing} is not a saved model directory"),
        "serve": ("parallel_decoding.serve", ["host=8.8.8.8", run_dir, *QUIET_HYDRA],
                  "serve binds to loopback addresses only"),
        "report": ("parallel_decoding.report", [str(missing)], f"sweep dir {missing} does not exist"),
        "reproduce": ("parallel_decoding.reproduce", [str(missing)], f"{missing} is not a directory"),
        "inseq": ("parallel_decoding.inseq", [f"hydra.run.dir={held}", *QUIET_HYDRA],
                  f"{held} already holds results"),
        "shared_prefix": ("parallel_decoding.benchmarks.shared_prefix", ["--data", str(missing)],
                          f"data file '{missing}' not found"),
        "profile_engine": ("parallel_decoding.benchmarks.profile_engine", ["profile", "--data", str(missing)],
                           f"data file '{missing}' not found"),
        "gpu_workload": ("parallel_decoding.benchmarks.gpu.workload", ["--squad", str(missing)],
                         f"data file '{missing}' not found"),
        "gpu_check": ("parallel_decoding.benchmarks.gpu_check", ["--dry-run", "--out", str(blocker / "out")],
                      "Not a directory"),
        "train_overhead": ("parallel_decoding.benchmarks.train_overhead",
                           ["--models", "tiny_qwen3", "--steps", "100000", "--repeats", "1"], "only "),
        "llada_convert": ("parallel_decoding.methods.llada.convert",
                          ["--out", str(tmp / "out"), "--path", str(missing)],
                          f"model 'missing': model.path={missing} is not a directory"),
        "llada_compare": ("parallel_decoding.methods.llada.compare", [str(missing), str(missing)],
                          f"{missing}: no model.safetensors"),
    }


ENTRY_POINTS = ["train", "evaluate", "generate", "serve", "report", "reproduce", "inseq", "shared_prefix",
                "profile_engine", "gpu_workload", "gpu_check", "train_overhead", "llada_convert", "llada_compare"]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_a_mistake_is_one_line_and_exit_2_in_every_entry_point(name, run_main, tmp_path):
    module, argv, expected = _cases(tmp_path)[name]
    code, lines = run_main(module, *argv)
    assert code == USER_ERROR_EXIT, lines
    [line] = lines
    assert line.startswith(expected) and "\n" not in line, line


@pytest.mark.slow  # lm-eval indexes its task registry first (~10-40 s)
def test_lm_eval_mistake_is_one_line_and_exit_2(run_main):
    code, lines = run_main("parallel_decoding.lm_eval", "--model", "parallel_decoding", "--model_args",
                           "decoder=nope", "--tasks", "gsm8k")
    assert code == USER_ERROR_EXIT
    assert lines == ["decoder='nope': one of independent, batch, batch_shared, llada"]


@pytest.mark.parametrize("module", [*HYDRA_APPS, "parallel_decoding.serve"])
@pytest.mark.parametrize("mistake,expected", [
    ("model=nope", "In '{task}': Could not find 'model/nope'; Available options in 'model': hub_base, "),
    ("nope.key=3", "Could not override 'nope.key'. To append to your config use +nope.key=3 (Key 'nope' is not in "
                   "struct)"),
    ("seed==1", "Error parsing override 'seed==1'; extraneous input '='"),
])
def test_a_mistake_hydra_finds_is_one_line_and_exit_2(module, mistake, expected, run_main, tmp_path):
    """Before any of the app's code runs: an unknown option, an unknown key, bad override syntax."""
    code, lines = run_main(module, mistake, f"hydra.run.dir={tmp_path / 'run'}", *QUIET_HYDRA)
    assert code == USER_ERROR_EXIT
    [line] = lines
    assert line.startswith(expected.format(task=module.rsplit(".", 1)[1])), line
    assert not (tmp_path / "run").exists()
