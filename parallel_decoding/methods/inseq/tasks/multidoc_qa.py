"""Multi-document QA: one question over several short documents, only some of them relevant (the reference's
LongBench ``2wikimqa.jsonl`` task). Generated questions are two-hop or comparisons over invented entities, so
the answer is never in the model's memory; gold answers are exact."""

from __future__ import annotations

import random

from parallel_decoding.methods.inseq.tasks.base import TaskExample, check_count, read_jsonl_rows, require

PEOPLE_FIRST = ("Arvid", "Bettina", "Casimir", "Delphine", "Emrys", "Fiorella", "Gideon", "Hester", "Ivo", "Juno",
                "Kasimir", "Liesel", "Marius", "Noor", "Oswin", "Perpetua")
PEOPLE_LAST = ("Valdemar", "Okonjo", "Brightwater", "Castellane", "Moravec", "Thistlewood", "Ambrose", "Quennell",
               "Saltonstall", "Vireo", "Halloran", "Ekdahl")
CITIES = ("Port Alder", "Veldmark", "San Corvino", "Eastbourne Vale", "Kirrin", "Tollmouth", "Aurisburg", "Lindqvist",
          "Marrow Bay", "Oresund Falls")
NATIONALITIES = ("Norwegian", "Chilean", "Scottish", "Portuguese", "Czech", "Ghanaian", "Canadian", "Austrian")
FILM_WORDS = ("Silent", "Harbor", "Glass", "Winter", "Orchard", "Lantern", "Hollow", "Copper", "Meridian", "Tide",
              "Ember", "Quarry")
GENRES = ("drama", "comedy", "thriller", "documentary", "western", "musical")
ANSWER_FORMAT = ("You should check each document one by one (whether or not it looks relevant) and analyse whether it "
                 "tells you something about the question. Then give your final answer in the format 'Answer: your "
                 "concise answer'.")


def _person(rng: random.Random, name: str) -> dict:
    born = rng.randint(1901, 1979)
    return {"name": name, "born": born, "city": rng.choice(CITIES), "nationality": rng.choice(NATIONALITIES)}


def _person_doc(p: dict) -> tuple[str, str]:
    return p["name"], (f"{p['name']} (born {p['born']}) is a {p['nationality']} film director and screenwriter, "
                       f"born in {p['city']}. {p['name'].split()[0]} began working in theatre before turning to film.")


def _film_doc(f: dict) -> tuple[str, str]:
    return f["title"], (f"{f['title']} is a {f['year']} {f['genre']} film directed by {f['director']}. "
                        f"It was shot on location over {f['weeks']} weeks.")


def generate_multidoc_qa(count: int = 5, num_documents: int = 6, seed: int = 0) -> list[TaskExample]:
    """Deterministic examples; each draws its own people and films, asks one of three question kinds, and pads
    the relevant documents with distractor documents to ``num_documents`` (at least 4)."""
    check_count(count)
    num_documents = max(4, num_documents)
    rng = random.Random(seed)
    examples = []
    for index in range(count):
        names = rng.sample([f"{f} {l}" for f in PEOPLE_FIRST for l in PEOPLE_LAST], num_documents)
        people = [_person(rng, n) for n in names]
        while len({p["born"] for p in people[:2]}) < 2:
            people[1]["born"] = rng.randint(1901, 1979)
        titles = rng.sample([f"The {a} {b}" for a in FILM_WORDS for b in FILM_WORDS if a != b], num_documents)
        years = rng.sample(range(1950, 2021), num_documents)
        films = [{"title": t, "year": y, "genre": rng.choice(GENRES), "director": p["name"],
                  "weeks": rng.randint(3, 14)} for t, y, p in zip(titles, years, people)]
        kind = ("director_birthplace", "earlier_film", "older_director")[index % 3]
        if kind == "director_birthplace":
            question = f"Where was the director of the film {films[0]['title']} born?"
            gold, relevant = people[0]["city"], [_film_doc(films[0]), _person_doc(people[0])]
        elif kind == "earlier_film":
            question = f"Which film came out first, {films[0]['title']} or {films[1]['title']}?"
            gold = min(films[:2], key=lambda f: f["year"])["title"]
            relevant = [_film_doc(films[0]), _film_doc(films[1])]
        else:
            question = (f"Which film has the director who was born earlier, {films[0]['title']} or "
                        f"{films[1]['title']}?")
            gold = films[0]["title"] if people[0]["born"] < people[1]["born"] else films[1]["title"]
            relevant = [_film_doc(films[0]), _film_doc(films[1]), _person_doc(people[0]), _person_doc(people[1])]
        others = [_person_doc(p) for p in people[2:]] + [_film_doc(f) for f in films[2:]]
        docs = relevant + rng.sample(others, max(0, num_documents - len(relevant)))
        rng.shuffle(docs)
        context = "".join(f"Passage {i + 1}:\n{title}\n{text}\n" for i, (title, text) in enumerate(docs))
        examples.append(TaskExample(
            id=f"multidoc_qa-{seed}-{index}", task="multidoc_qa", prompt=multidoc_prompt(context, question),
            gold=(gold,), metadata={"kind": kind, "question": question, "num_documents": len(docs)}))
    return examples


def multidoc_prompt(context: str, question: str) -> str:
    """The reference's layout (context, blank lines, question, instructions) with each row's own question
    (the reference formatted every prompt with an undefined loop variable)."""
    return f"{context}\n\n\n\nQuestion: {question}\n{ANSWER_FORMAT}"


def load_multidoc_jsonl(path: str, count: int | None = None, max_context_chars: int | None = None) -> list[TaskExample]:
    """LongBench format: ``context``, ``input`` (the question), ``answers`` (list); ``_id`` when present.
    ``max_context_chars`` drops long rows (the reference dropped contexts of 8000+ tokens)."""
    examples = []
    for number, row in read_jsonl_rows(path):
        require(row, ("context", "input", "answers"), f"{path} line {number + 1}")
        if max_context_chars and len(row["context"]) > max_context_chars:
            continue
        answers = row["answers"] if isinstance(row["answers"], list) else [row["answers"]]
        examples.append(TaskExample(
            id=str(row.get("_id") or f"multidoc_qa-line{number + 1}"), task="multidoc_qa",
            prompt=multidoc_prompt(row["context"], row["input"]), gold=tuple(str(a) for a in answers),
            metadata={"question": row["input"]}))
        if count and len(examples) >= count:
            break
    return examples


def load_multidoc_qa(path: str | None = None, count: int = 5, num_documents: int = 6, seed: int = 0,
                     max_context_chars: int | None = None) -> list[TaskExample]:
    return load_multidoc_jsonl(path, count, max_context_chars) if path else generate_multidoc_qa(count, num_documents,
                                                                                                 seed)
