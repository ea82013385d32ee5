"""The comparison table printed at the end of ``evaluate``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


METRIC_LABELS = {"em": "EM", "f1": "F1", "bleu4": "BLEU-4", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
                 "rougeL": "ROUGE-L", "judge_fluency": "J-flu", "judge_relevance": "J-rel",
                 "judge_completeness": "J-comp", "judge_proficiency": "J-prof", "judge_mean": "judge"}


def results_table(strategies: dict[str, Any], title: str = "parallel_decoding results") -> Table:
    """One row per strategy: metrics, latency (and its ratio to ``independent``), then the hardware-independent
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
        m, e = entry["metrics"], entry["efficiency"]
        latency = f"{e['latency_s']:.2f}"
        if reference and name != "independent" and e["latency_s"]:
            latency += f" ({reference / e['latency_s']:.1f}x)"
        per_forward = e.get("generated_tokens_per_forward") if e["forward_passes"] else None  # api: not counted
        table.add_row(name, str(entry["n_questions"]), *(f"{m[k]:.3f}" if k in m else "–" for k in metric_keys),
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


def print_results(strategies: dict[str, Any], console: Console | None = None) -> None:
    # Logs and CI are not terminals; rich would squeeze the table into 80 columns there.
    console = console or Console(width=None if Console().is_terminal else 160)
    console.print(results_table(strategies))
    if (dependencies := dependency_table(strategies)) is not None:
        console.print(dependencies)
