"""The judge over real HTTP: valid JSON replies become scores; junk replies are asked again and then counted as
failures; dead endpoints are failures too — never an exception."""

from __future__ import annotations

from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.evaluation.judge import LLMJudge
from parallel_decoding.strategies.base import QuestionPrediction
from tests.backends.conftest import SERVED
from tests.backends.servers import FaultProxy

GROUP = QuestionGroup(id="case", questions=(Question("q1", "请给出初步诊断。", ("右侧腹股沟斜疝。",)),
                                            Question("q2", "请给出治疗原则。", ("择期手术。",))),
                      contexts=("患者，男，65岁，右侧腹股沟区可复性肿块3年。",))
PREDICTIONS = [QuestionPrediction("q1", "腹股沟斜疝", "", True), QuestionPrediction("q2", "手术", "", True)]
SCORES = '{"fluency": 5, "relevance": 4, "completeness": 3, "proficiency": 4}'


def judge(url: str, **kwargs) -> LLMJudge:
    return LLMJudge(url, SERVED, backoff_s=0.01, max_backoff_s=0.05, max_concurrency=1, **kwargs)


def test_valid_replies_become_scores_after_a_junk_reply_and_a_429(tiny_server):
    faults = [("reply", "I think it is good."), ("status", 429), ("reply", f"```json\n{SCORES}\n```"),
              ("reply", SCORES)]
    with FaultProxy(tiny_server.url, faults) as proxy:
        got = judge(proxy.url, attempts=2).judge_group(GROUP, PREDICTIONS)
    expected = {"fluency": 5, "relevance": 4, "completeness": 3, "proficiency": 4}
    assert got == {"q1": expected, "q2": expected}
    assert len(proxy.seen) == 4  # junk -> asked again (429 retried inside that request) -> scores; then q2


def test_a_model_that_never_writes_the_json_is_a_counted_failure(tiny_server):
    # The tiny random model answers gibberish: every attempt is made, then None.
    with FaultProxy(tiny_server.url) as proxy:
        got = judge(proxy.url, attempts=2, max_tokens=4).judge_group(GROUP, PREDICTIONS)
    assert got == {"q1": None, "q2": None} and len(proxy.seen) == 4


def test_a_dead_endpoint_is_a_failure_not_an_exception():
    got = judge("http://127.0.0.1:9/v1", max_retries=1, timeout_s=2).judge_group(GROUP, PREDICTIONS[:1])
    assert got == {"q1": None}
