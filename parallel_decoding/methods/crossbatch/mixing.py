"""Cross-batch mixing modules: each row's hidden state takes in its sibling rows' before the LM head.

Rows are the questions of one batch; ``group_ids`` says which rows share a context (only those mix) and
``active`` which rows are still answering at this step (finished rows are no longer sources). Shapes:
``h`` is ``[..., rows, d]`` (leading dims are decode steps in teacher-forced training), ``group_ids`` is
``[rows]``, ``active`` is ``[..., rows]``.

- ``CrossBatchAttention``: multi-head attention over the other rows of the group. The diagonal is masked (a row
  never attends to itself), rows of other groups and inactive rows are masked, weights are a softmax (each row's
  weights sum to 1; a row with no sibling gets all-zero weights, so its message is 0). ``W_o`` starts at zero.
- ``CrossBatchEmbeddingMixer``: weights from the cosine similarity of ``W_s h``, same masking; ``W_v`` starts
  at zero.

Both inject the message ``a_i`` as ``h_i + sigmoid(s) * a_i`` (``mode="scale"``) or ``h_i + g_i * a_i`` with a
question-aware gate ``g = sigmoid(W2 GELU(W1 [LN h; LN a; LN h * LN a]))`` (``mode="gate"``, ``W2 = 0`` and
bias -3 at init). Because the message is exactly 0 at initialisation (zero output / value projection), an
untrained module returns ``h`` bit for bit, whatever the batch. ``CrossBatchMixer`` applies one module per
configured layer: the final post-norm hidden state by default (``layers=[-1]``); for other layers each module's
delta is averaged and added to the final hidden state, so mixing never feeds back into the backbone or its
KV cache.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from parallel_decoding.config import ConfigError

KINDS = ("attention", "embedding")
MODES = ("scale", "gate")
DEFAULT_SCALE_INIT = {"attention": -3.0, "embedding": -5.0}


@dataclass(frozen=True)
class MixerConfig:
    """Everything needed to rebuild a mixer; saved beside its weights and compared on load."""

    hidden_size: int
    kind: str = "attention"  # attention | embedding
    mode: str = "scale"  # scale | gate
    num_heads: int = 8  # attention only
    temperature: float = 1.0  # softmax temperature of the weights
    top_k: int | None = None  # attention only: keep each row's k best-scoring siblings
    layers: tuple[int, ...] = (-1,)  # hidden-state indices as HF counts them (0 = embeddings, -1 = final, normed)
    scale_init: float | None = None  # sigmoid(scale_init) is the initial scale; None: -3 attention, -5 embedding
    gate_bias_init: float = -3.0
    extra: dict[str, Any] = field(default_factory=dict)  # reserved; must be empty

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"mixer.kind={self.kind!r}; use one of {', '.join(KINDS)}")
        if self.mode not in MODES:
            raise ConfigError(f"mixer.mode={self.mode!r}; use one of {', '.join(MODES)}")
        if self.kind == "attention" and (self.num_heads < 1 or self.hidden_size % self.num_heads):
            raise ConfigError(f"mixer.num_heads={self.num_heads} must divide the hidden size {self.hidden_size}")
        if self.temperature <= 0:
            raise ConfigError(f"mixer.temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"mixer.top_k must be >= 1 or null, got {self.top_k}")
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"mixer.layers must list distinct hidden-state indices, got {list(self.layers)}")
        if self.extra:
            raise ConfigError(f"unknown mixer settings: {sorted(self.extra)}")
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))

    @property
    def initial_scale(self) -> float:
        return DEFAULT_SCALE_INIT[self.kind] if self.scale_init is None else float(self.scale_init)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = list(self.layers)
        out.pop("extra")
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], hidden_size: int | None = None) -> "MixerConfig":
        known = {f.name for f in fields(cls)} - {"extra"}
        given = dict(values)
        if hidden_size is not None:
            given.setdefault("hidden_size", hidden_size)
        kwargs = {k: v for k, v in given.items() if k in known}
        if "layers" in kwargs:
            kwargs["layers"] = tuple(kwargs["layers"])
        return cls(**kwargs, extra={k: v for k, v in given.items() if k not in known})


def sibling_mask(group_ids: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
    """``allowed[..., i, j]``: row ``i`` may read row ``j`` (same group, not itself, ``j`` active)."""
    rows = group_ids.shape[-1]
    same = group_ids.unsqueeze(-1) == group_ids.unsqueeze(-2)
    allowed = same & ~torch.eye(rows, dtype=torch.bool, device=group_ids.device)
    if active is not None:
        allowed = allowed & active.unsqueeze(-2)
    return allowed


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim where allowed; a row with nothing allowed gets all zeros. No NaN is ever
    formed, in the forward or the backward pass (an all ``-inf`` row would give one)."""
    has_any = allowed.any(dim=-1, keepdim=True)
    scores = scores.float().masked_fill(~allowed, float("-inf")).masked_fill(~has_any, 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~allowed, 0.0)


