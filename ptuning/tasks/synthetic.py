"""Shared pieces of the synthetic data: word lists, stable seeds, balanced labels.

Every task generates its own synthetic rows (``Task.synthetic_row``, with the rule stated in
``Task.synthetic_rule``), in its canonical row schema, from plain common English words that
tokenise into real WordPiece units. Rows depend only on ``(task, split, seed)`` through a
SHA-256-derived seed (never Python's salted ``hash()``), and the rows for ``n`` are a prefix
of the rows for any larger ``n``; different splits use different seeds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from typing import Any

Row = dict[str, Any]

FIRST_NAMES = [
    "Anna", "Ben", "Carl", "David", "Emma", "Frank", "Grace", "Henry", "Jack", "Kate",
    "Laura", "Mark", "Nina", "Paul", "Rose", "Sam", "Tom", "Lucy", "Peter", "Sarah",
]  # fmt: skip
LAST_NAMES = ["Smith", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark", "Walker"]
CITIES = [
    "Paris", "London", "Berlin", "Rome", "Madrid", "Tokyo", "Chicago", "Boston", "Dublin",
    "Vienna", "Moscow", "Cairo", "New York", "Los Angeles", "Hong Kong",
]  # fmt: skip
#: capitalised words that are plausibly a person, a company, a place or a group: the synthetic
#: NER rows draw every entity from this one pool, so a name's identity carries no type
SHARED_NAMES = [
    "Jordan", "Morgan", "Austin", "Lincoln", "Phoenix", "Carter", "Hudson", "Chester", "Sterling",
    "Preston", "Warren", "Clayton", "Dallas", "Florence", "Victoria", "Sydney", "Orlando", "Camden",
    "Bristol", "Quincy", "Kent", "Jackson", "Milton", "Sherman", "Logan", "Denver",
]  # fmt: skip
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
#: sentiment words (one WordPiece unit each) and the parts of a film the synthetic reviews judge
POSITIVE_WORDS = [
    "good", "great", "nice", "wonderful", "lovely", "excellent", "beautiful", "charming",
    "brilliant", "delightful", "enjoyable", "superb", "funny", "clever",
]  # fmt: skip
NEGATIVE_WORDS = [
    "bad", "awful", "terrible", "poor", "boring", "ugly", "dull", "horrible", "weak",
    "dreadful", "clumsy", "bland", "messy", "stupid",
]  # fmt: skip
FILM_PARTS = [
    "story", "acting", "music", "ending", "plot", "cast", "script", "dialogue", "direction",
    "pacing", "soundtrack", "humor", "camera", "opening",
]  # fmt: skip
INTENSIFIERS = ["very", "really", "quite", "truly", "rather", "simply"]


def stable_seed(*parts: object) -> int:
    """Stable 64-bit seed from the parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def balanced_labels(rng: random.Random, k: int) -> Iterator[int]:
    """Endless label stream, each block of k a random permutation of range(k)."""
    while True:
        block = list(range(k))
        rng.shuffle(block)
        yield from block


def person(rng: random.Random) -> str:
    return rng.choice(FIRST_NAMES)


def word_offset(sentence: str, word: str) -> int:
    """Character offset of ``word`` as a whole whitespace token (trailing punctuation allowed)."""
    pos = 0
    for token in sentence.split(" "):
        if token.rstrip(".,") == word:
            return pos
        pos += len(token) + 1
    raise AssertionError(f"{word!r} not in {sentence!r}")  # pragma: no cover


def all_offsets(text: str, sub: str) -> list[int]:
    out, pos = [], text.find(sub)
    while pos != -1:
        out.append(pos)
        pos = text.find(sub, pos + 1)
    return out


def synthetic_rows(task: str, split: str, n: int, seed: int = 0) -> list[Row]:
    """``n`` deterministic synthetic rows of the registered task ``task`` (its own generator)."""
    from ptuning.tasks import get_task

    return get_task(task).synthetic_rows(split, n, seed)
