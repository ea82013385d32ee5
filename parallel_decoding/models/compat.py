"""transformers 5.x differences the project bridges: the GPU image runs transformers 5.17, whose models take
``logits_to_keep`` only as an int or a 1D tensor; later 5.x also take a 2D tensor (per-row positions, or a
boolean mask) through ``slice_logits_to_keep``. Where that is missing, the model projects every position and the
kept ones are picked here: the same logits, at the cost of the LM head over the whole input."""

from __future__ import annotations

import torch
import transformers

PER_ROW_LOGITS = hasattr(transformers.modeling_utils, "slice_logits_to_keep")


def logits_to_keep_arg(keep: torch.Tensor) -> torch.Tensor | int:
    """What to pass as ``logits_to_keep`` for a 2D ``keep`` (``[rows, k]`` positions or a boolean mask)."""
    return keep if PER_ROW_LOGITS else 0


def kept_logits(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The logits a model given ``logits_to_keep_arg(keep)`` returned, as a model taking ``keep`` returns them."""
    if PER_ROW_LOGITS:
        return logits
    keep = keep.to(logits.device)
    if keep.dtype == torch.bool:
        return logits[keep]
    return torch.take_along_dim(logits, keep[..., None], dim=1)
