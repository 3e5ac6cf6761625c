"""OntoNotes 5.0 NER (18 entity types)."""

from __future__ import annotations

from ptuning.tasks import register
from ptuning.tasks.ner import NerTask

TYPES = ("CARDINAL DATE EVENT FAC GPE LANGUAGE LAW LOC MONEY NORP ORDINAL ORG PERCENT PERSON "
         "PRODUCT QUANTITY TIME WORK_OF_ART").split()


@register
class OntoNotes(NerTask):
    name, display_name = "ontonotes", "OntoNotes 5.0"
    #: P-Tuning v2 ``tasks/ner/datasets/ontonotes.py`` order (B-* sorted, I-* sorted, O)
    label_names = (*(f"B-{t}" for t in TYPES), *(f"I-{t}" for t in TYPES), "O")
    hub_path = "tner/ontonotes5"
    local_files = {"train": "ontonotes/train.conll", "validation": "ontonotes/dev.conll",
                   "test": "ontonotes/test.conll"}
    conll_format = "generic"
    synthetic_types = {"PER": "PERSON", "LOC": "GPE", "ORG": "ORG", "MISC": "NORP"}
