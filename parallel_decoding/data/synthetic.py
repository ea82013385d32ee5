"""Invented reading-comprehension groups with known dependencies, for unit tests and learning checks.

Each group is a small made-up world (people, companies, towns with invented names) rendered as a paragraph of
facts. Questions are extractive with short, unique answers. A *dependent* question names its subject only
through another question's answer ("the company founded by Vorlan Tess"), so the gold edge is real: a model
must resolve the prerequisite first. No pretrained model has seen these facts, so any gain is learned.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import LoadedGroups, Question, QuestionGroup

SYLLABLES = (
    "vor lan tess quil mar dun kir bal ost ren sa li tho bri gal wen fen ro zu mik "
    "dal nor pel tav ur es ka lo min jor hal vin sel bra tor cas ul den fa rik"
).split()
COMPANY_SUFFIXES = ("mark", "works", "tek", "corp", "ware", "forge")
TOWN_SUFFIXES = ("mere", "ford", "holt", "wick", "by", "stead", "ton")
COLOURS = ("teal", "amber", "crimson", "violet", "ochre", "indigo", "scarlet", "olive", "maroon", "cobalt")
PETS = ("cat", "dog", "parrot", "horse", "goat", "tortoise")


@dataclass(frozen=True)
class Relation:
    """A functional fact type: how it reads in the context, how it is asked, how its object is referred to."""

    name: str
    subject_kind: str  # person | company | town
    object_kind: str  # person | company | town | value
    sentences: tuple[str, ...]  # {s} subject, {o} object, {pet} the pet species
    question: str  # {s} is the subject's name or a description that needs another answer
    description: str = ""  # noun phrase for the object, given the subject; empty when the object is a value


RELATIONS = {
    r.name: r
    for r in (
        Relation("founded", "person", "company", ("{s} founded {o}.", "{o} was founded by {s}."),
                 "Which company did {s} found?", "the company founded by {s}"),
        Relation("established", "company", "value", ("{s} was established in {o}.", "{s} opened its doors in {o}."),
                 "In which year was {s} established?"),
        Relation("headquarters", "company", "town",
                 ("{s} is headquartered in {o}.", "The head office of {s} is in {o}."),
                 "In which town is {s} headquartered?", "the town where {s} is headquartered"),
        Relation("employees", "company", "value", ("{s} employs {o} people.", "{s} has a staff of {o}."),
                 "How many people does {s} employ?"),
        Relation("born", "person", "town", ("{s} was born in {o}.", "{s} grew up in {o}, where they were born."),
                 "In which town was {s} born?", "the town where {s} was born"),
        Relation("colour", "person", "value", ("{s} likes the colour {o} best.", "The favourite colour of {s} is {o}."),
                 "What is the favourite colour of {s}?"),
        Relation("pet", "person", "value", ("{s} owns a {pet} named {o}.", "{s} has a {pet} called {o}."),
                 "What is the name of the {pet} owned by {s}?"),
        Relation("population", "town", "value", ("{s} has {o} residents.", "The population of {s} is {o}."),
                 "How many residents does {s} have?"),
        Relation("mayor", "town", "person", ("The mayor of {s} is {o}.", "{o} serves as the mayor of {s}."),
                 "Who is the mayor of {s}?", "the mayor of {s}"),
    )
}


@dataclass(frozen=True)
class Fact:
    relation: str
    subject: str
    object: str
    pet: str = ""  # the species, only for the pet relation (it appears in both sentence and question)


@dataclass(frozen=True)
class DraftQuestion:
    """A question before ids: one fact, or a chain whose subject is described through a prerequisite fact."""

    text: str
    answer: str
    facts: tuple[Fact, ...]
    prerequisite: Fact | None = None  # the fact whose question must be answered first

    @property
    def asks(self) -> Fact:
        return self.facts[-1]


def load_synthetic(
    context_count: int = 20,
    min_questions: int = 3,
    max_questions: int = 8,
    seed: int = 0,
    dependency_fraction: float = 0.3,
) -> LoadedGroups:
    """``context_count`` groups, each of a seeded size in [min_questions, max_questions]."""
    if context_count is None or context_count <= 0:
        raise ConfigError("synthetic data is generated, so context_count must be a positive number of groups")
    if not 1 <= min_questions <= max_questions:
        raise ConfigError(f"need 1 <= min_questions <= max_questions, got {min_questions}, {max_questions}")
    rng = random.Random(seed)
    groups = [
        generate_synthetic_group(
            rng, index, rng.randint(min_questions, max_questions), dependency_fraction=dependency_fraction
        )
        for index in range(context_count)
    ]
    return LoadedGroups(groups=groups)


def generate_synthetic_group(
    rng: random.Random,
    group_index: int,
    n_questions: int,
    *,
    dependency_fraction: float = 0.3,
    distractor_facts: int = 2,
) -> QuestionGroup:
    """One world, its context paragraph and ``n_questions`` questions, about ``dependency_fraction`` dependent."""
    facts = invent_world(rng)
    drafts = choose_questions(rng, facts, n_questions, dependency_fraction)
    rng.shuffle(drafts)
    ordered = prerequisites_first(drafts)

    ids = {draft: f"synthetic-{group_index}-q{i}" for i, draft in enumerate(ordered)}
    id_of_fact = {draft.asks: ids[draft] for draft in ordered if draft.prerequisite is None}
    edges = tuple((id_of_fact[d.prerequisite], ids[d]) for d in ordered if d.prerequisite is not None)

    needed = list(dict.fromkeys(fact for draft in ordered for fact in draft.facts))
    others = [fact for fact in facts if fact not in needed]
    shown = needed + rng.sample(others, min(distractor_facts, len(others)))
    rng.shuffle(shown)
    context = " ".join(rng.choice(RELATIONS[f.relation].sentences).format(s=f.subject, o=f.object, pet=f.pet)
                       for f in shown)

    questions = tuple(
        Question(
            id=ids[draft],
            text=draft.text,
            answers=(draft.answer,),
            context_index=0,
            metadata={"relation": draft.asks.relation, "hops": len(draft.facts)},
        )
        for draft in ordered
    )
    return QuestionGroup(
        id=f"synthetic-{group_index}",
        questions=questions,
        contexts=(context,),
        dependencies=edges,
        metadata={"source": "synthetic"},
    )


def invent_world(rng: random.Random) -> list[Fact]:
    """Four people, two companies, three towns; every value unique within the world so answers are unambiguous."""
    used: set[str] = set()
    people = [f"{invent_word(rng, 2, used)} {invent_word(rng, rng.randint(1, 2), used)}" for _ in range(4)]
    companies = [invent_word(rng, rng.randint(1, 2), used, rng.choice(COMPANY_SUFFIXES)) for _ in range(2)]
    towns = [invent_word(rng, rng.randint(1, 2), used, rng.choice(TOWN_SUFFIXES)) for _ in range(3)]
    years = rng.sample(range(1820, 1991), 2)
    staff = rng.sample(range(40, 990), 2)
    populations = rng.sample(range(1200, 98000), 3)
    colours = rng.sample(COLOURS, 4)
    founders = rng.sample(people, 2)
    mayors = rng.sample(people, 3)

    facts = [Fact("founded", founder, company) for founder, company in zip(founders, companies)]
    for company, year, size, town in zip(companies, years, staff, rng.sample(towns, 2)):
        facts += [
            Fact("established", company, str(year)),
            Fact("employees", company, str(size)),
            Fact("headquarters", company, town),
        ]
    for person, colour in zip(people, colours):
        facts += [
            Fact("born", person, rng.choice(towns)),
            Fact("colour", person, colour),
            Fact("pet", person, invent_word(rng, rng.randint(1, 2), used), pet=rng.choice(PETS)),
        ]
    for town, population, mayor in zip(towns, populations, mayors):
        facts += [Fact("population", town, f"{population:,}"), Fact("mayor", town, mayor)]
    return facts


def invent_word(rng: random.Random, syllables: int, used: set[str], suffix: str = "") -> str:
    """A capitalised made-up word not used before in this world (so no answer is ambiguous)."""
    while True:
        joined = "".join(rng.choice(SYLLABLES) for _ in range(syllables)) + suffix
        word = re.sub(r"(.)\1\1+", r"\1\1", joined).capitalize()  # "tess" + "sa" reads "Tessa", not "Tesssa"
        if word not in used and not any(word in other or other in word for other in used):
            used.add(word)
            return word


def choose_questions(
    rng: random.Random, facts: list[Fact], n_questions: int, dependency_fraction: float
) -> list[DraftQuestion]:
    """Pick dependent (two-hop) questions with their prerequisites first, then fill with direct questions.

    A fact asked through a chain is never also asked directly, and no question names a chain's answer: either
    would hand the dependent question's answer over without resolving the dependency.
    """
    direct = {fact: direct_question(fact) for fact in facts}
    chains = [
        chain_question(first, second)
        for first in facts
        if RELATIONS[first.relation].description
        for second in facts
        if second.subject == first.object
    ]
    chosen: list[DraftQuestion] = []
    asked_by_chain: set[Fact] = set()
    chain_answers: set[str] = set()
    target_dependents = round(dependency_fraction * n_questions)
    for chain in rng.sample(chains, len(chains)):
        if target_dependents <= 0:
            break
        prerequisite = direct[chain.prerequisite]
        added = [q for q in (prerequisite, chain) if q not in chosen]
        if (
            len(chosen) + len(added) > n_questions
            or chain.asks in asked_by_chain
            or prerequisite.asks in asked_by_chain
            or direct[chain.asks] in chosen
            or any(named_entity(q) == chain.answer for q in chosen + added)
            or any(named_entity(q) in chain_answers for q in added)
        ):
            continue
        chosen += added
        asked_by_chain.add(chain.asks)
        chain_answers.add(chain.answer)
        target_dependents -= 1

    fillers = [
        q
        for q in direct.values()
        if q not in chosen and q.asks not in asked_by_chain and named_entity(q) not in chain_answers
    ]
    missing = n_questions - len(chosen)
    if missing > len(fillers):
        raise ConfigError(f"a synthetic world holds at most {len(chosen) + len(fillers)} questions, not {n_questions}")
    return chosen + rng.sample(fillers, missing)


def named_entity(question: DraftQuestion) -> str:
    """The one entity a question's text names (a chain names only its prerequisite's subject)."""
    return question.facts[0].subject


def direct_question(fact: Fact) -> DraftQuestion:
    text = RELATIONS[fact.relation].question.format(s=fact.subject, pet=fact.pet)
    return DraftQuestion(text=text, answer=fact.object, facts=(fact,))


def chain_question(first: Fact, second: Fact) -> DraftQuestion:
    """Ask ``second`` about the object of ``first`` without naming it: "the mayor of Dunmere"."""
    description = RELATIONS[first.relation].description.format(s=first.subject)
    text = RELATIONS[second.relation].question.format(s=description, pet=second.pet)
    text = text[0].upper() + text[1:]
    return DraftQuestion(text=text, answer=second.object, facts=(first, second), prerequisite=first)


def prerequisites_first(drafts: list[DraftQuestion]) -> list[DraftQuestion]:
    """Keep the drawn order but move each prerequisite before its first dependent (a natural reading order)."""
    ordered: list[DraftQuestion] = []
    by_fact = {d.asks: d for d in drafts if d.prerequisite is None}
    for draft in drafts:
        if draft.prerequisite is not None and by_fact[draft.prerequisite] not in ordered:
            ordered.append(by_fact[draft.prerequisite])
        if draft not in ordered:
            ordered.append(draft)
    return ordered
