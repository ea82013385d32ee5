"""One prompt holding every question; the model answers each on a line tagged with its label.

The answer budget scales with the group (``tokens_per_question`` x questions). A question the model leaves
unanswered is scored as wrong and counted as invalid (``answered=False``)."""

from __future__ import annotations

from parallel_decoding.backends.base import Backend
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.strategies.base import QuestionPrediction, Strategy
from parallel_decoding.prompting.extraction import extract_tagged_answers
from parallel_decoding.prompting.prompts import all_in_one_labels, all_in_one_messages


class AllInOneStrategy(Strategy):
    def __init__(self, name: str, tokens_per_question: int | None = None) -> None:
        super().__init__(name)
        self.tokens_per_question = tokens_per_question

    def answer_group(self, group: QuestionGroup, backend: Backend) -> list[QuestionPrediction]:
        labels = all_in_one_labels(group)
        per_question = self.tokens_per_question or backend.settings.max_new_tokens
        [output] = backend.generate([backend.chat_ids(all_in_one_messages(group))],
                                    max_new_tokens=per_question * len(labels) + 4 * len(labels))
        raw = backend.decode(output)
        answers = extract_tagged_answers(raw, labels)
        predictions = []
        for label, question in zip(labels, group.questions):
            found = answers.get(label)
            if found is None:
                predictions.append(QuestionPrediction(question.id, "", raw, format_valid=False, answered=False))
            else:
                predictions.append(QuestionPrediction(question.id, found.text, raw, found.format_valid))
        return predictions
