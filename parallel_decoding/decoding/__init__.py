"""Shared-prefix decoding: layouts (positions + float additive masks as data), a forkable KV cache, and the
engine that decodes N branches of one prefix with one forward per step."""

from parallel_decoding.decoding.cache import SlotCache
from parallel_decoding.decoding.engine import (BranchOutput, DecodeResult, DecodeStats, LogitsProcessor, PrefixState,
                                               SharedPrefixDecoder, prefix_shared_generate)
from parallel_decoding.decoding.layout import (PAD, TRUNK, BatchSharedLayout, CacheEdit, Forward, InSequenceLayout,
                                               Layout, Slots, additive_mask, make_layout)
from parallel_decoding.decoding.lean import LeanForward, LeanOptions, lean_unsupported
from parallel_decoding.decoding.prefix import split_shared_prefix
from parallel_decoding.decoding.sampling import SamplingSettings, TokenChooser, top_p_filter
from parallel_decoding.decoding.stopping import StopCriteria

__all__ = ["PAD", "TRUNK", "BatchSharedLayout", "BranchOutput", "CacheEdit", "DecodeResult", "DecodeStats",
           "Forward", "InSequenceLayout", "Layout", "LeanForward", "LeanOptions", "LogitsProcessor", "PrefixState",
           "SamplingSettings", "SharedPrefixDecoder", "Slots", "SlotCache", "StopCriteria", "TokenChooser",
           "additive_mask", "make_layout", "lean_unsupported", "prefix_shared_generate", "split_shared_prefix",
           "top_p_filter"]
