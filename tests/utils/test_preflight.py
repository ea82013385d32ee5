"""preflight.py: names, types and budgets checked from the composed config and the code's annotations, without
importing the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parallel_decoding.config import PROJECT_ROOT, ConfigError
from parallel_decoding.utils.preflight import check_config, check_devices, target_annotations
from tests.helpers import compose_config


def problems(task: str, overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as error:
        check_config(compose_config(task, overrides), task)
    message = str(error.value)
    assert "\n" not in message  # one line
    return message


@pytest.mark.parametrize("task", ["evaluate", "train"])
def test_default_configs_and_experiments_pass(task):
    check_config(compose_config(task), task)


@pytest.mark.parametrize("experiment", ["squad_sft", "synthetic_crossbatch", "squad_branch2d", "synthetic_llada"])
def test_experiments_pass(experiment):
    check_config(compose_config("train", [f"+experiment={experiment}"]), "train")


def test_the_user_key_is_named_not_the_loader_argument():
    message = problems("evaluate", ["dataset.context_count=abc"])
    assert message == "dataset.context_count must be an integer (or null), got 'abc'"
    assert problems("evaluate", ["dataset.min_questions=2.5"]) == "dataset.min_questions must be an integer, got 2.5"


def test_every_problem_in_one_line():
    message = problems("evaluate", ["strategies=[indepndent,batch]", "generation.max_new_tokens=abc",
                                    "+strategy.batch.batch_size=x", "resume=yes", "generation.temperature=hot"])
    assert message.startswith("unknown strategy 'indepndent'; available: all_in_one, batch,")
    for part in ("strategy.batch.batch_size must be an integer, got 'x'", "resume must be true or false, got 'yes'",
                 "generation.max_new_tokens must be an integer, got 'abc'",
                 "generation.temperature must be a number, got 'hot'"):
        assert part in message


def test_strategies_must_be_a_list():
    assert problems("evaluate", ["strategies=batch"]).startswith("strategies must be a list of names")


@pytest.mark.parametrize("override,expected", [
    ("trainer.max_steps=0", "trainer.max_steps=0 trains nothing: give a positive number of optimizer steps"),
    ("trainer.max_steps=-5", "trainer.max_steps=-5 trains nothing"),
    ("trainer.max_steps=abc", "trainer.max_steps must be an integer (or null), got 'abc'"),
    ("data.batch_size=2.5", "data.batch_size must be an integer, got 2.5"),
    ("method.max_length=abc", "method.max_length must be an integer, got 'abc'"),
])
def test_training_budget_and_types(override, expected):
    assert problems("train", [override]).startswith(expected)


def test_max_steps_minus_one_with_epochs_is_fine():
    check_config(compose_config("train", ["trainer.max_steps=-1", "trainer.max_epochs=2"]), "train")
    assert "needs trainer.max_epochs" in problems("train", ["trainer.max_steps=-1"])


def test_annotations_come_from_source():
    squad = target_annotations("parallel_decoding.data.squad.load_squad")
    assert squad["context_count"] == frozenset({int, type(None)}) and "path" not in squad  # str: not checked
    assert target_annotations("parallel_decoding.backends.hf.GenerationSettings")["temperature"] == frozenset({float})
    assert target_annotations("parallel_decoding.models.load_pretrained")["enable_thinking"] == frozenset({bool})
    assert target_annotations("lightning.pytorch.Trainer") is None  # outside the package: left alone


def test_check_runs_without_the_heavy_libraries():
    """In a fresh process: compose + check, and neither torch nor transformers nor lightning gets imported."""
    code = ("import sys; from tests.helpers import compose_config; from parallel_decoding.utils.preflight import "
            "check_config\ncheck_config(compose_config('train'), 'train'); check_config(compose_config('evaluate'), "
            "'evaluate')\nprint(sorted(m for m in ('torch', 'transformers', 'lightning') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_gpu_hardware_without_cuda_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ConfigError) as error:
        check_devices(compose_config("evaluate", ["hardware=gpu"]))
    assert str(error.value).startswith("hardware=gpu needs a CUDA GPU, but torch ")
    assert "use hardware=cpu" in str(error.value)
    check_devices(compose_config("evaluate", ["hardware=cpu"]))
    check_devices(compose_config("train", ["hardware=ddp_sim"]))
