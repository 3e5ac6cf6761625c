"""CoNLL-2012 SRL (OntoNotes 5.0 PropBank roles), as THUDM/P-tuning-v2
``tasks/srl/datasets/conll2012.py`` reads ``conll2012.train.txt``, ``conll2012.devel.txt`` and
``conll2012.test.txt`` (line format: :func:`ptuning.tasks.formats.read_srl`), or from the hub's
``ontonotes/conll2012_ontonotesv5`` (``english_v4``: the CoNLL-2012 shared task's English data), one row
per ``srl_frames`` entry, its tag strings checked against this label set.
"""

from __future__ import annotations

from ptuning.tasks import register
from ptuning.tasks.srl import SrlTask


@register
class CoNLL2012(SrlTask):
    name, display_name = "conll2012", "CoNLL12"
    #: unknown: the files are licensed and not here to count, and no source at hand states the
    #: predicate counts of the official files; the dry run prices these cells as unknown
    size = None
    #: the official ``conll2012.py`` ClassLabel order (``CONLL12_LABELS``)
    label_names = (
    "B-ARG0", "B-ARGM-MNR", "B-V", "B-ARG1", "B-ARG2", "I-ARG2", "O", "I-ARG1", "B-ARGM-ADV",
    "B-ARGM-LOC", "I-ARGM-LOC", "I-ARG0", "B-ARGM-TMP", "I-ARGM-TMP", "B-ARGM-PRP",
    "I-ARGM-PRP", "B-ARGM-PRD", "I-ARGM-PRD", "B-R-ARGM-TMP", "B-ARGM-DIR", "I-ARGM-DIR",
    "B-ARGM-DIS", "B-ARGM-MOD", "I-ARGM-ADV", "I-ARGM-DIS", "B-R-ARGM-LOC", "B-ARG4", "I-ARG4",
    "B-R-ARG1", "B-R-ARG0", "I-R-ARG0", "B-ARG3", "B-ARGM-NEG", "B-ARGM-CAU", "I-ARGM-MNR",
    "I-R-ARG1", "B-C-ARG1", "I-C-ARG1", "B-ARGM-EXT", "I-ARGM-EXT", "I-ARGM-CAU", "I-ARG3",
    "B-C-ARGM-ADV", "I-C-ARGM-ADV", "B-ARGM-LVB", "B-ARGM-REC", "B-R-ARG3", "B-R-ARG2",
    "B-C-ARG0", "I-C-ARG0", "B-ARGM-ADJ", "B-C-ARG2", "I-C-ARG2", "B-R-ARGM-CAU",
    "B-R-ARGM-DIR", "B-ARGM-GOL", "I-ARGM-GOL", "B-ARGM-DSP", "I-ARGM-ADJ", "I-R-ARG2",
    "I-ARGM-NEG", "B-ARGM-PRR", "B-R-ARGM-ADV", "I-R-ARGM-ADV", "I-R-ARGM-LOC", "B-ARGA",
    "B-R-ARGM-MNR", "I-R-ARGM-MNR", "B-ARGM-COM", "I-ARGM-COM", "B-ARGM-PRX", "I-ARGM-REC",
    "B-R-ARG4", "B-C-ARGM-LOC", "I-C-ARGM-LOC", "I-R-ARGM-DIR", "I-ARGA", "B-C-ARGM-TMP",
    "I-C-ARGM-TMP", "B-C-ARGM-CAU", "I-C-ARGM-CAU", "B-R-ARGM-PRD", "I-R-ARGM-PRD", "I-R-ARG3",
    "B-C-ARG4", "I-C-ARG4", "B-ARGM-PNC", "I-ARGM-PNC", "B-ARG5", "I-ARG5", "B-C-ARGM-PRP",
    "I-C-ARGM-PRP", "B-C-ARGM-MNR", "I-C-ARGM-MNR", "I-R-ARGM-TMP", "B-R-ARG5", "I-ARGM-DSP",
    "B-C-ARGM-DSP", "I-C-ARGM-DSP", "B-C-ARG3", "I-C-ARG3", "B-R-ARGM-COM", "I-R-ARGM-COM",
    "B-R-ARGM-PRP", "I-R-ARGM-PRP", "I-R-ARGM-CAU", "B-R-ARGM-GOL", "I-R-ARGM-GOL",
    "B-R-ARGM-EXT", "I-R-ARGM-EXT", "I-R-ARG4", "B-C-ARGM-EXT", "I-C-ARGM-EXT", "I-ARGM-MOD",
    "B-C-ARGM-MOD", "I-C-ARGM-MOD"
    )
    #: the hub copy without a loading script (the older "conll2012_ontonotesv5" needs one)
    hub_path = "ontonotes/conll2012_ontonotesv5"
    hub_config = "english_v4"
    local_files = {"train": "conll2012/conll2012.train.txt", "validation": "conll2012/conll2012.devel.txt",
                   "test": "conll2012/conll2012.test.txt"}
    synthetic_roles = {"A0": "ARG0", "A1": "ARG1", "TMP": "ARGM-TMP", "LOC": "ARGM-LOC"}
