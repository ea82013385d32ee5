"""utils/hub.py: offline is detected once, quickly, and puts the hub libraries in offline mode."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from parallel_decoding.utils import hub


@pytest.fixture(autouse=True)
def fresh_detection(monkeypatch):
    for name in hub.OFFLINE_VARIABLES + ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    hub.hub_offline_reason.cache_clear()
    yield
    hub.hub_offline_reason.cache_clear()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


def test_offline_variables_are_honoured(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "true")
    assert hub.hub_offline_reason() == "HF_DATASETS_OFFLINE=true"


def test_an_unreachable_endpoint_is_found_in_one_quick_try(monkeypatch):
    port = closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.perf_counter()
    assert hub.hub_offline_reason().startswith(f"cannot connect to 127.0.0.1:{port} (")
    assert time.perf_counter() - start < hub.CONNECT_TIMEOUT_S + 1


def test_a_reachable_endpoint_is_online(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.hub_offline_reason() is None
        assert hub.prepare_hub_access() is None


def test_offline_switches_the_libraries_to_offline_mode(monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert hub.prepare_hub_access().startswith("cannot connect to")
    assert constants.HF_HUB_OFFLINE is True
    assert sys.modules["os"].environ["HF_HUB_OFFLINE"] == "1"
    assert hub.hub_offline_reason.cache_info().misses == 1  # asked once per process
