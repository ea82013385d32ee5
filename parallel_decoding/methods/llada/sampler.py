"""Semi-autoregressive masked-diffusion sampling (LLaDA, arXiv 2502.09992, Alg. 4-5) with Fast-dLLM's
acceleration (arXiv 2505.22618): confidence-threshold parallel unmasking and a block-wise prefix KV cache.

The answer starts as ``gen_length`` mask tokens after the prompt and is decoded one block of ``block_length``
tokens at a time, left to right. Within a block, each step predicts every position (``x0``) and commits some
of the still-masked ones of *this block only*:

- fixed steps: ``steps / n_blocks`` steps per block; the block's masks are spread evenly over them, the
  remainder going to the first steps (``transfer_schedule``, LLaDA's ``get_num_transfer_tokens``);
- ``threshold``: every masked token whose probability is >= threshold is committed, at least one per step
  (Fast-dLLM's parallel decoding); ``steps`` is then unused.

Which positions a step commits is ``remasking``: ``low_confidence`` (highest probability of ``x0`` first),
``random`` (uniform), ``random_topk`` (positions drawn without replacement with probability proportional to
that confidence: Gumbel-top-k; the reference's version reduced to low_confidence). ``temperature`` > 0 samples
``x0`` with Gumbel noise in fp64; 0 is argmax. ``cfg_scale`` w > 0: ``l = l_u + (w + 1)(l_c - l_u)`` where
``l_u`` reads the same sequence with the prompt masked (one batched forward of 2B rows). Ids that are not text
(the mask id, unused embedding rows) are never proposed.

``block_attention``: the mask of ``attention.py`` (a block sees the prompt, earlier blocks and itself); later
blocks then cannot influence the current one, so the forward stops at the current block's end.

``prefix_cache``: the first step of each block runs over the whole sequence and keeps the keys/values of the
positions before the block; the other steps of the block run only from the block on, reading that cache.
Without block attention this is Fast-dLLM's *approximate* cache (prefix states were computed against the
masks then present after them); with block attention the prefix never sees later positions, so the cache is
exact and the output equals the uncached one (tested). A shifted model (``config.shift_logits``: position i
read from hidden state i - 1) needs the state of the position before the block, which the cache does not hold:
its cached steps start one position earlier (the cache then keeps only the positions before that one), and
stay exact. Nothing else here depends on the shift: every logit comes from the model's ``forward``.

``early_stop``: once every row has a stop token in a finished block, nothing after it can change the answer
(text after the stop token is dropped), so the remaining blocks are filled with the stop token uncomputed.

Batches are left-padded; positions restart at 0 at each row's first real token, as in training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from parallel_decoding.config import ConfigError

from parallel_decoding.methods.llada.attention import block_attention_bias

REMASKING = ("low_confidence", "random", "random_topk")


@dataclass
class SamplerSettings:
    gen_length: int = 32
    steps: int = 32  # denoising steps in total (steps / n_blocks per block); unused with threshold
    block_length: int = 8
    remasking: str = "low_confidence"
    temperature: float = 0.0
    cfg_scale: float = 0.0
    block_attention: bool = False
    threshold: float | None = None  # Fast-dLLM parallel decoding: commit every token with confidence >= threshold
    prefix_cache: bool = False  # Fast-dLLM block-wise prefix KV cache
    early_stop: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.gen_length < 1 or self.block_length < 1 or self.gen_length % self.block_length:
            raise ConfigError(f"gen_length ({self.gen_length}) must be a positive multiple of block_length "
                             f"({self.block_length})")
        blocks = self.gen_length // self.block_length
        if self.threshold is None and (self.steps < blocks or self.steps % blocks):
            raise ConfigError(f"steps ({self.steps}) must be a positive multiple of the number of blocks ({blocks})")
        if self.remasking not in REMASKING:
            raise ConfigError(f"unknown remasking {self.remasking!r}; use one of {', '.join(REMASKING)}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.temperature < 0 or self.cfg_scale < 0:
            raise ConfigError("temperature and cfg_scale must be >= 0")

    @property
    def n_blocks(self) -> int:
        return self.gen_length // self.block_length

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SamplerResult:
    tokens: torch.Tensor  # [B, gen_length] the answer positions
    forward_passes: int  # model calls (a cfg call runs 2B rows at once and counts as one)
    steps: int  # denoising steps taken
    decoded: int  # positions the model committed, all rows (early_stop's uncomputed fill excluded)
    latency_s: float

    @property
    def tokens_per_forward(self) -> float:
        """Tokens committed per sequence per model call (Fast-dLLM's figure); 1.0 = one token per step."""
        return self.decoded / max(1, self.forward_passes * self.tokens.shape[0])


def transfer_schedule(n_masked: int, steps: int) -> list[int]:
    """How many tokens each of ``steps`` steps commits: ``n_masked`` spread evenly, remainder to the first."""
    base, extra = divmod(n_masked, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def gumbel_argmax(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """argmax of ``logits / T + Gumbel`` (a sample of softmax(logits / T)) in fp64; plain argmax at T = 0.

    Equal to LLaDA's ``argmax(exp(l) / (-log u) ** T)`` without overflowing ``exp``."""
    if temperature == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, device=logits.device, dtype=torch.float64, generator=generator)
    gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))
    return (logits.double() + temperature * gumbel).argmax(-1)


