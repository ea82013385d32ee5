"""The trainable cross-batch model: a causal LM (optionally with LoRA), its LM head and a mixer.

The four variants of the reference plus ``freeze_base`` differ only in what trains and whether rows mix:

=================  ========  =====  ======  ============
variant            lm_head   LoRA   module  mixing
=================  ========  =====  ======  ============
baseline           trained   -      -       off
crossbatch         trained   -      yes     on
lora_lmhead        trained   yes    -       off
lora_crossbatch    trained   yes    yes     on
freeze_base        frozen    -      yes     on
=================  ========  =====  ======  ============

A trained LM head is untied from the input embeddings first (a copy of the tied matrix), so training it never
changes what the backbone reads. The backbone runs under ``no_grad`` only when nothing in it trains; LoRA
variants run it with gradients (the reference did not, so its LoRA never learned).

Hidden states come from an ordinary forward of the wrapped model (forward hooks, e.g. the backend's pass
counter, see it) with ``output_hidden_states=<the mixer's layers>`` and no logits kept; logits are then
``lm_head(mix(h))`` at the positions that need them. The model's KV cache is whatever that forward wrote:
mixing acts after it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.crossbatch.mixing import CrossBatchMixer
from parallel_decoding.methods.crossbatch.state_cache import FrozenStateCache
from parallel_decoding.methods.finetuning import IGNORE_INDEX


@dataclass(frozen=True)
class Variant:
    name: str
    train_lm_head: bool
    lora: bool
    mixer: bool


VARIANTS = {v.name: v for v in (
    Variant("baseline", train_lm_head=True, lora=False, mixer=False),
    Variant("crossbatch", train_lm_head=True, lora=False, mixer=True),
    Variant("lora_lmhead", train_lm_head=True, lora=True, mixer=False),
    Variant("lora_crossbatch", train_lm_head=True, lora=True, mixer=True),
    Variant("freeze_base", train_lm_head=False, lora=False, mixer=True),
)}


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ConfigError(f"method.variant={name!r}; use one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def causal_lm(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (LoRA layers stay in it), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def untie_lm_head(model: nn.Module) -> nn.Linear:
    """Give the LM head its own weight (a copy) if it shares the input embeddings' matrix; returns the head."""
    head = model.get_output_embeddings()
    embedding = model.get_input_embeddings()
    if head.weight.data_ptr() == embedding.weight.data_ptr():
        head.weight = nn.Parameter(embedding.weight.detach().clone(), requires_grad=head.weight.requires_grad)
    model.config.tie_word_embeddings = False
    if getattr(model.config, "get_text_config", None) is not None:
        model.config.get_text_config().tie_word_embeddings = False
    return head


def lora_config(settings: dict[str, Any]):
    from peft import LoraConfig  # lazy: peft (~1 s) only for the LoRA variants

    return LoraConfig(
        r=int(settings.get("r", 16)),
        lora_alpha=int(settings.get("alpha", 32)),
        lora_dropout=float(settings.get("dropout", 0.05)),
        target_modules=list(settings.get("target_modules") or ["q_proj", "k_proj", "v_proj", "o_proj"]),
        task_type="CAUSAL_LM",
    )


def left_padded_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (as HF ``generate`` numbers them)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)


