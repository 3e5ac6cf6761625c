"""Recognising Textual Entailment: does the premise entail the hypothesis."""

from __future__ import annotations

import string

from ptuning.tasks import TaskSize, register
from ptuning.tasks.superglue import SuperGlueTask
from ptuning.tasks.synthetic import DAYS, OBJECTS, PLACES, VERBS, person


@register
class RTE(SuperGlueTask):
    name, display_name, folder = "rte", "RTE", "RTE"
    size = TaskSize(2490, 277, 128.0, "local SuperGLUE train/val.jsonl; tokens measured on train")
    label_names = ("entailment", "not_entailment")
    label_style = "named"
    fields = {"premise": str, "hypothesis": str, "idx": int}
    synthetic_rule = "entailment iff the object in the hypothesis occurs in the premise."
    synthetic_classes = 2

    #: the official P-Tuning v1 verbalizer (THUDM/P-tuning PT-Fewshot/data_utils/task_pvps.py, RtePVP)
    verbalizer = ("Yes", "No")

    def texts(self, row):
        return row["premise"], row["hypothesis"]

    def cloze(self, row):
        """RtePVP's pattern without its trained prompt token: premise, " Question: ", the
        hypothesis without its final punctuation, "? Answer: [MASK]." """
        return row["premise"], f" Question: {row['hypothesis'].rstrip(string.punctuation)}? Answer: {{mask}}."

    def synthetic_row(self, rng, index, label):
        name, place, day = person(rng), rng.choice(PLACES), rng.choice(DAYS)
        past = rng.choice(VERBS)[1]
        obj1, obj2, obj3 = rng.sample(OBJECTS, 3)
        premise = f"{name} {past} the {obj1} and the {obj2} at the {place} on {day}."
        target = rng.choice([obj1, obj2]) if label == 0 else obj3
        return {"premise": premise, "hypothesis": f"{name} {past} the {target}.", "idx": index,
                "label": label}
