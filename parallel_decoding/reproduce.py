"""Rerun a recorded run and say whether its results reproduce.

    python -m parallel_decoding.reproduce outputs/evaluate/2026-01-01_10-00-00
    python -m parallel_decoding.reproduce <run dir> --out outputs/reproduce/mine --atol 1e-4
    python -m parallel_decoding.reproduce <run dir> --against <a rerun made elsewhere>   # compare only

Reads the run dir's ``manifest.json`` (written by ``evaluate`` and ``train``), prints where this environment
differs from the recorded one (packages, torch / CUDA, CPU / GPU, git commit, uncommitted changes), runs the
same entry point with the same overrides into a new run dir (``--out``; default
``outputs/reproduce/<run dir name>_<time>`` under the recorded working directory), then prints each metric,
reported vs reproduced with their 95% group-bootstrap intervals (``reporting/reproduction.py``).

Exit status: 0 every metric agrees (equal within ``--atol``, or each value inside the other run's interval);
1 some metric disagrees or is missing (named on stderr), or the rerun failed; 2 the run dir cannot be reproduced
(no manifest, no results).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import subprocess
import sys
from pathlib import Path

from parallel_decoding.config import ConfigError
from parallel_decoding.utils.cli import exit_on_user_error
from parallel_decoding.utils.manifest import (build_manifest, environment_differences, read_manifest,
                                                  rerun_overrides)
from parallel_decoding.reporting.reproduction import (compare, format_comparison, identical_answers,
                                                      metric_estimates)

log = logging.getLogger("parallel_decoding.reproduce")


def rerun_command(manifest: dict, out_dir: Path) -> list[str]:
    return [sys.executable, "-m", manifest["entry_point"], *rerun_overrides(manifest), f"hydra.run.dir={out_dir}"]


def print_differences(differences: list) -> None:
    if not differences:
        print("environment: as recorded")
        return
    print("environment differences (recorded -> reproduced):")
    for key, old, new in differences:
        print(f"  {key}: {old} -> {new}")


def report(run_dir: Path, reported: dict, out_dir: Path, atol: float) -> int:
    """Print reported vs reproduced; 0 when every metric agrees, else 1 (the disagreeing ones on stderr)."""
    rows = compare(reported, metric_estimates(out_dir), atol=atol)
    print(f"reported: {run_dir}\nreproduced: {out_dir}")
    print(format_comparison(rows))
    if (run_dir / "predictions.jsonl").is_file():
        same = identical_answers(run_dir, out_dir)
        print("identical answers: " + ", ".join(f"{k} {a}/{n}" for k, (a, n) in same.items()))
    bad = [r for r in rows if not r.agrees]
    if bad:
        print("not reproduced: " + ", ".join(f"{r.name} ({r.verdict.lower()})" for r in bad), file=sys.stderr)
        return 1
    print(f"reproduced: {len(rows)} metrics agree")
    return 0


def reproduce(run_dir: Path, out: Path | None, atol: float, against: Path | None = None) -> int:
    manifest = read_manifest(run_dir)
    reported = metric_estimates(run_dir)  # refuse an unfinished run before spending a rerun on it
    if against is not None:  # a rerun made elsewhere (another machine, a GPU): compare only
        if (against / "manifest.json").is_file():
            print_differences(environment_differences(manifest, read_manifest(against)))
        return report(run_dir, reported, against, atol)
    cwd = Path(manifest["command"].get("cwd") or ".")
    if not cwd.is_dir():
        log.warning("recorded working directory %s does not exist: rerunning from %s", cwd, Path.cwd())
        cwd = Path.cwd()
    current = build_manifest(manifest["entry_point"], overrides=[])
    print_differences(environment_differences(manifest, current))
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out_dir = (out if out is not None else cwd / "outputs" / "reproduce" / f"{run_dir.resolve().name}_{stamp}")
    out_dir = out_dir if out_dir.is_absolute() else Path.cwd() / out_dir
    command = rerun_command(manifest, out_dir)
    print("rerunning:", " ".join(command[1:]), f"(in {cwd})", flush=True)
    completed = subprocess.run(command, cwd=cwd)
    if completed.returncode != 0:
        print(f"the rerun failed (exit {completed.returncode}); its log is in {out_dir}", file=sys.stderr)
        return 1
    return report(run_dir, reported, out_dir, atol)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="an evaluate or train run dir holding manifest.json")
    parser.add_argument("--out", type=Path, default=None, help="run dir of the rerun")
    parser.add_argument("--against", type=Path, default=None,
                        help="compare with this finished rerun instead of running one")
    parser.add_argument("--atol", type=float, default=1e-6,
                        help="values closer than this agree (metrics without intervals must)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with exit_on_user_error(log):
        if not args.run_dir.is_dir():
            raise ConfigError(f"{args.run_dir} is not a directory")
        if args.against is not None and not args.against.is_dir():
            raise ConfigError(f"--against {args.against} is not a directory")
        return reproduce(args.run_dir, args.out, args.atol, args.against)
    return 2  # not reached: exit_on_user_error exits


if __name__ == "__main__":
    sys.exit(main())
