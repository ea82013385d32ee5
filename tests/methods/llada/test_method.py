"""``method=llada``: every setting of ``conf/method/llada.yaml`` reaches the code that uses it, the loss falls
when training, a fast-dev run of the real training app exports a model ``evaluate`` loads, and the strategy,
``generate`` and ``convert`` commands work on it; ``shift_logits`` reaches conversion, export and the strategy."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.methods.base import load_trained
from parallel_decoding.methods.llada import LLaDAMethod, is_diffusion_model
from parallel_decoding.methods.llada.compare import compare_checkpoints
from parallel_decoding.methods.llada.convert import main as convert_main
from parallel_decoding.methods.llada.modeling import load_diffusion_model
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.methods.llada.strategy import LLaDAStrategy
from parallel_decoding.training.pipeline import run_training
from tests.helpers import compose_config

SMALL_SAMPLER = ["+strategy.llada.sampler.gen_length=8", "+strategy.llada.sampler.steps=2"]


def _method(tiny_causal, *overrides: str) -> LLaDAMethod:
    cfg = compose_config("train", ["method=llada", "model=tiny_qwen3", "dataset=synthetic", *overrides])
    bundle = ModelBundle(model=copy.deepcopy(tiny_causal.model), tokenizer=tiny_causal.tokenizer, name="tiny_qwen3")
    return instantiate(cfg.method, _partial_=True, _convert_="all")(bundle=bundle)


@pytest.fixture(scope="module")
def groups():
    return load_synthetic(context_count=3, min_questions=2, max_questions=3, seed=2).groups


def test_every_method_setting_reaches_its_consumer(tiny_causal, tmp_path):
    method = _method(
        tiny_causal, "method.mode=pretrain", "method.loss=soft_ce", "method.label_smoothing=0.2",
        "method.noise.schedule=power", "method.noise.eps=0.01", "method.noise.power=3.0",
        "method.noise.sigmoid_scale=5.0", "method.noise.kind=random_replace", "method.noise.min_masking_rate=0.2",
        "method.noise.span_prob=0.4", "method.noise.reweight_cap=5.0", "method.block_attention.enabled=true",
        "method.block_attention.block_length=4", "method.mask_token_id=151700", "method.sft.max_length=99",
        "method.sft.pad_answers_to=12", "method.pretrain.seq_len=48", "method.pretrain.random_length_prob=0.5",
        "method.pretrain.source=files", "method.pretrain.files=[x.txt]", "method.pretrain.text_field=body",
        "method.pretrain.max_documents=3", "+method.sampler.threshold=0.8", "method.gradient_checkpointing=true",
        "method.optimizer.lr=0.002", "method.optimizer.weight_decay=0.3", "method.optimizer.betas=[0.8,0.9]",
        "method.scheduler.kind=cosine", "method.scheduler.warmup=3", "method.shift_logits=true",
    )
    noise = method.noise
    assert (noise.schedule, noise.eps, noise.power, noise.sigmoid_scale, noise.kind, noise.min_masking_rate,
            noise.span_prob, noise.reweight_cap) == ("power", 0.01, 3.0, 5.0, "random_replace", 0.2, 0.4, 5.0)
    assert (method.mode, method.loss_name, method.label_smoothing, method.block_length) == ("pretrain", "soft_ce",
                                                                                            0.2, 4)
    assert method.model.config.mask_token_id == 151700 == method.method_config["mask_token_id"]
    assert method.model.config.shift_logits is True is method.method_config["shift_logits"]
    collator = method.collator()
    assert (collator.mode, collator.sft.max_length, collator.sft.pad_answers_to) == ("pretrain", 99, 12)
    pretrain = collator.pretrain
    assert (pretrain.seq_len, pretrain.random_length_prob, pretrain.source, pretrain.files, pretrain.text_field,
            pretrain.max_documents) == (48, 0.5, "files", ["x.txt"], "body", 3)
    assert getattr(method.model, "is_activation_checkpointing", None) or method.model.is_gradient_checkpointing
    optimizer = method.optimizer_factory(method.model)
    assert optimizer.defaults["lr"] == 0.002 and optimizer.defaults["betas"] == (0.8, 0.9)
    assert optimizer.param_groups[0]["weight_decay"] == 0.3
    schedule = method.scheduler_factory(optimizer, total_steps=10)["scheduler"]
    assert schedule.lr_lambdas[0](0) == pytest.approx(1 / 3)  # 3 warmup steps
    method.answering_backend()
    assert method._strategy.settings.threshold == 0.8


def test_mode_loss_and_init_from_take_effect(tiny_causal, tmp_path):
    sft = _method(tiny_causal)
    assert sft.mode == "sft" and sft.loss_name == "guidelines" and sft.block_length is None
    sft.model.model.norm.weight.data.fill_(3.0)
    sft.model.save_pretrained(tmp_path / "start")
    resumed = _method(tiny_causal, f"method.init_from={tmp_path / 'start'}")
    assert torch.equal(resumed.model.model.norm.weight, torch.full_like(resumed.model.model.norm.weight, 3.0))
    with pytest.raises(ConfigError, match="trained with"):
        _method(tiny_causal, f"method.init_from={tmp_path / 'start'}", "method.mask_token_id=151700")
    with pytest.raises(ConfigError, match="random_replace"):
        _method(tiny_causal, "method.noise.kind=random_replace")  # loss=guidelines would score nothing
    # init_from: the directory's shift_logits applies; asking to shift an unshifted directory is refused
    assert sft.model.config.shift_logits is False and resumed.model.config.shift_logits is False
    with pytest.raises(ConfigError, match="without the shift"):
        _method(tiny_causal, f"method.init_from={tmp_path / 'start'}", "method.shift_logits=true")
    _method(tiny_causal, "method.shift_logits=true").model.save_pretrained(tmp_path / "shifted")
    from_shifted = _method(tiny_causal, f"method.init_from={tmp_path / 'shifted'}")
    assert from_shifted.model.config.shift_logits is True is from_shifted.method_config["shift_logits"]


def test_the_loss_falls_when_training_on_a_batch(tiny_causal, groups):
    method = _method(tiny_causal, "method.sft.pad_answers_to=null")
    batch = method.collator()(method.collator().examples(groups[0]))
    method.model.eval()  # eval mode: the objective uses fixed noise, so the curve shows only the weights moving
    method.train(False)
    optimizer = torch.optim.AdamW(method.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, n_targets = method.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert n_targets > 0 and losses[-1] < 0.7 * losses[0]


def test_pretraining_batches_train_too(tiny_causal, groups):
    method = _method(tiny_causal, "method.mode=pretrain", "method.pretrain.seq_len=32",
                     "method.block_attention.enabled=true")
    rows = method.collator().training_examples(groups)
    loss, n_targets = method.training_loss(method.collator()(rows[:2]))
    assert loss.requires_grad and n_targets > 0 and torch.isfinite(loss)


def test_a_non_group_source_needs_the_llada_data_module(tiny_causal):
    method = _method(tiny_causal, "method.mode=pretrain", "method.pretrain.source=hf")
    from types import SimpleNamespace

    from parallel_decoding.methods.datamodule import QuestionGroupDataModule

    method._trainer = SimpleNamespace(datamodule=QuestionGroupDataModule.__new__(QuestionGroupDataModule))
    with pytest.raises(ConfigError, match="LLaDADataModule"):
        method.setup("fit")


def test_the_strategy_answers_every_question_and_counts_its_passes(llada_copy, groups):
    backend = HFBackend(llada_copy, GenerationSettings())  # a copy: the backend hooks the model for good
    strategy = LLaDAStrategy("llada", sampler={"gen_length": 8, "steps": 4, "block_length": 4, "early_stop": False})
    outcome = strategy.run(groups[0], backend)
    assert [p.question_id for p in outcome.predictions] == [q.id for q in groups[0].questions]
    n = len(groups[0].questions)
    assert outcome.extra == {"sampler_forward_passes": 4, "sampler_steps": 4, "decoded_tokens": 8 * n,
                             "row_forward_passes": 4 * n}
    assert outcome.efficiency.forward_passes == 4 and outcome.efficiency.generate_calls == 1
    assert outcome.efficiency.prompt_tokens > 0


def test_the_strategy_refuses_a_causal_model_without_a_checkpoint(fresh_causal, groups):
    with pytest.raises(ConfigError, match="checkpoints.llada"):
        LLaDAStrategy("llada").run(groups[0], HFBackend(fresh_causal, GenerationSettings()))


def test_export_loads_back_for_generate(tiny_causal, tmp_path):
    method = _method(tiny_causal)
    exported = method.export(tmp_path / "model", {"global_step": 0})
    bundle = load_trained(exported)
    assert is_diffusion_model(bundle.model) and bundle.model.config.mask_token_id == 151669
    x = torch.randint(0, 5000, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(input_ids=x).logits, method.model.eval()(input_ids=x).logits)

    from parallel_decoding.generate import generate_once, load_bundle

    gen = compose_config("generate", ["model=tiny_qwen3", "prompt=Who founded Talmark?", f"checkpoint={exported}",
                                      "sampler.gen_length=8", "sampler.steps=4", "sampler.block_length=4",
                                      "sampler.early_stop=false"])
    loaded = load_bundle(gen)
    out = generate_once(loaded, gen)
    assert out["decoder"] == "diffusion" and out["efficiency"]["forward_passes"] == 4
    assert out["decoded_tokens"] == 8 and out["tokens_per_forward"] == 2.0
    with pytest.raises(ConfigError, match="decoder=hf"):
        generate_once(loaded, OmegaConf.merge(gen, {"decoder": "hf"}))


def test_a_shifted_method_trains_a_step_and_its_export_loads_shifted(tiny_causal, fresh_causal, groups, tmp_path):
    """method.shift_logits=true: one optimizer step, then the export records the flag in config.json and
    method.yaml, and the llada strategy (as evaluate runs it) loads a shifted model that answers."""
    method = _method(tiny_causal, "method.shift_logits=true", "method.sft.pad_answers_to=8")
    batch = method.collator()(method.collator().examples(groups[0]))
    before = method.model.model.norm.weight.detach().clone()
    optimizer = torch.optim.AdamW(method.model.parameters(), lr=1e-3)
    loss, n_targets = method.training_loss(batch)
    loss.backward()
    optimizer.step()
    assert n_targets > 0 and torch.isfinite(loss) and not torch.equal(before, method.model.model.norm.weight)
    exported = method.export(tmp_path / "model", {"global_step": 1})
    assert json.loads((exported / "config.json").read_text())["shift_logits"] is True
    assert OmegaConf.load(exported / "method.yaml")["config"]["shift_logits"] is True
    strategy = LLaDAStrategy("llada", checkpoint=str(exported), sampler={"gen_length": 8, "steps": 2,
                                                                          "block_length": 4, "prefix_cache": True})
    outcome = strategy.run(groups[0], HFBackend(fresh_causal, GenerationSettings()))
    loaded = strategy._backend.model
    assert is_diffusion_model(loaded) and loaded.config.shift_logits is True
    assert len(outcome.predictions) == len(groups[0].questions)
    x = torch.randint(0, 5000, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=x).logits, method.model.eval()(input_ids=x).logits)


@pytest.mark.slow
def test_train_fast_dev_run_exports_a_model_the_strategy_loads(tmp_path, fresh_causal, groups):
    run_dir = tmp_path / "run"
    cfg = compose_config("train", ["method=llada", "model=tiny_qwen3", "dataset=synthetic", "debug=fdr",
                                   "dataset.context_count=6", "+method.sampler.gen_length=8",
                                   "+method.sampler.steps=2", "method.sft.pad_answers_to=8", "print_config=false"],
                         output_dir=run_dir)
    results = run_training(cfg)
    assert results["status"] == "ok" and results["method"] == "llada"
    assert set(results["val_before"]) >= {"val/em", "val/f1", "val/loss"}
    exported = run_dir / "model"
    record = OmegaConf.load(exported / "method.yaml")
    assert record["class"].endswith("LLaDAMethod") and record["config"]["mask_token_id"] == 151669
    bundle = load_trained(exported)
    assert is_diffusion_model(bundle.model) and bundle.model.config.mask_token_id == 151669
    strategy = LLaDAStrategy("llada", checkpoint=str(exported), sampler={"gen_length": 8, "steps": 2,
                                                                          "block_length": 4})
    outcome = strategy.run(groups[0], HFBackend(fresh_causal, GenerationSettings()))
    assert len(outcome.predictions) == len(groups[0].questions)
    assert outcome.efficiency.forward_passes == outcome.extra["sampler_forward_passes"] == 2


def test_generate_uses_hf_generate_for_a_causal_model(fresh_causal):
    from parallel_decoding.generate import generate_once

    gen = compose_config("generate", ["model=tiny_qwen3", "prompt=Hello", "generation.max_new_tokens=3"])
    out = generate_once(fresh_causal, gen)
    assert out["decoder"] == "hf" and len(out["output_ids"]) <= 3 and out["efficiency"]["generate_calls"] == 1


@pytest.mark.parametrize("shift", [False, True])
def test_convert_command_writes_a_diffusion_copy_of_the_weights(tmp_path, capsys, shift):
    code = convert_main(["--out", str(tmp_path / "llada"), "--save-source", str(tmp_path / "causal"),
                         *(["--shift-logits"] if shift else []), "model=tiny_qwen3", "model.loader.seed=4"])
    assert code == 0
    record = json.loads((tmp_path / "llada" / "conversion.json").read_text())
    assert record["mask_token_id"] == 151669 and record["embedding_rows_before"] == record["embedding_rows_after"]
    assert record["shift_logits"] is shift
    comparison = compare_checkpoints(tmp_path / "causal", tmp_path / "llada", values=True)
    assert comparison.same_layout and comparison.same_values
    loaded = load_diffusion_model(str(tmp_path / "llada"))
    assert is_diffusion_model(loaded) and loaded.config.shift_logits is shift


def test_the_experiment_composes_with_a_training_window_equal_to_the_sampler_window(tmp_path):
    cfg = compose_config("train", ["+experiment=synthetic_llada"], output_dir=tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.method.name == "llada" and cfg.model.name == "tiny_qwen3" and cfg.dataset.name == "synthetic"
    assert cfg.data._target_.endswith("LLaDADataModule")
    assert cfg.method.sft.pad_answers_to == cfg.method.sampler.gen_length
