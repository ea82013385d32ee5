"""The masked-diffusion LM: an HF Qwen3 or Llama backbone that attends bidirectionally, plus its config.

``Qwen3DiffusionLM`` / ``LlamaDiffusionLM`` subclass the causal classes, so parameter names are those of the
causal checkpoint (``model.layers.0...``, ``lm_head.weight``): conversion is a strict state-dict transfer with
no renaming, and ``compare`` can check it name by name. What changes is ``forward``:

- **Non-causal.** transformers 5 uses a 4-D float ``attention_mask`` as-is (``masking_utils`` returns early for
  any 4-D mask) under both eager (added to the scores) and SDPA (passed as ``attn_mask``; with a non-None mask
  SDPA's ``is_causal`` is False). ``forward`` therefore always builds a ``[B, 1, Q, K]`` additive float mask,
  all zeros when nothing is blocked, so no causal mask can ever be built. The attention modules' ``is_causal``
  flags are cleared too, and flash-attention (which ignores float masks) is refused.
- **Bias.** ``attention_bias`` (``[B, 1, Q, K]``, 0 = visible, large negative = blocked) is that mask: it
  really reaches attention (the reference built such biases and then passed None). A 2-D ``attention_mask``
  (1 = real token) blocks padded keys on top. Blocked entries hold the dtype's finite minimum, so even a
  fully blocked row gives a uniform softmax, never NaN.
- **Mask token.** ``config.mask_token_id`` is an id the tokenizer never produces: for Qwen3, the first unused
  embedding row past the 151,669 real tokens; for a vocabulary with no spare row (SmolLM2), one new row is
  added by ``resize_token_embeddings`` during conversion.
- **Shift** (``config.shift_logits``, Dream / DiffuLLaMA). A causal checkpoint was pretrained so that hidden
  state i predicts token i + 1; LLaDA, trained from scratch, predicts token i from state i. With the flag,
  position i's logits come from state i - 1, so a converted pretrained model keeps what it learned and needs far
  less fine-tuning. A row's first real position (0, or the first after left padding) has no previous state
  and uses its own, which keeps left padding invisible. The shift is applied before ``logits_positions``
  selects, so losses and the sampler follow it without knowing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.utils import ModelOutput

from parallel_decoding.config import ConfigError
from parallel_decoding.models.pretrained import is_load_failure, local_load_failure

SUPPORTED_ATTENTION = ("eager", "sdpa")
EMBEDDING_MULTIPLE = 64  # a grown vocabulary is padded to this many rows (tensor-core friendly)


@strict
class Qwen3DiffusionConfig(Qwen3Config):
    model_type = "qwen3_diffusion"
    mask_token_id: int | None = None  # the [MASK] id: an embedding row no text ever tokenizes to
    real_vocab_size: int | None = None  # len(tokenizer) at conversion: ids >= this are never real text
    shift_logits: bool = False  # position i predicted from hidden state i - 1 (AR-initialised, Dream)


@strict
class LlamaDiffusionConfig(LlamaConfig):
    model_type = "llama_diffusion"
    mask_token_id: int | None = None
    real_vocab_size: int | None = None
    shift_logits: bool = False


@dataclass
class DiffusionLMOutput(ModelOutput):
    logits: torch.Tensor | None = None  # [B, Q, V], or [N, V] when ``logits_positions`` is a boolean mask
    cache: Any = None  # the KV cache when ``use_cache`` (the sampler's prefix cache)


def additive_attention_mask(batch: int, q_len: int, kv_len: int, dtype: torch.dtype, device: torch.device,
                            attention_bias: torch.Tensor | None = None,
                            attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The ``[B, 1, Q, K]`` float mask attention receives: ``attention_bias`` plus blocked padded keys.

    ``attention_mask`` is the usual 2-D ``[B, K]`` key mask (1 = real). Values are clamped to the dtype's
    finite minimum so adding two blocked terms never overflows to -inf.
    """
    low = torch.finfo(dtype).min
    if attention_bias is None:
        mask = torch.zeros(batch, 1, q_len, kv_len, dtype=dtype, device=device)
    else:
        if attention_bias.dim() != 4 or attention_bias.shape[-2:] != (q_len, kv_len):
            raise ValueError(f"attention_bias must be [B, 1, {q_len}, {kv_len}], got {tuple(attention_bias.shape)}")
        mask = attention_bias.to(device=device, dtype=torch.float32).expand(batch, 1, q_len, kv_len)
        mask = mask.clamp(min=low).to(dtype)
    if attention_mask is not None:
        if attention_mask.shape != (batch, kv_len):
            raise ValueError(f"attention_mask must be [{batch}, {kv_len}], got {tuple(attention_mask.shape)}")
        padded = ~attention_mask.to(device=device, dtype=torch.bool)
        mask = mask.masked_fill(padded[:, None, None, :], low)
    return mask.contiguous()


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 at each row's first real token (left padding gets 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def shifted_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor | None, past: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(states, missing)``: for every query position i the hidden state of position i - 1, or its own where
    the previous key is not a real token (sequence start, left padding); ``missing`` [B] marks rows whose first
    query position needs the state of a cached position, which ``hidden`` does not hold.

    ``attention_mask`` spans the ``past + Q`` keys (1 = real), as in ``forward``.
    """
    batch, q_len = hidden.shape[:2]
    if attention_mask is None:
        previous_real = torch.ones(batch, q_len, dtype=torch.bool, device=hidden.device)
        if past == 0:
            previous_real[:, 0] = False
    else:
        keys = attention_mask.to(device=hidden.device, dtype=torch.bool)
        if past:
            previous_real = keys[:, past - 1:past - 1 + q_len]
        else:
            previous_real = torch.cat([torch.zeros_like(keys[:, :1]), keys[:, :q_len - 1]], dim=1)
    states = torch.cat([hidden[:, :1], hidden[:, :-1]], dim=1)
    states = torch.where(previous_real[..., None], states, hidden)
    missing = previous_real[:, 0] if past else torch.zeros(batch, dtype=torch.bool, device=hidden.device)
    return states, missing


def check_attention(config: Any) -> None:
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    if implementation not in SUPPORTED_ATTENTION:
        raise ConfigError(f"the diffusion model needs attention that takes a float mask ({SUPPORTED_ATTENTION}); "
                          f"got attn_implementation={implementation!r}")


class MaskedDiffusionMixin:
    """Bidirectional ``forward`` over the causal backbone (``self.model``) and head (``self.lm_head``)."""

    def _make_non_causal(self) -> None:
        check_attention(self.config)
        for module in self.modules():
            if hasattr(module, "is_causal"):
                module.is_causal = False

    @property
    def mask_token_id(self) -> int:
        if self.config.mask_token_id is None:
            raise ConfigError("this diffusion model's config has no mask_token_id")
        return int(self.config.mask_token_id)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_bias: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
        logits_positions: torch.Tensor | slice | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> DiffusionLMOutput:
        """Logits of every query position, or only of ``logits_positions`` (a slice of the sequence axis, or a
        boolean ``[B, Q]`` mask that returns ``[N, V]``): the head over a 150k vocabulary dominates small models,
        and training only needs the masked positions.

        With ``cache`` (a KV cache of earlier positions), ``attention_bias`` and ``attention_mask`` span the keys
        ``cached + Q``; ``position_ids`` must then be given. With ``config.shift_logits`` the first query position
        would need the state of the last cached one, which is not kept: selecting it raises ``ValueError`` (start
        the query one position earlier, as the sampler does).
        """
        if kwargs.pop("labels", None) is not None:
            raise TypeError("the diffusion model computes no loss from labels; see methods.llada.losses")
        embeds = inputs_embeds if inputs_embeds is not None else self.model.embed_tokens(input_ids)
        batch, q_len = embeds.shape[:2]
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            if past:
                raise ValueError("position_ids are required when a cache is passed")
            position_ids = positions_from_mask(attention_mask) if attention_mask is not None else \
                torch.arange(q_len, device=embeds.device).expand(batch, q_len)
        mask = additive_attention_mask(batch, q_len, past + q_len, embeds.dtype, embeds.device,
                                       attention_bias, attention_mask)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        hidden = self.model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, cache=cache,
                            use_cache=use_cache, **kwargs).last_hidden_state
        if getattr(self.config, "shift_logits", False):
            hidden, missing = shifted_hidden(hidden, attention_mask, past)
            if logits_positions is None:
                selected = torch.ones_like(missing)
            elif isinstance(logits_positions, torch.Tensor):
                selected = logits_positions[:, 0].to(device=missing.device, dtype=torch.bool)
            else:
                selected = torch.full_like(missing, 0 in range(q_len)[logits_positions])
            if (missing & selected).any():
                raise ValueError(f"shift_logits: query position 0 (sequence position {past}) is predicted from "
                                 f"the hidden state of position {past - 1}, which is in the cache and not "
                                 "recomputed; start the query one position earlier or do not select it")
        if logits_positions is not None:
            hidden = hidden[logits_positions] if isinstance(logits_positions, torch.Tensor) \
                else hidden[:, logits_positions]
        return DiffusionLMOutput(logits=self.lm_head(hidden), cache=cache if use_cache else None)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a masked-diffusion model does not decode left to right: use "
                        "parallel_decoding.methods.llada.sampler.diffusion_generate")


class Qwen3DiffusionLM(MaskedDiffusionMixin, Qwen3ForCausalLM):
    config_class = Qwen3DiffusionConfig

    def __init__(self, config: Qwen3DiffusionConfig) -> None:
        super().__init__(config)
        self._make_non_causal()


class LlamaDiffusionLM(MaskedDiffusionMixin, LlamaForCausalLM):
    config_class = LlamaDiffusionConfig

    def __init__(self, config: LlamaDiffusionConfig) -> None:
        super().__init__(config)
        self._make_non_causal()


# causal model_type -> (diffusion config class, diffusion model class)
DIFFUSION_CLASSES: dict[str, tuple[type, type]] = {
    "qwen3": (Qwen3DiffusionConfig, Qwen3DiffusionLM),
    "llama": (LlamaDiffusionConfig, LlamaDiffusionLM),
}
for _config_cls, _model_cls in DIFFUSION_CLASSES.values():
    AutoConfig.register(_config_cls.model_type, _config_cls, exist_ok=True)
    AutoModelForMaskedLM.register(_config_cls, _model_cls, exist_ok=True)


def is_diffusion_model(model: Any) -> bool:
    return isinstance(model, MaskedDiffusionMixin)


def choose_mask_token_id(tokenizer: PreTrainedTokenizerBase, embedding_rows: int) -> tuple[int, int]:
    """``(mask_token_id, rows needed)``: the first id past every real token (``len(tokenizer)``, added tokens
    included). If the embedding has a spare row there it is used as is; otherwise the embedding must grow."""
    real = len(tokenizer)
    if real < embedding_rows:
        return real, embedding_rows
    rows = -(-(real + 1) // EMBEDDING_MULTIPLE) * EMBEDDING_MULTIPLE
    return real, rows


def convert_causal_to_diffusion(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                                mask_token_id: int | None = None, shift_logits: bool = False) -> PreTrainedModel:
    """The diffusion model holding ``model``'s weights, unchanged (its tensors are taken over, not copied).

    Names match one to one (strict load). The only possible change is extra embedding rows when the
    vocabulary has no unused id for ``[MASK]``; the existing rows are kept as they are. ``shift_logits``: keep
    the causal checkpoint's next-token reading (see the module docstring); the flag lives in the config. An
    already-diffusion ``model`` is returned as is: its own config decides, and asking to shift an unshifted one
    is refused (its weights were trained to read position i from state i).
    """
    if is_diffusion_model(model):
        if shift_logits and not model.config.shift_logits:
            raise ConfigError("shift_logits=True for a diffusion model trained without the shift")
        return model
    model_type = model.config.model_type
    if model_type not in DIFFUSION_CLASSES:
        raise ConfigError(f"no diffusion class for model_type {model_type!r}; supported: {sorted(DIFFUSION_CLASSES)}")
    config_cls, model_cls = DIFFUSION_CLASSES[model_type]
    check_attention(model.config)
    rows = model.get_input_embeddings().num_embeddings
    real = len(tokenizer)
    if mask_token_id is None:
        mask_token_id, needed = choose_mask_token_id(tokenizer, rows)
    else:
        needed = max(rows, mask_token_id + 1)
    if mask_token_id < real:
        raise ConfigError(f"mask_token_id={mask_token_id} is a real token of the tokenizer (ids < {real} are text); "
                          f"pick an id >= {real}")
    if needed > rows:
        model.resize_token_embeddings(needed, mean_resizing=True)
    values = {k: v for k, v in model.config.to_dict().items()
              if k not in ("model_type", "transformers_version", "architectures", "dtype", "torch_dtype")}
    config = config_cls(**values, mask_token_id=int(mask_token_id), real_vocab_size=real,
                        shift_logits=bool(shift_logits))
    config._attn_implementation = getattr(model.config, "_attn_implementation", None) or "sdpa"
    config.dtype = model.dtype
    with torch.device("meta"):
        converted = model_cls(config)
    state = model.state_dict()
    converted.load_state_dict(state, strict=True, assign=True)
    persistent = set(state)
    for name, buffer in model.named_buffers():  # non-persistent buffers (rotary inv_freq) are not in state_dict
        if name not in persistent:
            owner, _, leaf = name.rpartition(".")
            converted.get_submodule(owner).register_buffer(leaf, buffer, persistent=False)
    converted.tie_weights()
    leftover = [n for n, t in [*converted.named_parameters(), *converted.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"conversion left tensors without values: {leftover}")
    converted.generation_config = model.generation_config
    converted.train(model.training)
    return converted


def load_diffusion_model(directory: str, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                         attn_implementation: str | None = "sdpa") -> PreTrainedModel:
    """A saved diffusion directory (``save_pretrained`` of a ``*DiffusionLM``), ready for the sampler."""
    try:
        config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError) as err:
        raise ConfigError(local_load_failure("diffusion model", directory, err)) from None
    classes = {c.model_type: m for c, m in DIFFUSION_CLASSES.values()}
    if config.model_type not in classes:
        raise ConfigError(f"{directory} holds a {config.model_type!r} model, not a diffusion model "
                          f"({sorted(classes)}); convert it first: python -m parallel_decoding.methods.llada.convert")
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation or "sdpa"}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        model = classes[config.model_type].from_pretrained(directory, **kwargs)
    except Exception as err:  # noqa: BLE001 - a broken directory is one line; anything else keeps its traceback

        if not is_load_failure(err):
            raise
        raise ConfigError(local_load_failure("diffusion model", directory, err)) from None
    model.eval()
    return model.to(device)
