"""Deterministic synthetic data in the canonical row schemas, each task with a learnable rule.

Used for smoke tests and pipeline checks without the real data. Every task has a simple rule
written in plain common English words (they tokenise into real WordPiece units), with balanced
labels; ``RULES`` states each rule. Examples stay under 60 words.

Determinism: rows depend only on ``(task, split, seed)`` through a SHA-256-derived seed (never
Python's salted ``hash()``), and the rows for ``n`` are a prefix of the rows for any larger ``n``.
Different splits use different seeds, hence different examples.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["QA_RELATIONS", "RULES", "SYNTHETIC_TASKS", "synthetic_rows"]

RULES: dict[str, str] = {
    "boolq": "True iff the color asked about in the question is the color in the passage.",
    "cb": "contradiction iff the hypothesis says 'did not'; otherwise entailment iff the "
    "hypothesis object occurs in the premise, neutral if it does not.",
    "rte": "entailment iff the object in the hypothesis occurs in the premise.",
    "wic": "True iff both sentences place the word next to the same place noun (topic).",
    "wsc": "span1 is always the animal; the pronoun refers to it (True) iff the final "
    "adjective describes weakness (weak, small, ...) rather than bulk (heavy, large, ...).",
    "copa": "the correct choice repeats the object noun of the premise.",
    "multirc": "an answer option is True iff it is mentioned in the paragraph.",
    "record": "the answer is the person whose sentence has the query's verb and object.",
    "conll2003": "capitalised names from fixed lists tagged PER/LOC/ORG/MISC in templates.",
    "conll04": "as conll2003 with the Peop/Loc/Org/Other tag set.",
    "ontonotes": "as conll2003 with the PERSON/GPE/ORG/NORP tag set.",
    "squad": "the answer is the phrase between the asked relation's cue phrase and the full stop.",
    "squad_v2": "as squad; one third of the questions ask a relation whose cue is absent "
    "(unanswerable, empty answers).",
}
SYNTHETIC_TASKS = tuple(RULES)

FIRST_NAMES = [
    "Anna", "Ben", "Carl", "David", "Emma", "Frank", "Grace", "Henry", "Jack", "Kate",
    "Laura", "Mark", "Nina", "Paul", "Rose", "Sam", "Tom", "Lucy", "Peter", "Sarah",
]  # fmt: skip
LAST_NAMES = ["Smith", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark", "Walker"]
CITIES = [
    "Paris", "London", "Berlin", "Rome", "Madrid", "Tokyo", "Chicago", "Boston", "Dublin",
    "Vienna", "Moscow", "Cairo", "New York", "Los Angeles", "Hong Kong",
]  # fmt: skip
ORGS = [
    "Google", "Microsoft", "Apple", "Toyota", "Nike", "Intel", "Reuters", "Boeing", "Sony",
    "Red Cross", "United Nations", "General Motors", "World Bank",
]  # fmt: skip
NATIONALITIES = ["French", "German", "Italian", "Japanese", "Spanish", "British", "Dutch", "Irish"]
OBJECTS = [
    "book", "ball", "car", "chair", "cup", "lamp", "bag", "box", "bike", "table",
    "door", "phone", "hat", "coat", "clock", "key", "boat", "kite",
]  # fmt: skip
COLORS = ["red", "blue", "green", "black", "white", "yellow", "brown", "pink", "gray", "purple"]
PLACES = [
    "park", "school", "market", "library", "station", "garden", "beach", "office",
    "kitchen", "church", "river", "forest",
]  # fmt: skip
FOODS = ["apples", "bread", "rice", "cheese", "soup", "cake", "eggs", "fish", "pasta", "beans"]
ANIMALS = ["dog", "cat", "horse", "bird", "cow", "fox", "mouse", "rabbit", "goat", "sheep"]
JOBS = ["teacher", "doctor", "farmer", "pilot", "nurse", "baker", "lawyer", "driver", "singer"]
INSTRUMENTS = ["piano", "guitar", "violin", "drums", "flute", "trumpet", "harp", "cello"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
VERBS = [  # (present, past)
    ("buy", "bought"), ("sell", "sold"), ("paint", "painted"), ("clean", "cleaned"),
    ("find", "found"), ("lose", "lost"), ("fix", "fixed"), ("open", "opened"),
    ("carry", "carried"), ("wash", "washed"), ("break", "broke"), ("hide", "hid"),
]  # fmt: skip
PEOPLE = ["man", "woman", "boy", "girl", "teacher", "doctor", "farmer", "student"]
STATES = ["missing", "broken", "dirty", "new", "wet", "hidden", "cold", "old", "heavy", "clean"]
WIC_WORDS = [
    "bank", "light", "ring", "board", "match", "note", "key", "seat", "plate", "line",
    "card", "sign", "bill", "cup", "bar", "star", "fan", "pen",
]  # fmt: skip
WIC_TOPICS = ["river", "office", "kitchen", "church", "garden", "school", "station", "forest"]
WIC_TEMPLATES = [
    "{s} saw the {w} near the {a}.",
    "The {w} in the {a} was very old.",
    "{s} left a {w} at the {a} today.",
    "There is a {w} by the {a}.",
    "We found the {w} close to the {a} yesterday.",
]
WSC_WEAK = ["weak", "small", "tired", "young", "sick", "slow"]
WSC_BULKY = ["heavy", "large", "big", "wide", "long", "huge"]
WSC_THINGS = ["box", "rock", "table", "log", "bag", "chair", "door", "bed"]
WSC_VERBS = ["lift", "carry", "move", "pull", "push"]

NER_TYPES: dict[str, dict[str, str]] = {
    "conll2003": {"PER": "PER", "LOC": "LOC", "ORG": "ORG", "MISC": "MISC"},
    "conll04": {"PER": "Peop", "LOC": "Loc", "ORG": "Org", "MISC": "Other"},
    "ontonotes": {"PER": "PERSON", "LOC": "GPE", "ORG": "ORG", "MISC": "NORP"},
}
NER_TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "{PER} met {PER} at the {ORG} office on {DAY} .",
    "The {MISC} team lost to {ORG} in {LOC} .",
    "{ORG} opened a new shop in {LOC} last week .",
    "{PER} , the {MISC} singer , moved to {LOC} .",
    "Police in {LOC} said {PER} had left the city .",
    "{LOC} and {LOC} signed a new trade deal .",
    "The {MISC} player {PER} joined {ORG} .",
]

# SQuAD relations: (cue phrase before the answer, question, answer pool).
QA_RELATIONS: list[tuple[str, str, list[str]]] = [
    ("was born in", "Where was {n} born?", CITIES),
    ("works as a", "What is the job of {n}?", JOBS),
    ("plays the", "Which instrument does {n} play?", INSTRUMENTS),
    ("likes to eat", "What does {n} like to eat?", FOODS),
    ("has a pet", "What pet does {n} have?", ANIMALS),
    ("drives a car that is", "What color is the car of {n}?", COLORS),
]

Row = dict[str, Any]


def _seed(*parts: object) -> int:
    """Stable 64-bit seed from the parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _balanced(rng: random.Random, k: int) -> Iterator[int]:
    """Endless label stream, each block of k a random permutation of range(k)."""
    while True:
        block = list(range(k))
        rng.shuffle(block)
        yield from block


