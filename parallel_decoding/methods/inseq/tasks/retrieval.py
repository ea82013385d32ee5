"""Retrieval: find the one student, among N resumes, whose GPA lies in a range (the reference's
``logic_gpa_resume_{N}.jsonl`` task). Gold: the student's name; the other names are distractors."""

from __future__ import annotations

import random
import re

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.inseq.tasks.base import TaskExample, check_count, read_jsonl_rows, require

FIRST = ("Abigail", "Mia", "Hiroshi", "Jyoti", "Cai", "Deepika", "Rohit", "Tanya", "Jordan", "Marissa", "Isaac",
         "Emma", "Suresh", "Gabriel", "Satsuki", "Maya", "Nisha", "Elliot", "Ryohei", "Kaitlyn", "Ethan", "Lucia",
         "Omar", "Ingrid", "Kwame", "Sofia", "Mateo", "Anya", "Tomas", "Leila")
LAST = ("Clark", "Garcia", "Saito", "Rani", "Wei", "Chawla", "Bansal", "Gupta", "Bennett", "Moore", "Johnson", "Lee",
        "Yadav", "Scott", "Ikeda", "Evans", "Patel", "Morgan", "Akagi", "Woods", "Wright", "Rossi", "Haddad",
        "Larsen", "Mensah", "Novak", "Silva", "Petrova", "Kowalski", "Nasser")
SCHOOLS = ("University of Bristol", "Osaka University", "Delhi University", "UCLA", "University of Glasgow",
           "Sichuan University", "University of Denver", "Chuo University", "McGill University", "ETH Zurich")
INTERESTS = ("Art", "Cooking", "Traveling", "Robotics", "Photography", "History", "Astronomy", "Music", "Writing",
             "Gardening", "Economics", "Film", "Chess", "Hiking", "Poetry")
QUESTION = ("Question: Which student has a GPA between {low} and {high}? Please give your final answer (the student's "
            "name) in the format of \"name: {{answer}}\"")
CHECK_EVERY = "You should check every student to judge whether he or she meets the requirement in your reasoning."


def resume_line(name: str, age: int, school: str, gpa: float, interests: list[str]) -> str:
    return (f"The student named {name} is {age} years old, graduated from {school} with a GPA of {gpa:.2f}. "
            f"He/She is interested in {', '.join(interests)}.")


def generate_retrieval(count: int = 5, num_students: int = 10, seed: int = 0) -> list[TaskExample]:
    """Deterministic examples: ``num_students`` distinct students, GPAs at least 0.1 apart, and a range that
    contains exactly one of them."""
    check_count(count)
    if num_students < 2:
        raise ConfigError(f"inseq_task.loader.num_students must be >= 2, got {num_students}")
    rng = random.Random(seed)
    examples = []
    for index in range(count):
        names = rng.sample([f"{f} {l}" for f in FIRST for l in LAST], num_students)
        slots = rng.sample(range(10, 50), num_students)  # GPA = slot / 10 + jitter: distinct, >= 0.1 apart
        gpas = [round(s / 10 + rng.randint(0, 4) / 100, 2) for s in slots]
        target = rng.randrange(num_students)
        low = round(gpas[target] - rng.randint(1, 4) / 100, 2)
        high = round(gpas[target] + rng.randint(1, 4) / 100, 2)
        lines = [resume_line(n, rng.randint(18, 30), rng.choice(SCHOOLS), g, rng.sample(INTERESTS, 2))
                 for n, g in zip(names, gpas)]
        prompt = (f"Here are {num_students} students' resumes:\n\n" + "\n".join(lines) + "\n\n"
                  + QUESTION.format(low=f"{low:.2f}", high=f"{high:.2f}") + "\n" + CHECK_EVERY)
        examples.append(TaskExample(
            id=f"retrieval-{seed}-{index}", task="retrieval", prompt=prompt, gold=(names[target],),
            distractors=tuple(n for i, n in enumerate(names) if i != target),
            metadata={"gpa": gpas[target], "range": [low, high], "num_students": num_students}))
    return examples


def load_retrieval_jsonl(path: str, count: int | None = None) -> list[TaskExample]:
    """The reference format: ``prompt``, ``gold_keys`` (the name), ``gold_values`` (the GPA)."""
    examples = []
    for number, row in read_jsonl_rows(path):
        require(row, ("prompt", "gold_keys"), f"{path} line {number + 1}")
        gold = row["gold_keys"] if isinstance(row["gold_keys"], list) else [row["gold_keys"]]
        names = _names_in(row["prompt"])
        examples.append(TaskExample(
            id=f"retrieval-line{number + 1}", task="retrieval", prompt=row["prompt"] + "\n" + CHECK_EVERY,
            gold=tuple(str(g) for g in gold), distractors=tuple(n for n in names if n not in gold),
            metadata={"gold_values": row.get("gold_values")}))
        if count and len(examples) >= count:
            break
    return examples


def _names_in(prompt: str) -> list[str]:
    return re.findall(r"The student named (.+?) is \d+ years old", prompt)


def load_retrieval(path: str | None = None, count: int = 5, num_students: int = 10, seed: int = 0) -> list[TaskExample]:
    return load_retrieval_jsonl(path, count) if path else generate_retrieval(count, num_students, seed)
