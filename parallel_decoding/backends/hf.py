"""Hugging Face backend: chat prompts as token ids, left-padded batched ``generate``, and exact cost counting.

Every strategy goes through ``HFBackend.generate`` so prompt tokens, generated tokens, forward passes and
generate calls are counted the same way for all of them (forward passes by a hook on the model itself, not
estimated).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from parallel_decoding.backends.base import GenerationSettings
from parallel_decoding.metrics.efficiency import EfficiencyStats, PrefixTrie
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.prompting.chat import chat_prompt_ids


class PromptTooLong(ValueError):
    """A prompt plus its answer budget does not fit the model's context: refused before anything is allocated."""


class _GroupMeter:
    def __init__(self) -> None:
        self.stats = EfficiencyStats()
        self.trie = PrefixTrie()


class HFBackend:
    """The ``Backend`` that runs the model in-process: every strategy, hidden states and custom masks included."""

    model_internals = True

    def __init__(self, bundle: ModelBundle, settings: GenerationSettings | None = None) -> None:
        self.bundle = bundle
        self.model = bundle.model
        self.tokenizer = bundle.tokenizer
        self.settings = settings or GenerationSettings()
        self.stop_token_ids = bundle.stop_token_ids
        self._meter: _GroupMeter | None = None
        self._forward_passes = 0
        self.model.register_forward_pre_hook(self._count_forward)

    @property
    def max_context_tokens(self) -> int | None:
        """The model's context length (prompt + generated tokens), when its config says."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return limit if isinstance(limit, int) and limit > 0 else None

    def _count_forward(self, module, args) -> None:
        self._forward_passes += 1

    # -- prompts -----------------------------------------------------------------------------------------------
    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a chat ending in an open assistant turn (the model's template, thinking off)."""
        return chat_prompt_ids(self.tokenizer, messages, self.bundle.enable_thinking)

    def decode(self, output: Sequence[int]) -> str:
        return self.tokenizer.decode(list(output), skip_special_tokens=True)

    # -- accounting --------------------------------------------------------------------------------------------
    @contextmanager
    def measure(self) -> Iterator[EfficiencyStats]:
        """Collect the cost of everything generated inside the block (one group of one strategy)."""
        meter = self._meter = _GroupMeter()
        start_passes, start = self._forward_passes, time.perf_counter()
        try:
            yield meter.stats
        finally:
            meter.stats.latency_s = time.perf_counter() - start
            meter.stats.forward_passes = self._forward_passes - start_passes
            meter.stats.dedup_prompt_tokens = meter.trie.size
            self._meter = None

    def record(self, prompts: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], calls: int,
               computed_prompt_tokens: int | None = None) -> None:
        """Account for a decoder call made outside ``generate`` (e.g. the shared-prefix engine, which passes the
        prompt tokens it actually ran: the shared prefix once, then each branch). ``generate`` has no cache across
        rows, so it computes every prompt token of every row (padding excluded)."""
        if self._meter is None:
            return
        for prompt in prompts:
            self._meter.trie.add(prompt)
        sent = sum(len(p) for p in prompts)
        self._meter.stats.prompt_tokens += sent
        self._meter.stats.computed_prompt_tokens += sent if computed_prompt_tokens is None else computed_prompt_tokens
        self._meter.stats.generated_tokens += sum(len(o) for o in outputs)
        self._meter.stats.generate_calls += calls

    def warmup(self) -> None:
        """One tiny uncounted generate so lazy initialisation never lands in the first strategy's latency."""
        self.generate([self.chat_ids([{"role": "user", "content": "Hi"}])], max_new_tokens=2)

    # -- decoding ----------------------------------------------------------------------------------------------
    def trim_at_stop(self, ids: Sequence[int]) -> list[int]:
        """Generated ids up to and including the first stop token (padding after it dropped)."""
        out = []
        for tok in ids:
            out.append(int(tok))
            if tok in self.stop_token_ids:
                break
        return out

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[Sequence[int]], batch_size: int | None = None, max_new_tokens: int | None = None,
        stop_strings: Sequence[str] = (),
    ) -> list[list[int]]:
        """Greedy (or seeded sampled) continuations of each prompt, ``batch_size`` prompts per left-padded call.
        ``stop_strings`` end a row early once its text holds one (the text after it is the caller's to cut)."""
        batch_size = batch_size or len(prompts)
        results: list[list[int]] = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            results.extend(self._generate_batch(chunk, max_new_tokens or self.settings.max_new_tokens,
                                                stop_strings))
        self.record(prompts, results, calls=-(-len(prompts) // batch_size))
        return results

    def _generate_batch(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                        stop_strings: Sequence[str] = ()) -> list[list[int]]:
        width = max(len(p) for p in prompts)
        limit = self.max_context_tokens
        if limit is not None and width + max_new_tokens > limit:
            raise PromptTooLong(f"a prompt of {width} tokens plus {max_new_tokens} new tokens exceeds the model's "
                                f"context of {limit} tokens")
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt):] = 1
        sampling = dict(do_sample=True, temperature=self.settings.temperature, top_p=self.settings.top_p) \
            if self.settings.do_sample else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        if self.settings.do_sample:
            torch.manual_seed(self.settings.seed)
        output = self.model.generate(
            input_ids=input_ids.to(self.bundle.device),
            attention_mask=attention_mask.to(self.bundle.device),
            max_new_tokens=max_new_tokens,
            eos_token_id=self.stop_token_ids,
            pad_token_id=pad,
            **sampling,
            **(dict(stop_strings=list(stop_strings), tokenizer=self.tokenizer) if stop_strings else {}),
        )
        return [self.trim_at_stop(row[width:].tolist()) for row in output]
