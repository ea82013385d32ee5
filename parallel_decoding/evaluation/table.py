"""The comparison table printed at the end of ``evaluate``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def results_table(strategies: dict[str, Any], title: str = "parallel_decoding results") -> Table:
    table = Table(title=title)
    for column in ("strategy", "n", "EM", "F1", "lenient", "strict", "latency s", "prompt tok", "dedup prompt",
                   "gen tok", "fwd passes", "calls"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    reference = strategies.get("independent", {}).get("efficiency", {}).get("latency_s")
    for name, entry in strategies.items():
        m, e = entry["metrics"], entry["efficiency"]
        latency = f"{e['latency_s']:.2f}"
        if reference and name != "independent" and e["latency_s"]:
            latency += f" ({reference / e['latency_s']:.1f}x)"
        table.add_row(name, str(entry["n_questions"]), f"{m['em']:.3f}", f"{m['f1']:.3f}", f"{m['lenient']:.3f}",
                      f"{m['strict']:.3f}", latency, str(e["prompt_tokens"]), str(e["dedup_prompt_tokens"]),
                      str(e["generated_tokens"]), str(e["forward_passes"]), str(e["generate_calls"]))
    return table


def print_results(strategies: dict[str, Any], console: Console | None = None) -> None:
    # Logs and CI are not terminals; rich would squeeze the table into 80 columns there.
    console = console or Console(width=None if Console().is_terminal else 160)
    console.print(results_table(strategies))
