"""Route ``datasets.load_dataset`` to rows in a dataset's hub schema (the hub itself is not reachable here)."""

from __future__ import annotations

import sys
import types


def serve_hub_rows(monkeypatch, rows_by_call):
    """``rows_by_call[(hub_id, name, split)]`` answers ``load_dataset``; the calls are recorded and returned."""
    calls = []

    def load_dataset(hub_id, name=None, split=None, **kwargs):
        calls.append((hub_id, name, split))
        return rows_by_call[(hub_id, name, split)]

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls
