"""vLLM cannot run here (GPU-only optional extra, not installed): what is testable is that it is imported lazily,
fails with the install line, resolves its model from the model group, and refuses hidden-state strategies."""

from __future__ import annotations

import importlib.util

import pytest
from omegaconf import OmegaConf

from parallel_decoding.backends import exposes_model_internals, refuse_unsupported
from parallel_decoding.backends.api import ApiBackend
from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.backends.vllm import VLLMBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.strategies.base import Strategy
from tests.helpers import compose_config

needs_no_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")


@needs_no_vllm
def test_missing_vllm_names_the_extra():
    with pytest.raises(ConfigError, match=r"pip install 'parallel_decoding\[vllm\]'"):
        VLLMBackend(model="Qwen/Qwen3-4B")


def test_model_comes_from_the_model_group(tmp_path):
    cfg = compose_config("evaluate", ["backend=vllm", "model=qwen3_4b"], output_dir=tmp_path)
    assert cfg.backend.model == "Qwen/Qwen3-4B" and cfg.backend.enable_prefix_caching is True
    cfg = compose_config("evaluate", ["backend=vllm", "model=qwen3_4b", "model.path=/models/q"], output_dir=tmp_path)
    assert cfg.backend.model == "/models/q"
    cfg = compose_config("evaluate", ["backend=vllm", "model=smollm2_135m"], output_dir=tmp_path)
    assert cfg.backend.model is None
    with pytest.raises(ConfigError, match="needs an HF model directory or hub id"):
        VLLMBackend(model=None)


class NeedsHiddenStates(Strategy):
    requires_model_internals = True

    def answer_group(self, group, backend):
        raise AssertionError("never run")


class PromptsOnly(Strategy):
    def answer_group(self, group, backend):
        raise AssertionError("never run")


@pytest.mark.parametrize("backend", ["vllm", "api"])
def test_hidden_state_strategies_are_refused_up_front(backend, tmp_path):
    cfg = compose_config("evaluate", [f"backend={backend}"], output_dir=tmp_path)
    refuse_unsupported([PromptsOnly("batch")], cfg.backend)  # prompt-only strategies are fine
    with pytest.raises(ConfigError, match=rf"\['batch_shared'\] need the model's hidden states.*backend=hf"):
        refuse_unsupported([PromptsOnly("batch"), NeedsHiddenStates("batch_shared")], cfg.backend)
    hf = compose_config("evaluate", ["backend=hf"], output_dir=tmp_path)
    refuse_unsupported([NeedsHiddenStates("batch_shared")], hf.backend)


def test_model_internals_flags():
    assert exposes_model_internals(HFBackend) and not exposes_model_internals(VLLMBackend)
    assert not exposes_model_internals(ApiBackend)
    assert OmegaConf.is_config(compose_config("evaluate", ["backend=api"]).backend)
