"""The profiler breakdown of ``benchmarks/profile_engine.py`` on a tiny model: every bucket the engine has work
for gets time, the buckets add up to the wall time, and the scopes are removed afterwards."""

from __future__ import annotations

import time

from torch.profiler import ProfilerActivity, profile

from parallel_decoding.benchmarks.profile_engine import (BUCKETS, breakdown, markdown_profile, scoped_engine,
                                                          top_level_ops)
from parallel_decoding.decoding import SharedPrefixDecoder, cache


def test_breakdown_buckets_the_engine(qwen3_models):
    model, _, _ = qwen3_models["sdpa"]
    update = cache.SlotLayer.update
    calls = {}
    for lean in (True, False):
        with scoped_engine():
            decoder = SharedPrefixDecoder(model, lean=lean)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                t0 = time.perf_counter()
                decoder.generate([3, 4, 5, 6, 7], [[8, 9], [10]], "in_sequence", max_new_tokens=4, stop_token_ids=[])
                wall = time.perf_counter() - t0
        parts = breakdown(prof.events(), wall * 1e6)
        assert list(parts) == list(BUCKETS)
        for bucket in ("matrix products", "attention", "mask/position building", "cache operations", "sampling",
                       "other tensor ops"):
            assert parts[bucket] > 0, (lean, bucket)
        assert abs(sum(parts.values()) - wall * 1e3) < 1e-6 and parts["Python/framework overhead"] > 0
        calls[lean] = top_level_ops(prof.events())
    assert 0 < calls[True] < calls[False]  # the lean forward dispatches fewer ops than HF's
    assert cache.SlotLayer.update is update  # the scopes were patched in for the block only
    row = {"profiled_wall_ms_per_group": wall * 1e3, "unprofiled_wall_ms_per_group": wall * 1e3, "ms_per_group": parts}
    assert markdown_profile({"tiny": row}).count("|") > len(BUCKETS)