class MixingGate(nn.Module):
    """``g = sigmoid(W2 GELU(W1 [LN h; LN a; LN h * LN a]))``; ``W2 = 0`` with a negative bias at init."""

    def __init__(self, hidden_size: int, bias_init: float) -> None:
        super().__init__()
        inner = max(1, hidden_size // 4)
        self.norm_h = nn.LayerNorm(hidden_size)
        self.norm_a = nn.LayerNorm(hidden_size)
        self.up = nn.Linear(3 * hidden_size, inner)
        self.down = nn.Linear(inner, hidden_size)
        nn.init.normal_(self.up.weight, std=0.02)
        nn.init.zeros_(self.up.bias)
        nn.init.zeros_(self.down.weight)
        nn.init.constant_(self.down.bias, bias_init)

    def forward(self, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        nh, na = self.norm_h(h), self.norm_a(a)
        return torch.sigmoid(self.down(F.gelu(self.up(torch.cat([nh, na, nh * na], dim=-1)))))


class _Mixing(nn.Module, ABC):
    """Shared by both mixers: the message ``a`` is computed by the subclass, injected by scale or gate."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        if config.mode == "scale":
            self.scale = nn.Parameter(torch.tensor(config.initial_scale))
        else:
            self.gate = MixingGate(config.hidden_size, config.gate_bias_init)

    @abstractmethod
    def message(self, h: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """What each row receives from its siblings (``allowed[i, j]``: row i may read row j)."""

    @abstractmethod
    def _weights(self, h: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Row-to-row weights where ``allowed``; zero elsewhere."""

    def weights(self, h: torch.Tensor, group_ids: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Mixing weights (``[..., heads, rows, rows]`` for attention, ``[..., rows, rows]`` for the embedding
        mixer), for inspection and tests: zero outside a group, on the diagonal and from inactive rows."""
        return self._weights(h.to(self.anchor.dtype), sibling_mask(group_ids, active))

    def forward(self, h: torch.Tensor, group_ids: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        dtype = h.dtype
        x = h.to(self.anchor.dtype)
        a = self.message(x, sibling_mask(group_ids, active))
        if self.config.mode == "scale":
            out = x + torch.sigmoid(self.scale) * a
        else:
            out = x + self.gate(x, a) * a
        if self.training:  # every parameter in the graph even when no row has a sibling (DDP needs that)
            out = out + 0.0 * sum(p.reshape(-1)[0] for p in self.parameters())
        return out.to(dtype)

    @property
    def anchor(self) -> torch.Tensor:
        """A weight whose dtype the mixing runs in (hidden states are cast to it and back)."""
        return next(self.parameters())


class CrossBatchAttention(_Mixing):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config)
        d = config.hidden_size
        self.num_heads = config.num_heads
        self.head_dim = d // config.num_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.normal_(proj.weight, std=0.02)
        nn.init.zeros_(self.o_proj.weight)  # the untrained module is the identity

    @property
    def anchor(self) -> torch.Tensor:
        return self.q_proj.weight

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # [..., rows, d] -> [..., heads, rows, head_dim]
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-2, -3)

    def _weights(self, h: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        q, k = self._heads(self.q_proj(h)), self._heads(self.k_proj(h))
        scores = q @ k.transpose(-1, -2) / (math.sqrt(self.head_dim) * self.config.temperature)
        allowed = allowed.unsqueeze(-3)  # the same rows for every head
        top_k = self.config.top_k
        if top_k is not None and top_k < h.shape[-2] - 1:
            ranked = scores.masked_fill(~allowed, float("-inf"))
            kth = ranked.topk(top_k, dim=-1).values[..., -1:]
            allowed = allowed & (ranked >= kth)
        return masked_softmax(scores, allowed.expand_as(scores)).to(h.dtype)

    def message(self, h: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        weights = self._weights(h, allowed)
        mixed = weights @ self._heads(self.v_proj(h))  # [..., heads, rows, head_dim]
        return self.o_proj(mixed.transpose(-2, -3).flatten(-2))


class CrossBatchEmbeddingMixer(_Mixing):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config)
        d = config.hidden_size
        self.sim_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        nn.init.normal_(self.sim_proj.weight, std=0.02)
        nn.init.zeros_(self.v_proj.weight)  # the untrained module is the identity

    @property
    def anchor(self) -> torch.Tensor:
        return self.sim_proj.weight

    def _weights(self, h: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.sim_proj(h), dim=-1)
        scores = z @ z.transpose(-1, -2) / self.config.temperature
        return masked_softmax(scores, allowed).to(h.dtype)

    def message(self, h: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        return self._weights(h, allowed) @ self.v_proj(h)


def build_mixing_module(config: MixerConfig) -> _Mixing:
    return CrossBatchAttention(config) if config.kind == "attention" else CrossBatchEmbeddingMixer(config)


class CrossBatchMixer(nn.Module):
    """One mixing module per configured hidden-state index; returns the mixed final hidden state."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        self.modules_by_layer = nn.ModuleList(build_mixing_module(config) for _ in config.layers)

    @property
    def layers(self) -> tuple[int, ...]:
        return self.config.layers

    def forward(self, hidden: dict[int, torch.Tensor], group_ids: torch.Tensor,
                active: torch.Tensor | None = None) -> torch.Tensor:
        """``hidden[i]``: hidden state ``i`` (``-1`` = final, post-norm) at the rows' current positions."""
        final = hidden[-1]
        if self.layers == (-1,):
            return self.modules_by_layer[0](final, group_ids, active)
        deltas = [module(hidden[layer], group_ids, active) - hidden[layer]
                  for layer, module in zip(self.layers, self.modules_by_layer)]
        return final + torch.stack(deltas).mean(dim=0).to(final.dtype)