def _order_scores(confidence: torch.Tensor, remasking: str, generator: torch.Generator | None) -> torch.Tensor:
    """Scores whose top-k are the positions to commit."""
    if remasking == "low_confidence":
        return confidence
    u = torch.rand(confidence.shape, device=confidence.device, dtype=torch.float64, generator=generator)
    if remasking == "random":
        return u
    gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))  # Gumbel-top-k: k draws without replacement ~ confidence
    return torch.log(confidence.double().clamp(min=1e-300)) + gumbel


def _top_k_per_row(scores: torch.Tensor, candidates: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, N]``: the ``k[b]`` highest-scoring candidates of each row (ties broken by position)."""
    scores = scores.double().masked_fill(~candidates, float("-inf"))
    order = scores.argsort(dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (ranks < k[:, None]) & candidates


class _Forward:
    """One sampler's model calls: full or cached, with or without block attention and cfg."""

    def __init__(self, model, x: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int,
                 settings: SamplerSettings, mask_id: int) -> None:
        self.model, self.settings, self.mask_id = model, settings, mask_id
        self.prompt_width = prompt_width
        self.attention_mask = attention_mask
        self.positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        length = x.shape[1]
        offset = torch.arange(length, device=x.device) - prompt_width
        blocks = torch.where(offset < 0, torch.zeros_like(offset), 1 + offset.div(settings.block_length,
                                                                                  rounding_mode="floor"))
        self.blocks = blocks[None, :].expand(x.shape[0], length)
        self.real_prompt = (torch.arange(length, device=x.device) < prompt_width)[None, :] & attention_mask.bool()
        self.calls = 0
        self.cache = None
        self.shift = bool(getattr(model.config, "shift_logits", False))

    def _rows(self, x: torch.Tensor, first: int, stop: int) -> torch.Tensor:
        """``x[:, first:stop]``, plus its unconditional copy (real prompt tokens masked) under cfg."""
        x = x[:, first:stop]
        if self.settings.cfg_scale == 0:
            return x
        return torch.cat([x, x.masked_fill(self.real_prompt[:, first:stop], self.mask_id)])

    def _double(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.settings.cfg_scale == 0 else torch.cat([t, t])

    def logits(self, x: torch.Tensor, start: int, end: int, first_step: bool) -> torch.Tensor:
        """Logits ``[B, end - start, V]`` of the current block ``[start, end)``."""
        s = self.settings
        stop = end if s.block_attention else x.shape[1]
        use_cache = s.prefix_cache
        keep = max(start - 1, 0) if self.shift else start  # cached positions: the query recomputes the rest
        if use_cache and not first_step:
            first, cache = keep, self.cache
        else:
            first, cache = 0, None
        rows = self._rows(x, first, stop)
        bias = None
        if s.block_attention:
            bias = block_attention_bias(self._double(self.blocks[:, first:stop]), self._double(self.blocks[:, :stop]))
        out = self.model(input_ids=rows, attention_bias=bias, attention_mask=self._double(self.attention_mask[:, :stop]),
                         position_ids=self._double(self.positions[:, first:stop]), cache=cache, use_cache=use_cache,
                         logits_positions=slice(start - first, end - first))
        self.calls += 1
        if use_cache:  # keep only the prefix before the block: the block and what follows change every step
            self.cache = out.cache
            surplus = self.cache.get_seq_length() - keep
            if surplus > 0:
                self.cache.crop(-surplus)
        logits = out.logits.float()
        if s.cfg_scale == 0:
            return logits
        conditional, unconditional = logits.chunk(2)
        return unconditional + (s.cfg_scale + 1) * (conditional - unconditional)


@torch.no_grad()
def diffusion_generate(model, prompts: Sequence[Sequence[int]], settings: SamplerSettings, pad_token_id: int,
                       stop_token_ids: Sequence[int] = (), real_vocab_size: int | None = None,
                       on_step: Callable[[int, torch.Tensor], None] | None = None) -> SamplerResult:
    """Decode ``settings.gen_length`` tokens after each prompt. ``on_step(block, x)`` sees the whole sequence
    after every step (tests use it). ``real_vocab_size``: ids at or above it are never proposed."""
    start_time = time.perf_counter()
    mask_id = int(model.config.mask_token_id)
    real_vocab_size = real_vocab_size or getattr(model.config, "real_vocab_size", None) or mask_id
    device = next(model.parameters()).device
    batch, width = len(prompts), max(len(p) for p in prompts)
    length = width + settings.gen_length
    x = torch.full((batch, length), mask_id, dtype=torch.long, device=device)
    attention_mask = torch.ones((batch, length), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        x[row, :width - len(prompt)] = pad_token_id
        attention_mask[row, :width - len(prompt)] = 0
        x[row, width - len(prompt):width] = torch.tensor(list(prompt), dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    forward = _Forward(model, x, attention_mask, width, settings, mask_id)
    stops = torch.tensor(list(dict.fromkeys(stop_token_ids)), dtype=torch.long, device=device)
    steps_taken = decoded = 0
    per_block = None if settings.threshold is not None else settings.steps // settings.n_blocks
    for block in range(settings.n_blocks):
        start, end = width + block * settings.block_length, width + (block + 1) * settings.block_length
        if settings.early_stop and stops.numel() and block > 0 and \
                torch.isin(x[:, width:start], stops).any(-1).all():
            x[:, start:] = stops[0]  # every answer already ended: the rest cannot change any of them
            break
        budget = [k for k in transfer_schedule(settings.block_length, per_block) if k] if per_block else None
        step = 0
        while (x[:, start:end] == mask_id).any():
            logits = forward.logits(x, start, end, first_step=step == 0)
            logits[..., real_vocab_size:] = float("-inf")  # the mask id and unused rows are never text
            x0 = gumbel_argmax(logits, settings.temperature, generator)
            confidence = torch.softmax(logits, dim=-1).gather(-1, x0[..., None]).squeeze(-1)
            masked = x[:, start:end] == mask_id
            if settings.threshold is None:
                k = torch.full((batch,), budget[step], device=device)
                commit = _top_k_per_row(_order_scores(confidence, settings.remasking, generator), masked, k)
            else:
                sure = masked & (confidence >= settings.threshold)
                fallback = _top_k_per_row(_order_scores(confidence, settings.remasking, generator), masked,
                                          masked.any(-1).long())
                commit = torch.where(sure.any(-1, keepdim=True), sure, fallback)
            x[:, start:end] = torch.where(commit, x0, x[:, start:end])
            decoded += int(commit.sum())
            step += 1
            steps_taken += 1
            if on_step is not None:
                on_step(block, x.clone())
    return SamplerResult(tokens=x[:, width:].clone(), forward_passes=forward.calls, steps=steps_taken,
                         decoded=decoded, latency_s=time.perf_counter() - start_time)
