"""Interleaved 2D RoPE (Fzkuji/Parallel-Decoding): a few rotary frequency channels carry a token's branch
coordinate x and its column y, the others its 1D position.

Positions travel with each forward, never as module state: a patched model takes ``position_ids`` either as
``[batch, seq]`` (ordinary 1D positions; then x = y = pos1d and the model is exactly the unpatched one) or as
``[3, batch, seq]`` stacking (pos1d, x, y) (``stack_positions``). Everything between the model's entry and its
rotary module passes ``position_ids`` through untouched when the attention mask is a prepared 4D mask (which
every caller here passes), so no other part of the model is patched.

The channel set is stored in the model config (``config.branch2d_rope``), so ``save_pretrained`` writes it to
``config.json`` and ``load_branch2d_model`` / ``patch_from_config`` restore the exact same patch: training,
evaluation and decoding can never use different channels (the reference's pretraining patched other channels than
its SFT and evaluation).

Covered: models whose decoder owns one ``rotary_emb`` with an ``inv_freq`` buffer and calls it as
``rotary_emb(hidden, position_ids)`` — Llama, Qwen2, Qwen3 in transformers 5 — with static RoPE types (default,
linear, llama3, yarn...). Dynamic types (which change ``inv_freq`` with the sequence length) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

CONFIG_KEY = "branch2d_rope"  # model.config attribute holding the channel set (saved in config.json)
# The reference's channels P = [8, 16, 24] (1-based) of head_dim 128: 0-based 7 -> x, 15 -> y, 23 -> x.
_REFERENCE_X, _REFERENCE_Y, _REFERENCE_CHANNELS = (7, 23), (15,), 64


@dataclass(frozen=True)
class RopeChannels:
    """Which frequency channels (0-based, of head_dim / 2) carry x (branch) and y (column)."""

    x_channels: tuple[int, ...]
    y_channels: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "x_channels", tuple(int(c) for c in self.x_channels))
        object.__setattr__(self, "y_channels", tuple(int(c) for c in self.y_channels))
        if set(self.x_channels) & set(self.y_channels):
            raise ValueError(f"a channel cannot carry both x and y: {self}")
        if not self.x_channels:
            raise ValueError("at least one channel must carry the branch coordinate x")

    def check(self, num_channels: int) -> None:
        bad = [c for c in (*self.x_channels, *self.y_channels) if not 0 <= c < num_channels]
        if bad:
            raise ValueError(f"rope channels {bad} out of range: the model has {num_channels} frequency channels "
                             f"(head_dim / 2)")

    def to_dict(self) -> dict[str, list[int]]:
        return {"x_channels": list(self.x_channels), "y_channels": list(self.y_channels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RopeChannels":
        return cls(tuple(data["x_channels"]), tuple(data["y_channels"]))


def default_channels(num_channels: int) -> RopeChannels:
    """The reference's channels (x: 7, 23; y: 15 of 64) scaled to ``num_channels``: the same relative frequencies."""
    def scale(channels: Sequence[int]) -> list[int]:
        return [min(num_channels - 1, round(c * num_channels / _REFERENCE_CHANNELS)) for c in channels]

    x = list(dict.fromkeys(scale(_REFERENCE_X)))
    y = [c for c in dict.fromkeys(scale(_REFERENCE_Y)) if c not in x]
    return RopeChannels(tuple(x), tuple(y))


def resolve_channels(num_channels: int, x_channels: Sequence[int] | None = None,
                     y_channels: Sequence[int] | None = None) -> RopeChannels:
    """Explicit channels when given (both lists), else ``default_channels``."""
    if x_channels is None and y_channels is None:
        channels = default_channels(num_channels)
    elif x_channels is None or y_channels is None:
        raise ValueError("give both x_channels and y_channels, or neither (the scaled reference default)")
    else:
        channels = RopeChannels(tuple(x_channels), tuple(y_channels))
    channels.check(num_channels)
    return channels


