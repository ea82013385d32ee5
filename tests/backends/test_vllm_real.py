"""vLLM for real (``-m vllm``; ``launchers/test_vllm.sh`` builds the environment): every strategy that needs no
model internals answers SQuAD groups on ``backend=vllm`` exactly as on ``backend=hf`` (fp32 SmolLM2, greedy),
and so does ``vllm serve`` + ``backend=api``; the efficiency fields are filled from what vLLM reports.

Skipped where vLLM or the shared SQuAD file is absent. One in-process engine and one server for the module:
each costs a start-up (seconds on a quiet machine, minutes on a loaded one)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hydra.utils import instantiate
from omegaconf import open_dict

from parallel_decoding.backends.base import GenerationSettings, build_backend
from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import PROJECT_ROOT
from parallel_decoding.data.loading import load_groups
from parallel_decoding.strategies import build_strategies
from tests.helpers import SQUAD_HALF_A, compose_config

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed here"),
    pytest.mark.skipif(not SQUAD_HALF_A.is_file(), reason=f"{SQUAD_HALF_A} not present"),
]

PROMPT_ONLY = ["independent", "sequential", "batch", "all_in_one", "collab_gold", "collab_heuristic",
               "collab_bert", "collab_llm"]
SERVER_START_S = float(os.environ.get("VLLM_TEST_SERVER_START_S", "900"))  # a loaded 2-core CPU: minutes


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    cfg = compose_config("evaluate", [
        "model=smollm2_135m", "hardware=cpu", "backend=vllm", "dataset=squad", f"dataset.path={SQUAD_HALF_A}",
        "dataset.context_count=2", "dataset.group_size=3", "generation.max_new_tokens=16",
        f"strategies=[{','.join(PROMPT_ONLY)}]"], output_dir=tmp_path_factory.mktemp("vllm_run"))
    with open_dict(cfg):  # no solo re-timing, no HTML views: answers and costs are what is compared
        cfg.strategy = {name: {"measure_ideal": False, "run_dir": None} for name in PROMPT_ONLY
                        if name.startswith("collab_")}
        cfg.strategy.collab_llm.generator = {"max_new_tokens": 48}  # a short JSON edge list (or the fallback)
    return cfg


@pytest.fixture(scope="module")
def groups(cfg):
    loaded = load_groups(cfg.dataset).groups
    assert len(loaded) == 2 and all(len(g.questions) == 3 for g in loaded)
    return loaded


@pytest.fixture(scope="module")
def settings(cfg):
    return GenerationSettings(**cfg.generation, seed=cfg.seed)


@pytest.fixture(scope="module")
def hf(cfg, settings):
    return HFBackend(instantiate(cfg.model.loader), settings)


@pytest.fixture(scope="module")
def vllm_backend(cfg, settings):
    backend = build_backend(cfg.backend, settings)  # the packaged SmolLM2 through conf/backend/vllm.yaml
    backend.warmup()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def strategies(cfg):
    return {s.name: s for s in build_strategies(cfg)}


def run_strategy(strategy, groups, backend):
    """([raw outputs in question order], [per-group EfficiencyStats])."""
    outcomes = [strategy.run(group, backend) for group in groups]
    return [p.raw_output for o in outcomes for p in o.predictions], [o.efficiency for o in outcomes]


@pytest.fixture(scope="module")
def hf_run(strategies, groups, hf):
    done = {}

    def run(name):
        if name not in done:
            done[name] = run_strategy(strategies[name], groups, hf)
        return done[name]
    return run


def test_engine_config_is_the_cpu_exact_one(vllm_backend):
    config = vllm_backend.llm.llm_engine.vllm_config
    assert str(config.model_config.dtype) == "torch.float32"
    assert config.cache_config.enable_prefix_caching and config.model_config.enforce_eager
    assert Path(vllm_backend.model_path).name == "smollm2_135m"


def test_same_token_ids_as_hf(groups, hf, vllm_backend):
    from parallel_decoding.prompting.prompts import single_question_messages

    prompts = [hf.chat_ids(single_question_messages(g, q)) for g in groups for q in g.questions]
    assert [vllm_backend.chat_ids(single_question_messages(g, q)) for g in groups for q in g.questions] == prompts
    ours = hf.generate(prompts, batch_size=1)
    theirs = vllm_backend.generate(prompts)
    assert theirs == ours  # stop token included where one ended the answer, as hf's


def test_strategies_are_the_prompt_only_ones(strategies):
    assert set(strategies) == set(PROMPT_ONLY)
    assert not any(s.requires_model_internals for s in strategies.values())


@pytest.mark.parametrize("name", PROMPT_ONLY)
def test_strategy_answers_on_vllm_as_on_hf(name, strategies, groups, hf_run, vllm_backend):
    hf_answers, hf_stats = hf_run(name)
    answers, stats = run_strategy(strategies[name], groups, vllm_backend)
    assert answers == hf_answers
    assert any(a.strip() for a in answers)
    for ours, theirs in zip(hf_stats, stats):
        # the same prompts and the same generated ids, so the same counts; computation differs by the cache
        assert (theirs.prompt_tokens, theirs.dedup_prompt_tokens, theirs.generated_tokens, theirs.generate_calls) \
            == (ours.prompt_tokens, ours.dedup_prompt_tokens, ours.generated_tokens, ours.generate_calls)
        assert ours.computed_prompt_tokens == ours.prompt_tokens  # hf generate: no cache across rows
        assert 0 < theirs.computed_prompt_tokens <= theirs.prompt_tokens and theirs.latency_s > 0
        assert theirs.forward_passes > 0
        if name == "independent":
            # one prompt per call: the prefill step makes the first token, each decode step one more
            assert theirs.forward_passes == theirs.generated_tokens
            # the questions of a group share the passage: later ones hit the prefix cache (whole KV blocks)
            assert theirs.computed_prompt_tokens < theirs.prompt_tokens
        if name == "batch":
            assert theirs.forward_passes < theirs.generated_tokens  # 3 rows per step


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("vllm_serve") / "server.log"
    env = {**os.environ, "PYTHON": sys.executable, "PORT": str(port), "HOST": "127.0.0.1"}
    with log.open("w") as handle:
        proc = subprocess.Popen(["bash", str(PROJECT_ROOT / "launchers" / "vllm_serve.sh")], stdout=handle,
                                stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + SERVER_START_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not up after {SERVER_START_S:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield url
    finally:
        os.killpg(proc.pid, 15)  # the script's own process group (start_new_session): server and engine core
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


SERVED_STRATEGIES = ["independent", "sequential", "batch"]


def test_vllm_serve_and_backend_api_answer_as_hf(cfg, groups, hf_run, vllm_server, settings):
    api_cfg = compose_config("evaluate", ["backend=api", "model=smollm2_135m"]).backend
    with open_dict(api_cfg):
        api_cfg.base_url = vllm_server
        api_cfg.max_concurrency = 4
    api = build_backend(api_cfg, settings)
    api.warmup()
    strategies = {s.name: s for s in build_strategies(cfg) if s.name in SERVED_STRATEGIES}
    cached = prompt = 0
    for name in SERVED_STRATEGIES:
        hf_answers, hf_stats = hf_run(name)
        answers, stats = run_strategy(strategies[name], groups, api)
        assert answers == hf_answers, name
        for ours, theirs in zip(hf_stats, stats):
            assert (theirs.prompt_tokens, theirs.generated_tokens) == (ours.prompt_tokens, ours.generated_tokens)
            prompt += theirs.prompt_tokens
            cached += theirs.prompt_tokens - theirs.computed_prompt_tokens
    assert 0 < cached < prompt  # the server's usage.prompt_tokens_details.cached_tokens reached the costs
    api.client.close()
