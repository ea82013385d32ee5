"""The GPU check: prove the CUDA path and take the GPU figures in one prepared run of under 8 minutes.

    bash launchers/gpu_check.sh $OUT                                  # on the GPU machine (installs .whl/ first)
    python -m parallel_decoding.benchmarks.gpu_check --out DIR        # the same, without the wheel step
    python -m parallel_decoding.benchmarks.gpu_check --dry-run --out DIR   # tiny sizes on a CPU (a test runs it)

Three stages, each in its own process (a CUDA fault in one cannot take the others down) with its own time
budget; a stage stops starting checks when its budget is spent, and is killed ``GRACE_S`` after it:

1. ``correctness`` (``gpu/correctness.py``): exactness of batch / batch_shared / inseq_qa / branch2d, the
   cross-batch generator and the llada prefix cache, fp32 token for token; bf16 agreement rates;
2. ``training`` (``gpu/training.py``): one optimizer step of every method, bf16-mixed, with peak memory;
3. ``speed`` (``gpu/speed.py``): the shared-prefix benchmark on a Qwen3-4B-shaped model and llada's speed.

Each stage rewrites ``<stage>.json`` in ``--out`` after every check, so whatever ran is kept; at the end
``summary.json`` gathers them and a summary is printed (last, where a truncated log still shows it); the stages'
own output goes to ``gpu_check.log``. Exit status: 0 when every check passed or reported, 1 when one failed,
raised or was cut off, 2 when the device is unusable (no CUDA).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from parallel_decoding.benchmarks.gpu.common import Budget, StageReport, device_facts
from parallel_decoding.utils.cli import exit_on_user_error

STAGES = ("correctness", "training", "speed")
logger = logging.getLogger(__name__)  # the module-level name: `log` is the stage log file below
# seconds per stage on one H100/H200 (start-up, model builds and imports included): 425 s of the 8 minutes,
# the rest for the wheel install and the kill grace
BUDGETS_S = {"correctness": 115.0, "training": 125.0, "speed": 185.0}
DRY_BUDGETS_S = {"correctness": 300.0, "training": 300.0, "speed": 300.0}  # a loaded 2-core CPU
GRACE_S = 15.0
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
NO_CUDA_EXIT = 2


def stage_main(stage: str, out: Path, device: str, dry_run: bool, budget_s: float) -> int:
    """One stage in this process: its checks, written to ``<out>/<stage>.json`` as they finish."""
    budget = Budget(budget_s)
    report = StageReport(out / f"{stage}.json", stage, device_facts(device), budget)
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        report.data["fatal"] = f"--device {device} but torch {torch.__version__} sees no CUDA device"
        report.write()
        print(report.data["fatal"], flush=True)
        return NO_CUDA_EXIT
    if dry_run:
        torch.set_num_threads(1)
    importlib.import_module(f"parallel_decoding.benchmarks.gpu.{stage}").run(report, device, dry_run)
    report.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report.write()
    return 0


def _run_stage(stage: str, args: argparse.Namespace, budget_s: float, log) -> dict:
    """The stage as a child process (output to the log), killed ``GRACE_S`` after its budget."""
    cmd = [sys.executable, "-m", "parallel_decoding.benchmarks.gpu_check", "--stage", stage, "--out", str(args.out),
           "--device", args.device, "--budget-s", str(budget_s)] + (["--dry-run"] if args.dry_run else [])
    start = time.perf_counter()
    log.write(f"\n===== {stage}: {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV})
    try:
        rc = proc.wait(timeout=budget_s + GRACE_S)
        killed = False
    except subprocess.TimeoutExpired:
        proc.kill()
        rc, killed = proc.wait(), True
    return {"returncode": rc, "killed_after_s": budget_s + GRACE_S if killed else None,
            "wall_s": round(time.perf_counter() - start, 1)}


def _in_process(stage: str, args: argparse.Namespace, budget_s: float) -> dict:
    start = time.perf_counter()
    try:
        rc = stage_main(stage, args.out, args.device, args.dry_run, budget_s)
        error = None
    except Exception as err:
        rc, error = 1, f"{type(err).__name__}: {err}\n{traceback.format_exc()[-2000:]}"
    return {"returncode": rc, "killed_after_s": None, "wall_s": round(time.perf_counter() - start, 1),
            "error": error}


def collect(out: Path, runs: dict[str, dict]) -> dict:
    """``summary.json``: every stage's report plus how its process ended; ``ok`` when nothing failed."""
    stages, bad = {}, []
    for stage, run in runs.items():
        path = out / f"{stage}.json"
        data = json.loads(path.read_text()) if path.is_file() else {"checks": {}}
        data["process"] = run
        stages[stage] = data
        if run["returncode"] != 0 or run["killed_after_s"] or "finished" not in data:
            bad.append(f"{stage}: process {'killed' if run['killed_after_s'] else 'rc=' + str(run['returncode'])}")
        bad += [f"{stage}/{name}: {check['status']}" for name, check in data["checks"].items()
                if check.get("status") in ("fail", "error")]
    return {"ok": not bad, "problems": bad, "stages": stages}


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:.3g}" if isinstance(value, float) else str(value))


