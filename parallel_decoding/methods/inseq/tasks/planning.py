"""Planning: a task whose plan has independent parts (the reference's ``industry_tasks.jsonl``). No gold answer:
reported are branch counts, lengths and speed; a reference answer, when the file has one, is kept as metadata."""

from __future__ import annotations

import random

from parallel_decoding.methods.inseq.tasks.base import TaskExample, check_count, read_jsonl_rows, require

SUBJECTS = ("opening a community bicycle-repair workshop", "launching a small online bookshop",
            "organising a three-day regional science fair", "moving a family bakery to a larger building",
            "starting a weekly farmers' market in a town square", "running a city-wide recycling campaign",
            "setting up a volunteer tutoring programme", "converting an old warehouse into artist studios")
ASPECTS = ("budget and funding", "location and logistics", "staffing and volunteers", "marketing and outreach",
           "legal permits and insurance", "schedule and milestones", "risks and contingencies",
           "equipment and suppliers", "measuring success")


def generate_planning(count: int = 5, num_aspects: int = 4, seed: int = 0) -> list[TaskExample]:
    check_count(count)
    rng = random.Random(seed)
    examples = []
    for index in range(count):
        subject = SUBJECTS[(seed + index) % len(SUBJECTS)]
        aspects = rng.sample(ASPECTS, max(2, min(num_aspects, len(ASPECTS))))
        listed = "; ".join(f"{i + 1}. {a}" for i, a in enumerate(aspects))
        prompt = (f"Make a plan for {subject}. Analyse each of these parts on its own, independently of the others: "
                  f"{listed}. For each part describe the current situation, the main problem and what to do. "
                  f"Finally combine the parts into one overall recommendation.")
        examples.append(TaskExample(id=f"planning-{seed}-{index}", task="planning", prompt=prompt,
                                    metadata={"aspects": aspects, "subject": subject}))
    return examples


def language_of(text: str) -> str:
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return "zh" if cjk > 0.3 * max(1, len(text.replace(" ", ""))) else "en"


def load_planning_jsonl(path: str, count: int | None = None) -> list[TaskExample]:
    """The reference format: ``task`` and optionally ``answer`` (a reference plan, not a gold answer)."""
    examples = []
    for number, row in read_jsonl_rows(path):
        require(row, ("task",), f"{path} line {number + 1}")
        language = language_of(row["task"])
        prompt = ("任务：" if language == "zh" else "Task: ") + row["task"]
        examples.append(TaskExample(id=f"planning-line{number + 1}", task="planning", prompt=prompt,
                                    language=language, metadata={"reference_answer": row.get("answer")}))
        if count and len(examples) >= count:
            break
    return examples


def load_planning(path: str | None = None, count: int = 5, num_aspects: int = 4, seed: int = 0) -> list[TaskExample]:
    return load_planning_jsonl(path, count) if path else generate_planning(count, num_aspects, seed)
