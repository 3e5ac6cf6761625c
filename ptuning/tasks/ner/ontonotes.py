"""OntoNotes 5.0 NER (18 entity types), as THUDM/P-tuning-v2 ``tasks/ner/datasets/ontonotes.py``
reads ``train.sd.conllx``/``dev.sd.conllx``/``test.sd.conllx``: tab-separated CoNLL-X lines
(``1<TAB>Paris<TAB>_<TAB>NNP<TAB>...<TAB>B-GPE``), the word in the 2nd column, the IOB2 tag
in the last, an empty line after each sentence.

The hub copy ``tner/ontonotes5`` has integer ``tags`` without ClassLabel names (its
``ontonotes5.py`` declares ``Sequence(Value("int32"))``; the ids follow its own
``label.json``, not this order), so the hub route refuses it: use the local files."""

from __future__ import annotations

from ptuning.tasks import register
from ptuning.tasks.ner import NerTask

TYPES = ("CARDINAL DATE EVENT FAC GPE LANGUAGE LAW LOC MONEY NORP ORDINAL ORG PERCENT PERSON "
         "PRODUCT QUANTITY TIME WORK_OF_ART").split()


@register
class OntoNotes(NerTask):
    name, display_name = "ontonotes", "OntoNotes 5.0"
    #: P-Tuning v2 ``tasks/ner/datasets/ontonotes.py`` ClassLabel order (B-* sorted, I-* sorted, O)
    label_names = (*(f"B-{t}" for t in TYPES), *(f"I-{t}" for t in TYPES), "O")
    hub_path = "tner/ontonotes5"
    local_files = {"train": "ontonotes/train.sd.conllx", "validation": "ontonotes/dev.sd.conllx",
                   "test": "ontonotes/test.sd.conllx"}
    conll_format = "sd_conllx"
    synthetic_types = {"PER": "PERSON", "LOC": "GPE", "ORG": "ORG", "MISC": "NORP"}
