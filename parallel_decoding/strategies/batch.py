"""Each question its own prompt (context repeated), decoded together in left-padded batches."""

from __future__ import annotations

from parallel_decoding.backends.base import Backend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.strategies.base import QuestionPrediction, Strategy, prediction_from_output
from parallel_decoding.prompting.prompts import single_question_messages


class BatchStrategy(Strategy):
    def __init__(self, name: str, batch_size: int = 8) -> None:
        super().__init__(name)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def answer_group(self, group: QuestionGroup, backend: Backend) -> list[QuestionPrediction]:
        prompts = [backend.chat_ids(single_question_messages(group, q)) for q in group.questions]
        outputs = backend.generate(prompts, batch_size=self.batch_size)
        return [prediction_from_output(q.id, backend.decode(o)) for q, o in zip(group.questions, outputs)]