def _person(rng: random.Random) -> str:
    return rng.choice(FIRST_NAMES)


def _boolq(rng: random.Random, i: int, label: int) -> Row:
    name, place = _person(rng), rng.choice(PLACES)
    obj, other = rng.sample(OBJECTS, 2)
    color = rng.choice(COLORS)
    asked = color if label else rng.choice([c for c in COLORS if c != color])
    passage = (
        f"{name} -- {name} keeps a {color} {obj} at the {place}. "
        f"It stands next to the {other} that {name} bought last year."
    )
    return {
        "question": f"is the {obj} at the {place} {asked}",
        "passage": passage,
        "idx": i,
        "label": label,
    }


def _cb(rng: random.Random, i: int, label: int) -> Row:
    name, place, day = _person(rng), rng.choice(PLACES), rng.choice(DAYS)
    verb, past = rng.choice(VERBS)
    obj, other = rng.sample(OBJECTS, 2)
    premise = f"On {day} {name} {past} the {obj} at the {place}. Everyone there saw it happen."
    hypothesis = [
        f"{name} {past} the {obj}",
        f"{name} did not {verb} the {obj}",
        f"{name} {past} the {other}",
    ][label]
    return {"premise": premise, "hypothesis": hypothesis, "idx": i, "label": label}


def _rte(rng: random.Random, i: int, label: int) -> Row:
    name, place, day = _person(rng), rng.choice(PLACES), rng.choice(DAYS)
    past = rng.choice(VERBS)[1]
    obj1, obj2, obj3 = rng.sample(OBJECTS, 3)
    premise = f"{name} {past} the {obj1} and the {obj2} at the {place} on {day}."
    target = rng.choice([obj1, obj2]) if label == 0 else obj3
    return {
        "premise": premise,
        "hypothesis": f"{name} {past} the {target}.",
        "idx": i,
        "label": label,
    }


