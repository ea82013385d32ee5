"""BLEU-4 / ROUGE against the libraries' own values and against independent computations (NLTK, by hand)."""

import pytest
import sacrebleu
from nltk.translate.bleu_score import corpus_bleu, sentence_bleu
from rouge_score import rouge_scorer

from parallel_decoding.metrics.generation import CharacterTokenizer, bleu4, generation_scores, rouge

EN_PRED = "the patient should rest in bed and drink plenty of water for three days"
EN_REF = "the patient should rest in bed and drink a lot of water for three days"
ZH_PRED = "择期行无张力疝修补术，术前需控制咳嗽等腹压增高因素。"
ZH_REF = "择期行无张力疝修补术，术前控制咳嗽便秘等腹压增高因素。"


def test_english_bleu_is_sacrebleus_sentence_bleu():
    assert bleu4(EN_PRED, [EN_REF]) == pytest.approx(sacrebleu.sentence_bleu(EN_PRED, [EN_REF]).score / 100)
    # Every n-gram order matches here, so smoothing plays no part and NLTK's unsmoothed BLEU agrees.
    nltk_value = corpus_bleu([[EN_REF.split()]], [EN_PRED.split()])
    assert bleu4(EN_PRED, EN_REF) == pytest.approx(nltk_value, abs=1e-9)


def test_chinese_bleu_is_on_characters():
    assert bleu4(ZH_PRED, ZH_REF, "zh") == pytest.approx(
        sacrebleu.sentence_bleu(ZH_PRED, [ZH_REF], tokenize="char").score / 100)
    # Independent: NLTK over character lists (what the CMB reference did), no smoothing needed here.
    chars = lambda s: [c for c in s if not c.isspace()]  # noqa: E731
    assert bleu4(ZH_PRED, ZH_REF, "zh") == pytest.approx(sentence_bleu([chars(ZH_REF)], chars(ZH_PRED)), abs=1e-9)
    # Word-level tokenisation would see one "word" per clause and score ~0.
    assert bleu4(ZH_PRED, ZH_REF, "en") < 0.1 < bleu4(ZH_PRED, ZH_REF, "zh")


def test_english_rouge_is_rouge_scores_own():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    expected = {k: v.fmeasure for k, v in scorer.score(EN_REF, EN_PRED).items()}
    assert rouge(EN_PRED, [EN_REF]) == pytest.approx(expected)


def test_chinese_rouge_counts_characters():
    # rouge-score's default tokenizer drops non-ASCII: every Chinese answer would score 0.
    default = rouge_scorer.RougeScorer(["rouge1"]).score("右侧腹股沟斜疝", "腹股沟斜疝")["rouge1"].fmeasure
    assert default == 0.0
    # By hand: 7 reference characters, 5 predicted, all 5 shared and in order.
    # R1: P=1, R=5/7 -> F=10/12; R2: 4 of 6 reference bigrams -> F=0.8; L: LCS 5 -> F=10/12.
    scores = rouge("腹股沟斜疝", "右侧腹股沟斜疝", "zh")
    assert scores == pytest.approx({"rouge1": 10 / 12, "rouge2": 0.8, "rougeL": 10 / 12})

    class PlainCharacters:
        def tokenize(self, text):
            return [c for c in text if c.strip() and c not in "，。"]

    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=PlainCharacters())
    expected = {k: v.fmeasure for k, v in reference.score(ZH_REF, ZH_PRED).items()}
    assert rouge(ZH_PRED, ZH_REF, "zh") == pytest.approx(expected)


def test_character_tokenizer_keeps_latin_words_whole():
    assert CharacterTokenizer().tokenize("行CT检查，血压140/90。") == ["行", "ct", "检", "查", "血", "压", "140", "90"]


def test_best_reference_wins_and_empty_scores_zero():
    scores = generation_scores("右侧腹股沟斜疝", ["急性胆囊炎", "右侧腹股沟斜疝"], "zh")
    assert scores["rouge1"] == pytest.approx(1.0) and scores["bleu4"] > 0.3
    assert generation_scores("", ["anything"]) == {"bleu4": 0.0, "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