class CrossBatchModel(nn.Module):
    """``lm`` (a transformers causal LM or a peft model around one), plus an optional ``mixer``; logits come
    from ``lm``'s own output layer unless a separate ``head`` is given."""

    def __init__(self, lm: nn.Module, mixer: CrossBatchMixer | None, backbone_trains: bool = False,
                 head: nn.Module | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.mixer = mixer
        self.backbone_trains = backbone_trains
        self.separate_head = head  # a head of its own (evaluation beside an untouched shared base model)
        self.state_cache: FrozenStateCache | None = None  # set by the method when asked (frozen backbones only)
        inner = causal_lm(lm)
        self.num_hidden_layers = int(inner.config.num_hidden_layers)
        # the cache argument was renamed during transformers 5.x (past_key_values -> cache)
        self.cache_kwarg = "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"

    @property
    def head(self) -> nn.Module:
        if self.separate_head is not None:
            return self.separate_head
        return causal_lm(self.lm).get_output_embeddings()

    @property
    def hidden_layers(self) -> list[int]:
        """Hidden-state indices requested from the forward (always including the final one, -1)."""
        layers = list(self.mixer.layers) if self.mixer is not None else []
        return sorted(set(layers) | {-1})

    def hidden_states(self, outputs: Any, columns: slice | int) -> dict[int, torch.Tensor]:
        """The requested hidden states at ``columns`` of each row: ``{layer: [rows, (cols,) d]}``."""
        states = outputs.hidden_states
        return {layer: states[layer][:, columns] for layer in self.hidden_layers}

    def returned_cache(self, outputs: Any) -> Any:
        return outputs.get("cache", None) if outputs.get("cache", None) is not None else outputs.get("past_key_values")

    def forward_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                       cache: Any = None, use_cache: bool = False) -> Any:
        """One forward of the LM for its hidden states (and its KV cache when ``use_cache``). The model's own
        logits are not needed: ``logits_to_keep`` selects no position, so its LM head costs nothing."""
        no_logits = torch.empty(0, dtype=torch.long, device=input_ids.device)
        kwargs: dict[str, Any] = {"use_cache": use_cache, "output_hidden_states": self.hidden_layers,
                                  "logits_to_keep": no_logits}
        if cache is not None:
            kwargs[self.cache_kwarg] = cache
        return self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)

    def mix(self, hidden: dict[int, torch.Tensor], group_ids: torch.Tensor,
            active: torch.Tensor | None = None) -> torch.Tensor:
        """The (mixed, when there is a mixer) final hidden state the LM head reads."""
        if self.mixer is None:
            return hidden[-1]
        return self.mixer(hidden, group_ids, active)

    def logits(self, hidden: dict[int, torch.Tensor], group_ids: torch.Tensor,
               active: torch.Tensor | None = None, mixing: bool = True) -> torch.Tensor:
        h = self.mix(hidden, group_ids, active) if mixing else hidden[-1]
        return self.head(h)

    def answer_states(self, batch: dict[str, torch.Tensor]) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """The hidden states that predict each answer token, step-major: ``({layer: [T, rows, d]}, active)``.

        Prompts are left-padded to ``P = prompt_width`` and answers follow, so answer token ``t`` of every row
        sits at column ``P + t`` and is predicted from column ``P + t - 1``: at step ``t`` the rows of a group
        mix the hidden states of the same step, as the generator does. ``active[t, row]`` is False once the
        row's answer has ended: it is then neither a target nor a mixing source (like a finished row in
        generation). One forward covers the whole batch; it keeps its graph only when the backbone trains. With a
        ``state_cache`` (frozen backbone) a batch of rows seen before skips the forward.
        """
        targets = batch["targets"]  # [rows, T], IGNORE_INDEX after each answer's end
        active = (targets != IGNORE_INDEX).transpose(0, 1)
        cache = None if self.backbone_trains else self.state_cache
        keys = cache.keys(batch) if cache is not None else []
        if cache is not None and (cached := cache.lookup(keys, self.hidden_layers, active.shape[0])) is not None:
            return cached, active
        width = int(batch["prompt_width"])
        grad = torch.enable_grad() if self.backbone_trains and torch.is_grad_enabled() else torch.no_grad()
        with grad:
            outputs = self.forward_hidden(batch["input_ids"], batch["attention_mask"], batch["position_ids"])
        columns = slice(width - 1, width - 1 + targets.shape[1])
        hidden = {k: v.transpose(0, 1) for k, v in self.hidden_states(outputs, columns).items()}
        if cache is not None:
            cache.store(keys, hidden, active)
        return hidden, active

    def teacher_forced(self, batch: dict[str, torch.Tensor], mixing: bool = True,
                       unmixed_too: bool = False) -> dict[str, torch.Tensor]:
        """``loss``: the sum of the answer tokens' cross-entropies (each predicted from a mixed hidden state) over
        their number; ``n_targets``; ``logits`` ``[n_targets, vocab]`` in step-major order; ``loss_unmixed``
        (the same head on unmixed states, no gradient) when asked."""
        hidden, active = self.answer_states(batch)
        n_targets = int(active.sum())
        if n_targets == 0:
            raise ValueError("the batch has no answer tokens")
        gold = batch["targets"].transpose(0, 1)[active]
        use_mixer = mixing and self.mixer is not None
        mixed = self.mix(hidden, batch["group_ids"], active) if use_mixer else hidden[-1]
        logits = self.head(mixed[active])
        result = {"loss": F.cross_entropy(logits.float(), gold, reduction="sum") / n_targets,
                  "n_targets": torch.tensor(n_targets), "logits": logits}
        if unmixed_too:
            with torch.no_grad():
                plain = self.head(hidden[-1][active]) if use_mixer else logits.detach()
                result["loss_unmixed"] = F.cross_entropy(plain.float(), gold, reduction="sum") / n_targets
        return result