def _wic(rng: random.Random, i: int, label: int) -> Row:
    word = rng.choice(WIC_WORDS)
    topic1 = rng.choice(WIC_TOPICS)
    topic2 = topic1 if label else rng.choice([t for t in WIC_TOPICS if t != topic1])
    t1, t2 = rng.sample(WIC_TEMPLATES, 2)
    s1 = t1.format(s=_person(rng), w=word, a=topic1)
    s2 = t2.format(s=_person(rng), w=word, a=topic2)
    start1 = _word_offset(s1, word)
    start2 = _word_offset(s2, word)
    return {
        "word": word,
        "sentence1": s1,
        "sentence2": s2,
        "start1": start1,
        "start2": start2,
        "end1": start1 + len(word),
        "end2": start2 + len(word),
        "idx": i,
        "label": label,
    }


def _word_offset(sentence: str, word: str) -> int:
    """Character offset of ``word`` as a whole whitespace token (trailing punctuation allowed)."""
    pos = 0
    for token in sentence.split(" "):
        if token.rstrip(".,") == word:
            return pos
        pos += len(token) + 1
    raise AssertionError(f"{word!r} not in {sentence!r}")  # pragma: no cover


def _wsc(rng: random.Random, i: int, label: int) -> Row:
    animal, thing, verb = rng.choice(ANIMALS), rng.choice(WSC_THINGS), rng.choice(WSC_VERBS)
    adj = rng.choice(WSC_WEAK if label else WSC_BULKY)
    lead = rng.choice(["", f"{_person(rng)} watched from the door. ", "It was a cold day. "])
    text = f"{lead}The {animal} could not {verb} the {thing} because it was too {adj}."
    words = text.split()
    return {
        "text": text,
        "span1_index": words.index(animal),
        "span2_index": words.index("it", words.index("because")),
        "span1_text": animal,
        "span2_text": "it",
        "idx": i,
        "label": label,
    }


def _copa(rng: random.Random, i: int, label: int) -> Row:
    person, place = rng.choice(PEOPLE), rng.choice(PLACES)
    obj, other = rng.sample(OBJECTS, 2)
    st1, st2 = rng.sample(STATES, 2)
    question = rng.choice(["cause", "effect"])
    premise = f"The {person} looked for the {obj} in the {place}."
    right, wrong = f"The {obj} was {st1}.", f"The {other} was {st2}."
    c1, c2 = (wrong, right) if label else (right, wrong)
    return {
        "premise": premise,
        "choice1": c1,
        "choice2": c2,
        "question": question,
        "idx": i,
        "label": label,
    }


def _multirc_paragraph(rng: random.Random, p_idx: int, q_base: int, a_base: int) -> list[Row]:
    """One paragraph, two questions, four options each (two True = mentioned, two False)."""
    name, city = _person(rng), rng.choice(CITIES)
    foods = rng.sample(FOODS, 4)
    places = rng.sample(PLACES, 4)
    paragraph = (
        f"{name} lives in {city}. {name} likes to eat {foods[0]} and {foods[1]}. "
        f"On weekends {name} goes to the {places[0]} and then to the {places[1]}."
    )
    questions = [
        (f"What does {name} like to eat?", foods, ""),
        (f"Where does {name} go on weekends?", places, "the "),
    ]
    rows: list[Row] = []
    a_idx = a_base
    for qi, (question, pool, prefix) in enumerate(questions):
        options = [(pool[k], int(k < 2)) for k in range(4)]
        rng.shuffle(options)
        for text, label in options:
            rows.append(
                {
                    "paragraph": paragraph,
                    "question": question,
                    "answer": prefix + text,
                    "idx": {"paragraph": p_idx, "question": q_base + qi, "answer": a_idx},
                    "label": label,
                }
            )
            a_idx += 1
    return rows


def _record(rng: random.Random, i: int, label: int) -> Row:
    del label
    firsts, lasts = rng.sample(FIRST_NAMES, 3), rng.sample(LAST_NAMES, 3)
    people = [f"{f} {s}" for f, s in zip(firsts, lasts, strict=True)]
    verbs = rng.sample(VERBS, 3)
    objs = rng.sample(OBJECTS, 3)
    city = rng.choice(CITIES)
    facts = [f"{p} {v[1]} the {o}." for p, v, o in zip(people, verbs, objs, strict=True)]
    passage = f"({city}) -- " + " ".join(facts) + f"\n@highlight\nThree friends met in {city}"
    k = rng.randrange(3)
    query = f"Friends said that @placeholder {verbs[k][1]} the {objs[k]} quickly."
    spans = sorted(
        (start, start + len(ent), ent)
        for ent in [*people, city]
        for start in _all_offsets(passage, ent)
    )
    return {
        "passage": passage,
        "query": query,
        "entities": sorted({s[2] for s in spans}),
        "entity_spans": {
            "text": [s[2] for s in spans],
            "start": [s[0] for s in spans],
            "end": [s[1] for s in spans],
        },
        "answers": [people[k]],
        "idx": {"passage": i, "query": i},
    }


