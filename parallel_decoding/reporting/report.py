"""Turn a sweep's records into ``report.md``, ``report.csv`` (one row per setting, strategy x figure columns),
``report_long.csv`` (one row per job and strategy) and PNG plots:

- ``report.md``: the settings x strategies table (metrics with their 95% intervals over groups, or mean ± sd
  across seeds when a seed was swept), each strategy minus the reference (paired, with p-values), and the
  accuracy under parallelism per strategy (``reporting/uncertainty.py``);
- ``em_vs_latency.png``: accuracy against latency per question for every job and strategy, with error bars (95%
  interval, or sd across seeds) and the Pareto front (the settings no other setting beats on both accuracy and
  latency); accuracy is the runs' metric set's: EM (``qa``, ``drop``), else accuracy (``multiple_choice``), else
  ROUGE-L (``generation``), the metric AUP uses (``reporting/uncertainty.py``, ``accuracy_key``);
- ``scaling.png``: latency and prompt tokens (raw and deduplicated) per question against the swept group size.

A sweep over backends (``-m backend=hf,vllm``) gets one table row per setting and backend, the deployed
engine's next to ours; the plots draw each (strategy, backend) as its own series (marker = backend). Cells show
the hardware-independent costs beside the seconds: prompt tokens sent, deduplicated and actually computed (after
cache hits), forward passes and generated tokens per forward.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from parallel_decoding.reporting.collect import COST_KEYS, METRIC_KEYS, SweepRecords, collect_sweep  # noqa: E402
from parallel_decoding.reporting.uncertainty import (  # noqa: E402
    LABELS,
    accuracy_key,
    aggregate_seeds,
    aup_markdown,
    aup_rows,
    error_bars,
    metric_text,
    paired_markdown,
    seed_keys,
)

log = logging.getLogger(__name__)
SCALING_KEYS = ("dataset.group_size", "dataset.max_questions", "dataset.min_questions")


def _sort_key(value: Any) -> tuple:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _settings(sweep: SweepRecords) -> list[tuple]:
    return sorted({tuple(r[k] for k in sweep.swept) for r in sweep.records},
                  key=lambda values: [_sort_key(v) for v in values])


def _strategies(sweep: SweepRecords) -> list[str]:
    return list(dict.fromkeys(r["strategy"] for r in sweep.records))


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _count(value: Any) -> str:
    """A token or call count: whole for one job, one decimal for a mean over seed replicates."""
    if value is None:
        return "–"
    return str(int(value)) if float(value).is_integer() else format(value, ".1f")


def _cell(record: dict | None) -> str:
    if record is None:
        return "—"
    computed = record.get("computed_prompt_tokens")
    forwards = "fwd –"  # a remote server's forwards are its own
    if record.get("forward_passes"):
        forwards = f"fwd {_count(record['forward_passes'])} ({_fmt(record.get('generated_tokens_per_forward'), '.2f')} tok/fwd)"
    return (f"{metric_text(record) or '—'} · "
            f"prompt {_count(record['prompt_tokens'])} (dedup {_count(record['dedup_prompt_tokens'])}"
            f"{'' if computed is None else f', computed {_count(computed)}'}) · {forwards} · "
            f"{_fmt(record['latency_s'], '.2f')} s")


def _complete(rows: list[dict], *keys: str) -> list[dict]:
    """Rows that have every figure a plot needs (a job may lack one, e.g. EM under another metric set)."""
    return [r for r in rows if all(r.get(k) is not None for k in keys)]


def _series(sweep: SweepRecords) -> list[tuple[str, str | None, str]]:
    """(strategy, backend, label) of every plotted series: one per strategy, or per (strategy, backend) when
    the sweep ran several backends."""
    several = "backend" in sweep.swept
    pairs = dict.fromkeys((r["strategy"], r.get("backend") if several else None) for r in sweep.records)
    return [(s, b, f"{s} ({b})" if several else s) for s, b in pairs]


def _rows(sweep: SweepRecords, strategy: str, backend: str | None) -> list[dict]:
    return [r for r in sweep.records if r["strategy"] == strategy and (backend is None or r.get("backend") == backend)]


MARKERS = "osD^v*Px"


def _lookup(sweep: SweepRecords) -> dict[tuple, dict]:
    return {(tuple(r[k] for k in sweep.swept), r["strategy"]): r for r in sweep.records}


def markdown_table(sweep: SweepRecords) -> str:
    strategies, lookup = _strategies(sweep), _lookup(sweep)
    header = [*(sweep.swept or ["run"]), *strategies]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for setting in _settings(sweep):
        keys = list(setting) if sweep.swept else ["all"]
        lines.append("| " + " | ".join([*map(str, keys), *(_cell(lookup.get((setting, s))) for s in strategies)]) + " |")
    if sweep.missing_jobs:
        lines.append(f"\nJobs without results (crashed or unfinished): {', '.join(sweep.missing_jobs)}")
    if sweep.broken_jobs:
        lines.append(f"\nJobs whose results.json could not be read (left out): "
                     f"{'; '.join(f'{job} ({why})' for job, why in sweep.broken_jobs.items())}")
    return "\n".join(lines) + "\n"


def _write_csvs(sweep: SweepRecords, out_dir: Path, jobs: SweepRecords | None = None) -> tuple[Path, Path]:
    """``report.csv`` from ``sweep`` (seeds merged), ``report_long.csv`` from ``jobs`` (one row per job)."""
    strategies, lookup = _strategies(sweep), _lookup(sweep)
    figures = _figures(sweep)
    wide = out_dir / "report.csv"
    with wide.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*sweep.swept, *(f"{s}/{f}" for s in strategies for f in figures)])
        for setting in _settings(sweep):
            row = list(setting)
            for s in strategies:
                record = lookup.get((setting, s)) or {}
                row.extend(record.get(f, "") for f in figures)
            writer.writerow(row)
    jobs = jobs or sweep
    long = out_dir / "report_long.csv"
    with long.open("w", newline="") as handle:
        backend = [] if "backend" in jobs.swept else ["backend"]  # always said, swept or not
        writer = csv.DictWriter(handle, fieldnames=["job", *jobs.swept, *backend, "strategy", *_figures(jobs)])
        writer.writeheader()
        writer.writerows(jobs.records)
    return wide, long


def _figures(sweep: SweepRecords) -> list[str]:
    """The CSV columns of a record: metrics, costs, size, then whatever else the records carry (intervals, ...)."""
    base = [*METRIC_KEYS, *COST_KEYS, "n_questions"]
    fixed = {"job", "strategy", *sweep.swept}
    return [*base, *dict.fromkeys(k for r in sweep.records for k in r if k not in fixed and k not in base)]


def _seed_view(sweep: SweepRecords) -> SweepRecords:
    """The sweep with seed replicates merged (mean ± sd), or the sweep itself when no seed was swept."""
    records, swept = aggregate_seeds(sweep.records, sweep.swept)
    return SweepRecords(records=records, swept=swept, missing_jobs=sweep.missing_jobs, broken_jobs=sweep.broken_jobs)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another (lower-or-equal latency and higher-or-equal accuracy, one strictly)."""
    front, best_em = [], float("-inf")
    for latency, em in sorted(points, key=lambda p: (p[0], -p[1])):
        if em > best_em:
            front.append((latency, em))
            best_em = em
    return front


