"""The speed stage's question groups: SQuAD's shapes without SQuAD's text.

The GPU machine has no ``../shared`` (and the project keeps no copy of SQuAD), so ``data/squad_lengths.json``
holds only token counts (Qwen3 tokenizer, ``tiny_qwen3``'s) and ids of the groups the shared-prefix benchmark
draws (``load_squad(..., min_questions=8, max_questions=8, seed=13)``, the first 8 questions of each): the
passage's tokens, each question's tokens, each single-question chat prompt's tokens and their shared prefix.
``synthetic_groups`` rebuilds groups of the same lengths from seeded common words, so a random-weight model
sees the prompt and prefix lengths the benchmark measures on real data (what decoding cost depends on).

    python -m parallel_decoding.benchmarks.gpu.workload --write   # regenerate from ../shared (tested equal)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

from parallel_decoding.data.loading import resolve_data_path
from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.data.squad import load_squad
from parallel_decoding.decoding import split_shared_prefix
from parallel_decoding.models.tiny import load_qwen_tokenizer
from parallel_decoding.prompting.chat import chat_prompt_ids
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.utils.cli import exit_on_user_error

LENGTHS_FILE = Path(__file__).parent / "data" / "squad_lengths.json"
SQUAD = "../shared/data/squad/dev-v1.1-half-a.json"
log = logging.getLogger(__name__)
GROUPS, GROUP_SIZE, SEED = 6, 8, 13

WORDS = ("the of and river city people north south water first after during between century government "
         "history small large early later many other several state world church school music power army "
         "king queen island road market forest field village region border trade bridge tower garden family "
         "language culture system period general public summer winter station valley empire union council "
         "college museum battle harbor castle mountain coast temple lake desert plain street house library "
         "ship train farm company country nation capital center building design energy science nature").split()
STARTERS = "what who when where which how why whose whom does did is was are can were".split()


def chat_ids(tokenizer, messages: list[dict]) -> list[int]:
    """``HFBackend.chat_ids`` without a model: the template's prompt, thinking off."""
    return chat_prompt_ids(tokenizer, messages, enable_thinking=False)


def group_lengths(group: QuestionGroup, tokenizer) -> dict[str, Any]:
    prompts = [chat_ids(tokenizer, single_question_messages(group, q)) for q in group.questions]
    prefix, _ = split_shared_prefix(prompts)
    return {"id": group.id, "context_tokens": len(tokenizer.encode(group.contexts[0])),
            "questions": [{"id": q.id, "tokens": len(tokenizer.encode(q.text))} for q in group.questions],
            "prompt_tokens": [len(p) for p in prompts], "shared_prefix_tokens": len(prefix)}


def squad_lengths(path: str = SQUAD, groups: int = GROUPS, group_size: int = GROUP_SIZE, seed: int = SEED,
                  tokenizer=None) -> dict[str, Any]:
    """The embedded file's content, computed from the SQuAD file."""
    tokenizer = tokenizer or _tokenizer()
    loaded = load_squad(path=path, context_count=groups, min_questions=group_size, max_questions=group_size,
                        seed=seed)
    return {"source": "SQuAD v1.1 dev half A (../shared/data/squad/dev-v1.1-half-a.json, CC BY-SA 4.0): token "
                      "counts and ids only", "selection": f"load_squad(context_count={groups}, min_questions="
                      f"{group_size}, max_questions={group_size}, seed={seed})",
            "tokenizer": "Qwen3 (qwen-tokenizer, tiny_qwen3's), single-question chat prompts, thinking off",
            "groups": [group_lengths(g, tokenizer) for g in loaded.groups]}


def load_lengths(path: Path = LENGTHS_FILE) -> dict[str, Any]:
    return json.loads(path.read_text())


def _tokenizer():
    return load_qwen_tokenizer(os.path.expanduser("~/.cache/parallel_decoding/models"))


def _text(tokenizer, rng: random.Random, target: int, first: str | None = None, end: str = ".") -> str:
    """Seeded common words (plus ``end``) that tokenize to exactly ``target`` tokens."""
    words = [first] if first else []
    count = max(1, target - 1)
    for _ in range(50):
        while len(words) < count:
            words.append(rng.choice(WORDS))
        text = " ".join(words[:count]) + end
        text = text[0].upper() + text[1:]
        got = len(tokenizer.encode(text))
        if got == target:
            return text
        count = max(1, count + target - got)
    raise ValueError(f"could not write a text of {target} tokens")


def synthetic_groups(tokenizer, lengths: dict[str, Any] | None = None, seed: int = 0) -> list[QuestionGroup]:
    """Groups whose passage and questions have the embedded token counts (distinct first words, so the shared
    prefix ends where the questions start, as in SQuAD)."""
    lengths = lengths or load_lengths()
    rng = random.Random(seed)
    groups = []
    for spec in lengths["groups"]:
        starters = rng.sample(STARTERS, len(spec["questions"]))
        context = _text(tokenizer, rng, spec["context_tokens"])
        questions = tuple(Question(id=q["id"], text=_text(tokenizer, rng, q["tokens"], first=s, end="?"),
                                   answers=("unknown",))
                          for q, s in zip(spec["questions"], starters))
        groups.append(QuestionGroup(id=spec["id"], questions=questions, contexts=(context,)))
    return groups


@exit_on_user_error(log)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate data/squad_lengths.json from the shared SQuAD file.")
    parser.add_argument("--squad", default=SQUAD)
    parser.add_argument("--write", action="store_true", help=f"write {LENGTHS_FILE}")
    args = parser.parse_args(argv)

    data = squad_lengths(str(resolve_data_path(args.squad)))
    text = json.dumps(data, indent=1) + "\n"
    if args.write:
        LENGTHS_FILE.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
