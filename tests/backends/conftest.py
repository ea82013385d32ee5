"""A real chat-completions server (``parallel_decoding.serve``) over the tiny Qwen3, shared by the module."""

from __future__ import annotations

import pytest

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.serve import ChatCompletionServer

SERVED = "tiny_qwen3"


@pytest.fixture(scope="session")
def tiny_server(tiny_bundle):
    server = ChatCompletionServer(HFBackend(tiny_bundle, GenerationSettings()), SERVED, max_new_tokens=64).start()
    yield server
    server.stop()


@pytest.fixture
def hf_backend(tiny_bundle):
    return HFBackend(tiny_bundle, GenerationSettings(max_new_tokens=6))
