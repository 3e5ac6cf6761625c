"""Winograd Schema Challenge: does the pronoun (span2) refer to span1."""

from __future__ import annotations

from typing import Any

from ptuning.tasks import Row, TaskSize, register
from ptuning.tasks.formats import Where
from ptuning.tasks.superglue import BINARY, SuperGlueTask
from ptuning.tasks.synthetic import ANIMALS, WSC_BULKY, WSC_THINGS, WSC_VERBS, WSC_WEAK, person

SPANS = ("span1_index", "span2_index", "span1_text", "span2_text")


@register
class WSC(SuperGlueTask):
    """Pairs the (marked) text with span1's text, with the official templates
    (``task.template``, official ``tasks/superglue/dataset.py``): 0 = the official default
    (no ``--template_id`` in run_wsc_bert.sh or run_wsc_roberta.sh), "<pronoun>: text";
    1 = the word at the pronoun's index marked *..*; 2 = both spans marked in the text,
    span1 as *..* and the pronoun as #..# (not in the official code)."""

    name, display_name, folder = "wsc", "WSC", "WSC"
    size = TaskSize(554, 104, 92.1, "local SuperGLUE train/val.jsonl; tokens measured on train")
    label_names = BINARY
    row_keys = frozenset({"text", *SPANS, "idx", "label"})
    version = 3  # 2: official templates; 3: the official default template 0, template 1 as official
    templates = (0, 1, 2)
    template = 0
    synthetic_rule = ("span1 is always the animal; the pronoun refers to it (True) iff the final "
                      "adjective describes weakness (weak, small, ...) rather than bulk (heavy, large, ...).")
    synthetic_classes = 2

    def required_fields(self) -> tuple[str, ...]:
        return ("text", "label", "idx", *(f"target.{k}" for k in SPANS))

    def parse_json(self, where: Where, obj: dict[str, Any]) -> list[Row]:
        target = where.get(obj, "target")
        row: Row = {"text": where.str_field(obj, "text")}
        for key in SPANS:
            row[key] = (where.int_field(target, key, "target") if key.endswith("index")
                        else where.str_field(target, key, "target"))
        row["idx"] = where.int_field(obj, "idx")
        row["label"] = where.binary_label(where.get(obj, "label"))
        return [row]

    def texts(self, row):
        words = row["text"].split()
        marks = {0: [], 1: [(row["span2_index"], words[row["span2_index"]], "*", "*")],  # one word, as official
                 2: [(row["span2_index"], row["span2_text"], "#", "#"),
                     (row["span1_index"], row["span1_text"], "*", "*")]}
        for index, text, left, right in marks[self.template]:
            last = index + len(text.split()) - 1
            words[index] = left + words[index]
            words[last] = words[last] + right
        first = " ".join(words)
        if self.template == 0:
            first = f"{row['span2_text']}: {row['text']}"
        return first, row["span1_text"]

    def synthetic_row(self, rng, index, label):
        animal, thing, verb = rng.choice(ANIMALS), rng.choice(WSC_THINGS), rng.choice(WSC_VERBS)
        adj = rng.choice(WSC_WEAK if label else WSC_BULKY)
        lead = rng.choice(["", f"{person(rng)} watched from the door. ", "It was a cold day. "])
        text = f"{lead}The {animal} could not {verb} the {thing} because it was too {adj}."
        words = text.split()
        return {"text": text, "span1_index": words.index(animal),
                "span2_index": words.index("it", words.index("because")), "span1_text": animal,
                "span2_text": "it", "idx": index, "label": label}
