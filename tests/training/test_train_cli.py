"""``python -m parallel_decoding.train`` as a user runs it: a sweep with one crashing job and W&B offline (no
secret in any file), 2-process DDP over gloo, and a SIGKILLed run resumed to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from parallel_decoding.config import PROJECT_ROOT
from tests.helpers import run_module
from tests.reporting.wandb_records import manifest, md5_digest, offline_run
from tests.training.runs import TINY, checkpoint_weights, max_weight_difference

SECRETS = {"WANDB_API_KEY": "secret-xyz-4242", "HF_TOKEN": "hf_secret_4242"}


def _files_containing(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    return hits


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three jobs, the second with an invalid learning rate; W&B offline; tokens in the environment."""
    root = tmp_path_factory.mktemp("sweep")
    env = {**SECRETS, "WANDB_MODE": "offline", "WANDB_DIR": str(root / "wandb_dir"), "WANDB_SILENT": "true"}
    result = run_module(
        "parallel_decoding.train", "-m", *TINY, "trainer.max_steps=2", "validate_before_fit=false", "test=false",
        "logger=wandb", "+experiment=synthetic_sft", "model=tiny_qwen3", "dataset.context_count=6",
        "method.optimizer.lr=1e-4,-1.0,2e-4", f"hydra.sweep.dir={root / 'multirun'}",
        "+logger.wandb.notes=${oc.env:HF_TOKEN}",  # a token routed into a config: must be masked everywhere
        env=env, timeout=900,
    )
    return root, result


def test_sweep_survives_a_crashed_job_and_leaves_one_dir_per_job(sweep):
    root, result = sweep
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = sorted(p for p in (root / "multirun").iterdir() if p.is_dir() and p.name.isdigit())
    results = [json.loads((job / "results.json").read_text()) for job in jobs]
    assert [r["status"] for r in results] == ["ok", "failed", "ok"]
    assert "learning rate must be positive" in results[1]["error"]
    assert "learning rate must be positive" in (jobs[1] / "train.log").read_text()
    for job in (jobs[0], jobs[2]):
        assert (job / ".hydra" / "config.yaml").is_file() and (job / "model" / "config.json").is_file()
    for job, lr in zip(jobs, (1e-4, -1.0, 2e-4)):  # each job's own overrides (as Hydra prints them), for reproduce
        manifest = json.loads((job / "manifest.json").read_text())
        assert manifest["entry_point"] == "parallel_decoding.train"
        [value] = [o.split("=", 1)[1] for o in manifest["command"]["overrides"] if o.startswith("method.optimizer.lr=")]
        assert float(value) == lr


def test_each_job_is_its_own_offline_wandb_run_named_from_experiment_and_overrides(sweep):
    root, _ = sweep
    runs = {}
    for job in ("0", "2"):
        offline = list((root / "multirun" / job / "wandb").glob("offline-run-*"))
        assert len(offline) == 1 and list(offline[0].glob("run-*.wandb"))
        runs[job] = (root / "multirun" / job / "wandb_id.txt").read_text().strip()
        assert offline[0].name.endswith(runs[job])
    assert runs["0"] != runs["2"]
    config = json.loads((root / "multirun" / "0" / "results.json").read_text())["config"]
    assert config["logger"]["wandb"]["notes"] == "<redacted>"


def test_each_job_logs_its_exported_model_as_a_wandb_artifact(sweep):
    root, _ = sweep
    job = root / "multirun" / "0"
    run = offline_run(job / "wandb")
    files = manifest(run.artifact("model"))
    exported = sorted(p.relative_to(job / "model").as_posix() for p in (job / "model").rglob("*") if p.is_file())
    assert "model.safetensors" in exported and sorted(files) == exported
    for name, digest in files.items():
        assert digest == md5_digest(job / "model" / name), name


def test_no_secret_appears_in_any_file_the_sweep_wrote(sweep):
    root, result = sweep
    assert _files_containing(root, list(SECRETS.values())) == []
    assert not any(s in result.stdout + result.stderr for s in SECRETS.values())


@pytest.mark.slow
def test_ddp_sim_trains_on_both_ranks_with_one_output_dir_and_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    default_runs = PROJECT_ROOT / "outputs" / "train"
    before = set(default_runs.iterdir()) if default_runs.is_dir() else set()
    result = run_module("parallel_decoding.train", *TINY, "hardware=ddp_sim", "trainer.max_steps=3",
                        "data.val_groups=2", "validate_before_fit=false", f"hydra.run.dir={run_dir}", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["world_size"] == 2 and results["train_batches_per_rank"] == [3, 3]
    # the second rank made no output dir of its own, neither beside the run nor at the default place
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (set(default_runs.iterdir()) if default_runs.is_dir() else set()) == before
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("last*.ckpt")) == ["last.ckpt"]
    assert len(list(run_dir.glob(".hydra/config.yaml"))) == 1 and (run_dir / "model" / "config.json").is_file()


def _checkpoint_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    # LoRA with dropout, so the restored RNG state matters as much as the data position and optimizer state.
    args = [*TINY, "method=sft_lora", "method.lora.dropout=0.2", "method.optimizer.lr=1e-3", "trainer.max_steps=14",
            "trainer.limit_val_batches=0", "validate_before_fit=false", "test=false", "export=false",
            "callbacks.last_checkpoint.every_n_train_steps=3", "callbacks.last_checkpoint.save_top_k=-1"]
    reference = run_module("parallel_decoding.train", *args, f"hydra.run.dir={tmp_path / 'reference'}", timeout=900)
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "parallel_decoding.train", *args, f"hydra.run.dir={run_dir}"],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (run_dir / "checkpoints" / "step000006.ckpt").exists():  # renamed into place: complete
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoint_step(run_dir / "checkpoints" / "last.ckpt")  # 3 or 6: last.ckpt is written second
    assert 3 <= killed_at < 14 and killed_at % 8 != 0  # mid-epoch: an epoch here is 8 steps

    resumed = run_module("parallel_decoding.train", *args, "ckpt_path=last", f"hydra.run.dir={run_dir}", timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["global_step"] == 14 and results["train_batches_per_rank"] == [14 - killed_at]
    final = run_dir / "checkpoints" / "last.ckpt"
    assert _checkpoint_step(final) == 14
    assert max_weight_difference(checkpoint_weights(tmp_path / "reference" / "checkpoints" / "last.ckpt"),
                                 checkpoint_weights(final)) <= 1e-5
