"""Stage 1: the outline grammar of yuyijiong/parallel-decoding-in-one-sequence (arXiv 2503.20533), with its bugs
fixed; stage 1 survives a missing marker."""

from __future__ import annotations

import pytest
import torch

from parallel_decoding.methods.inseq.outline import (BranchStartGuard, OutlineConstraint, parse_outline,
                                                     token_classes)


@pytest.fixture(scope="module")
def tokenizer(tiny_bundle):
    return tiny_bundle.tokenizer


def ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def step(constraint, generated, vocab):
    """One call with flat logits; returns (forced token or None, the output logits)."""
    out = constraint(0, generated, torch.zeros(vocab))
    finite = torch.isfinite(out)
    return (int(finite.nonzero()[0]) if int(finite.sum()) == 1 else None), out


def test_parse_outline():
    out = parse_outline("Let us check: each one.\n####Alice:......\n\n#### Bob :......\n\n####%%%%So Alice.")
    assert out.stem == "Let us check: each one.\n" and out.titles == ["Alice", "Bob"] and out.closed
    assert out.headers == ["####Alice:", "#### Bob :"]
    assert parse_outline("No outline at all: just an answer.").titles == []
    unfinished = parse_outline("####One:......\n\n####Tw")
    assert unfinished.titles == ["One"] and not unfinished.closed


def test_a_colon_in_the_stem_is_left_alone(tokenizer):
    constraint = OutlineConstraint(tokenizer, stop_token_ids=[1])
    forced, out = step(constraint, ids(tokenizer, "Here is my plan: first"), 151936)
    assert forced is None and torch.isfinite(out).all()


def test_a_title_colon_forces_the_placeholder_then_a_new_step(tokenizer):
    constraint = OutlineConstraint(tokenizer, stop_token_ids=[151645])
    generated = ids(tokenizer, "Plan:\n####Budget:")
    produced = []
    for _ in range(len(ids(tokenizer, "......\n\n####"))):
        forced, _ = step(constraint, generated + produced, 151936)
        produced.append(forced)
    assert tokenizer.decode(produced) == "......\n\n####"
    forced, out = step(constraint, generated + produced, 151936)  # a new title: no #, no newline, no stop token
    classes = token_classes(tokenizer, 151936)
    assert forced is None and torch.isinf(out[classes.hash]).all() and torch.isinf(out[classes.newline]).all()
    assert torch.isinf(out[151645])


def test_branch_and_title_limits(tokenizer):
    constraint = OutlineConstraint(tokenizer, stop_token_ids=[], max_branches=2, max_title_tokens=3)
    two = ids(tokenizer, "####A:......\n\n####B:......\n\n####")
    constraint.items_closed = 2
    forced, _ = step(constraint, two, 151936)
    assert tokenizer.decode([forced]) == "%%%%" or tokenizer.decode([forced]) == "%"
    long_title = OutlineConstraint(tokenizer, stop_token_ids=[], max_title_tokens=3)
    head = ids(tokenizer, "####")
    step(long_title, head, 151936)  # the title starts here
    forced, _ = step(long_title, head + ids(tokenizer, " one two three"), 151936)
    assert tokenizer.decode([forced]) == ":"


def test_the_end_marker_is_completed_and_the_outline_can_be_forced_open(tokenizer):
    constraint = OutlineConstraint(tokenizer, stop_token_ids=[])
    generated = ids(tokenizer, "####A:......\n\n####%")
    forced, _ = step(constraint, generated, 151936)
    assert tokenizer.decode(generated + [forced]).endswith("####%%%%")
    opened = OutlineConstraint(tokenizer, stop_token_ids=[], force_outline=True)
    forced, _ = step(opened, [], 151936)
    assert tokenizer.decode([forced]) == "####"


def test_branches_may_not_open_with_the_placeholder(tokenizer):
    guard = BranchStartGuard(tokenizer)
    dots = ids(tokenizer, "......")[0]
    assert torch.isinf(guard(0, [], torch.zeros(151936))[dots])
    assert torch.isfinite(guard(0, [5], torch.zeros(151936))[dots])
