"""Masked-diffusion losses, computed in fp32 whatever the logits' dtype.

For the scored positions M, with ``w = 1/p`` (or ``1/max(p, 1/reweight_cap)``):

- ``guidelines`` (LLaDA's guidelines): M = positions that hold the mask id; per-token CE.
- ``dllm`` (dLLM-RL): M = every noised position, so ``random_replace`` positions are scored too; per-token CE.
  With ``kind=mask`` the two coincide. (``guidelines`` with ``random_replace`` would score nothing and is
  refused.)
- ``soft_ce``: M as ``dllm``; per-token ``(1 - a) * NLL + a * mean_v(-log q_v)`` (label smoothing ``a``).

Normalisation: pretraining ``sum_M w * l / (B * L)``; SFT ``(1/B) * sum_M w * l / answer_len(row)``, where the
answer length counts the EOS padding after the answer (the model is trained to write it). An empty M gives 0.
Both are expressed as one denominator per row, so a single function serves both (``row_denominators``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from parallel_decoding.methods.llada.noising import NoisedBatch, loss_weight

LOSSES = ("guidelines", "dllm", "soft_ce")


def scored_positions(noised: NoisedBatch, loss: str, mask_token_id: int) -> torch.Tensor:
    """M for ``loss``: mask-id positions (``guidelines``) or every noised position (``dllm``, ``soft_ce``)."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
    if loss == "guidelines":
        return noised.noised & (noised.input_ids == mask_token_id)
    return noised.noised


def token_losses(logits: torch.Tensor, targets: torch.Tensor, loss: str, label_smoothing: float = 0.1) -> torch.Tensor:
    """Per-token loss ``[N]`` in fp32 from logits ``[N, V]``."""
    logits = logits.float()
    if loss != "soft_ce":
        return F.cross_entropy(logits, targets, reduction="none")
    log_probs = F.log_softmax(logits, dim=-1)
    nll = -log_probs.gather(-1, targets[:, None]).squeeze(-1)
    return (1 - label_smoothing) * nll - label_smoothing * log_probs.mean(-1)


def row_denominators(mode: str, batch: int, length: int, answer_start: torch.Tensor) -> torch.Tensor:
    """``[B]``: ``B * L`` for every row in pretraining; ``B * answer_len`` per row in SFT, the answer running
    from ``answer_start`` to the end (its EOS padding included)."""
    if mode == "pretrain":
        return torch.full((batch,), float(batch * length), device=answer_start.device)
    if mode == "sft":
        answer = (length - answer_start).float().clamp(min=1)
        return batch * answer
    raise ValueError(f"unknown mode {mode!r}; use pretrain or sft")


def diffusion_loss(logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor, p: torch.Tensor,
                   denominators: torch.Tensor, loss: str = "guidelines", label_smoothing: float = 0.1,
                   reweight_cap: float | None = None) -> torch.Tensor:
    """``sum_i w[row_i] * l_i / denominators[row_i]`` over the N scored tokens (logits ``[N, V]``)."""
    if targets.numel() == 0:
        return logits.float().sum() * 0.0  # keeps the graph (DDP) and gives exactly 0
    per_token = token_losses(logits, targets, loss, label_smoothing)
    weights = loss_weight(p.float(), reweight_cap)[rows] / denominators.float()[rows]
    return (per_token * weights).sum()
