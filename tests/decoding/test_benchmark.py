"""The benchmark's bookkeeping (no model): ratios, answer identity, the Markdown table and the plot."""

from __future__ import annotations

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
