"""Aggregate a sweep into one report (also run automatically at the end of every ``-m`` sweep).

    python -m parallel_decoding.report multirun/evaluate/2026-11-25_10-00-00 [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys

from rich.console import Console
from rich.markup import escape

from parallel_decoding.reporting.collect import collect_sweep
from parallel_decoding.reporting.report import write_report
from parallel_decoding.utils.cli import exit_on_user_error

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", help="a Hydra sweep dir (multirun/...) or a single run dir")
    parser.add_argument("--out", default=None, help="where to write the report (default: the sweep dir)")
    parser.add_argument("--degree", default="auto",
                        help="degree of parallelism for the accuracy-under-parallelism table: a swept override "
                             "(e.g. dataset.group_size) or tokens_per_forward; auto = the swept group size if any, "
                             "else tokens_per_forward")
    args = parser.parse_args(argv)
    # The report and its one-line problems (a missing dir, an unwritable --out) both go to stdout.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    console = Console()
    with exit_on_user_error(log):
        written = write_report(args.sweep_dir, args.out, degree=args.degree)
        sweep = collect_sweep(args.sweep_dir)
    console.print(written["markdown"].read_text())
    if sweep.missing_jobs:
        console.print(f"[yellow]{len(sweep.missing_jobs)} job(s) without results: {', '.join(sweep.missing_jobs)}")
    for job, why in sweep.broken_jobs.items():
        console.print(f"[yellow]job {escape(job)} left out: {escape(why)}", soft_wrap=True)
    for name, path in written.items():
        console.print(f"{name}: {path}")


if __name__ == "__main__":
    main()
