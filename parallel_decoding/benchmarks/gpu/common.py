"""What every stage of the GPU check shares: random Qwen3-shaped models, the stage report (JSON rewritten after
every check, so a crash or a kill keeps what was measured), the time budget, device facts and peak memory."""

from __future__ import annotations

import gc
import json
import os
import platform
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

from parallel_decoding.models.bundle import ModelBundle, finish_loading
from parallel_decoding.models.tiny import QWEN3_VOCAB_SIZE, load_qwen_tokenizer

# Dimensions of the released checkpoints' config.json (Qwen/Qwen3-0.6B, Qwen/Qwen3-4B); "tiny" is tiny_qwen3's.
QWEN3_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16),
    "qwen3_0_6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
    "qwen3_4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
}


def build_random_qwen3(shape: str, dtype: torch.dtype = torch.float32, device: str = "cpu",
                       attn_implementation: str = "sdpa", seed: int = 0):
    """A randomly initialised Qwen3 of a released model's shape with the real Qwen vocabulary (``tiny_qwen3``'s
    tokenizer and special ids), built directly on ``device``: initialising 4B parameters on a CPU takes minutes,
    on a GPU a second."""
    dims = dict(QWEN3_SHAPES[shape])
    rope_theta = dims.pop("rope_theta", None)
    tokenizer = load_qwen_tokenizer(os.path.expanduser("~/.cache/parallel_decoding/models"))
    config = Qwen3Config(vocab_size=QWEN3_VOCAB_SIZE, max_position_embeddings=40960, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **dims, **({"rope_parameters": {"rope_type": "default", "rope_theta": rope_theta}}
                                    if rope_theta is not None else {}))
    config._attn_implementation = attn_implementation
    cuda = [torch.cuda.current_device()] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.device(device):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    model.to(dtype)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    finish_loading(model, tokenizer, device)
    return ModelBundle(model=model, tokenizer=tokenizer, name=f"random_{shape}")


def restore_rope(model: torch.nn.Module, original: torch.nn.Module) -> None:
    """Undo the ``branch2d`` strategy's in-place 2D-RoPE patch (it keeps no handle on the module it replaced):
    ``convert_causal_to_diffusion`` needs the original rotary module's buffers."""
    model.model.rotary_emb = original
    if hasattr(model.config, "branch2d_rope"):
        delattr(model.config, "branch2d_rope")


def sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@contextmanager
def peak_memory(device: str | torch.device) -> Iterator[dict[str, float | None]]:
    """``{"peak_gib", "growth_gib"}`` of the CUDA caching allocator over the block (allocated tensors, so a warm
    allocator cannot hide it); None on a CPU."""
    out: dict[str, float | None] = {"peak_gib": None, "growth_gib": None}
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    try:
        yield out
    finally:
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            out.update(peak_gib=round(peak / 2**30, 3), growth_gib=round((peak - before) / 2**30, 3))


def free_memory(device: str | torch.device) -> None:
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def device_facts(device: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
                             "python": platform.python_version(), "cuda_available": torch.cuda.is_available(),
                             "float32_matmul_precision": torch.get_float32_matmul_precision(),
                             "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=props.name, capability=f"{props.major}.{props.minor}", gpu_memory_gib=round(
            props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count, cuda=torch.version.cuda)
    return facts


class Budget:
    """Seconds left for a stage; checks stop starting new work once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def spent(self) -> bool:
        return self.left() <= 0


class StageReport:
    """One stage's results: ``{"stage", "facts", "checks": {name: {...,"status"}}}``, rewritten atomically after
    every check. Status: ``pass`` / ``fail`` (a requirement not met), ``info`` (figures, nothing required),
    ``error`` (the check raised), ``skipped`` (the stage's budget was spent)."""

    def __init__(self, path: Path, stage: str, facts: dict[str, Any], budget: Budget) -> None:
        self.path, self.budget = path, budget
        self.data: dict[str, Any] = {"stage": stage, "facts": facts, "budget_s": budget.seconds,
                                     "started": time.strftime("%Y-%m-%d %H:%M:%S"), "checks": {}}
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.budget.start, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)

    def run(self, name: str, check: Callable[[], dict[str, Any]], device: str = "cpu") -> dict[str, Any]:
        """Run one check unless the budget is spent; whatever happens its entry is written."""
        if self.budget.spent():
            result: dict[str, Any] = {"status": "skipped", "reason": "stage budget spent"}
        else:
            start = time.perf_counter()
            print(f"[{self.data['stage']}] {name} ...", flush=True)
            try:
                result = check()
            except Exception as err:  # one failing check never stops the others
                result = {"status": "error", "error": f"{type(err).__name__}: {err}"[:2000],
                          "traceback": traceback.format_exc()[-4000:]}
                free_memory(device)
            result["seconds"] = round(time.perf_counter() - start, 2)
            print(f"[{self.data['stage']}] {name}: {result['status']} ({result['seconds']} s)", flush=True)
        self.data["checks"][name] = result
        self.write()
        return result


def status_of(passed: bool) -> str:
    return "pass" if passed else "fail"
