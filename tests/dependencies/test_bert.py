"""BERT attention generator: the aggregation against a plain loop, the edge rule on a crafted score matrix, the
edge direction with the shipped MiniLM on a crafted dependent pair (in both orders), and a clear error for a
hub encoder that cannot be had offline."""

from __future__ import annotations

import pytest
import torch

from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.dependencies.bert import (BertAttentionGenerator, check_encoder_available, edges_from_scores,
                                                  load_encoder, pack_questions, per_token, question_attention)
from parallel_decoding.config import ModelUnavailableError

PREREQUISITE = "Who wrote the novel Dracula?"
DEPENDENT = "In which year was the author of that novel born?"


def test_question_attention_equals_the_reference_loop():
    generator = torch.Generator().manual_seed(0)
    owners = [-1, 0, 0, 0, -1, 1, 1, -1, 2, 2, 2, 2, -1]
    attention = torch.softmax(torch.randn(len(owners), len(owners), generator=generator), dim=-1)
    scores = question_attention(attention, owners, 3)
    for i in range(3):
        for j in range(3):
            rows = [t for t, o in enumerate(owners) if o == i]
            cols = [u for u, o in enumerate(owners) if o == j]
            expected = 0.0 if i == j else sum(sum(attention[t, u].item() for u in cols) for t in rows) / len(rows)
            assert scores[i, j].item() == pytest.approx(expected, abs=1e-6)


def test_edges_point_from_the_question_read_to_its_reader():
    # density[i, j]: how much Qi reads Qj per token. Q1 reads Q0 hard; Q2 reads both a little.
    density = torch.tensor([[0.0, 0.02, 0.01],
                            [0.06, 0.0, 0.01],
                            [0.02, 0.02, 0.0]])
    edges = {e.pair: e.confidence for e in edges_from_scores(density, ["a", "b", "c"], relative_threshold=1.0)}
    assert edges == pytest.approx({("a", "b"): 0.06 / 0.08, ("a", "c"): 0.02 / 0.03, ("b", "c"): 0.02 / 0.03})
    strict = edges_from_scores(density, ["a", "b", "c"], relative_threshold=1.5)  # only b's strong reading of a
    assert [e.pair for e in strict] == [("a", "b")]
    assert per_token(torch.tensor([[0.0, 0.4], [0.2, 0.0]]), [2, 4]).flatten().tolist() == pytest.approx([0, 0.1, 0.1, 0])


@pytest.fixture(scope="module")
def minilm():
    generator = BertAttentionGenerator()
    generator.prepare()
    return generator


def pair_group(first: str, second: str) -> QuestionGroup:
    return QuestionGroup("pair", (Question("first", first, ("x",), None), Question("second", second, ("y",), None)))


@pytest.mark.parametrize("order", ["prerequisite first", "dependent first"])
def test_minilm_puts_the_dependent_after_its_prerequisite_in_either_order(minilm, order):
    texts = [PREREQUISITE, DEPENDENT] if order == "prerequisite first" else [DEPENDENT, PREREQUISITE]
    group = pair_group(*texts)
    ids = {q.text: q.id for q in group.questions}
    generated = minilm.generate(group)
    assert [e.pair for e in generated.edges] == [(ids[PREREQUISITE], ids[DEPENDENT])]
    assert generated.edges[0].confidence > 0.53  # passes collab_bert's min_confidence

    # The reference's raw sum over the read question's tokens favours the longer question: in this order it
    # would make the dependent the prerequisite. Per-token normalisation is what fixes it.
    raw, _ = minilm.scores(texts)
    d, p = texts.index(DEPENDENT), texts.index(PREREQUISITE)
    if order == "dependent first":
        assert raw[d, p] < raw[p, d]


def test_minilm_attention_is_a_distribution_over_the_packed_sequence(minilm):
    tokenizer, _ = load_encoder("minilm")
    texts = [PREREQUISITE, DEPENDENT, "What is the capital of Peru?"]
    ids, owners = pack_questions(tokenizer, texts)
    assert ids[0] == tokenizer.cls_token_id and owners.count(-1) == 4 and ids[-1] == tokenizer.sep_token_id
    scores, sizes = minilm.scores(texts)
    assert sizes == [owners.count(i) for i in range(3)]
    assert torch.all(scores >= 0) and torch.all(scores.sum(dim=1) < 1) and torch.all(scores.diagonal() == 0)
    short_ids, short_owners = pack_questions(tokenizer, texts, max_question_tokens=3, max_total_tokens=8)
    assert len(short_ids) == 8 and short_owners == [-1, 0, 0, 0, -1, 1, 1, 1]


def test_an_uncached_hub_encoder_offline_is_a_clear_error(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailableError, match="encoder=minilm"):
        check_encoder_available("no-such-org/no-such-bert")
    with pytest.raises(ModelUnavailableError, match="not in the Hugging Face cache"):
        BertAttentionGenerator(encoder="no-such-org/no-such-bert")
    check_encoder_available("minilm")  # the shipped one never needs the hub
