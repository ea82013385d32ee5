"""One report from one sweep: every job's ``results.json`` and overrides → a table and plots."""

from parallel_decoding.reporting.collect import SweepRecords, collect_sweep
from parallel_decoding.reporting.report import write_report

__all__ = ["SweepRecords", "collect_sweep", "write_report"]
