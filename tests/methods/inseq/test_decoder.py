"""The three stages on a real (tiny) model, against HF ``generate`` as the independent reference: every stage-2
branch equals decoding prompt + stem + its header alone; the conclusion equals decoding the assembled text; a
model that writes no outline gets exactly its normal decoding."""

from __future__ import annotations

import pytest

from parallel_decoding.decoding import SamplingSettings
from parallel_decoding.methods.inseq import InSequenceDecoder, InSequenceSettings
from parallel_decoding.methods.inseq.outline import BRANCH, END
from parallel_decoding.methods.inseq.prompts import with_format_instruction
from parallel_decoding.models import build_tiny_qwen3
from tests.decoding.conftest import sharpen
from tests.decoding.reference import hf_greedy


@pytest.fixture(scope="module")
def model_and_tokenizer():
    bundle = build_tiny_qwen3()
    return sharpen(bundle.model), bundle.tokenizer, bundle.stop_token_ids


def prompt(tokenizer, text="Compare the three offers and pick one."):
    encoded = tokenizer.apply_chat_template([{"role": "user", "content": with_format_instruction(text)}],
                                            add_generation_prompt=True, tokenize=True, enable_thinking=False)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def test_stages_equal_decoding_each_piece_alone(model_and_tokenizer):
    model, tokenizer, stop_ids = model_and_tokenizer
    settings = InSequenceSettings(max_new_tokens=40, branch_max_new_tokens=8, conclusion_max_new_tokens=6,
                                  max_branches=3, max_title_tokens=3, force_outline=True)
    decoder = InSequenceDecoder(model, tokenizer, stop_ids, SamplingSettings(), settings)
    ids = prompt(tokenizer)
    result = decoder.parallel(ids)
    trace = result.trace
    assert result.mode == "parallel" and 1 <= result.branch_count <= 3
    assert result.stage1_text.startswith(BRANCH) and result.stage1_text.count("......") == result.branch_count
    for header, output in zip(trace.branch_prompt_ids, trace.branch_output_ids):
        context = ids + trace.stem_ids + header
        assert output == hf_greedy(model, context, 8, stop_ids, [BRANCH], tokenizer)
    assert trace.conclusion_ids == hf_greedy(model, trace.conclusion_context_ids, 6, stop_ids)
    assert tokenizer.decode(trace.conclusion_context_ids).endswith(BRANCH + END)
    assert result.stage2_tokens == sum(len(o) for o in trace.branch_output_ids)
    assert result.stage2_tokens_per_s > 0 and result.time_s >= sum(result.stage_times_s.values()) * 0.99
    assert result.text.startswith(result.stem) and result.conclusion in result.text


def test_a_model_without_outline_markers_gets_its_normal_decoding(model_and_tokenizer):
    model, tokenizer, stop_ids = model_and_tokenizer
    settings = InSequenceSettings(max_new_tokens=12)
    decoder = InSequenceDecoder(model, tokenizer, stop_ids, SamplingSettings(), settings)
    ids = prompt(tokenizer, "Plan a trip.")
    parallel, normal = decoder.parallel(ids), decoder.normal(ids)
    assert parallel.mode == "fallback" and parallel.branch_count == 0
    assert parallel.text == normal.text
    assert normal.text == tokenizer.decode(hf_greedy(model, ids, 12, stop_ids), skip_special_tokens=True)
