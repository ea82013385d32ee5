"""serve.py: the OpenAI-compatible surface, its bounds (loopback, body size, queue, key) and its errors."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.serve import ChatCompletionServer, check_loopback
from tests.backends.conftest import SERVED


def post(url: str, body, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/chat/completions", data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_chat_completion_shape(tiny_server):
    status, body = post(tiny_server.url, {"model": SERVED, "max_tokens": 3,
                                          "messages": [{"role": "user", "content": "Hi"}]})
    assert status == 200 and body["object"] == "chat.completion" and body["model"] == SERVED
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert 1 <= usage["completion_tokens"] <= 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    with urllib.request.urlopen(tiny_server.url + "/models", timeout=10) as response:
        assert json.loads(response.read())["data"][0]["id"] == SERVED


@pytest.mark.parametrize("body,status", [
    ({"model": "other", "messages": [{"role": "user", "content": "Hi"}]}, 404),
    ({"messages": []}, 400),
    ({"messages": [{"role": "robot", "content": "Hi"}]}, 400),
    ({"messages": [{"role": "user", "content": "Hi"}], "stream": True}, 400),
    ({"messages": [{"role": "user", "content": "Hi"}], "n": 2}, 400),
    ({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0}, 400),
    (b"not json", 400),
])
def test_bad_requests_get_openai_style_errors(tiny_server, body, status):
    got, reply = post(tiny_server.url, body)
    assert got == status and reply["error"]["message"]


def test_max_tokens_is_capped(tiny_server):
    _, body = post(tiny_server.url, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10_000})
    assert body["usage"]["completion_tokens"] <= 64


def test_bounds_body_size_key_and_queue(tiny_bundle):
    backend = HFBackend(tiny_bundle, GenerationSettings())
    with ChatCompletionServer(backend, SERVED, max_body_bytes=200, api_key="k-123456", max_waiting=1) as server:
        message = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        assert post(server.url, message)[0] == 401
        assert post(server.url, message, {"Authorization": "Bearer wrong"})[0] == 401
        assert post(server.url, message, {"Authorization": "Bearer k-123456"})[0] == 200
        big = {"messages": [{"role": "user", "content": "x" * 500}]}
        assert post(server.url, big, {"Authorization": "Bearer k-123456"})[0] == 413
        # Queue bound: hold the generation lock so one request waits; the next is turned away with 503.
        statuses = []
        with server._generate_lock:
            waiter = threading.Thread(target=lambda: statuses.append(
                post(server.url, message, {"Authorization": "Bearer k-123456"})[0]))
            waiter.start()
            while server.waiting < 1:
                pass
            status, reply = post(server.url, message, {"Authorization": "Bearer k-123456"})
        waiter.join(timeout=30)
        assert status == 503 and reply["error"]["message"] == "server busy" and statuses == [200]


def test_loopback_only():
    check_loopback("127.0.0.1")
    check_loopback("localhost")
    with pytest.raises(ConfigError, match="loopback"):
        check_loopback("0.0.0.0")
