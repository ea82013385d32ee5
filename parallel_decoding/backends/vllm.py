"""vLLM backend (optional extra ``parallel_decoding[vllm]``, GPU only): the same prompts as ``hf`` — chat
template applied here, token ids in, token ids out — run by vLLM's engine with automatic prefix caching on, so
a group's shared context is computed once across its questions.

vLLM is imported only when this backend is built; without it the run stops with the install line. Prompt,
deduplicated-prompt and generated tokens are counted from the ids exactly as ``hf`` counts them; forward
passes are internal to vLLM's scheduler and stay 0.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from parallel_decoding.backends.hf import GenerationSettings
from parallel_decoding.config import ConfigError
from parallel_decoding.metrics.efficiency import EfficiencyStats, PrefixTrie

INSTALL_HINT = "backend=vllm needs vLLM, a GPU-only optional extra: pip install 'parallel_decoding[vllm]'"
STOP_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>")


class VLLMBackend:
    model_internals = False  # vLLM's engine owns attention: no hidden states, no custom masks

    def __init__(self, model: str | None, tokenizer: str | None = None, enable_prefix_caching: bool = True,
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 dtype: str = "auto", enable_thinking: bool = False, seed: int = 0,
                 settings: GenerationSettings | None = None) -> None:
        if not model:
            raise ConfigError("backend=vllm needs an HF model directory or hub id: set model.path, model.hub_id "
                              "or backend.model (packaged GGUF models: their converted directory in the cache)")
        try:
            import vllm
        except ImportError as error:
            raise ConfigError(INSTALL_HINT) from error
        self.llm = vllm.LLM(model=model, tokenizer=tokenizer or model, enable_prefix_caching=enable_prefix_caching,
                            gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                            max_model_len=max_model_len, dtype=dtype, seed=seed)
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

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True,
                                                     enable_thinking=self.enable_thinking)
        return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def sampling_params(self, max_new_tokens: int) -> Any:
        from vllm import SamplingParams

        s = self.settings
        return SamplingParams(max_tokens=max_new_tokens, temperature=s.temperature if s.do_sample else 0.0,
                              top_p=s.top_p if s.do_sample else 1.0, seed=s.seed, stop_token_ids=self.stop_token_ids)

    def generate(self, prompts: Sequence[Sequence[int]], batch_size: int | None = None,
                 max_new_tokens: int | None = None) -> list[list[int]]:
        """One engine call for all prompts (vLLM batches and caches prefixes itself; ``batch_size`` chunks)."""
        from vllm.inputs import TokensPrompt

        params = self.sampling_params(max_new_tokens or self.settings.max_new_tokens)
        size = batch_size or len(prompts)
        results: list[list[int]] = []
        for start in range(0, len(prompts), size):
            chunk = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts[start:start + size]]
            results += [list(out.outputs[0].token_ids) for out in self.llm.generate(chunk, params, use_tqdm=False)]
        self.record(prompts, results, calls=-(-len(prompts) // size))
        return results

    def record(self, prompts: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], calls: int) -> None:
        if self._stats is None or self._trie is None:
            return
        for prompt in prompts:
            self._trie.add(prompt)
        self._stats.prompt_tokens += sum(len(p) for p in prompts)
        self._stats.generated_tokens += sum(len(o) for o in outputs)
        self._stats.generate_calls += calls

    @contextmanager
    def measure(self) -> Iterator[EfficiencyStats]:
        stats, self._trie = EfficiencyStats(), PrefixTrie()
        self._stats = stats
        start = time.perf_counter()
        try:
            yield stats
        finally:
            stats.latency_s = time.perf_counter() - start
            stats.dedup_prompt_tokens = self._trie.size
            self._stats = self._trie = None

    def warmup(self) -> None:
        self.generate([self.chat_ids([{"role": "user", "content": "Hi"}])], max_new_tokens=2)