def summary_text(summary: dict) -> str:
    """The printed summary: one line per check with its key figures, then the speed table and the target."""
    lines = ["", "=" * 30 + " GPU check summary " + "=" * 30]
    for stage, data in summary["stages"].items():
        facts = data.get("facts", {})
        process = data["process"]
        lines.append(f"[{stage}] {facts.get('gpu', facts.get('device'))} torch {facts.get('torch')} "
                     f"transformers {facts.get('transformers')}; {process['wall_s']} s"
                     + (f", KILLED after {process['killed_after_s']} s" if process["killed_after_s"] else "")
                     + (f", rc={process['returncode']}" if process["returncode"] else "")
                     + (f"; FATAL {data['fatal']}" if data.get("fatal") else ""))
        for name, check in data["checks"].items():
            detail = _detail(name, check)
            lines.append(f"  {check['status'].upper():7} {name} ({check.get('seconds', '-')} s){detail}")
    speed = summary["stages"].get("speed", {}).get("checks", {}).get("shared_prefix_summary", {})
    if speed.get("markdown"):
        lines += ["", speed["markdown"]]
        target = speed.get("target", {})
        if "best" in target:
            lines.append(f"target (8 answers <= {target['definition']}): best {target['best']} "
                         f"{target['best_ratio']}x -> {'MET' if target['met'] else 'NOT met'}")
    lines.append("")
    lines.append("RESULT: " + ("all checks passed or reported" if summary["ok"] else
                               "PROBLEMS: " + "; ".join(summary["problems"])))
    return "\n".join(lines)


def _detail(name: str, check: dict) -> str:
    if check["status"] in ("error",):
        return ": " + check.get("error", "")[:300]
    if check["status"] == "skipped":
        return ": " + check.get("reason", "")
    parts = []
    for key in ("batch", "batch_shared", "inseq_qa", "vs_branch_alone", "untrained_vs_hf_generate",
                "trained_cached_vs_teacher_forced", "fixed_steps", "threshold_0.9", "approximate_no_block_attention",
                "independent_bf16_vs_fp32"):
        if isinstance(check.get(key), dict):
            c = check[key]
            parts.append(f"{key} {c['equal']}/{c['sequences']} equal (tokens {_fmt(c['token_agreement'])})")
    if "patch_bit_identical_1d" in check:
        parts.append(f"patch bit-identical in 1D: {check['patch_bit_identical_1d']}")
    if "loss" in check:
        parts.append(f"loss {_fmt(check['loss'])}, grad norms {check.get('grad_norms')}, "
                     f"weights changed {check.get('weights_changed')}, peak {_fmt(check.get('peak_gib'))} GiB")
    if "tokens_per_forward" in check and "tokens_per_s" in check:
        parts.append(f"{_fmt(check['tokens_per_s'])} tokens/s, {_fmt(check['tokens_per_forward'])} tokens/forward")
    if "mean_latency_s" in check:
        parts.append(", ".join(f"{k} {v}s" for k, v in check["mean_latency_s"].items()))
    if "params_m" in check and "loss" not in check:
        parts.append(f"{check['params_m']}M params")
    return (": " + "; ".join(parts)) if parts else ""


@exit_on_user_error(logger)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON files and the log")
    parser.add_argument("--dry-run", action="store_true", help="tiny models and sizes (on a CPU by default)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda; cpu with --dry-run)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every stage's time budget")
    parser.add_argument("--in-process", action="store_true", help="run the stages in this process (tests)")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--budget-s", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.dry_run else "cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if args.stage:
        return stage_main(args.stage, args.out, args.device, args.dry_run, args.budget_s)

    budgets = DRY_BUDGETS_S if args.dry_run else BUDGETS_S
    runs: dict[str, dict] = {}
    with (args.out / "gpu_check.log").open("a") as log:
        for stage in args.stages:
            budget = budgets[stage] * args.budget_scale
            print(f"== stage {stage} (budget {budget:.0f} s)", flush=True)
            runs[stage] = _in_process(stage, args, budget) if args.in_process else _run_stage(stage, args, budget,
                                                                                              log)
            if runs[stage]["returncode"] == NO_CUDA_EXIT:
                break
    summary = collect(args.out, runs)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(summary_text(summary), flush=True)
    if any(run["returncode"] == NO_CUDA_EXIT for run in runs.values()):
        return NO_CUDA_EXIT
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
