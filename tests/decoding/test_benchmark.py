"""The benchmark's bookkeeping (no model): ratios, answer identity, the Markdown table and the plot."""

from __future__ import annotations

import pytest

from parallel_decoding.benchmarks.shared_prefix import markdown, plot, summarize


def runs(latencies, answers, tokens=10, prompt_tokens=(100, 100), dedup=(40, 60)):
    return [{"group": f"g{i}", "latency_s": t, "generated_tokens": tokens, "forward_passes": 3, "answers": answers,
             "prompt_tokens": prompt_tokens[i % 2], "dedup_prompt_tokens": dedup[i % 2]}
            for i, t in enumerate(latencies)]


def test_summary_ratios_identity_table_and_plot(tmp_path):
    timings = [{"group_size": 8, "threads": 2, "runs": {
                    "independent": runs([4.0, 6.0], ["a", "b"]), "batch": runs([2.0, 2.0], ["a", "b"]),
                    "batch_shared": runs([1.0, 1.0], ["a", "b"]), "inseq_qa": runs([1.0, 1.5], ["a", "c"])}},
               {"group_size": 1, "threads": 2, "runs": {"independent": runs([1.0], ["a"]),
                                                         "batch_shared": runs([0.5], ["a"])}}]
    memory = [{"strategy": "batch_shared", "group_size": 8, "peak_rss_growth_mb": 12.5}]
    table = summarize(timings, memory)
    shared = table["8"]["batch_shared"]
    assert shared["latency_s"] == 1.0 and shared["speedup_vs_independent"] == 5.0
    assert shared["speedup_vs_batch"] == 2.0 and shared["tokens_per_s"] == 10.0
    assert shared["answers_equal_independent"] and not table["8"]["inseq_qa"]["answers_equal_independent"]
    text = markdown(table)
    assert "| 8 | batch_shared | 1.00 | 10.0 | 12.5 | 5.0x | 2.0x | yes |" in text and "| NO |" in text
    assert table["8"]["batch"]["peak_rss_growth_mb"] is None
    # pooled over groups, not a mean of per-group ratios: (100 + 100) / (40 + 60); G=1's single group: 100 / 40
    assert table["8"]["independent"]["prefill_bound"] == 2.0 and table["1"]["independent"]["prefill_bound"] == 2.5
    assert "prefill_bound" not in shared and "G=1: 2.5x, G=8: 2.0x" in text
    plot(table, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def run(latency, answers, ids, forwards, computed, tokens=10, prompt=200, dedup=120):
    return {"group": "g", "latency_s": latency, "generated_tokens": tokens, "forward_passes": forwards,
            "prompt_tokens": prompt, "computed_prompt_tokens": computed, "dedup_prompt_tokens": dedup,
            "answers": answers, "answer_ids": ids}


def test_engine_rows_ratios_costs_and_identity_by_hand():
    """vLLM rows beside ours: every figure below is worked out by hand from these runs."""
    first, second = (["a", "b"], [[1, 2], [3, 2]]), (["c", "d"], [[4, 2], [5, 2]])
    timings = [{"group_size": 2, "threads": 2, "runs": {
        "independent": [run(4.0, *first, 10, 200), run(6.0, *second, 10, 200)],
        "batch_shared": [run(2.0, *first, 5, 120), run(2.0, ["c", "x"], [[4, 2], [9, 2]], 5, 120)],
        "vllm_batch": [run(1.0, *first, 4, 100), run(2.0, *second, 4, 80)],
        # same text, other ids (a tokenization that decodes alike): text identity counts it, id identity not
        "vllm_independent": [run(3.0, *first, None, 60), run(3.0, ["c", "d"], [[4, 2], [6, 2]], None, 60)],
    }}]
    row = summarize(timings, [])["2"]
    shared, vb, vi = row["batch_shared"], row["vllm_batch"], row["vllm_independent"]
    # latency: independent (4 + 6) / 2 = 5, batch_shared 2, vllm_batch 1.5, vllm_independent 3
    assert shared["speedup_vs_independent"] == 2.5 and shared["speedup_vs_vllm_batch"] == 0.75
    assert vb["speedup_vs_vllm_batch"] == 1.0 and vb["speedup_vs_independent"] == round(5 / 1.5, 3)
    assert shared["speedup_vs_vllm_independent"] == 1.5 and vi["speedup_vs_vllm_batch"] == 0.5
    assert "speedup_vs_batch" not in shared  # no HF batch row in this run
    # generated tokens per forward, pooled: 20 / (5 + 5) and 20 / (4 + 4); not counted -> None
    assert shared["tokens_per_forward"] == 2.0 and vb["tokens_per_forward"] == 2.5
    assert vi["forward_passes"] is None and vi["tokens_per_forward"] is None
    assert (shared["computed_prompt_tokens"], vb["computed_prompt_tokens"], vi["computed_prompt_tokens"]) == \
        (120.0, 90.0, 60.0)
    assert (shared["identical_answers"], vb["identical_answers"], vi["identical_answers"]) == (3, 4, 4)
    assert (shared["identical_answer_ids"], vb["identical_answer_ids"], vi["identical_answer_ids"]) == (3, 4, 3)
    assert not shared["answers_equal_independent"] and vb["answers_equal_independent"]
    text = markdown({"2": row})
    assert "| 2 | batch_shared | 2.00 | 5.0 | - | 2.5x | - | NO | 3/4 | 0.75x | 1.50x | 5.0 | 2.0 | 120.0 / 200.0 |" \
        in text
    assert "| 2 | vllm_independent | 3.00 | 3.3 | - | 1.667x | - | yes | 4/4 | 0.50x | 1.00x | - | - | 60.0 / 200.0 |" \
        in text
    assert text.index("| 2 | batch_shared |") < text.index("| 2 | vllm_batch |") < text.index("| 2 | vllm_indep")


def _vllm_python() -> str | None:
    import os
    import sys

    from parallel_decoding.benchmarks.shared_prefix import engine_available

    for python in (os.environ.get("PARALLEL_DECODING_VLLM_PYTHON"), sys.executable):
        if python and engine_available(python, "vllm") is None:
            return python
    return None


@pytest.mark.vllm
def test_vllm_rows_decode_the_hf_prompts_to_the_same_answers(tmp_path):
    """The real path: HF worker, then vLLM (fp32, prefix caching) on its exact prompt ids, then the table.
    Greedy fp32 vLLM must give HF fp32 ``independent``'s answers token for token."""
    import json

    from parallel_decoding.benchmarks.shared_prefix import main

    python = _vllm_python()
    if python is None:
        pytest.skip("no python with vLLM (set PARALLEL_DECODING_VLLM_PYTHON)")
    assert main(["--sizes", "2", "--groups", "2", "--skip-memory", "--threads", "2", "--max-new-tokens", "16",
                 "--strategies", "independent", "batch", "--vllm-python", python, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "shared_prefix.json").read_text())
    row = result["table"]["2"]
    assert set(row) == {"independent", "batch", "vllm_batch", "vllm_independent"}
    runs = result["timings"][0]["runs"]
    for name in ("vllm_batch", "vllm_independent"):
        cell = row[name]
        assert cell["identical_answer_ids"] == cell["answers_compared"] == 4, runs[name]
        assert cell["forward_passes"] > 0 and cell["speedup_vs_vllm_batch"] is not None
        # what vLLM computed: never more than sent; one call per question re-uses the group's context
        assert all(r["computed_prompt_tokens"] <= r["prompt_tokens"] for r in runs[name])
    assert all(r["computed_prompt_tokens"] < r["prompt_tokens"] for r in runs["vllm_independent"])
    # one engine step per generated token per call at most, and at least the longest answer's length
    for r in runs["vllm_batch"]:
        assert max(map(len, r["answer_ids"])) <= r["forward_passes"] <= sum(map(len, r["answer_ids"]))
    assert result["engines"]["vllm"]["version"] and not result["engines_skipped"].get("vllm")
