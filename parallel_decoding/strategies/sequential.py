"""One chat, one question per turn: the context comes with the first turn and the history grows."""

from __future__ import annotations

from parallel_decoding.backends.base import Backend
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.strategies.base import QuestionPrediction, Strategy, prediction_from_output
from parallel_decoding.prompting.prompts import sequential_system, sequential_turn, single_question_example


class SequentialStrategy(Strategy):
    def answer_group(self, group: QuestionGroup, backend: Backend) -> list[QuestionPrediction]:
        messages = [{"role": "system", "content": sequential_system(group)}, *single_question_example(group)]
        predictions, previous = [], None
        for index, question in enumerate(group.questions):
            messages.append({"role": "user", "content": sequential_turn(group, question, index == 0, previous)})
            [output] = backend.generate([backend.chat_ids(messages)])
            raw = backend.decode(output)
            messages.append({"role": "assistant", "content": raw.strip()})
            predictions.append(prediction_from_output(question.id, raw))
            previous = question
        return predictions
