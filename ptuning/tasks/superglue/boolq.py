"""BoolQ: a yes/no question about a Wikipedia passage."""

from __future__ import annotations

from ptuning.tasks import TaskSize, register
from ptuning.tasks.superglue import BINARY, SuperGlueTask
from ptuning.tasks.synthetic import COLORS, OBJECTS, PLACES, person


@register
class BoolQ(SuperGlueTask):
    name, display_name, folder = "boolq", "BoolQ", "BoolQ"
    size = TaskSize(9427, 3270, 128.0, "train: HF super_glue card (dataset_info boolq train 9427); val: local val.jsonl; tokens: measured on val.jsonl")
    label_names = BINARY
    fields = {"question": str, "passage": str, "idx": int}
    synthetic_rule = "True iff the color asked about in the question is the color in the passage."
    synthetic_classes = 2

    #: the official P-Tuning v1 verbalizer (THUDM/P-tuning PT-Fewshot/data_utils/task_pvps.py,
    #: BoolQPVP.VERBALIZER_A), in label order False, True
    verbalizer = ("No", "Yes")

    def cloze(self, row):
        """BoolQPVP's pattern without its trained prompt token: passage, ". Question: ", the
        question, "? Answer: [MASK]." """
        return row["passage"], f". Question: {row['question']}? Answer: {{mask}}."

    def texts(self, row):
        return row["question"], row["passage"]

    def synthetic_row(self, rng, index, label):
        name, place = person(rng), rng.choice(PLACES)
        obj, other = rng.sample(OBJECTS, 2)
        color = rng.choice(COLORS)
        asked = color if label else rng.choice([c for c in COLORS if c != color])
        passage = (f"{name} -- {name} keeps a {color} {obj} at the {place}. "
                   f"It stands next to the {other} that {name} bought last year.")
        return {"question": f"is the {obj} at the {place} {asked}", "passage": passage,
                "idx": index, "label": label}
