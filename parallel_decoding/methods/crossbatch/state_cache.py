"""Answer-step hidden states of a frozen backbone, kept per row so that later epochs skip the backbone forward.

In the variants where nothing inside the backbone trains (``baseline``, ``crossbatch``, ``freeze_base``) a row's
hidden states at its answer steps are a fixed function of its tokens: every epoch after the first recomputes
exactly what the first computed, and that forward is nearly all of a step's cost (the LM head and the mixer
see one hidden state per answer token). ``method.cache_frozen_states=true`` keeps them: a batch whose rows
were all seen before is assembled from the cache; any other batch runs the forward and stores its rows.

A row is keyed by its real tokens (prompt and teacher-forced answer, padding left out), so the same question
lands on the same entry whatever batch, padding width or group order it comes in; states are stored per row
and layer, ``[answer tokens, d]``, on the device they were computed on. The cache assumes a deterministic
backbone: with dropout inside the backbone every epoch would reuse the first epoch's dropout mask.
"""

from __future__ import annotations

import torch

Hidden = dict[int, torch.Tensor]  # {layer: [steps, rows, d]}, step-major as ``CrossBatchModel.answer_states``


class FrozenStateCache:
    def __init__(self) -> None:
        self.rows: dict[bytes, Hidden] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    def keys(batch: dict[str, torch.Tensor]) -> list[bytes]:
        """One key per row: its real tokens (padding left out)."""
        ids, mask = batch["input_ids"].cpu(), batch["attention_mask"].cpu().bool()
        return [ids[row][mask[row]].numpy().tobytes() for row in range(ids.shape[0])]

    def lookup(self, keys: list[bytes], layers: list[int], steps: int) -> Hidden | None:
        """The batch's answer states if every row is cached (zeros at steps after a row's answer ended)."""
        entries = [self.rows.get(key) for key in keys]
        if any(entry is None or any(layer not in entry for layer in layers) for entry in entries):
            self.misses += 1
            return None
        self.hits += 1
        hidden = {}
        for layer in layers:
            first = entries[0][layer]
            out = first.new_zeros((steps, len(entries), first.shape[-1]))
            for row, entry in enumerate(entries):
                out[: entry[layer].shape[0], row] = entry[layer]
            hidden[layer] = out
        return hidden

    def store(self, keys: list[bytes], hidden: Hidden, active: torch.Tensor) -> None:
        lengths = active.sum(dim=0).tolist()
        for row, key in enumerate(keys):
            self.rows[key] = {layer: states[: lengths[row], row].detach().clone() for layer, states in hidden.items()}