def stack_positions(pos1d: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[batch, seq]`` x3 -> the ``[3, batch, seq]`` ``position_ids`` a patched model takes."""
    return torch.stack([pos1d, x, y])


class Interleaved2DRoPE(nn.Module):
    """Drop-in for an HF rotary embedding: ``forward(x, position_ids) -> (cos, sin)``.

    Channel f gets the angle ``p[source[f]] * inv_freq[f]`` with p = (pos1d, x, y); ``inv_freq`` and
    ``attention_scaling`` are the wrapped module's, so with x = y = pos1d the output is bit-identical to it."""

    def __init__(self, base: nn.Module, channels: RopeChannels) -> None:
        super().__init__()
        rope_type = str(getattr(base, "rope_type", "default"))
        if "dynamic" in rope_type or "longrope" in rope_type:
            raise ValueError(f"rope type {rope_type!r} changes its frequencies with the sequence length; "
                             f"Interleaved2DRoPE supports static rope types only")
        inv_freq = base.inv_freq.detach().clone()
        channels.check(inv_freq.numel())
        self.channels = channels
        self.attention_scaling = float(getattr(base, "attention_scaling", 1.0))
        self.rope_type = rope_type
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        source = torch.zeros(inv_freq.numel(), dtype=torch.long)
        source[list(channels.x_channels)] = 1
        if channels.y_channels:
            source[list(channels.y_channels)] = 2
        self.source = nn.Buffer(source, persistent=False)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if position_ids.dim() == 2:  # plain 1D positions: x = y = pos1d, i.e. ordinary RoPE
            position_ids = position_ids.unsqueeze(0).expand(3, -1, -1)
        if position_ids.dim() != 3 or position_ids.shape[0] != 3:
            raise ValueError(f"position_ids must be [batch, seq] or [3, batch, seq] (pos1d, x, y), got "
                             f"{tuple(position_ids.shape)}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            coords = position_ids.to(x.device).float().permute(1, 2, 0)  # [batch, seq, 3]
            chosen = coords[..., self.source.to(x.device)]  # [batch, seq, F]: each channel's coordinate
            freqs = chosen * self.inv_freq.to(device=x.device, dtype=torch.float)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos = emb.cos() * self.attention_scaling
            sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def _rotary_owner(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The (parent, rotary module) pair of the decoder (through peft / CausalLM wrappers)."""
    found = [(name, module) for name, module in model.named_modules()
             if name.split(".")[-1] == "rotary_emb" and hasattr(module, "inv_freq")]
    if len(found) != 1:
        raise ValueError(f"expected exactly one rotary embedding with inv_freq (Llama/Qwen2/Qwen3 layout), found "
                         f"{[name for name, _ in found]}")
    name, module = found[0]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    return parent, module


def _num_channels(rotary: nn.Module) -> int:
    return int(rotary.inv_freq.numel())


def apply_interleaved_2d_rope(model: nn.Module, x_channels: Sequence[int] | None = None,
                              y_channels: Sequence[int] | None = None) -> RopeChannels:
    """Patch ``model`` in place and record the channel set in its config; returns the channels used.

    Re-patching replaces the previous patch (its frequencies are kept: they are the original ones)."""
    parent, rotary = _rotary_owner(model)
    channels = resolve_channels(_num_channels(rotary), x_channels, y_channels)
    parent.rotary_emb = Interleaved2DRoPE(rotary, channels)
    config = _config_of(model)
    setattr(config, CONFIG_KEY, channels.to_dict())
    return channels


def patch_from_config(model: nn.Module) -> RopeChannels:
    """Re-apply the patch recorded in ``model.config`` (after ``from_pretrained``); fails when there is none."""
    recorded = getattr(_config_of(model), CONFIG_KEY, None)
    if not recorded:
        raise ValueError(f"the model config has no {CONFIG_KEY!r}: it was not saved by a branch2d run")
    channels = RopeChannels.from_dict(recorded)
    return apply_interleaved_2d_rope(model, channels.x_channels, channels.y_channels)


def patched_channels(model: nn.Module) -> RopeChannels | None:
    """The channels of the installed patch, or None when the model is unpatched."""
    _, rotary = _rotary_owner(model)
    return rotary.channels if isinstance(rotary, Interleaved2DRoPE) else None


def _config_of(model: nn.Module):
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError("the model has no config to record the rope patch in")
    return config
