"""Turn a sweep's records into ``report.md``, ``report.csv`` (one row per setting, strategy x figure columns),
``report_long.csv`` (one row per job and strategy) and PNG plots:

- ``em_vs_latency.png``: EM against latency per question for every job and strategy, with the Pareto front
  (the settings no other setting beats on both accuracy and latency);
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


def _cell(record: dict | None) -> str:
    if record is None:
        return "—"
    computed = record.get("computed_prompt_tokens")
    forwards = "fwd –"  # a remote server's forwards are its own
    if record.get("forward_passes"):
        forwards = f"fwd {record['forward_passes']} ({record['generated_tokens_per_forward']:.2f} tok/fwd)"
    return (f"EM {record['em']:.3f} · F1 {record['f1']:.3f} · len {record['lenient']:.3f} · "
            f"prompt {record['prompt_tokens']} (dedup {record['dedup_prompt_tokens']}"
            f"{'' if computed is None else f', computed {computed}'}) · {forwards} · {record['latency_s']:.2f} s")


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
    return "\n".join(lines) + "\n"


def _write_csvs(sweep: SweepRecords, out_dir: Path) -> tuple[Path, Path]:
    strategies, lookup = _strategies(sweep), _lookup(sweep)
    figures = [*METRIC_KEYS, *COST_KEYS, "n_questions"]
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
    long = out_dir / "report_long.csv"
    with long.open("w", newline="") as handle:
        backend = [] if "backend" in sweep.swept else ["backend"]  # always said, swept or not
        writer = csv.DictWriter(handle, fieldnames=["job", *sweep.swept, *backend, "strategy", *figures])
        writer.writeheader()
        writer.writerows(sweep.records)
    return wide, long


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another (lower-or-equal latency and higher-or-equal EM, one strictly)."""
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
    for strategy, backend, label in _series(sweep):
        rows = _rows(sweep, strategy, backend)
        xs, ys = [r["latency_s_per_question"] for r in rows], [r["em"] for r in rows]
        points.extend(zip(xs, ys))
        ax.scatter(xs, ys, label=label, s=40, marker=MARKERS[backends.index(backend) % len(MARKERS)])
    front = pareto_front(points)
    ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
    ax.set_xlabel("latency per question (s)")
    ax.set_ylabel("EM")
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
        rows = sorted(_rows(sweep, strategy, backend), key=lambda r: float(r[key]))
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


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    sweep = collect_sweep(sweep_dir)
    if not sweep.records:
        raise FileNotFoundError(f"no job under {sweep_dir} has a results.json")
    out = Path(out_dir or sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"markdown": out / "report.md"}
    written["markdown"].write_text(markdown_table(sweep))
    written["csv"], written["csv_long"] = _write_csvs(sweep, out)
    written["em_vs_latency"] = _plot_accuracy_vs_latency(sweep, out / "em_vs_latency.png")
    scaling_key = next((k for k in SCALING_KEYS if k in sweep.swept), None)
    if scaling_key and all(_sort_key(r[scaling_key])[0] == 0 for r in sweep.records):
        written["scaling"] = _plot_scaling(sweep, scaling_key, out / "scaling.png")
    else:
        log.info("no numeric group-size override was swept; scaling.png not drawn")
    return written
