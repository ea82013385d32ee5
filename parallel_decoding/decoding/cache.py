"""A KV cache the engine can fork, shrink and grow without recomputing or re-concatenating.

``SlotCache`` is a ``transformers.Cache`` whose layers write new keys/values into a preallocated buffer (grown
by doubling) and hand attention a view of the filled part: HF's ``DynamicCache`` re-concatenates the whole
cache at every step, a copy that costs as much as the step itself on CPU for long shared prefixes. On top of the
usual cache it can:

- ``fork(rows)``: copy a one-row prefix cache into ``rows`` rows (the batch-shared layout's "compute the prefix
  once, reuse it for every branch"),
- ``select_rows`` / ``keep_slots``: drop finished branches (rows, or slots of one row),
- ``clone``: an independent copy (a prefix state stays reusable after a decode extended a copy of it).

Only what transformers' Llama/Qwen2/Qwen3 attention uses is implemented (``update``, lengths); masks and
positions always come from the layout, never from the cache.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class SlotLayer(CacheLayerMixin):
    """One layer's keys/values: ``[rows, kv_heads, capacity, head_dim]`` buffers, the first ``length`` filled."""

    is_sliding = False
    is_croppable = True

    def __init__(self) -> None:
        super().__init__()
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._allocate(key_states, value_states, capacity=max(64, 2 * key_states.shape[-2]))
        self.is_initialized = True

    def _allocate(self, key_like: torch.Tensor, value_like: torch.Tensor, capacity: int) -> None:
        rows, heads, _, kdim = key_like.shape
        self._k = key_like.new_empty((rows, heads, capacity, kdim))
        self._v = value_like.new_empty((rows, heads, capacity, value_like.shape[-1]))

    def _grow(self, needed: int) -> None:
        capacity = self._k.shape[-2]
        if needed <= capacity:
            return
        old_k, old_v = self._k, self._v
        self._allocate(old_k, old_v, capacity=max(needed, 2 * capacity))
        self._k[:, :, :self.length] = old_k[:, :, :self.length]
        self._v[:, :, :self.length] = old_v[:, :, :self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self._grow(end)
        self._k[:, :, self.length:end] = key_states
        self._v[:, :, self.length:end] = value_states
        self.length = end
        return self.keys, self.values

    @property
    def keys(self) -> torch.Tensor | None:  # noqa: D102 (CacheLayerMixin attribute, read-only view here)
        return None if self._k is None else self._k[:, :, :self.length]

    @keys.setter
    def keys(self, value) -> None:  # CacheLayerMixin.__init__ assigns None
        if value is not None:
            raise AttributeError("SlotLayer keys are written through update()")

    @property
    def values(self) -> torch.Tensor | None:
        return None if self._v is None else self._v[:, :, :self.length]

    @values.setter
    def values(self, value) -> None:
        if value is not None:
            raise AttributeError("SlotLayer values are written through update()")

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    @property
    def rows(self) -> int:
        return 0 if self._k is None else self._k.shape[0]

    def fork(self, rows: int, extra_capacity: int) -> "SlotLayer":
        """A new layer with this (one-row) layer's filled slots copied into ``rows`` rows."""
        if self.rows != 1:
            raise ValueError(f"only a one-row cache can be forked, this one has {self.rows} rows")
        out = SlotLayer()
        out.device, out.is_initialized, out.length = self.device, True, self.length
        capacity = max(64, self.length + extra_capacity)
        out._k = self._k.new_empty((rows, self._k.shape[1], capacity, self._k.shape[-1]))
        out._v = self._v.new_empty((rows, self._v.shape[1], capacity, self._v.shape[-1]))
        out._k[:, :, :self.length] = self._k[:, :, :self.length]  # broadcast over rows: one copy, no compute
        out._v[:, :, :self.length] = self._v[:, :, :self.length]
        return out

    def select_rows(self, rows: torch.Tensor) -> None:
        rows = rows.to(self._k.device)
        self._k = self._k.index_select(0, rows)
        self._v = self._v.index_select(0, rows)

    def keep_slots(self, slots: torch.Tensor) -> None:
        slots = slots.to(self._k.device)
        n = slots.numel()
        self._k[:, :, :n] = self._k[:, :, :self.length].index_select(2, slots)
        self._v[:, :, :n] = self._v[:, :, :self.length].index_select(2, slots)
        self.length = n


class SlotCache(Cache):
    """The engine's cache: one ``SlotLayer`` per decoder layer (created on first use)."""

    def __init__(self, layers: list[SlotLayer] | None = None) -> None:
        if layers is None:
            super().__init__(layer_class_to_replicate=SlotLayer)
        else:
            super().__init__(layers=layers)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.layers[layer_idx].length if layer_idx < len(self.layers) else 0

    @property
    def rows(self) -> int:
        return self.layers[0].rows if self.layers else 0

    def fork(self, rows: int, extra_capacity: int = 0) -> "SlotCache":
        """``rows`` copies of this one-row cache (no model compute), with room for ``extra_capacity`` more slots."""
        if not self.layers or not self.layers[0].is_initialized:
            return SlotCache()  # an empty prefix: layers are created (with the right rows) on first use
        return SlotCache([layer.fork(rows, extra_capacity) for layer in self.layers])

    def clone(self, extra_capacity: int = 0) -> "SlotCache":
        return self.fork(1, extra_capacity)

    def select_rows(self, rows: torch.Tensor) -> None:
        for layer in self.layers:
            layer.select_rows(rows)

    def keep_slots(self, slots: torch.Tensor) -> None:
        for layer in self.layers:
            layer.keep_slots(slots)
