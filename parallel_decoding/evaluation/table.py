"""The comparison table printed at the end of ``evaluate``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


METRIC_LABELS = {"em": "EM", "f1": "F1", "bleu4": "BLEU-4", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
                 "rougeL": "ROUGE-L", "judge_fluency": "J-flu", "judge_relevance": "J-rel",
                 "judge_completeness": "J-comp", "judge_proficiency": "J-prof", "judge_mean": "judge"}


def metric_cell(entry: dict[str, Any], key: str) -> str:
    """``mean [ci_low, ci_high]`` (the 95% group-bootstrap interval, when the run has one), or ``–``."""
    if key not in entry["metrics"]:
        return "–"
    interval = entry.get("intervals", {}).get(key) or {}
    if interval.get("ci_low") is None:
        return f"{entry['metrics'][key]:.3f}"
    return f"{entry['metrics'][key]:.3f} [{interval['ci_low']:.2f}, {interval['ci_high']:.2f}]"


def results_table(strategies: dict[str, Any], title: str = "parallel_decoding results") -> Table:
    """One row per strategy: metrics (with their 95% intervals, resampling groups), latency (and its ratio to ``independent``), then the hardware-independent
    costs: prompt tokens sent, deduplicated and actually computed (after cache hits), generated tokens, forward
    passes and generated tokens per forward."""
    backends = list(dict.fromkeys(entry["backend"] for entry in strategies.values() if entry.get("backend")))
    if backends:
        title += f" · backend {', '.join(backends)}"
    table = Table(title=title)
    # The metric columns are the dataset's metric set (em/f1/... or accuracy, bleu4/rouge*, judge_*).
    metric_keys = list(dict.fromkeys(k for entry in strategies.values() for k in entry["metrics"]))
    for column in ("strategy", "n", *(METRIC_LABELS.get(k, k) for k in metric_keys), "latency s", "prompt tok",
                   "dedup prompt", "computed prompt", "gen tok", "fwd passes", "tok/fwd", "calls"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    reference = strategies.get("independent", {}).get("efficiency", {}).get("latency_s")
    for name, entry in strategies.items():
        e = entry["efficiency"]
        latency = f"{e['latency_s']:.2f}"
        if reference and name != "independent" and e["latency_s"]:
            latency += f" ({reference / e['latency_s']:.1f}x)"
        per_forward = e.get("generated_tokens_per_forward") if e["forward_passes"] else None  # api: not counted
        table.add_row(name, str(entry["n_questions"]), *(metric_cell(entry, k) for k in metric_keys),
                      latency, str(e["prompt_tokens"]), str(e["dedup_prompt_tokens"]),
                      str(e.get("computed_prompt_tokens", "–")), str(e["generated_tokens"]),
                      str(e["forward_passes"]) if e["forward_passes"] else "–",
                      "–" if per_forward is None else f"{per_forward:.2f}", str(e["generate_calls"]))
    return table


def dependency_table(strategies: dict[str, Any]) -> Table | None:
    """Layers, ideal latency and DAG quality of the strategies that report them (the collab_* family)."""
    rows = {name: entry for name, entry in strategies.items() if "layers" in entry.get("extra", {})}
    if not rows:
        return None
    table = Table(title="dependency-aware strategies")
    for column in ("strategy", "groups", "layers/group", "latency s", "ideal s", "DAG s", "edges", "edge P",
                   "edge R", "edge F1", "fallbacks"):
        table.add_column(column, justify="left" if column == "strategy" else "right")

    def fmt(value: Any, spec: str = ".3f") -> str:
        return "–" if value is None else format(value, spec)

    for name, entry in rows.items():
        x = entry["extra"]
        table.add_row(name, str(entry["n_groups"]), fmt(x["layers"] / entry["n_groups"], ".2f"),
                      fmt(entry["efficiency"]["latency_s"], ".2f"), fmt(x.get("ideal_latency_s"), ".2f"),
                      fmt(x.get("dag_latency_s"), ".2f"), fmt(x.get("selected_edges"), ".0f"),
                      fmt(x.get("edge_precision")), fmt(x.get("edge_recall")), fmt(x.get("edge_f1")),
                      fmt(x.get("llm_fallbacks"), ".0f"))
    return table


def paired_table(strategies: dict[str, Any]) -> Table | None:
    """Each strategy minus the reference on the same questions: difference, 95% interval, permutation p-value."""
    rows = {name: entry["paired"] for name, entry in strategies.items() if entry.get("paired", {}).get("metrics")}
    if not rows:
        return None
    reference = next(iter(rows.values()))["reference"]
    metric_keys = list(dict.fromkeys(k for paired in rows.values() for k in paired["metrics"]))
    table = Table(title=f"paired vs {reference} (same questions; 95% interval over groups, permutation p)")
    for column in ("strategy", "groups", "n", *(f"Δ{METRIC_LABELS.get(k, k)}" for k in metric_keys)):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for name, paired in rows.items():
        cells = []
        for k in metric_keys:
            d = paired["metrics"].get(k)
            if d is None:
                cells.append("–")
            elif d["ci_low"] is None:
                cells.append(f"{d['diff']:+.3f} p={d['p_value']:.3g}")
            else:
                cells.append(f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] p={d['p_value']:.3g}")
        table.add_row(name, str(paired["n_groups"]), str(paired["n_questions"]), *cells)
    return table


def parallelism_table(strategies: dict[str, Any]) -> Table | None:
    """NFE and tokens per forward (per group and per branch, 95% intervals over groups)."""
    rows = {name: entry["parallelism"] for name, entry in strategies.items() if entry.get("parallelism")}
    if not rows:
        return None
    table = Table(title="parallelism (metrics/parallelism.py)")
    for column in ("strategy", "NFE", "NFE/question", "tokens/forward", "tokens/forward/branch", "sampler tok/fwd"):
        table.add_column(column, justify="left" if column == "strategy" else "right")

    def ratio(value: dict | None) -> str:
        if not value:
            return "–"
        if value.get("ci_low") is None:
            return f"{value['mean']:.2f}"
        high = "∞" if value.get("ci_high") is None else f"{value['ci_high']:.2f}"  # few groups: unbounded above
        return f"{value['mean']:.2f} [{value['ci_low']:.2f}, {high}]"

    for name, p in rows.items():
        per_question, sampler = p.get("nfe_per_question"), p.get("sampler_tokens_per_forward")
        table.add_row(name, str(p.get("nfe", "–")), "–" if per_question is None else f"{per_question:.1f}",
                      ratio(p.get("tokens_per_forward")), ratio(p.get("tokens_per_forward_per_branch")),
                      "–" if sampler is None else f"{sampler:.2f}")
    return table


def print_results(strategies: dict[str, Any], console: Console | None = None) -> None:
    # Logs and CI are not terminals; rich would squeeze the table into 80 columns there.
    console = console or Console(width=None if Console().is_terminal else 200)
    console.print(results_table(strategies))
    for extra_table in (paired_table(strategies), parallelism_table(strategies)):
        if extra_table is not None:
            console.print(extra_table)
    if (dependencies := dependency_table(strategies)) is not None:
        console.print(dependencies)
