"""Shared fixtures: the tiny Qwen3 unit-test model, built once per session; published checkpoints kept out of
the checkout."""

from __future__ import annotations

import pytest

from parallel_decoding.models import build_tiny_qwen3


@pytest.fixture(scope="session")
def tiny_bundle():
    return build_tiny_qwen3()


@pytest.fixture(autouse=True, scope="session")
def published_checkpoints_in_a_temp_dir(tmp_path_factory):
    """Training publishes to ``paths.checkpoint_dir`` (the checkout's checkpoints/ by default): tests, in-process
    or through the CLI, publish into a temporary directory instead."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PARALLEL_DECODING_CHECKPOINTS", str(tmp_path_factory.mktemp("published_checkpoints")))
        yield


@pytest.fixture(autouse=True)
def hub_offline_state_restored(monkeypatch):
    """``parallel_decoding.utils.hub.prepare_hub_access`` puts the hub libraries in offline mode for the process (env
    variables and module constants); each test gets the state back as it found it."""
    import os
    import sys

    from parallel_decoding.utils import hub

    for name in hub.OFFLINE_VARIABLES:
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:  # recorded as absent, so a value set during the test is removed afterwards
            monkeypatch.setenv(name, "0")
            monkeypatch.delenv(name)
    for module_name in ("huggingface_hub.constants", "datasets.config"):
        module = sys.modules.get(module_name)
        for attribute in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            if module is not None and hasattr(module, attribute):
                monkeypatch.setattr(module, attribute, getattr(module, attribute))
    hub.hub_offline_reason.cache_clear()  # each test detects afresh
    yield
