"""Reasoning blocks removed before an answer is read: the rule answer extraction uses, and the multiple-choice
metric's, which also counts text between complete blocks as thinking."""

from __future__ import annotations

import pytest

from parallel_decoding.prompting.thinking import strip_thinking


@pytest.mark.parametrize(
    ("raw", "expected", "mc_expected"),
    [
        ("<think>hmm</think>Paris", "Paris", "Paris"),
        ("<THINK>a\nb</THINK>x<think>c</think>y", "xy", "y"),
        ("A <think>no, B</think> C", "A  C", " C"),
        ("reasoning from a template-opened block</think>\nParis", "\nParis", "\nParis"),
        ("pre</think>mid<thinking>b</thinking>post", "midpost", "post"),
        ("Paris\n<think>ran out of tokens", "Paris\n", "Paris\n"),
        ("<think>a</think> B <Thinking >unclosed", " B ", " B "),
        ("no reasoning at all", "no reasoning at all", "no reasoning at all"),
        ("<think>only thoughts", "", ""),
    ],
)
def test_strip_thinking(raw: str, expected: str, mc_expected: str) -> None:
    assert strip_thinking(raw) == expected
    assert strip_thinking(raw, keep_between_blocks=False) == mc_expected


def test_without_blocks_both_rules_agree_and_leave_no_tag() -> None:
    for raw in ["x</think>y<think>z", "</thinking>", "a<think>b</think>c</think>d<think>e"]:
        once = strip_thinking(raw)
        assert "think" not in once.lower() and strip_thinking(once, keep_between_blocks=False) == once
