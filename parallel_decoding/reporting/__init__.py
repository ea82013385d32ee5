"""One report from one sweep: every job's ``results.json`` and overrides → a table and plots.

Names are imported on first use: Hydra loads ``reporting.callback`` before every run, and the report's
matplotlib costs seconds.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SweepRecords", "collect_sweep", "write_report"]


def __getattr__(name: str) -> Any:
    if name in ("SweepRecords", "collect_sweep"):
        from parallel_decoding.reporting import collect  # lazy: see the module docstring

        return getattr(collect, name)
    if name == "write_report":
        from parallel_decoding.reporting.report import write_report  # lazy: see the module docstring

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
