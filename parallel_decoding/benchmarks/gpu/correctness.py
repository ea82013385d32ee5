"""Stage 1 of the GPU check: the exactness claims, re-checked on the device (CUDA kernels differ from the CPU's).

Per model (a sharpened random Qwen3: tiny, and Qwen3-0.6B-shaped), in fp32 (TF32 off), token for token:

- ``batch``, ``batch_shared``, ``inseq_qa`` equal ``independent`` (each question alone through HF ``generate``);
- ``branch2d`` (untrained, default channels): the patch is bit-identical to the model under 1D positions, and
  every branch equals that branch decoded alone under its 2D coordinates (``exactness.branch_alone``). Its
  agreement with ``independent`` is reported only: 2D positions change what an untrained model writes;
- the cross-batch generator equals HF ``generate`` with an untrained mixer, and with a (randomised) trained
  mixer its cached decoding equals the uncached teacher-forced forward over its own output;
- the ``llada`` sampler with the prefix cache equals the uncached sampler (block attention: exact by design),
  fixed steps and threshold 0.9; without block attention (Fast-dLLM's approximate cache) the agreement is reported.

Then in bf16 (the same weights): agreement rates only, since bf16 kernels round differently per batch shape.
A divergence records where it happened and the reference's logit margin there (a near-tie, or a real bug).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from parallel_decoding.backends.hf import GenerationSettings
from parallel_decoding.benchmarks.exactness import (
    Comparison,
    RecordingBackend,
    answer_tokens,
    branch_alone,
    divergence_margin,
    sharpen,
)
from parallel_decoding.benchmarks.gpu.common import (
    StageReport,
    build_random_qwen3,
    free_memory,
    restore_rope,
    status_of,
)
from parallel_decoding.benchmarks.gpu.workload import chat_ids, synthetic_groups
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.decoding import split_shared_prefix
from parallel_decoding.methods.branch2d.rope import patched_channels
from parallel_decoding.methods.branch2d.strategy import Branch2DStrategy
from parallel_decoding.methods.crossbatch.collator import CrossBatchCollator
from parallel_decoding.methods.crossbatch.generator import crossbatch_generate, left_pad
from parallel_decoding.methods.crossbatch.mixing import CrossBatchMixer, MixerConfig
from parallel_decoding.methods.crossbatch.model import CrossBatchModel, left_padded_positions
from parallel_decoding.methods.inseq.strategy import InSequenceQAStrategy
from parallel_decoding.methods.llada.modeling import convert_causal_to_diffusion
from parallel_decoding.methods.llada.sampler import SamplerSettings, diffusion_generate
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.strategies.batch import BatchStrategy
from parallel_decoding.strategies.batch_shared import BatchSharedStrategy
from parallel_decoding.strategies.independent import IndependentStrategy

STRATEGIES = ("batch", "batch_shared", "inseq_qa")


@dataclass
class ModelSpec:
    label: str
    shape: str
    sharpen: float
    groups: str  # "synthetic" (tiny test groups) | "squad" (SQuAD-length groups)
    n_groups: int
    group_size: int | None
    max_new_tokens: int
    bf16: bool


def specs(dry_run: bool) -> list[ModelSpec]:
    if dry_run:  # every check once, on the tiny model, few tokens
        return [ModelSpec("tiny(dry run)", "tiny", 8.0, "squad", 1, 3, 4, True)]
    return [ModelSpec("tiny", "tiny", 8.0, "synthetic", 3, None, 10, False),
            ModelSpec("qwen3_0_6b", "qwen3_0_6b", 4.0, "squad", 2, 4, 16, True)]


def _groups(spec: ModelSpec, tokenizer) -> list:
    if spec.groups == "synthetic":
        return load_synthetic(context_count=spec.n_groups, min_questions=1, max_questions=6, seed=4).groups
    groups = synthetic_groups(tokenizer)[:spec.n_groups]
    return [dataclasses.replace(g, questions=g.questions[:spec.group_size]) for g in groups]


def _prompt(backend, group, question) -> list[int]:
    return backend.chat_ids(single_question_messages(group, question))


def _with_margins(model, comparison: Comparison, prompts: dict[tuple[str, int], list[int]],
                  references: dict[tuple[str, int], list[int]]) -> None:
    for d in comparison.divergences[:3]:
        key = (d["group"], d["question"])
        got = d["got"][0] if d["got"] else None
        d.update(divergence_margin(model, prompts[key], references[key], d["position"], got))


def check_strategies(backend: RecordingBackend, groups: list, exact: bool,
                     independent_fp32: dict | None = None) -> tuple[dict[str, Any], dict]:
    strategies = {"batch": BatchStrategy("batch"), "batch_shared": BatchSharedStrategy("batch_shared"),
                  "inseq_qa": InSequenceQAStrategy("inseq_qa")}
    comparisons = {name: Comparison() for name in strategies}
    versus_fp32 = Comparison()
    references, prompts = {}, {}
    for group in groups:
        _, expected = answer_tokens(IndependentStrategy("independent"), group, backend)
        for i, (question, tokens) in enumerate(zip(group.questions, expected)):
            references[(group.id, i)] = tokens
            prompts[(group.id, i)] = _prompt(backend, group, question)
            if independent_fp32 is not None:
                versus_fp32.add(tokens, independent_fp32[(group.id, i)], {"group": group.id, "question": i})
        for name, strategy in strategies.items():
            _, got = answer_tokens(strategy, group, backend)
            for i, (g, e) in enumerate(zip(got, expected)):
                comparisons[name].add(g, e, {"group": group.id, "question": i})
    for comparison in comparisons.values():
        _with_margins(backend.model, comparison, prompts, references)
    distinct = len({tuple(t) for t in references.values()})
    result: dict[str, Any] = {name: c.to_dict() for name, c in comparisons.items()}
    result.update(questions=len(references), distinct_reference_answers=distinct,
                  reference_tokens=sum(map(len, references.values())))
    if independent_fp32 is not None:
        result["independent_bf16_vs_fp32"] = versus_fp32.to_dict()
    if exact:
        # distinct answers: the model's output depends on its context, so equality is not vacuous
        result["status"] = status_of(all(c.all_equal for c in comparisons.values()) and distinct > 1)
    else:
        result["status"] = "info"
    return result, references


def check_branch2d(backend: RecordingBackend, groups: list, exact: bool,
                   independent: dict | None = None) -> dict[str, Any]:
    model = backend.model
    result: dict[str, Any] = {}
    if patched_channels(model) is None:  # the patch is exactly the model under 1D positions
        probe = torch.tensor([_prompt(backend, groups[0], groups[0].questions[0])], device=backend.bundle.device)
        with torch.no_grad():
            before = model(input_ids=probe).logits
        strategy = Branch2DStrategy("branch2d")
        strategy.backend_for(backend)
        with torch.no_grad():
            after = model(input_ids=probe).logits
        result["patch_bit_identical_1d"] = bool(torch.equal(before, after))
    else:
        strategy = Branch2DStrategy("branch2d")
    s = strategy.layout_settings
    alone, versus_independent = Comparison(), Comparison()
    for group in groups:
        _, got = answer_tokens(strategy, group, backend)
        prompts = [_prompt(backend, group, q) for q in group.questions]
        prefix, branches = split_shared_prefix(prompts)
        for b, tokens in enumerate(got):
            expected = branch_alone(model, prefix, branches, b, backend.settings.max_new_tokens,
                                    backend.stop_token_ids, s.align, s.x_stride)
            alone.add(tokens, expected, {"group": group.id, "question": b})
            if independent is not None:
                versus_independent.add(tokens, independent[(group.id, b)], {"group": group.id, "question": b})
    result.update(layout={"mask": s.mask, "align": s.align, "x_stride": s.x_stride},
                  vs_branch_alone=alone.to_dict(),
                  vs_independent_info=versus_independent.to_dict() if independent is not None else None)
    passed = alone.all_equal and result.get("patch_bit_identical_1d", True)
    result["status"] = status_of(passed) if exact else "info"
    return result


def _randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero mixer weights with a large injection scale: a 'trained' mixer whose mixing is visible."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            values = torch.randn(param.shape, generator=generator) * (0.5 if param.ndim > 1 else 1.0)
            param.copy_(values.to(param.device, param.dtype))
            if name.endswith("scale") or name.endswith("down.bias"):
                param.fill_(3.0)
    return module


def check_crossbatch(backend: RecordingBackend, groups: list, max_new_tokens: int) -> dict[str, Any]:
    model, tokenizer, device = backend.model, backend.tokenizer, backend.bundle.device
    collator = CrossBatchCollator(tokenizer)
    prompts, group_ids = [], []
    for index, group in enumerate(groups[:2]):
        for i in range(len(group.questions)):
            prompts.append(list(collator.row(group, i).prompt_ids))
            group_ids.append(index)
    pad, stop = tokenizer.pad_token_id, backend.stop_token_ids
    hidden = model.config.hidden_size
    dtype = next(model.parameters()).dtype

    def mixer():
        return CrossBatchMixer(MixerConfig(hidden_size=hidden, num_heads=4)).to(device=device, dtype=dtype)

    untrained = CrossBatchModel(model, mixer()).eval()
    generated = crossbatch_generate(untrained, prompts, group_ids, max_new_tokens=max_new_tokens,
                                    stop_token_ids=stop, pad_token_id=pad).sequences
    expected = backend.generate(prompts)
    at_init = Comparison()
    for i, (g, e) in enumerate(zip(generated, expected)):
        at_init.add(g, e, {"row": i})

    trained = CrossBatchModel(model, _randomise(mixer())).eval()
    mixed = crossbatch_generate(trained, prompts, group_ids, max_new_tokens=max_new_tokens, stop_token_ids=[],
                                pad_token_id=pad).sequences
    plain = crossbatch_generate(trained, prompts, group_ids, max_new_tokens=max_new_tokens, stop_token_ids=[],
                                pad_token_id=pad, mixing=False).sequences
    input_ids, mask = left_pad(prompts, pad)
    targets = torch.tensor(mixed)
    batch = {"input_ids": torch.cat([input_ids, targets], 1).to(device),
             "attention_mask": torch.cat([mask, torch.ones_like(targets)], 1).to(device),
             "targets": targets.to(device), "group_ids": torch.tensor(group_ids, device=device),
             "prompt_width": input_ids.shape[1]}
    batch["position_ids"] = left_padded_positions(batch["attention_mask"])
    with torch.no_grad():
        logits = trained.teacher_forced(batch)["logits"]  # step-major [steps * rows, vocab]
    forced = logits.argmax(-1).view(targets.shape[1], targets.shape[0]).transpose(0, 1).tolist()
    cached_vs_uncached = Comparison()
    for i, (g, e) in enumerate(zip(mixed, forced)):
        cached_vs_uncached.add(g, e, {"row": i})
    mixing_matters = mixed != plain
    return {"rows": len(prompts), "untrained_vs_hf_generate": at_init.to_dict(),
            "trained_cached_vs_teacher_forced": cached_vs_uncached.to_dict(), "mixing_changes_tokens": mixing_matters,
            "status": status_of(at_init.all_equal and cached_vs_uncached.all_equal and mixing_matters)}


def check_llada(model, tokenizer, prompts: list[list[int]], exact: bool, gen_length: int = 16) -> dict[str, Any]:
    diffusion = convert_causal_to_diffusion(copy.deepcopy(model), tokenizer).eval()
    pad = tokenizer.pad_token_id
    n = gen_length
    runs = {"fixed_steps": dict(gen_length=n, steps=n, block_length=4, block_attention=True, early_stop=False),
            "threshold_0.9": dict(gen_length=n, block_length=4, block_attention=True, threshold=0.9,
                                  early_stop=False),
            "approximate_no_block_attention": dict(gen_length=n, steps=n, block_length=4, early_stop=False)}
    result: dict[str, Any] = {}
    passed = True
    for name, settings in runs.items():
        plain = diffusion_generate(diffusion, prompts, SamplerSettings(**settings), pad_token_id=pad)
        cached = diffusion_generate(diffusion, prompts, SamplerSettings(**settings, prefix_cache=True),
                                    pad_token_id=pad)
        comparison = Comparison()
        for row, (g, e) in enumerate(zip(cached.tokens.tolist(), plain.tokens.tolist())):
            comparison.add(g, e, {"row": row})
        result[name] = {**comparison.to_dict(), "forward_passes": [plain.forward_passes, cached.forward_passes],
                        "tokens_per_forward": [round(plain.tokens_per_forward, 3),
                                               round(cached.tokens_per_forward, 3)]}
        if name != "approximate_no_block_attention":
            passed &= comparison.all_equal and plain.forward_passes == cached.forward_passes
    del diffusion
    result["status"] = status_of(passed) if exact else "info"
    return result


def run(report: StageReport, device: str, dry_run: bool) -> None:
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the default; made explicit)
        torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    llada_len = 8 if dry_run else 16
    for spec in specs(dry_run):
        if report.budget.spent():
            report.run(f"model[{spec.label}]", lambda: {}, device)
            continue
        state: dict[str, Any] = {}

        def build(spec=spec) -> dict[str, Any]:
            bundle = build_random_qwen3(spec.shape, torch.float32, device)
            sharpen(bundle.model, spec.sharpen)
            state["bundle"] = bundle
            state["groups"] = _groups(spec, bundle.tokenizer)
            return {"status": "info", "params_m": round(sum(p.numel() for p in bundle.model.parameters()) / 1e6, 1),
                    "sharpen": spec.sharpen, "groups": len(state["groups"]),
                    "questions": sum(len(g.questions) for g in state["groups"]),
                    "max_new_tokens": spec.max_new_tokens}

        report.run(f"model[{spec.label}]", build, device)
        if "bundle" not in state:
            continue
        bundle, groups = state["bundle"], state["groups"]
        prompts = [_prompt_ids(bundle.tokenizer, groups[0], q) for q in groups[0].questions[:2]]
        # before any backend hooks the model: a deep copy would drag the backend along
        report.run(f"llada_prefix_cache_fp32[{spec.label}]",
                   lambda: check_llada(bundle.model, bundle.tokenizer, prompts, exact=True, gen_length=llada_len),
                   device)
        backend = RecordingBackend(bundle, GenerationSettings(max_new_tokens=spec.max_new_tokens))
        original_rope = bundle.model.model.rotary_emb  # branch2d patches the model in place
        references: dict = {}

        def strategies_fp32() -> dict[str, Any]:
            result, refs = check_strategies(backend, groups, exact=True)
            references.update(refs)
            return result

        report.run(f"strategies_fp32[{spec.label}]", strategies_fp32, device)
        report.run(f"crossbatch_fp32[{spec.label}]", lambda: check_crossbatch(backend, groups, spec.max_new_tokens),
                   device)
        report.run(f"branch2d_fp32[{spec.label}]",
                   lambda: check_branch2d(backend, groups, exact=True, independent=references or None), device)
        if spec.bf16:
            bundle.model.to(torch.bfloat16)
            references_bf16: dict = {}

            def strategies_bf16() -> dict[str, Any]:
                result, refs = check_strategies(backend, groups, exact=False, independent_fp32=references or None)
                references_bf16.update(refs)
                return result

            report.run(f"strategies_bf16[{spec.label}]", strategies_bf16, device)
            report.run(f"branch2d_bf16[{spec.label}]",
                       lambda: check_branch2d(backend, groups, exact=False, independent=references_bf16 or None),
                       device)
            restore_rope(bundle.model, original_rope)
            report.run(f"llada_prefix_cache_bf16[{spec.label}]",
                       lambda: check_llada(bundle.model, bundle.tokenizer, prompts, exact=False, gen_length=llada_len),
                       device)
        state.clear()
        free_memory(device)


def _prompt_ids(tokenizer, group, question) -> list[int]:
    return chat_ids(tokenizer, single_question_messages(group, question))
