"""A cross-row task: every question's answer is stated only in a *sibling* question's passage.

Each group is one invented person and 2-4 facts about them, one fact per question's passage. Question ``i`` asks
for the fact stated in the passage of the next question (a cyclic shift over a random order), so no row can
answer from its own prompt: answering independently is a guess among ``len(values)`` options, while a model
that reads its siblings' hidden states can copy the answer. This is the learnability check of cross-batch
mixing (``+experiment=synthetic_crossbatch``): ``crossbatch`` must beat ``baseline`` on held-out groups.

Answers are single tokens in the Qwen and SmolLM2 vocabularies (``<answer>red</answer>`` is ``<``, ``answer``,
``>``, ``red``, ...), so the decisive step is one token and a tiny model learns the task in minutes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import LoadedGroups, Question, QuestionGroup
from parallel_decoding.data.synthetic import invent_word


@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...]
    statement: str  # {s} the person, {v} the value
    question: str


ATTRIBUTES = (
    Attribute("colour", ("red", "blue", "green", "black", "white", "yellow"),
              "{s}'s favourite colour is {v}.", "What is {s}'s favourite colour?"),
    Attribute("month", ("March", "April", "May", "June", "July", "August"),
              "{s} was born in {v}.", "In which month was {s} born?"),
    Attribute("vehicle", ("bus", "car", "train", "boat", "plane", "ship"),
              "{s} travels to work by {v}.", "How does {s} travel to work?"),
    Attribute("material", ("gold", "iron", "tin", "glass", "wood", "stone"),
              "{s}'s ring is made of {v}.", "What is {s}'s ring made of?"),
)


def crossrow_group(rng: random.Random, index: int, n_questions: int) -> QuestionGroup:
    """One person, ``n_questions`` passages of one fact each; question ``i`` asks for passage ``i + 1``'s fact."""
    used: set[str] = set()
    person = f"{invent_word(rng, 2, used)} {invent_word(rng, 2, used)}"
    attributes = rng.sample(ATTRIBUTES, n_questions)
    values = [rng.choice(a.values) for a in attributes]
    contexts = tuple(a.statement.format(s=person, v=v) for a, v in zip(attributes, values))
    questions = []
    for i in range(n_questions):
        source = (i + 1) % n_questions
        questions.append(Question(
            id=f"crossrow-{index}-q{i}",
            text=attributes[source].question.format(s=person),
            answers=(values[source],),
            context_index=i,
            metadata={"attribute": attributes[source].name, "answer_in_context": source},
        ))
    return QuestionGroup(id=f"crossrow-{index}", questions=tuple(questions), contexts=contexts,
                         metadata={"source": "crossrow"})


def load_crossrow(context_count: int = 400, min_questions: int = 2, max_questions: int = 3,
                  seed: int = 0) -> LoadedGroups:
    """``context_count`` seeded groups of ``min_questions``..``max_questions`` questions (at most 4)."""
    if context_count is None or context_count <= 0:
        raise ConfigError("the cross-row task is generated: context_count must be a positive number of groups")
    if not 2 <= min_questions <= max_questions <= len(ATTRIBUTES):
        raise ConfigError(f"need 2 <= min_questions <= max_questions <= {len(ATTRIBUTES)}, "
                          f"got {min_questions}, {max_questions}")
    rng = random.Random(seed)
    return LoadedGroups(groups=[crossrow_group(rng, i, rng.randint(min_questions, max_questions))
                                for i in range(context_count)])
