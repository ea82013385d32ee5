"""Cross-batch checkpoints: a reload answers exactly like the trained model; mismatches fail loudly."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.base import load_trained
from parallel_decoding.methods.crossbatch.checkpoint import CHECKPOINT_FILE, apply_checkpoint, load_head, \
    load_mixer, read_checkpoint_config
from parallel_decoding.methods.crossbatch.generator import crossbatch_generate
from parallel_decoding.methods.crossbatch.model import CrossBatchModel
from parallel_decoding.models import build_tiny_qwen3
from tests.methods.crossbatch.test_method import batch_of, make_method
from tests.methods.crossbatch.test_mixing import randomise
from tests.methods.crossbatch.test_model import GROUP, chat_prompts


def trained(method):
    """Stand-in for training: random mixer, perturbed head and LoRA B (so nothing is at its initial value)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        if method.model.mixer is not None:
            randomise(method.model.mixer)
        method.model.head.weight.add_(torch.randn(method.model.head.weight.shape, generator=generator))
        for name, param in method.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return method.eval()


def export(method, directory):
    return method.export(directory, {"run_dir": str(directory)})


def answers(model: CrossBatchModel, bundle) -> list[list[int]]:
    return crossbatch_generate(model, chat_prompts(bundle, GROUP), max_new_tokens=6, stop_token_ids=[],
                               pad_token_id=bundle.tokenizer.pad_token_id).sequences


@pytest.mark.parametrize("variant", ["crossbatch", "lora_crossbatch", "baseline"])
def test_a_reloaded_checkpoint_gives_identical_outputs(crossbatch_base, tiny, variant, tmp_path):
    method = trained(make_method(tiny, variant, mixer={"num_heads": 4, "mode": "gate"}))
    batch = batch_of(method)
    with torch.no_grad():
        logits = method.model.teacher_forced(batch)["logits"]
    expected = answers(method.model, tiny)
    export(method, tmp_path / "ckpt")

    config = read_checkpoint_config(tmp_path / "ckpt")
    assert config["variant"] == variant and (config["mixer"] is not None) == (variant != "baseline")
    # What evaluate does: the record's base model + head + merged LoRA, and the mixer beside it.
    bundle = load_trained(tmp_path / "ckpt")
    mixer = load_mixer(tmp_path / "ckpt")
    reloaded = CrossBatchModel(bundle.model, mixer).eval()
    with torch.no_grad():
        # merged LoRA weights round differently from adapter + base: equal to float32 precision
        assert torch.allclose(reloaded.teacher_forced(batch)["logits"], logits, rtol=1e-4, atol=1e-3)
    if variant != "lora_crossbatch":  # merged LoRA rounds differently: a near-tie may flip a greedy token there
        assert answers(reloaded, bundle) == expected
    if variant != "lora_crossbatch":  # and beside an untouched shared base model, as collab_hidden runs it
        base = copy.deepcopy(crossbatch_base.model)
        head = load_head(tmp_path / "ckpt", base.get_output_embeddings())
        beside = CrossBatchModel(base, mixer, head=head).eval()
        with torch.no_grad():
            assert torch.equal(beside.teacher_forced(batch)["logits"], logits)
        assert base.get_output_embeddings().weight.data_ptr() == base.get_input_embeddings().weight.data_ptr()


def test_a_mixer_config_mismatch_fails_loudly(tiny, tmp_path):
    method = trained(make_method(tiny, "crossbatch", mixer={"num_heads": 4, "mode": "gate"}))
    export(method, tmp_path / "ckpt")
    assert load_mixer(tmp_path / "ckpt", expected={"num_heads": 4, "mode": "gate"}) is not None
    with pytest.raises(ConfigError, match="mode"):
        load_mixer(tmp_path / "ckpt", expected={"num_heads": 4, "mode": "scale"})
    with pytest.raises(ConfigError, match="num_heads"):
        load_mixer(tmp_path / "ckpt", expected={"num_heads": 8, "mode": "gate"})
    path = tmp_path / "ckpt" / CHECKPOINT_FILE
    config = json.loads(path.read_text())
    config["mixer"]["mode"] = "scale"  # weights of a gate module under a scale config
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="does not fit"):
        load_mixer(tmp_path / "ckpt")


def test_another_base_model_is_refused(tiny, tmp_path):
    export(trained(make_method(tiny, "baseline")), tmp_path / "ckpt")
    other_seed = build_tiny_qwen3(seed=5).model
    with pytest.raises(ConfigError, match="embedding"):
        apply_checkpoint(tmp_path / "ckpt", other_seed)
    with pytest.raises(ConfigError, match="base model"):
        apply_checkpoint(tmp_path / "ckpt", copy.deepcopy(tiny.model), base_name="smollm2_135m")
    wider = build_tiny_qwen3(hidden_size=32, head_dim=8).model
    with pytest.raises(ConfigError, match="hidden size"):
        apply_checkpoint(tmp_path / "ckpt", wider)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="not a cross-batch checkpoint"):
        read_checkpoint_config(tmp_path)
