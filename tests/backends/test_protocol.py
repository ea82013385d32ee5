"""Every backend class implements the one ``Backend`` protocol: same members, same call signatures; the one
generation-settings type hands the in-process decoders their sampling settings."""

from __future__ import annotations

import inspect

import pytest

from parallel_decoding.backends.api import ApiBackend
from parallel_decoding.backends.base import Backend, GenerationSettings
from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.backends.vllm import VLLMBackend
from parallel_decoding.decoding.sampling import SamplingSettings

METHODS = [name for name, value in vars(Backend).items() if not name.startswith("_") and callable(value)]
ATTRIBUTES = list(Backend.__annotations__)


def test_protocol_lists_what_strategies_call():
    assert set(METHODS) == {"chat_ids", "generate", "decode", "measure", "record", "warmup"}
    assert set(ATTRIBUTES) == {"model_internals", "settings"}


@pytest.mark.parametrize("cls", [HFBackend, VLLMBackend, ApiBackend])
def test_each_backend_class_has_the_protocol_methods_with_its_parameters(cls):
    for name in METHODS:
        ours = inspect.signature(getattr(cls, name))
        theirs = inspect.signature(getattr(Backend, name))
        # The protocol's parameters first, in order; a backend may accept more, each optional (hf's stop_strings).
        count = len(theirs.parameters)
        assert list(ours.parameters)[:count] == list(theirs.parameters), f"{cls.__name__}.{name}{ours} != {theirs}"
        extra = list(ours.parameters.values())[count:]
        assert all(p.default is not inspect.Parameter.empty for p in extra), f"{cls.__name__}.{name}{ours}"
        for param in theirs.parameters.values():  # optional in the protocol => optional in the class
            if param.default is not inspect.Parameter.empty:
                assert ours.parameters[param.name].default == param.default, (cls.__name__, name, param.name)
    assert isinstance(cls.model_internals, bool)


def test_instances_satisfy_the_runtime_protocol(tiny_bundle):
    assert isinstance(HFBackend(tiny_bundle, GenerationSettings()), Backend)
    api = ApiBackend("http://127.0.0.1:9/v1", "m")  # no request is made until generate
    assert isinstance(api, Backend) and isinstance(api.settings, GenerationSettings)
    api.client.close()
    assert not isinstance(object(), Backend)


def test_generation_settings_give_the_in_process_decoders_their_sampling_settings():
    settings = GenerationSettings(max_new_tokens=5, do_sample=True, temperature=0.7, top_p=0.9, seed=11)
    assert settings.sampling() == SamplingSettings(do_sample=True, temperature=0.7, top_p=0.9, seed=11)
    assert GenerationSettings().sampling() == SamplingSettings()
