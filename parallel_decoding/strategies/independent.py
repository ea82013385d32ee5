"""Each question alone with its context: one generate call per question. The accuracy reference."""

from __future__ import annotations

from parallel_decoding.backends.base import Backend
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.strategies.base import QuestionPrediction, Strategy, prediction_from_output
from parallel_decoding.prompting.prompts import single_question_messages


class IndependentStrategy(Strategy):
    def answer_group(self, group: QuestionGroup, backend: Backend) -> list[QuestionPrediction]:
        predictions = []
        for question in group.questions:
            [output] = backend.generate([backend.chat_ids(single_question_messages(group, question))])
            predictions.append(prediction_from_output(question.id, backend.decode(output)))
        return predictions
