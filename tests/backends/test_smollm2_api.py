"""Slow: ``python -m parallel_decoding.serve`` serving the real SmolLM2-135M-Instruct, and ``evaluate backend=api``
answering a SQuAD group through it — the same answers, token for token, as ``backend=hf``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from parallel_decoding.config import PROJECT_ROOT
from parallel_decoding.evaluation.recorder import read_jsonl
from tests.helpers import SQUAD_HALF_A, run_module

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SQUAD_HALF_A.is_file(), reason="shared SQuAD half-a file not present")]
# One OpenMP thread for server and runs alike: identical float reduction order (so greedy tokens can be compared
# exactly), and no spin-waiting threads on a shared, oversubscribed CPU.
ENV = {"OMP_NUM_THREADS": "1"}
COMMON = ["model=smollm2_135m", "dataset=squad", f"dataset.path={SQUAD_HALF_A}", "dataset.context_count=1",
          "dataset.group_size=3", "generation.max_new_tokens=16", "strategies=[independent,all_in_one]"]


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory):
    """The server as a user starts it; it stops by itself after 10 idle minutes even if this test dies."""
    log_dir = tmp_path_factory.mktemp("serve")
    process = subprocess.Popen(
        [sys.executable, "-m", "parallel_decoding.serve", "model=smollm2_135m", "port=0", "idle_timeout_s=600",
         f"hydra.run.dir={log_dir}"], cwd=PROJECT_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", **ENV},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, url = time.monotonic() + 300, None
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        if match := re.search(r"serving smollm2_135m at (http://127\.0\.0\.1:\d+/v1)", line):
            url = match.group(1)
    assert url, "serve did not start"
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_api_backend_answers_a_squad_group_like_hf(smollm2_server, tmp_path):
    api = run_module("parallel_decoding.evaluate", *COMMON, "backend=api", f"backend.base_url={smollm2_server}",
                     "backend.timeout_s=600", f"hydra.run.dir={tmp_path / 'api'}", env=ENV, timeout=1200)
    assert api.returncode == 0, api.stdout + api.stderr
    hf = run_module("parallel_decoding.evaluate", *COMMON, f"hydra.run.dir={tmp_path / 'hf'}", env=ENV, timeout=1200)
    assert hf.returncode == 0, hf.stdout + hf.stderr

    def answers(run):
        return [(r["strategy"], r["question_id"], r["raw_output"]) for r in read_jsonl(tmp_path / run / "predictions.jsonl")]

    assert answers("api") == answers("hf") and len(answers("api")) == 6
    results = {run: json.loads((tmp_path / run / "results.json").read_text())["strategies"] for run in ("api", "hf")}
    for strategy in ("independent", "all_in_one"):
        assert results["api"][strategy]["metrics"] == results["hf"][strategy]["metrics"]
        for key in ("prompt_tokens", "generated_tokens"):
            assert results["api"][strategy]["efficiency"][key] == results["hf"][strategy]["efficiency"][key]
    print(json.dumps({run: {s: r[s]["metrics"] for s in r} for run, r in results.items()}, indent=1))
