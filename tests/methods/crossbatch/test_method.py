"""``CrossBatchMethod``: what each variant trains, LoRA gradients, an untouched backbone, the composed configs."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.crossbatch import CrossBatchMethod, VARIANTS
from parallel_decoding.training.optim import build_optimizer
from tests.helpers import compose_config
from tests.methods.crossbatch.test_model import GROUP, OTHER

EXPERIMENTS = ["squad_crossbatch", "synthetic_crossbatch", "cmb_exam_context_crossbatch", "triviaqa_sim_crossbatch"]


def make_method(bundle, variant: str, **kwargs) -> CrossBatchMethod:
    kwargs.setdefault("mixer", {"num_heads": 4})
    kwargs.setdefault("lora", {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    kwargs.setdefault("base_model", {"name": "tiny_qwen3",
                                     "loader": {"_target_": "parallel_decoding.models.build_tiny_qwen3"}})
    return CrossBatchMethod(bundle, variant=variant, optimizer=lambda m: build_optimizer(m, lr=1e-2), **kwargs)


def batch_of(method: CrossBatchMethod):
    collator = method.collator()
    return collator(collator.examples(GROUP) + collator.examples(OTHER))


def trainable(method: CrossBatchMethod) -> set[str]:
    kinds = set()
    for name, param in method.model.named_parameters():
        if param.requires_grad:
            kinds.add("lora" if "lora_" in name else "mixer" if name.startswith("mixer.") else
                      "lm_head" if "lm_head" in name else name)
    return kinds


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_trains_what_it_says(tiny, variant):
    spec = VARIANTS[variant]
    method = make_method(tiny, variant)
    expected = {k for k, on in (("lm_head", spec.train_lm_head), ("lora", spec.lora), ("mixer", spec.mixer)) if on}
    assert trainable(method) == expected
    assert method.eval_strategy_name in ("finetuned", "collab_hidden", variant)
    loss, n = method.training_loss(batch_of(method))
    assert torch.isfinite(loss) and n > 0
    loss.backward()
    # At initialisation the zero-initialised projections (W_o, LoRA B) block the gradient of what sits behind
    # them; after one step every trainable parameter learns.
    optimizer = build_optimizer(method.model, lr=1e-2)
    optimizer.step()
    optimizer.zero_grad()
    method.training_loss(batch_of(method))[0].backward()
    for name, param in method.model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name


@pytest.mark.parametrize("variant", ["lora_lmhead", "lora_crossbatch"])
def test_lora_parameters_receive_gradients(tiny, variant):
    method = make_method(tiny, variant)
    lora_b = [p for n, p in method.model.named_parameters() if "lora_B" in n]
    assert lora_b
    loss, _ = method.training_loss(batch_of(method))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
    optimizer = build_optimizer(method.model, lr=1e-2)
    optimizer.step()
    optimizer.zero_grad()
    method.training_loss(batch_of(method))[0].backward()  # after one step B != 0, so A learns too
    lora_a = [p for n, p in method.model.named_parameters() if "lora_A" in n]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_a)


def test_training_the_head_leaves_the_backbone_and_its_embeddings_alone(tiny):
    embeddings = tiny.model.get_input_embeddings().weight.detach().clone()
    method = make_method(tiny, "crossbatch")
    head = method.model.head.weight
    assert head.data_ptr() != method.model.lm.get_input_embeddings().weight.data_ptr()  # untied
    before = {n: p.detach().clone() for n, p in method.model.named_parameters()}
    optimizer = build_optimizer(method.model, lr=1e-2)
    method.training_loss(batch_of(method))[0].backward()
    optimizer.step()
    after = dict(method.model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert "lm.lm_head.weight" in changed and any(n.startswith("mixer.") for n in changed)
    assert all(n == "lm.lm_head.weight" or n.startswith("mixer.") for n in changed)
    assert torch.equal(method.model.lm.get_input_embeddings().weight, embeddings)


def test_the_mixing_gain_is_logged_and_zero_at_initialisation(tiny):
    method = make_method(tiny, "crossbatch")
    out = method.model.teacher_forced(batch_of(method), unmixed_too=True)
    assert torch.equal(out["loss"], out["loss_unmixed"])


def test_a_mixer_layer_outside_the_model_is_refused(tiny):
    with pytest.raises(ConfigError):
        make_method(tiny, "crossbatch", mixer={"num_heads": 4, "layers": [7]})
    with pytest.raises(ConfigError):
        make_method(tiny, "sideways")


def test_caching_states_of_a_backbone_that_trains_is_refused(tiny):
    assert make_method(tiny, "crossbatch", cache_frozen_states=True).model.state_cache is not None
    with pytest.raises(ConfigError, match="frozen backbone"):
        make_method(tiny, "lora_crossbatch", cache_frozen_states=True)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(experiment, tmp_path):
    cfg = compose_config("train", [f"+experiment={experiment}"], output_dir=tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.method.name == "crossbatch" and cfg.method.variant == "crossbatch"
    assert cfg.method.publish_dir.endswith(f"{cfg.dataset.name}/{cfg.model.name}_crossbatch")
    if experiment != "synthetic_crossbatch":  # the real-user runs: Qwen2.5-7B-Instruct, gate, DDP on 8 GPUs
        assert (cfg.model.name, cfg.method.mixer.mode, cfg.hardware.name, cfg.trainer.devices) == \
               ("qwen2_5_7b_instruct", "gate", "ddp", 8)


def test_the_shrunk_squad_experiment_builds_the_method(tmp_path):
    cfg = compose_config("train", ["+experiment=squad_crossbatch", "model=tiny_qwen3", "hardware=cpu",
                                   f"paths.checkpoint_dir={tmp_path}"], output_dir=tmp_path)
    assert cfg.trainer.devices == 1 and cfg.trainer.strategy == "auto"
    bundle = instantiate(cfg.model.loader)
    method = instantiate(cfg.method, _partial_=True, _convert_="all")(bundle=bundle)
    assert isinstance(method, CrossBatchMethod) and method.model.mixer.config.mode == "gate"
    assert method.publish_dir == tmp_path / "squad" / "tiny_qwen3_crossbatch"
    assert method.base_model_config["loader"]["_target_"] == "parallel_decoding.models.build_tiny_qwen3"
    optimizer = method.optimizer_factory(method.model)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