def _plot_accuracy_vs_latency(sweep: SweepRecords, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 5))
    points = []
    backends = list(dict.fromkeys(b for _, b, _ in _series(sweep)))
    key = accuracy_key(sweep.records) or "em"  # none: an unscored run, plotted empty
    for strategy, backend, label in _series(sweep):
        rows = _complete(_rows(sweep, strategy, backend), "latency_s_per_question", key)
        xs, ys = [r["latency_s_per_question"] for r in rows], [r[key] for r in rows]
        points.extend(zip(xs, ys))
        ax.errorbar(xs, ys, yerr=error_bars(rows, key), fmt=MARKERS[backends.index(backend) % len(MARKERS)], ms=6,
                    capsize=3, label=label)
    front = pareto_front(points)
    ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
    ax.set_xlabel("latency per question (s)")
    ax.set_ylabel(f"{LABELS.get(key, key)} (bars: 95% interval over groups, or sd across seeds)")
    ax.set_title("Accuracy vs latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_scaling(sweep: SweepRecords, key: str, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    backends = list(dict.fromkeys(b for _, b, _ in _series(sweep)))
    for strategy, backend, label in _series(sweep):
        rows = sorted(_complete(_rows(sweep, strategy, backend), "latency_s_per_question", "prompt_tokens",
                                "dedup_prompt_tokens"), key=lambda r: float(r[key]))
        xs = [float(r[key]) for r in rows]
        per_q = [max(r["n_questions"], 1) for r in rows]
        marker = MARKERS[backends.index(backend) % len(MARKERS)]
        left.plot(xs, [r["latency_s_per_question"] for r in rows], marker=marker, label=label)
        line = right.plot(xs, [r["prompt_tokens"] / n for r, n in zip(rows, per_q)], marker=marker, label=label)
        right.plot(xs, [r["dedup_prompt_tokens"] / n for r, n in zip(rows, per_q)], ls="--", color=line[0].get_color())
    left.set(xlabel=key, ylabel="latency per question (s)", title="Latency vs group size")
    right.set(xlabel=key, ylabel="prompt tokens per question", title="Prompt tokens (solid) and deduplicated (dashed)")
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def uncertainty_markdown(raw: SweepRecords, sweep: SweepRecords, degree: str = "auto") -> str:
    """``report.md``: the main table (intervals, or mean ± sd across seeds), paired comparisons, AUP."""
    seeds = seed_keys(raw.swept)
    if seeds:
        n = max(r.get("n_seeds", 1) for r in sweep.records)
        note = f"Mean ± sd across {n} seeds ({', '.join(seeds)}); per-job intervals in report_long.csv.\n\n"
    else:
        note = "Metrics: mean [95% interval, cluster bootstrap over groups].\n\n"
    return (note + markdown_table(sweep) + paired_markdown(sweep.records, sweep.swept)
            + aup_markdown(aup_rows(raw.records, raw.swept, degree, raw.group_scores)))


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None, degree: str = "auto") -> dict[str, Path]:
    raw = collect_sweep(sweep_dir)
    if not raw.records:
        broken = "".join(f"; {why}" for why in raw.broken_jobs.values())
        raise FileNotFoundError(f"no job under {sweep_dir} has a readable results.json{broken}")
    sweep = _seed_view(raw)  # report.csv, report.md and the plots show seeds as mean ± sd; report_long.csv each job
    out = Path(out_dir or sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"markdown": out / "report.md"}
    written["markdown"].write_text(uncertainty_markdown(raw, sweep, degree))
    written["csv"], written["csv_long"] = _write_csvs(sweep, out, jobs=raw)
    written["em_vs_latency"] = _plot_accuracy_vs_latency(sweep, out / "em_vs_latency.png")
    scaling_key = next((k for k in SCALING_KEYS if k in sweep.swept), None)
    if scaling_key and all(_sort_key(r[scaling_key])[0] == 0 for r in sweep.records):
        written["scaling"] = _plot_scaling(sweep, scaling_key, out / "scaling.png")
    else:
        log.info("no numeric group-size override was swept; scaling.png not drawn")
    return written
