"""A lean forward for Llama-family decoders (Llama, Qwen2, Qwen3): the same arithmetic as HF's ``sdpa`` forward,
without its per-call machinery.

Why: a decode step of a 135M model on a CPU is ~30 layers x a dozen small ops; HF's forward adds, per call and
per layer, mask-interface dispatch, cache-object bookkeeping, kwargs plumbing, output dataclasses and
``repeat_kv`` copies of the whole cache when several queries share a row (the in-sequence layout). Here one
Python loop calls the model's own weights with ``torch.nn.functional`` ops, writes keys/values straight into the
``SlotCache`` buffers and gives SDPA the layout's mask as is. Every op that shapes the numbers (RMSNorm in fp32,
RoPE from the model's own ``rotary_emb``, SDPA with the same scale and mask) is the one HF runs, so greedy answers
stay those of ``independent`` (tests/decoding/test_lean.py checks it against HF ``generate``).

Optional levers (``LeanOptions``), off unless exact on the tests: ``fuse_qkv`` / ``fuse_gate_up`` (one matmul
instead of three / two; changes the GEMM blocking), ``fused_rms_norm`` (``torch.rms_norm``).

Not covered (``lean_unsupported`` says why, and the engine then calls the HF forward): other architectures,
attention other than ``sdpa``, forward hooks other than plain pre-hooks on the model itself (they would be
skipped), sliding-window layers, a replaced rotary embedding (the 2D-RoPE patch), training mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module

from parallel_decoding.decoding.cache import SlotCache

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3")


@dataclass(frozen=True)
class LeanOptions:
    fuse_qkv: bool = False  # q/k/v projections as one matmul over concatenated weights (and RoPE on q, k at once)
    fuse_gate_up: bool = False  # gate/up projections as one matmul
    fused_rms_norm: bool = False  # torch.rms_norm instead of HF's pow/mean/rsqrt sequence


def _hook_problem(model: nn.Module) -> str | None:
    """Hooks the lean forward cannot honour. Plain forward pre-hooks on the model itself (e.g. the HF backend's
    forward-pass counter) are called by ``LeanForward`` as ``model(**kwargs)`` would call them; any other hook
    would be skipped, so it rules the lean forward out."""
    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return "global forward hooks are registered"
    if model._forward_hooks or model._forward_pre_hooks_with_kwargs:
        return "the model has forward hooks (or pre-hooks taking kwargs)"
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules() if m is not model):
        return "a submodule has forward hooks (the lean forward would skip them)"
    return None


def lean_unsupported(model: nn.Module) -> str | None:
    """Why the lean forward cannot stand in for ``model(...)`` (None: it can)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return f"model type {getattr(config, 'model_type', None)!r} is not one of {SUPPORTED_MODEL_TYPES}"
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return "attention is not sdpa"
    if model.training:
        return "the model is in training mode"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(model, "lm_head"):
        return "not a <Family>ForCausalLM with .model.layers and .lm_head"
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
        return "sliding-window layers"
    if not type(getattr(inner, "rotary_emb", None)).__module__.startswith("transformers."):
        return "the rotary embedding is replaced (e.g. a 2D-RoPE patch)"
    return _hook_problem(model)


