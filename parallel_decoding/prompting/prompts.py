"""Every prompt a strategy sends is written here, once, so strategies differ in *how* they decode, not in
what they ask. Answers are requested inside ``<answer></answer>`` tags; extraction is in ``extraction.py``.

Each chat opens with one worked example (a user turn and the assistant's tagged answer): small instruct models
ignore a format described only in words (SmolLM2-135M on SQuAD: 0/14 tagged answers without the example,
13/14 with it), and the example is part of the shared prefix, so it costs nothing per question once cached."""

from __future__ import annotations

from parallel_decoding.data.schema import Question, QuestionGroup

ANSWER_FORMAT = "Reply with only the answer wrapped in <answer></answer>."
EXAMPLE_PASSAGE = "The Eiffel Tower was completed in 1889 and stands in Paris, France."
EXAMPLE_QUESTIONS = ("In which city is the Eiffel Tower?", "When was the Eiffel Tower completed?")
EXAMPLE_ANSWERS = ("Paris", "1889")
SYSTEM_EXTRACTIVE = f"Answer the question with a short phrase copied from the passage. {ANSWER_FORMAT}"
SYSTEM_CLOSED_BOOK = f"Answer the question with a short phrase. {ANSWER_FORMAT}"
SYSTEM_ALL_IN_ONE = (
    "Answer every question with a short phrase{source}. Write one line per question, in the order given, "
    "in the form `Q1: <answer>your answer</answer>` using each question's label, and nothing else."
)
SYSTEM_SEQUENTIAL = (
    "You will be asked several questions, one per turn{source}. Answer each with a short phrase. "
    f"{ANSWER_FORMAT}"
)


def system_prompt(group: QuestionGroup) -> str:
    return SYSTEM_CLOSED_BOOK if not group.contexts else SYSTEM_EXTRACTIVE


def question_block(group: QuestionGroup, question: Question, known_answers: str = "") -> str:
    """User turn for one question: its passage (if any), previously known answers (if any), the question."""
    context = group.context_of(question)
    parts = [f"Passage:\n{context}"] if context else []
    if known_answers:
        parts.append(known_answers)
    parts.append(f"Question: {question.text}")
    return "\n\n".join(parts)


def _example_turns(closed_book: bool, questions: str, answers: str) -> list[dict]:
    passage = "" if closed_book else f"Passage:\n{EXAMPLE_PASSAGE}\n\n"
    return [{"role": "user", "content": passage + questions}, {"role": "assistant", "content": answers}]


def single_question_example(group: QuestionGroup) -> list[dict]:
    return _example_turns(not group.contexts, f"Question: {EXAMPLE_QUESTIONS[0]}",
                          f"<answer>{EXAMPLE_ANSWERS[0]}</answer>")


def single_question_messages(group: QuestionGroup, question: Question, known_answers: str = "") -> list[dict]:
    return [
        {"role": "system", "content": system_prompt(group)},
        *single_question_example(group),
        {"role": "user", "content": question_block(group, question, known_answers)},
    ]


def all_in_one_labels(group: QuestionGroup) -> list[str]:
    """Short labels the model answers by (``Q1``..``Qn``): dataset ids are long hashes the model would garble."""
    return [f"Q{i + 1}" for i in range(len(group.questions))]


def all_in_one_messages(group: QuestionGroup) -> list[dict]:
    labels = all_in_one_labels(group)
    shared = group.shared_context
    if shared is not None:
        questions = "\n".join(f"{label}: {q.text}" for label, q in zip(labels, group.questions))
        user = f"Passage:\n{shared}\n\nQuestions:\n{questions}"
    else:
        blocks = []
        for label, q in zip(labels, group.questions):
            context = group.context_of(q)
            blocks.append((f"Passage ({label}):\n{context}\n" if context else "") + f"Question ({label}): {q.text}")
        user = "\n\n".join(blocks)
    source = " copied from the passage" if group.contexts else ""
    example = _example_turns(
        not group.contexts,
        "Questions:\n" + "\n".join(f"Q{i + 1}: {q}" for i, q in enumerate(EXAMPLE_QUESTIONS)),
        "\n".join(f"Q{i + 1}: <answer>{a}</answer>" for i, a in enumerate(EXAMPLE_ANSWERS)),
    )
    return [{"role": "system", "content": SYSTEM_ALL_IN_ONE.format(source=source)}, *example,
            {"role": "user", "content": user}]


def sequential_turn(group: QuestionGroup, question: Question, first: bool, previous: Question | None) -> str:
    """The context travels only with the first turn, or again when a question reads a different one."""
    context = group.context_of(question)
    needs_context = context and (first or previous is None or previous.context_index != question.context_index)
    return (f"Passage:\n{context}\n\n" if needs_context else "") + f"Question: {question.text}"


def sequential_system(group: QuestionGroup) -> str:
    return SYSTEM_SEQUENTIAL.format(source=" about the passage" if group.contexts else "")
