"""backend=api pointed at nothing: one line naming the URL, at once (no retry ladder)."""

from __future__ import annotations

import socket
import time

import pytest

from parallel_decoding.backends.api import ApiBackend
from parallel_decoding.config import ConfigError


def test_unreachable_server_is_one_line_without_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connections are refused
    backend = ApiBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=4, backoff_s=0.5)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        backend.warmup()
    assert time.perf_counter() - start < 2  # four retries would back off for 0.5 + 1 + 2 + 4 s
    message = str(error.value)
    assert message.startswith(f"backend=api: cannot connect to http://127.0.0.1:{port}/v1/ (ConnectError")
    assert "check backend.base_url" in message and "\n" not in message
    assert backend.client.retries == 0