def _wb(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    return linear.weight.detach(), None if linear.bias is None else linear.bias.detach()


class _Layer:
    """One decoder layer's weights, read once (views of the model's parameters, or fused copies)."""

    def __init__(self, layer: nn.Module, options: LeanOptions) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.q, self.k, self.v, self.o = (_wb(m) for m in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj))
        self.qkv = None
        if options.fuse_qkv:
            biases = [self.q[1], self.k[1], self.v[1]]
            self.qkv = (torch.cat([self.q[0], self.k[0], self.v[0]]),
                        None if biases[0] is None else torch.cat(biases))
        self.split = (attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features)
        self.gate, self.up, self.down = (_wb(m) for m in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
        self.gate_up = None
        if options.fuse_gate_up:
            if self.gate[1] is not None:
                raise ValueError("fuse_gate_up with MLP biases is not implemented")
            self.gate_up = (torch.cat([self.gate[0], self.up[0]]), None)
        self.act = mlp.act_fn
        self.norm1, self.norm2 = layer.input_layernorm, layer.post_attention_layernorm
        self.q_norm, self.k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
        self.scaling = attn.scaling
        self.groups = attn.num_key_value_groups
        self.head_dim = attn.head_dim


class LeanForward:
    """``model(input_ids, attention_mask, position_ids, cache, logits_to_keep).logits`` for the engine's calls."""

    def __init__(self, model: nn.Module, options: LeanOptions | None = None) -> None:
        reason = lean_unsupported(model)
        if reason is not None:
            raise ValueError(f"the lean forward does not cover this model: {reason}")
        self.model = model
        self.options = options or LeanOptions()
        inner = model.model
        self.embed = inner.embed_tokens
        self.rotary = inner.rotary_emb
        self.final_norm = inner.norm
        self.lm_head = model.lm_head
        self.layers = [_Layer(layer, self.options) for layer in inner.layers[:model.config.num_hidden_layers]]

    def _norm(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        eps = module.variance_epsilon
        if self.options.fused_rms_norm:
            return torch.rms_norm(x, (x.shape[-1],), module.weight, eps)
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return module.weight * h.to(dtype)

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return (x * cos) + (rotated * sin)

    def _attention(self, layer: _Layer, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
        """SDPA over the kv heads: the ``groups`` query heads of a kv head become extra query rows of it, so the
        cache is never copied per query head (HF's ``repeat_kv`` for several queries per row)."""
        rows, heads, queries, dim = q.shape
        g = layer.groups
        if g > 1:
            q = q.reshape(rows, heads // g, g * queries, dim)  # head h = kv * g + r -> kv head kv, rows r-major
            if queries > 1:
                mask = mask.repeat(1, 1, g, 1)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=layer.scaling)
        return out.reshape(rows, heads, queries, dim)

    @torch.inference_mode()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                 cache: SlotCache, logits_to_keep: torch.Tensor) -> torch.Tensor:
        for hook in self.model._forward_pre_hooks.values():  # what model(**kwargs) would call: hook(model, ())
            if hook(self.model, ()) is not None:
                raise ValueError("a forward pre-hook on the model changes its inputs; the lean forward cannot honour "
                                 "it: build the decoder with lean=False")
        rows, queries = input_ids.shape
        x = self.embed(input_ids)
        cos, sin = self.rotary(x, position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        mask = attention_mask.to(x.dtype)
        for index, layer in enumerate(self.layers):
            h = self._norm(layer.norm1, x)
            if layer.qkv is not None and layer.q_norm is None:  # RoPE on q and k heads together: half the ops
                qkv = F.linear(h, *layer.qkv).view(rows, queries, -1, layer.head_dim)
                heads = layer.split[0] // layer.head_dim
                kv_heads = layer.split[1] // layer.head_dim
                qk = self._rope(qkv[:, :, :heads + kv_heads].transpose(1, 2), cos, sin)
                q, k = qk[:, :heads], qk[:, heads:]
                v = qkv[:, :, heads + kv_heads:].transpose(1, 2)
            else:
                if layer.qkv is not None:
                    q, k, v = F.linear(h, *layer.qkv).split(layer.split, dim=-1)
                else:
                    q, k, v = F.linear(h, *layer.q), F.linear(h, *layer.k), F.linear(h, *layer.v)
                q = q.view(rows, queries, -1, layer.head_dim)
                k = k.view(rows, queries, -1, layer.head_dim)
                if layer.q_norm is not None:
                    q, k = layer.q_norm(q), layer.k_norm(k)
                q = self._rope(q.transpose(1, 2), cos, sin)
                k = self._rope(k.transpose(1, 2), cos, sin)
                v = v.view(rows, queries, -1, layer.head_dim).transpose(1, 2)
            keys, values = cache.update(k, v, index)
            attn = self._attention(layer, q, keys, values, mask)
            x = x + F.linear(attn.transpose(1, 2).reshape(rows, queries, -1), *layer.o)
            h = self._norm(layer.norm2, x)
            if layer.gate_up is not None:
                gate, up = F.linear(h, *layer.gate_up).chunk(2, dim=-1)
            else:
                gate, up = F.linear(h, *layer.gate), F.linear(h, *layer.up)
            x = x + F.linear(layer.act(gate) * up, *layer.down)
        kept = torch.take_along_dim(x, logits_to_keep[..., None], dim=1)
        return self.lm_head(self._norm(self.final_norm, kept))
