"""Choice of Plausible Alternatives: which choice is the cause (or effect) of the premise."""

from __future__ import annotations

from typing import Any

from ptuning.tasks import Encoded, TaskSize, register
from ptuning.tasks.encoding import encode_texts
from ptuning.tasks.superglue import SuperGlueTask
from ptuning.tasks.synthetic import OBJECTS, PEOPLE, PLACES, STATES


@register
class COPA(SuperGlueTask):
    """Two-way multiple choice: ("<premise> because|so", <choice>) per choice, as the
    official code, scored by a multiple-choice head."""

    name, display_name, folder = "copa", "COPA", "COPA"
    size = TaskSize(400, 100, 49.8, "local SuperGLUE train/val.jsonl; tokens measured on train")
    label_names = ("choice1", "choice2")
    label_style = "index"
    fields = {"premise": str, "choice1": str, "choice2": str, "question": str, "idx": int}
    version = 2  # 2: official connector
    head = "multiple_choice"
    synthetic_rule = "the correct choice repeats the object noun of the premise."
    synthetic_classes = 2
    label_words = None  # the classes are the row's own choices, not words

    def encode(self, rows, tokenizer, max_length, train):
        first, second = [], []
        for row in rows:
            connector = "because" if row["question"] == "cause" else "so"
            for choice in (row["choice1"], row["choice2"]):
                first.append(f"{row['premise']} {connector}")
                second.append(choice)
        flat = encode_texts(tokenizer, first, second, max_length)
        features = []
        for i, row in enumerate(rows):
            pair = flat[2 * i: 2 * i + 2]
            feature: dict[str, Any] = {k: [p[k] for p in pair] for k in pair[0]}
            feature["labels"] = int(row["label"])
            features.append(feature)
        return Encoded(rows, features)

    def synthetic_row(self, rng, index, label):
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        obj, other = rng.sample(OBJECTS, 2)
        st1, st2 = rng.sample(STATES, 2)
        question = rng.choice(["cause", "effect"])
        premise = f"The {person} looked for the {obj} in the {place}."
        right, wrong = f"The {obj} was {st1}.", f"The {other} was {st2}."
        c1, c2 = (wrong, right) if label else (right, wrong)
        return {"premise": premise, "choice1": c1, "choice2": c2, "question": question, "idx": index,
                "label": label}