def _all_offsets(text: str, sub: str) -> list[int]:
    out, pos = [], text.find(sub)
    while pos != -1:
        out.append(pos)
        pos = text.find(sub, pos + 1)
    return out


def _ner(scheme: str) -> Callable[[random.Random, int, int], Row]:
    types = NER_TYPES[scheme]
    fillers = {"PER": None, "LOC": CITIES, "ORG": ORGS, "MISC": NATIONALITIES}

    def make(rng: random.Random, i: int, label: int) -> Row:
        del label
        tokens: list[str] = []
        tags: list[str] = []
        for piece in rng.choice(NER_TEMPLATES).split():
            slot = piece.strip("{}") if piece.startswith("{") else None
            if slot == "DAY":
                tokens.append(rng.choice(DAYS))
                tags.append("O")
                continue
            if slot is None:
                tokens.append(piece)
                tags.append("O")
                continue
            if slot == "PER":
                words = [_person(rng)] + ([rng.choice(LAST_NAMES)] if rng.random() < 0.5 else [])
            else:
                words = rng.choice(fillers[slot]).split()
            tokens.extend(words)
            tags.extend([f"B-{types[slot]}"] + [f"I-{types[slot]}"] * (len(words) - 1))
        return {"id": str(i), "tokens": tokens, "ner_tags": tags}

    return make


def _squad(v2: bool) -> Callable[[random.Random, int, int], Row]:
    def make(rng: random.Random, i: int, label: int) -> Row:
        rels = rng.sample(range(len(QA_RELATIONS)), 4)
        present, absent = rels[:3], rels[3]
        names = rng.sample(FIRST_NAMES, 3)
        sentences, facts = [], {}
        for r, name in zip(present, names, strict=True):
            cue, _, pool = QA_RELATIONS[r]
            value = rng.choice(pool)
            sentences.append(f"{name} {cue} {value}.")
            facts[r] = (name, cue, value)
        context = " ".join(sentences)
        unanswerable = v2 and label == 0
        if unanswerable:
            name = rng.choice(names)
            question = QA_RELATIONS[absent][1].format(n=name)
            answers: dict[str, list[Any]] = {"text": [], "answer_start": []}
        else:
            r = rng.choice(present)
            name, cue, value = facts[r]
            question = QA_RELATIONS[r][1].format(n=name)
            start = context.index(f"{name} {cue} {value}.") + len(f"{name} {cue} ")
            answers = {"text": [value], "answer_start": [start]}
        qid = hashlib.md5(f"{context}|{question}|{i}".encode()).hexdigest()[:24]
        return {
            "id": qid,
            "title": "Synthetic_people",
            "context": context,
            "question": question,
            "answers": answers,
        }

    return make


_MAKERS: dict[str, tuple[Callable[[random.Random, int, int], Row], int]] = {
    "boolq": (_boolq, 2),
    "cb": (_cb, 3),
    "rte": (_rte, 2),
    "wic": (_wic, 2),
    "wsc": (_wsc, 2),
    "copa": (_copa, 2),
    "record": (_record, 1),
    "conll2003": (_ner("conll2003"), 1),
    "conll04": (_ner("conll04"), 1),
    "ontonotes": (_ner("ontonotes"), 1),
    "squad": (_squad(False), 1),
    "squad_v2": (_squad(True), 3),
}


def synthetic_rows(task: str, split: str, n: int, seed: int = 0) -> list[Row]:
    """``n`` deterministic synthetic rows of ``task`` in its canonical (HF hub) schema.

    For ``multirc`` ``n`` counts answer-option rows (4 per question, 2 questions per
    paragraph; the last question may be cut short when ``n`` is not a multiple of 4).
    """
    if task not in SYNTHETIC_TASKS:
        raise ValueError(f"unknown task {task!r} (known: {', '.join(SYNTHETIC_TASKS)})")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(_seed("synthetic", task, split, seed))
    if task == "multirc":
        rows: list[Row] = []
        while len(rows) < n:
            p = len(rows) // 8
            rows.extend(_multirc_paragraph(rng, p, 2 * p, 8 * p))
        return rows[:n]
    make, k = _MAKERS[task]
    labels = _balanced(random.Random(_seed("labels", task, split, seed)), k)
    return [make(rng, i, next(labels)) for i in range(n)]
