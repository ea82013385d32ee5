"""The api backend over real HTTP: a real server (serve.py, tiny Qwen3) answers; a real proxy injects 429s,
500s and timeouts. Greedy answers must equal the in-process hf backend's, token counts included."""

from __future__ import annotations

import pytest

from parallel_decoding.backends.api import ApiBackend, ApiError, ChatClient
from parallel_decoding.backends.base import GenerationSettings
from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.strategies.all_in_one import AllInOneStrategy
from parallel_decoding.strategies.batch import BatchStrategy
from parallel_decoding.strategies.independent import IndependentStrategy
from parallel_decoding.strategies.sequential import SequentialStrategy
from tests.backends.conftest import SERVED
from tests.backends.servers import FaultProxy

GROUP = QuestionGroup(
    id="g1",
    questions=(Question("q1", "Who is the mayor of Kirpelby?", ("Katess Selvin",)),
               Question("q2", "When was Kirpelby founded?", ("1842",))),
    contexts=("Kirpelby is a town on the Vell river. Its mayor is Katess Selvin. It was founded in 1842.",),
)
MULTI = QuestionGroup(  # multi-context mode: each question its own passage
    id="g2",
    questions=(Question("m1", "What does Quillmark make?", ("kettles",), context_index=0),
               Question("m2", "Who is the mayor?", ("Katess Selvin",), context_index=1)),
    contexts=("Quillmark makes kettles.", "Its mayor is Katess Selvin."),
)
FAST = dict(backoff_s=0.01, max_backoff_s=0.05)


def api_backend(url: str, **kwargs) -> ApiBackend:
    return ApiBackend(url, SERVED, settings=GenerationSettings(max_new_tokens=6), **{**FAST, **kwargs})


def test_completions_equal_hf_generation_and_usage_counts_tokens(tiny_server, hf_backend):
    messages = [{"role": "user", "content": "Name a river."}]
    ids = hf_backend.chat_ids(messages)
    [expected] = hf_backend.generate([ids])
    backend = api_backend(tiny_server.url)
    with backend.measure() as stats:
        [completion] = backend.generate([backend.chat_ids(messages)])
    assert completion.text == hf_backend.decode(expected)
    assert (completion.prompt_tokens, completion.completion_tokens) == (len(ids), len(expected))
    assert stats.prompt_tokens == stats.dedup_prompt_tokens == len(ids)  # serve.py reports no cached tokens
    assert stats.generated_tokens == len(expected) and stats.generate_calls == 1 and stats.latency_s > 0


@pytest.mark.parametrize("strategy", [IndependentStrategy("independent"), BatchStrategy("batch", batch_size=2),
                                      SequentialStrategy("sequential"), AllInOneStrategy("all_in_one")],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("group", [GROUP, MULTI], ids=["shared", "multi_context"])
def test_strategies_run_unchanged_and_answer_like_hf(strategy, group, tiny_server, hf_backend):
    on_hf = strategy.run(group, hf_backend)
    on_api = strategy.run(group, api_backend(tiny_server.url))
    assert [p.raw_output for p in on_api.predictions] == [p.raw_output for p in on_hf.predictions]
    assert on_api.efficiency.prompt_tokens == on_hf.efficiency.prompt_tokens
    assert on_api.efficiency.generated_tokens == on_hf.efficiency.generated_tokens


def test_retries_429_and_500_with_backoff(tiny_server):
    faults = [("status", 429, {"Retry-After": "0"}), ("status", 500), ("status", 503)]
    with FaultProxy(tiny_server.url, faults) as proxy:
        client = ChatClient(proxy.url, SERVED, max_retries=3, **FAST)
        completion = client.complete([{"role": "user", "content": "Hi"}], max_tokens=2)
    assert completion.completion_tokens > 0 and completion.text is not None
    assert client.retries == 3 and len(proxy.seen) == 4


def test_retries_a_timeout(tiny_server):
    with FaultProxy(tiny_server.url, [("delay", 1.5)]) as proxy:
        client = ChatClient(proxy.url, SERVED, timeout_s=0.4, max_retries=2, **FAST)
        completion = client.complete([{"role": "user", "content": "Hi"}], max_tokens=2)
    assert completion.prompt_tokens > 0 and client.retries == 1


def test_gives_up_after_max_retries_with_the_reason(tiny_server):
    with FaultProxy(tiny_server.url, [("status", 500)] * 5) as proxy:
        client = ChatClient(proxy.url, SERVED, max_retries=2, **FAST)
        with pytest.raises(ApiError, match=r"after 3 attempts: HTTP 500: injected 500"):
            client.complete([{"role": "user", "content": "Hi"}], max_tokens=2)
    assert len(proxy.seen) == 3


def test_client_errors_are_not_retried(tiny_server):
    with FaultProxy(tiny_server.url, [("status", 400)]) as proxy:
        client = ChatClient(proxy.url, SERVED, max_retries=3, **FAST)
        with pytest.raises(ApiError, match="HTTP 400"):
            client.complete([{"role": "user", "content": "Hi"}], max_tokens=2)
    assert len(proxy.seen) == 1 and client.retries == 0


def test_unreachable_server_fails_after_retries():
    client = ChatClient("http://127.0.0.1:9/v1", SERVED, max_retries=1, timeout_s=2, **FAST)  # port 9: discard
    with pytest.raises(ApiError, match="after 2 attempts: Connect"):
        client.complete([{"role": "user", "content": "Hi"}], max_tokens=2)


def test_concurrency_limit_holds(tiny_server):
    with FaultProxy(tiny_server.url, delay_each_s=0.2) as proxy:
        backend = api_backend(proxy.url, max_concurrency=2)
        outputs = backend.generate([[{"role": "user", "content": f"Count {i}"}] for i in range(6)], max_new_tokens=2)
    assert len(outputs) == 6 and proxy.max_in_flight == 2


def test_api_key_comes_from_the_named_env_var_only(tiny_server, monkeypatch):
    monkeypatch.setenv("PD_TEST_KEY", "sk-test-0123456789")
    with FaultProxy(tiny_server.url) as proxy:
        client = ChatClient(proxy.url, SERVED, api_key_env="PD_TEST_KEY", **FAST)
        client.complete([{"role": "user", "content": "Hi"}], max_tokens=1)
    assert proxy.seen[0]["authorization"] == "Bearer sk-test-0123456789"
    assert "sk-test" not in repr(client)
    with pytest.raises(ConfigError, match="PD_MISSING_KEY"):
        ChatClient(tiny_server.url, SERVED, api_key_env="PD_MISSING_KEY")


def test_api_backend_has_no_tokenizer_and_no_model_internals(tiny_server):
    backend = api_backend(tiny_server.url)
    assert backend.model_internals is False
    with pytest.raises(AttributeError, match="no local tokenizer"):
        backend.tokenizer  # noqa: B018
