"""Stage 3 of the GPU check: the shared-prefix benchmark on a random Qwen3-4B-shaped model (bf16, sdpa) and the
``llada`` sampler's speed.

Groups have the SQuAD benchmark groups' token lengths (``workload.py``); G = 1, 8, 2, 4 questions (the two
the target needs first), 32 new tokens, greedy. Per G: one unmeasured warm-up group per strategy, then the
measured groups with the strategies interleaved (order rotated), each time the ``efficiency.latency_s`` of the
same ``Strategy.run`` that ``evaluate`` uses, as ``benchmarks/shared_prefix.py`` measures on a CPU; its
``summarize`` turns the runs into the table. Memory: the CUDA allocator's peak of allocated tensors during each
run over what was allocated before it (the weights), the maximum over the measured runs. A random model writes
32 tokens for every question (it never emits a stop token), so every strategy decodes the same work.

Target for the best strategy: 8 answers within 1.3x the time ``independent`` takes for 1 (``target``).

``llada``: the same weights converted to a masked-diffusion model; the batch prompts of G = 8 groups decoded by
the sampler at threshold 0.9 with and without the prefix cache: tokens per second (committed positions) and
tokens per forward (Fast-dLLM's figure). An untrained model is rarely confident, so expect about one token per
forward: the figure measures the cost of a step, not what training buys.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from parallel_decoding.backends.hf import GenerationSettings, HFBackend
from parallel_decoding.benchmarks.gpu.common import (
    StageReport,
    build_random_qwen3,
    free_memory,
    peak_memory,
    restore_rope,
    sync,
)
from parallel_decoding.benchmarks.gpu.workload import load_lengths, synthetic_groups
from parallel_decoding.benchmarks.shared_prefix import summarize
from parallel_decoding.methods.llada.modeling import convert_causal_to_diffusion
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.strategies import strategy_config

STRATEGIES = ("independent", "batch", "batch_shared", "inseq_qa", "branch2d")
TARGET_RATIO = 1.3
LLADA_RESERVE_S = 30.0  # kept for the llada runs when the strategies stop early


def _strategy(name: str, **overrides):
    return instantiate(OmegaConf.merge(strategy_config(name), overrides), name=name)


def measure_size(backend, strategies: list, groups: list, size: int, measured: int, device: str,
                 keep_s: float = 0.0, budget=None) -> dict[str, Any]:
    """``shared_prefix.timing_worker``'s loop on one warm model: warm-up, then interleaved measured groups
    (after the first, no new group starts once ``budget`` has only ``keep_s`` seconds left)."""
    sized = [dataclasses.replace(g, id=f"{g.id}-g{size}", questions=g.questions[:size]) for g in groups]
    for strategy in strategies:
        strategy.run(sized[0], backend)
    runs: dict[str, list[dict]] = {s.name: [] for s in strategies}
    memory: dict[str, list[dict]] = {s.name: [] for s in strategies}
    for index, group in enumerate(sized[1:measured + 1]):
        if index and budget is not None and budget.left() < keep_s:
            break
        shift = index % len(strategies)
        for strategy in strategies[shift:] + strategies[:shift]:
            sync(device)
            with peak_memory(device) as mem:
                outcome = strategy.run(group, backend)
            eff = outcome.efficiency
            runs[strategy.name].append({"group": group.id, "latency_s": eff.latency_s,
                                        "generated_tokens": eff.generated_tokens,
                                        "forward_passes": eff.forward_passes, "prompt_tokens": eff.prompt_tokens,
                                        "dedup_prompt_tokens": eff.dedup_prompt_tokens,
                                        "answers": [p.raw_output for p in outcome.predictions]})
            memory[strategy.name].append(mem)
    return {"group_size": size, "threads": torch.get_num_threads(), "runs": runs, "gpu_memory": memory}


def summary(timings: list[dict]) -> dict[str, Any]:
    table = summarize([{k: v for k, v in t.items() if k != "gpu_memory"} for t in timings], [])
    for item in timings:
        for name, mems in item["gpu_memory"].items():
            cell = table[str(item["group_size"])][name]
            cell.pop("answers", None)
            cell.pop("peak_rss_growth_mb", None)
            growth = [m["growth_gib"] for m in mems if m["growth_gib"] is not None]
            cell["peak_gpu_growth_gib"] = max(growth) if growth else None
    target: dict[str, Any] = {"definition": f"latency of a G=8 group <= {TARGET_RATIO} x independent's latency "
                                            f"for G=1"}
    if "1" in table and "8" in table and "independent" in table["1"]:
        one = table["1"]["independent"]["latency_s"]
        ratios = {name: round(cell["latency_s"] / one, 3) for name, cell in table["8"].items()}
        best = min(ratios, key=ratios.get)
        target.update(independent_g1_s=one, ratios=ratios, best=best, best_ratio=ratios[best],
                      met=ratios[best] <= TARGET_RATIO)
    return {"table": table, "target": target}


def markdown(table: dict) -> str:
    lines = ["| G | strategy | latency / group (s) | tokens/s | forwards | peak GPU growth (GiB) | vs independent "
             "| answers = independent |", "|---|---|---|---|---|---|---|---|"]
    for size in sorted(table, key=int):
        for name in STRATEGIES:
            cell = table[size].get(name)
            if cell is not None:
                lines.append(f"| {size} | {name} | {cell['latency_s']:.3f} | {cell['tokens_per_s']:.1f} | "
                             f"{cell['forward_passes']} | {cell['peak_gpu_growth_gib']} | "
                             f"{cell.get('speedup_vs_independent', '-')}x | "
                             f"{'yes' if cell['answers_equal_independent'] else 'no'} |")
    return "\n".join(lines)


def llada_speed(bundle, groups: list, measured: int, device: str, prefix_cache: bool, max_new: int
                ) -> dict[str, Any]:
    backend = HFBackend(bundle, GenerationSettings(max_new_tokens=max_new))
    strategy = _strategy("llada", sampler={"threshold": 0.9, "prefix_cache": prefix_cache, "gen_length": max_new,
                                           "block_length": 8})
    sized = [dataclasses.replace(g, questions=g.questions[:8]) for g in groups]
    strategy.run(sized[0], backend)  # warm-up
    rows = []
    for group in sized[1:measured + 1]:
        sync(device)
        with peak_memory(device) as mem:
            outcome = strategy.run(group, backend)
        extra = outcome.extra
        latency = outcome.efficiency.latency_s
        rows.append({"latency_s": round(latency, 4), "decoded_tokens": extra["decoded_tokens"],
                     "sampler_forward_passes": extra["sampler_forward_passes"],
                     "row_forward_passes": extra["row_forward_passes"], "sampler_steps": extra["sampler_steps"],
                     "generated_tokens": outcome.efficiency.generated_tokens, "peak_gpu_growth_gib": mem["growth_gib"]})
    latency = sum(r["latency_s"] for r in rows)
    decoded = sum(r["decoded_tokens"] for r in rows)
    return {"status": "info", "threshold": 0.9, "prefix_cache": prefix_cache, "rows_per_call": 8,
            "gen_length": max_new, "groups": len(rows),
            "tokens_per_s": round(decoded / latency, 2) if latency else None,
            "tokens_per_forward": round(decoded / max(1, sum(r["row_forward_passes"] for r in rows)), 3),
            "latency_s_mean": round(statistics.fmean(r["latency_s"] for r in rows), 4) if rows else None,
            "runs": rows}


def run(report: StageReport, device: str, dry_run: bool) -> None:
    shape = "tiny" if dry_run else "qwen3_4b"
    sizes = [1, 2] if dry_run else [1, 8, 2, 4]
    measured = 1 if dry_run else 3
    max_new = 4 if dry_run else 32
    reserve = 0.0 if dry_run else LLADA_RESERVE_S
    state: dict[str, Any] = {}

    def build() -> dict[str, Any]:
        start = time.perf_counter()
        bundle = build_random_qwen3(shape, torch.bfloat16, device, attn_implementation="sdpa")
        state["bundle"] = bundle
        state["groups"] = groups = synthetic_groups(bundle.tokenizer)
        state["backend"] = backend = HFBackend(bundle, GenerationSettings(max_new_tokens=max_new))
        state["original_rope"] = bundle.model.model.rotary_emb  # branch2d patches the model in place
        backend.warmup()
        lengths = load_lengths()["groups"]
        return {"status": "info", "shape": shape, "dtype": "bfloat16", "attn": "sdpa",
                "params_m": round(sum(p.numel() for p in bundle.model.parameters()) / 1e6, 1),
                "build_s": round(time.perf_counter() - start, 2), "max_new_tokens": max_new,
                "measured_groups": measured, "prompt_tokens": [g["prompt_tokens"][:8] for g in lengths],
                "shared_prefix_tokens": [g["shared_prefix_tokens"] for g in lengths[:len(groups)]]}

    report.run("model[speed]", build, device)
    if "backend" not in state:
        return
    backend, groups = state["backend"], state["groups"]
    strategies = [_strategy(name) for name in STRATEGIES]
    timings: list[dict] = []
    for size in sizes:
        def one_size(size=size) -> dict[str, Any]:
            if report.budget.left() < reserve:
                return {"status": "skipped", "reason": "budget kept for the llada runs"}
            item = measure_size(backend, strategies, groups, size, measured, device, reserve, report.budget)
            timings.append(item)
            means = {k: round(statistics.fmean(r["latency_s"] for r in v), 4) for k, v in item["runs"].items()}
            return {"status": "info", "mean_latency_s": means}

        report.run(f"shared_prefix[G={size}]", one_size, device)

    def table() -> dict[str, Any]:
        if not timings:
            return {"status": "skipped", "reason": "no size measured"}
        result = summary(timings)
        result["markdown"] = markdown(result["table"])
        print(result["markdown"], flush=True)
        return {"status": "info", **result}

    report.run("shared_prefix_summary", table, device)

    def convert() -> dict[str, Any]:
        bundle = state.pop("bundle")
        state.pop("backend", None)
        restore_rope(bundle.model, state["original_rope"])
        model = convert_causal_to_diffusion(bundle.model, bundle.tokenizer).eval()
        state["diffusion"] = ModelBundle(model=model, tokenizer=bundle.tokenizer, name="random_llada")
        return {"status": "info", "mask_token_id": int(model.config.mask_token_id)}

    strategies.clear()
    free_memory(device)
    report.run("llada_convert", convert, device)
    if "diffusion" in state:
        for cache in (False, True):
            report.run(f"llada_speed[prefix_cache={str(cache).lower()}]",
                       lambda cache=cache: llada_speed(state["diffusion"], groups, min(measured, 2), device, cache,
                                                       8 if dry_run else 32), device)
