"""OpenAI-compatible chat-completions backend (a hosted API, a vLLM/TGI server, or ``parallel_decoding.serve``).

``ChatClient`` is the HTTP part, shared with the LLM judge: at most ``max_concurrency`` requests in flight,
a timeout per request, and retries with exponential backoff (honouring ``Retry-After``) on 429, 5xx, timeouts
and dropped connections; other 4xx fail at once. The API key is read from the environment variable *named*
in config (``api_key_env``) — configs, logs and results only ever hold that name.

``ApiBackend`` adapts it to the strategy interface: a "prompt" is the messages list (the server applies the
chat template), an "output" a ``Completion``. Costs come from the responses' ``usage``: prompt and generated
tokens as the server counted them; ``computed_prompt_tokens`` is prompt tokens minus the ones the server says
it served from its prefix cache (``usage.prompt_tokens_details.cached_tokens``, which ``vllm serve`` reports
with ``--enable-prompt-tokens-details``; servers that do not report it count every prompt token).
``dedup_prompt_tokens`` needs the prompts' token ids, which only the server has: it is the same figure.
Forward passes are not observable over HTTP and stay 0; ``generate_calls`` counts requests (retries excluded).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import httpx

from parallel_decoding.backends.base import Completion, GenerationSettings
from parallel_decoding.config import ConfigError
from parallel_decoding.metrics.efficiency import EfficiencyStats

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
logging.getLogger("httpcore").setLevel(logging.WARNING)

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class ApiError(RuntimeError):
    """A request that failed for good (non-retryable status, or retries exhausted). Never holds the key."""


def read_api_key(env_name: str | None) -> str | None:
    """The key from the environment variable ``env_name`` (None: no key, e.g. a local server)."""
    if not env_name:
        return None
    value = os.environ.get(str(env_name), "")
    if not value:
        raise ConfigError(f"api_key_env names the environment variable {env_name}, which is not set (or empty)")
    return value


class ChatClient:
    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, *, max_concurrency: int = 8,
                 timeout_s: float = 60.0, max_retries: int = 4, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0) -> None:
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ConfigError("need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        self.base_url = base_url.rstrip("/") + "/"
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._headers = {"Content-Type": "application/json"}
        key = read_api_key(api_key_env)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout_s),
                                  limits=httpx.Limits(max_connections=max_concurrency))
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()
        self.retries = 0  # retried attempts over the client's life (429s, 5xx, timeouts)

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"ChatClient(base_url={self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: Sequence[dict[str, str]], *, max_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = None) -> Completion:
        """One chat completion, retried on transient failures; raises ``ApiError`` when it cannot be had."""
        payload: dict[str, Any] = {"model": self.model, "messages": list(messages), "max_tokens": int(max_tokens),
                                   "temperature": float(temperature), "top_p": float(top_p), "n": 1}
        if seed is not None:
            payload["seed"] = int(seed)
        failure = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                with self._slots:
                    response = self._http.post("chat/completions", json=payload, headers=self._headers)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                failure = f"{type(error).__name__}"
            else:
                if response.status_code == 200:
                    return parse_completion(response)
                failure = f"HTTP {response.status_code}: {error_message(response)}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise ApiError(f"{self.base_url}chat/completions failed: {failure}")
                retry_after = response.headers.get("Retry-After")
            if attempt == self.max_retries:
                break
            with self._lock:
                self.retries += 1
            delay = self.backoff_delay(attempt, retry_after)
            log.warning("chat completion attempt %d failed (%s); retrying in %.2fs", attempt + 1, failure, delay)
            time.sleep(delay)
        raise ApiError(f"{self.base_url}chat/completions failed after {self.max_retries + 1} attempts: {failure}")

    def backoff_delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential (``backoff_s * 2^attempt``, +10% jitter) or the server's ``Retry-After``, capped."""
        try:
            if retry_after is not None:
                return min(max(float(retry_after), 0.0), self.max_backoff_s)
        except ValueError:
            pass  # an HTTP-date Retry-After: use our own schedule
        delay = self.backoff_s * (2 ** attempt)
        return min(delay * (1 + 0.1 * random.random()), self.max_backoff_s)

    def complete_many(self, conversations: Sequence[Sequence[dict[str, str]]], *, workers: int | None = None,
                      **kwargs: Any) -> list[Completion]:
        """Completions in input order, up to ``max_concurrency`` (or ``workers``) requests in flight."""
        if not conversations:
            return []
        width = max(1, min(len(conversations), workers or self.max_concurrency, self.max_concurrency))
        if width == 1:
            return [self.complete(c, **kwargs) for c in conversations]
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="chat") as pool:
            return list(pool.map(lambda c: self.complete(c, **kwargs), conversations))


