"""CoNLL-2004 entities (Peop, Loc, Org, Other), in the official P-Tuning v2 layout."""

from __future__ import annotations

from ptuning.tasks import register
from ptuning.tasks.ner import NerTask


@register
class CoNLL04(NerTask):
    name, display_name = "conll04", "CoNLL04"
    #: P-Tuning v2 ``tasks/ner/datasets/conll2004.py`` order
    label_names = ("O", "B-Loc", "B-Peop", "B-Org", "B-Other", "I-Loc", "I-Peop", "I-Org", "I-Other")
    hub_path = "conll04"  # no canonical hub copy: point task.hub_path at one you trust
    local_files = {"train": "conll04/train.txt", "validation": "conll04/dev.txt",
                   "test": "conll04/test.txt"}
    conll_format = "token_tag"
    synthetic_types = {"PER": "Peop", "LOC": "Loc", "ORG": "Org", "MISC": "Other"}
