"""Aggregate a sweep into one report (also run automatically at the end of every ``-m`` sweep).

    python -m parallel_decoding.report multirun/evaluate/2026-11-25_10-00-00 [--out DIR]
"""

from __future__ import annotations

import argparse

from rich.console import Console

from parallel_decoding.reporting.collect import collect_sweep
from parallel_decoding.reporting.report import write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", help="a Hydra sweep dir (multirun/...) or a single run dir")
    parser.add_argument("--out", default=None, help="where to write the report (default: the sweep dir)")
    parser.add_argument("--degree", default="auto",
                        help="degree of parallelism for the accuracy-under-parallelism table: a swept override "
                             "(e.g. dataset.group_size) or tokens_per_forward; auto = the swept group size if any, "
                             "else tokens_per_forward")
    args = parser.parse_args(argv)
    console = Console()
    try:
        written = write_report(args.sweep_dir, args.out, degree=args.degree)
    except (FileNotFoundError, ValueError) as err:  # no results, or a --degree the sweep does not have
        console.print(f"[red]{err}[/red]")
        raise SystemExit(2) from err
    sweep = collect_sweep(args.sweep_dir)
    console.print(written["markdown"].read_text())
    if sweep.missing_jobs:
        console.print(f"[yellow]{len(sweep.missing_jobs)} job(s) without results: {', '.join(sweep.missing_jobs)}")
    for name, path in written.items():
        console.print(f"{name}: {path}")


if __name__ == "__main__":
    main()