def error_message(response: httpx.Response) -> str:
    """The server's error text, short (OpenAI shape ``{"error": {"message": ...}}`` or the raw body)."""
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("error")
        text = str(message or body)
    except ValueError:
        text = response.text
    return text.strip()[:200]


def parse_completion(response: httpx.Response) -> Completion:
    try:
        body = response.json()
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise ApiError(f"malformed chat completion from {response.url}: {type(error).__name__}") from error
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return Completion(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0),
                      cached_tokens=int(details.get("cached_tokens") or 0), finish_reason=choice.get("finish_reason"))


class ApiBackend:
    model_internals = False  # no hidden states or attention masks over HTTP

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, max_concurrency: int = 8,
                 timeout_s: float = 60.0, max_retries: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 settings: GenerationSettings | None = None) -> None:
        self.client = ChatClient(base_url, model, api_key_env, max_concurrency=max_concurrency, timeout_s=timeout_s,
                                 max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
        self.settings = settings or GenerationSettings()
        self._stats: EfficiencyStats | None = None

    @property
    def tokenizer(self):
        raise AttributeError("the api backend has no local tokenizer (the server tokenizes); this strategy needs "
                             "backend=hf or backend=vllm")

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": m["content"]} for m in messages]

    def decode(self, output: Completion | str) -> str:
        return output.text if isinstance(output, Completion) else str(output)

    def sampling(self) -> dict[str, Any]:
        if self.settings.do_sample:
            return {"temperature": self.settings.temperature, "top_p": self.settings.top_p, "seed": self.settings.seed}
        return {"temperature": 0.0, "top_p": 1.0, "seed": self.settings.seed}

    def generate(self, prompts: Sequence[Sequence[dict[str, str]]], batch_size: int | None = None,
                 max_new_tokens: int | None = None) -> list[Completion]:
        completions = self.client.complete_many(prompts, workers=batch_size,
                                                max_tokens=max_new_tokens or self.settings.max_new_tokens,
                                                **self.sampling())
        self.record(prompts, completions, calls=len(completions))
        return completions

    def record(self, prompts: Sequence[Any], outputs: Sequence[Completion], calls: int,
               computed_prompt_tokens: int | None = None) -> None:
        """Costs as the server reported them in each response's ``usage`` (``computed_prompt_tokens`` is
        ignored: only the server knows what it computed)."""
        if self._stats is None:
            return
        for output in outputs:
            computed = max(output.prompt_tokens - output.cached_tokens, 0)
            self._stats.prompt_tokens += output.prompt_tokens
            self._stats.dedup_prompt_tokens += computed
            self._stats.computed_prompt_tokens += computed
            self._stats.generated_tokens += output.completion_tokens
        self._stats.generate_calls += calls

    @contextmanager
    def measure(self) -> Iterator[EfficiencyStats]:
        stats = self._stats = EfficiencyStats()
        start = time.perf_counter()
        try:
            yield stats
        finally:
            stats.latency_s = time.perf_counter() - start
            self._stats = None

    def warmup(self) -> None:
        """One uncounted request: connection set up, and a wrong URL or key fails before any group runs."""
        self.client.complete([{"role": "user", "content": "Hi"}], max_tokens=2, **self.sampling())
