"""serve.py's request handling on malformed input: every bad request is a 4xx that says what, never a 500.

The model is replaced by a stub (the parsing and HTTP layers are under test, not generation), so hypothesis can
send hundreds of requests quickly."""

from __future__ import annotations

import http.client
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallel_decoding.serve import ChatCompletionServer, RequestError, content_length

SERVED = "stub"


class StubBackend:
    """What ChatCompletionServer uses of an HFBackend: chat_ids, generate, decode, stop ids, settings."""

    stop_token_ids = [0]

    def __init__(self) -> None:
        self.settings = None

    def chat_ids(self, messages):
        return [1] * sum(len(m["content"]) + 1 for m in messages)

    def generate(self, prompts, max_new_tokens):
        return [[5] * min(max_new_tokens, 2) for _ in prompts]

    def decode(self, output):
        return "ok"


@pytest.fixture(scope="module")
def server():
    with ChatCompletionServer(StubBackend(), SERVED, max_new_tokens=8, max_body_bytes=10_000) as running:
        yield running


def raw_post(server, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    host, port = server.httpd.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.putrequest("POST", "/v1/chat/completions", skip_accept_encoding=True)
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def post_json(server, payload) -> tuple[int, dict]:
    body = json.dumps(payload).encode()
    return raw_post(server, body, {"Content-Type": "application/json", "Content-Length": str(len(body))})


HELLO = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("header", ["abc", "-1", "1.5", "0x10", " ", "\u00b2", "9" * 30])
def test_a_bad_content_length_is_400_or_413_not_500(server, header):
    status, reply = raw_post(server, b'{"messages": []}', {"Content-Length": header})
    assert status in (400, 411, 413) and reply["error"]["message"]


@pytest.mark.parametrize("payload,fragment", [
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "text content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]}, "text content"),
    ({"messages": [{"role": "user", "content": ["just a string"]}]}, "text content"),
    ({"messages": [{"role": "user", "content": 7}]}, "text content"),
    ({"messages": [{"role": ["user"], "content": "Hi"}]}, "role"),
    ({"messages": HELLO, "temperature": -0.1}, "temperature must be >= 0"),
    ({"messages": HELLO, "top_p": 1.5}, "top_p must be in (0, 1]"),
    ({"messages": HELLO, "top_p": 0}, "top_p must be in (0, 1]"),
    ({"messages": HELLO, "temperature": "0.5"}, "temperature must be a number"),
    ({"messages": HELLO, "temperature": True}, "temperature must be a number"),
    ({"messages": HELLO, "seed": 1.5}, "seed must be an integer"),
    ({"messages": HELLO, "max_tokens": True}, "max_tokens must be a positive integer"),
])
def test_bad_fields_are_400_with_the_reason(server, payload, fragment):
    status, reply = post_json(server, payload)
    assert status == 400 and fragment in reply["error"]["message"]


def test_text_parts_and_edge_values_are_accepted(server):
    parts = {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    for extra in ({}, {"temperature": 0}, {"top_p": 1}, {"temperature": 2.0, "top_p": 0.5, "seed": 3}):
        status, reply = post_json(server, {"messages": [parts], **extra})
        assert status == 200 and reply["choices"][0]["message"]["content"] == "ok"


def test_a_body_that_is_not_utf8_or_too_deep_is_400(server):
    for body in (b"\xff\xfe{}", b"[" * 100_00):
        status, _ = raw_post(server, body, {"Content-Length": str(len(body))})
        assert status in (400, 413)


@given(header=st.text(max_size=12))
def test_content_length_parsing(header):
    try:
        value = content_length(header)
    except RequestError as error:
        assert error.status in (400, 411)
    else:
        assert value >= 0 and header.strip() == str(value) or header.strip().lstrip("0") == str(value).lstrip("0")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "robot", 3]),
                                 "content": JSON | st.text(max_size=8)})
REQUEST = st.fixed_dictionaries({}, optional={
    "messages": st.lists(MESSAGE, max_size=3) | JSON, "model": st.sampled_from([SERVED, "other"]) | JSON,
    "max_tokens": JSON, "temperature": JSON | st.floats(), "top_p": JSON | st.floats(), "seed": JSON,
    "n": JSON, "stream": JSON})


@settings(max_examples=150, deadline=None)
@given(request=REQUEST | JSON)
def test_parse_returns_or_says_why(server, request):
    """Any JSON body: parsed into valid settings, or a 4xx RequestError; nothing else escapes."""
    try:
        messages, max_tokens, sampling = server.parse(request)
    except RequestError as error:
        assert 400 <= error.status < 500 and error.message
        return
    assert messages and all(isinstance(m["content"], str) for m in messages)
    assert 1 <= max_tokens <= server.max_new_tokens
    assert sampling.temperature > 0 and 0 < sampling.top_p <= 1 and math.isfinite(sampling.temperature)


@settings(max_examples=40, deadline=None)
@given(request=REQUEST)
def test_over_http_no_request_gets_a_500(server, request):
    status, reply = post_json(server, request)
    assert status in (200, 400, 404), reply
