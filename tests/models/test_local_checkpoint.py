"""A damaged local model or checkpoint is one line that names it, and never a hub download hint."""

from __future__ import annotations

import shutil

import pytest

from parallel_decoding.config import ConfigError
from parallel_decoding.models import ModelUnavailableError, load_pretrained


@pytest.fixture(scope="module")
def saved(tiny_bundle, tmp_path_factory):
    directory = tmp_path_factory.mktemp("saved") / "model"
    tiny_bundle.model.save_pretrained(directory)
    tiny_bundle.tokenizer.save_pretrained(directory)
    return directory


def damaged(saved, tmp_path, how):
    copy = tmp_path / "model"
    shutil.copytree(saved, copy)
    weights = copy / "model.safetensors"
    if how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "garbage weights":
        weights.write_bytes(b"garbage" * 10)
    elif how == "no weights":
        weights.unlink()
    elif how == "garbage config":
        (copy / "config.json").write_text("{not json")
    return copy


@pytest.mark.parametrize("how", ["truncated weights", "garbage weights", "no weights", "garbage config"])
def test_damaged_model_dir_is_named_without_hub_advice(saved, tmp_path, how):
    directory = damaged(saved, tmp_path, how)
    with pytest.raises(ModelUnavailableError) as error:
        load_pretrained("finetuned", path=str(directory))
    message = str(error.value)
    assert message.startswith(f"model 'finetuned': the saved model in {directory} cannot be loaded (")
    assert "incomplete or corrupted" in message and "hf download" not in message and "\n" not in message


def test_the_intact_copy_loads(saved):
    assert load_pretrained("finetuned", path=str(saved)).model is not None


def test_damaged_crossbatch_weights_are_one_line(tmp_path):
    from parallel_decoding.methods.crossbatch.checkpoint import _read_weights

    file = tmp_path / "head.safetensors"
    file.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ConfigError, match=f"checkpoint: the saved model in {tmp_path} cannot be loaded"):
        _read_weights(file)


def test_damaged_lightning_checkpoint_is_refused_before_fit(tmp_path):
    from parallel_decoding.training.pipeline import resolve_ckpt_path

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError, match="is truncated or corrupted"):
        resolve_ckpt_path("last", tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match="is truncated or corrupted"):
        resolve_ckpt_path(str(tmp_path), tmp_path / "elsewhere")
