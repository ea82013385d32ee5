"""A small OpenAI-compatible chat-completions server over any model of the ``model`` group (SmolLM2 by default),
for tests and offline users of ``backend=api``.

    python -m parallel_decoding.serve model=smollm2_135m port=8000
    python -m parallel_decoding.evaluate backend=api model=smollm2_135m dataset=squad dataset.path=...

Endpoints: ``POST /v1/chat/completions`` (``messages``, ``max_tokens``/``max_completion_tokens``,
``temperature``, ``top_p``, ``seed``; ``n=1``, no streaming), ``GET /v1/models``, ``GET /health``. Answers are
``HFBackend`` generations, so greedy answers equal ``backend=hf``'s token for token; ``usage`` reports the
prompt and completion tokens. Bounded on purpose: loopback addresses only, one generation at a time, at most
``max_waiting`` queued requests (more get 503 + Retry-After), a body-size and a per-request token cap, and
optional ``max_requests`` / ``idle_timeout_s`` after which it stops by itself. With ``api_key_env`` set,
requests must carry that key as a Bearer token.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from parallel_decoding.backends.api import read_api_key
from parallel_decoding.backends.base import GenerationSettings
from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import CONFIG_DIR, ConfigError
from parallel_decoding.utils.cli import guard_run, run_hydra_app
from parallel_decoding.utils.preflight import check_config

log = logging.getLogger(__name__)
ROLES = ("system", "user", "assistant")


class RequestError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        loopback = False
    if not loopback:
        raise ConfigError(f"serve binds to loopback addresses only (127.0.0.1, localhost), not {host!r}")


class ChatCompletionServer:
    def __init__(self, backend: HFBackend, served_model: str, *, host: str = "127.0.0.1", port: int = 0,
                 max_new_tokens: int = 512, max_body_bytes: int = 1_000_000, max_waiting: int = 16,
                 api_key: str | None = None) -> None:
        check_loopback(host)
        self.backend, self.served_model = backend, served_model
        self.max_new_tokens, self.max_body_bytes, self.max_waiting = max_new_tokens, max_body_bytes, max_waiting
        self._api_key = api_key
        self._generate_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.waiting = 0
        self.requests = 0
        self.last_request = time.monotonic()
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> "ChatCompletionServer":
        """Serve from a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "ChatCompletionServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def serve_until_done(self, max_requests: int | None = None, idle_timeout_s: float | None = None) -> None:
        """Serve in the foreground until Ctrl-C, ``max_requests`` answered, or ``idle_timeout_s`` without one."""
        self.start()
        try:
            while True:
                time.sleep(0.2)
                if max_requests is not None and self.requests >= max_requests:
                    log.info("answered %d requests; stopping", self.requests)
                    break
                if idle_timeout_s is not None and self.waiting == 0 \
                        and time.monotonic() - self.last_request > idle_timeout_s:
                    log.info("idle for %.0fs; stopping", idle_timeout_s)
                    break
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # -- requests --------------------------------------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        if self._api_key is None:
            return True
        return header is not None and hmac.compare_digest(header.encode(), f"Bearer {self._api_key}".encode())

    def chat_completion(self, request: Any) -> dict[str, Any]:
        messages, max_tokens, settings = self.parse(request)
        with self._count_lock:
            if self.waiting >= self.max_waiting:
                raise RequestError(503, "server busy", {"Retry-After": "1"})
            self.waiting += 1
        try:
            with self._generate_lock:  # one generation at a time; settings are per request
                self.backend.settings = settings
                prompt = self.backend.chat_ids(messages)
                [output] = self.backend.generate([prompt], max_new_tokens=max_tokens)
                text = self.backend.decode(output)
        finally:
            with self._count_lock:
                self.waiting -= 1
                self.requests += 1
                self.last_request = time.monotonic()
        stopped = bool(output) and output[-1] in self.backend.stop_token_ids
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": self.served_model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop" if stopped else "length"}],
            "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(output),
                      "total_tokens": len(prompt) + len(output), "prompt_tokens_details": {"cached_tokens": 0}},
        }

    def parse(self, request: Any) -> tuple[list[dict[str, str]], int, GenerationSettings]:
        """A request body -> (messages, max_tokens, settings); anything malformed is a 400 that says what."""
        if not isinstance(request, dict):
            raise RequestError(400, "the body must be a JSON object")
        if request.get("model") not in (None, self.served_model):
            raise RequestError(404, f"model {str(request.get('model'))[:100]!r} is not served here; this server "
                                    f"serves {self.served_model!r}")
        if request.get("stream"):
            raise RequestError(400, "streaming is not supported")
        if request.get("n", 1) != 1 or isinstance(request.get("n"), bool):
            raise RequestError(400, "only n=1 is supported")
        raw = request.get("messages")
        if not isinstance(raw, list) or not raw:
            raise RequestError(400, "messages must be a non-empty list")
        messages = [{"role": role, "content": content} for role, content in map(_message, raw)]
        requested = request.get("max_completion_tokens", request.get("max_tokens"))
        if requested is not None and (not _is_int(requested) or requested < 1):
            raise RequestError(400, "max_tokens must be a positive integer")
        max_tokens = min(requested or self.max_new_tokens, self.max_new_tokens)
        temperature = _number(request, "temperature", 1.0)
        top_p = _number(request, "top_p", 1.0)
        if temperature < 0:
            raise RequestError(400, f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise RequestError(400, f"top_p must be in (0, 1], got {top_p}")
        seed = request.get("seed")
        if seed is not None and not _is_int(seed):
            raise RequestError(400, "seed must be an integer")
        settings = GenerationSettings(max_new_tokens=max_tokens, do_sample=temperature > 0,
                                      temperature=temperature if temperature > 0 else 1.0, top_p=top_p,
                                      seed=int(seed or 0))
        return messages, max_tokens, settings


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(request: dict[str, Any], key: str, default: float) -> float:
    """A finite JSON number (null: the default); a string, a bool or NaN is a 400."""
    value = request.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(400, f"{key} must be a number, got {str(value)[:50]!r}")
    return float(value)


def _message(message: Any) -> tuple[str, str]:
    """One chat message -> (role, text); content is a string or a list of text parts (``{"type": "text",
    "text": "..."}``); anything else is a 400."""
    bad = RequestError(400, "each message needs a role (system, user, assistant) and text content (a string or "
                            "a list of {\"type\": \"text\", \"text\": <string>} parts)")
    if not isinstance(message, dict) or not isinstance(message.get("role"), str) or message["role"] not in ROLES:
        raise bad
    content = message.get("content")
    if isinstance(content, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                   for p in content):
            raise bad
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise bad
    return message["role"], content


def content_length(header: str | None) -> int:
    """The request's body size from its ``Content-Length`` header: missing is 411, malformed 400."""
    if header is None or not header.strip():
        raise RequestError(411, "Content-Length required")
    text = header.strip()
    if not text.isascii() or not text.isdigit():
        raise RequestError(400, f"Content-Length must be a non-negative integer, got {text[:40]!r}")
    return int(text)


def _handler_for(server: ChatCompletionServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # seconds a connection may stall (a body shorter than its Content-Length) before it is dropped

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            log.debug("%s %s", self.address_string(), format % args)  # request line only, never headers

        def send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def send_error_json(self, error: RequestError) -> None:
            self.send_json(error.status, {"error": {"message": error.message, "code": error.status}}, error.headers)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.rstrip("/") in ("/health", "/v1/health"):
                self.send_json(200, {"status": "ok"})
            elif self.path.rstrip("/") == "/v1/models":
                self.send_json(200, {"object": "list", "data": [{"id": server.served_model, "object": "model",
                                                                   "owned_by": "parallel_decoding"}]})
            else:
                self.send_error_json(RequestError(404, f"no route {self.path}"))

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body_read = False
            try:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    raise RequestError(404, f"no route {self.path}")
                if not server.authorized(self.headers.get("Authorization")):
                    raise RequestError(401, "missing or wrong API key")
                if self.headers.get("Transfer-Encoding"):
                    raise RequestError(411, "Content-Length required (chunked bodies are not supported)")
                length = content_length(self.headers.get("Content-Length"))
                if length > server.max_body_bytes:
                    raise RequestError(413, f"body over {server.max_body_bytes} bytes")
                try:
                    body = self.rfile.read(length)
                    body_read = len(body) == length
                except TimeoutError as error:
                    raise RequestError(408, "the body did not arrive (shorter than its Content-Length?)") from error
                try:
                    request = json.loads(body or b"null")
                except (ValueError, RecursionError) as error:  # JSON syntax, bad UTF-8, absurd nesting
                    raise RequestError(400, f"body is not JSON: {str(error)[:200]}") from None
                self.send_json(200, server.chat_completion(request))
            except RequestError as error:
                if not body_read:
                    self.close_connection = True  # an unread body must not be parsed as the next request
                self.send_error_json(error)
            except Exception as error:  # a model failure is the server's fault: 500, and keep serving
                log.exception("chat completion failed")
                self.send_error_json(RequestError(500, f"{type(error).__name__}: {error}"))

    return Handler


def _main() -> None:
    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="serve")
    def main(cfg: DictConfig) -> None:
        with guard_run(log, task_name=cfg.task_name, run_dir=cfg.paths.output_dir):  # e.g. port in use: one line
            check_config(cfg, "serve")  # e.g. port=abc: one line naming the key
            check_loopback(cfg.host)
            api_key = read_api_key(cfg.api_key_env)
            bundle = instantiate(cfg.model.loader)
            backend = HFBackend(bundle, GenerationSettings(max_new_tokens=cfg.max_new_tokens))
            server = ChatCompletionServer(backend, cfg.served_model_name, host=cfg.host, port=cfg.port,
                                          max_new_tokens=cfg.max_new_tokens, max_body_bytes=cfg.max_body_bytes,
                                          max_waiting=cfg.max_waiting, api_key=api_key)
        log.info("serving %s at %s", cfg.served_model_name, server.url)
        print(f"serving {cfg.served_model_name} at {server.url}", flush=True)  # scripts read the port here
        server.serve_until_done(cfg.max_requests, cfg.idle_timeout_s)

    run_hydra_app(main)


if __name__ == "__main__":
    _main()
