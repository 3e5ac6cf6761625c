"""OntoNotes 5.0 NER (18 entity types), as THUDM/P-tuning-v2 ``tasks/ner/datasets/ontonotes.py``
reads ``train.sd.conllx``/``dev.sd.conllx``/``test.sd.conllx``: tab-separated CoNLL-X lines
(``1<TAB>Paris<TAB>_<TAB>NNP<TAB>...<TAB>B-GPE``), the word in the 2nd column, the IOB2 tag
in the last, an empty line after each sentence.

The hub copy ``tner/ontonotes5`` has integer ``tags`` without ClassLabel names (its
``ontonotes5.py`` declares ``Sequence(Value("int32"))``; the ids follow its own
``label.json``, not this order), so the hub route refuses it: use the local files."""

from __future__ import annotations

from ptuning.tasks import TaskSize, register
from ptuning.tasks.ner import NerTask

TYPES = ("CARDINAL DATE EVENT FAC GPE LANGUAGE LAW LOC MONEY NORP ORDINAL ORG PERCENT PERSON "
         "PRODUCT QUANTITY TIME WORK_OF_ART").split()


@register
class OntoNotes(NerTask):
    name, display_name = "ontonotes", "OntoNotes 5.0"
    size = TaskSize(59924, 8528 + 8262, 66.0, "standard split 59,924/8,528/8,262 sentences, 1,088,503 train words (Chiu & Nichols 2016 split as tabulated in public NER READMEs); tokens: CoNLL03's 52.7 per sentence scaled by words per sentence (18.2 vs 14.5); no local file to measure")
    #: P-Tuning v2 ``tasks/ner/datasets/ontonotes.py`` ClassLabel order (B-* sorted, I-* sorted, O)
    label_names = (*(f"B-{t}" for t in TYPES), *(f"I-{t}" for t in TYPES), "O")
    hub_path = "tner/ontonotes5"
    local_files = {"train": "ontonotes/train.sd.conllx", "validation": "ontonotes/dev.sd.conllx",
                   "test": "ontonotes/test.sd.conllx"}
    conll_format = "sd_conllx"
    synthetic_types = {"PER": "PERSON", "LOC": "GPE", "ORG": "ORG", "MISC": "NORP"}
