"""CoNLL-2003 English NER (PER, LOC, ORG, MISC), as THUDM/P-tuning-v2
``tasks/ner/datasets/conll2003.py`` reads ``train.txt``/``valid.txt``/``test.txt``
(``token POS chunk NER``, single spaces, ``-DOCSTART-`` lines) or from the hub."""

from __future__ import annotations

from ptuning.tasks import TaskSize, register
from ptuning.tasks.ner import NerTask


@register
class CoNLL2003(NerTask):
    name, display_name = "conll2003", "CoNLL03"
    size = TaskSize(14041, 3250 + 3453, 52.7, "sentences 14041/3250/3453 (local files = HF conll2003); tokens measured on train")
    #: HF ``conll2003`` ner_tags ClassLabel order (also the official conll2003.py's)
    label_names = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
    hub_path = "conll2003"
    local_files = {"train": "conll2003/train.txt", "validation": "conll2003/valid.txt",
                   "test": "conll2003/test.txt"}
    synthetic_types = {"PER": "PER", "LOC": "LOC", "ORG": "ORG", "MISC": "MISC"}
