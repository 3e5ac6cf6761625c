"""CoNLL-2004 entities (Peop, Loc, Org, Other), as THUDM/P-tuning-v2
``tasks/ner/datasets/conll2004.py`` reads them: ``train.txt``/``dev.txt``/``test.txt`` with
one ``token TAG`` line per word (one space), an empty line after each sentence."""

from __future__ import annotations

from ptuning.tasks import TaskSize, register
from ptuning.tasks.ner import NerTask


@register
class CoNLL04(NerTask):
    name, display_name = "conll04", "CoNLL04"
    size = TaskSize(922, 231 + 288, 89.0, "local train/dev/test.txt (922/231/288 sentences); tokens measured on train")
    #: P-Tuning v2 ``tasks/ner/datasets/conll2004.py`` ClassLabel order
    label_names = ("O", "B-Loc", "B-Peop", "B-Org", "B-Other", "I-Loc", "I-Peop", "I-Org", "I-Other")
    #: not on the hub (the official code reads local files): use data.source=local
    hub_path = "conll04"
    local_files = {"train": "conll04/train.txt", "validation": "conll04/dev.txt",
                   "test": "conll04/test.txt"}
    conll_format = "token_tag"
    synthetic_types = {"PER": "Peop", "LOC": "Loc", "ORG": "Org", "MISC": "Other"}
