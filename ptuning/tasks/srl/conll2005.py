"""CoNLL-2005 SRL (PropBank roles on WSJ; test on WSJ section 23 and on the Brown corpus), as
THUDM/P-tuning-v2 ``tasks/srl/datasets/conll2005.py`` reads ``conll05.train.txt``,
``conll05.devel.txt``, ``conll05.test.wsj.txt`` and ``conll05.test.brown.txt`` (line format:
:func:`ptuning.tasks.formats.read_srl`). Both tests are scored at the best dev epoch of one
run, as the official trainer does; WSJ is the task's test and Brown its extra test, a column of
its own in the tables (``conll2005_brown``).

The data is licensed (LDC, Penn Treebank) and has no hub copy: use ``data.source=local
data.root=DIR`` with ``DIR/conll2005/`` holding the four files (the official data pack's
``data/CoNLL05/``).
"""

from __future__ import annotations

from ptuning.tasks import register
from ptuning.tasks.srl import SrlTask


@register
class CoNLL2005(SrlTask):
    name, display_name = "conll2005", "CoNLL05 WSJ"
    #: unknown: the files are licensed and not here to count, and no source at hand states the
    #: predicate counts of the official files; the dry run prices these cells as unknown
    size = None
    #: the official ``conll2005.py`` ClassLabel order
    label_names = (
    "B-C-AM-TMP", "B-C-AM-DIR", "B-C-A2", "B-R-AM-EXT", "B-C-A0", "I-AM-NEG", "I-AM-ADV",
    "B-C-V", "B-C-AM-MNR", "B-R-A3", "I-AM-TM", "B-V", "B-R-A4", "B-A5", "I-A4", "I-R-AM-LOC",
    "I-C-A1", "B-R-AA", "I-C-A0", "B-C-AM-EXT", "I-C-AM-DIS", "I-C-A5", "B-A0", "B-C-A4",
    "B-C-AM-CAU", "B-C-AM-NEG", "B-AM-NEG", "I-AM-MNR", "I-R-A2", "I-R-AM-TMP", "B-AM",
    "I-R-AM-PNC", "B-AM-LOC", "B-AM-REC", "B-A2", "I-AM-EXT", "I-V", "B-A3", "B-A4", "B-R-A0",
    "I-AM-MOD", "I-C-AM-CAU", "B-R-AM-CAU", "B-A1", "B-R-AM-TMP", "I-R-AM-EXT", "B-C-AM-ADV",
    "B-AM-ADV", "B-R-A2", "B-AM-CAU", "B-R-AM-DIR", "I-A5", "B-C-AM-DIS", "I-C-AM-MNR",
    "B-AM-PNC", "I-C-AM-LOC", "I-R-A3", "I-R-AM-ADV", "I-A0", "B-AM-EXT", "B-R-AM-PNC",
    "I-AM-DIS", "I-AM-REC", "B-C-AM-LOC", "B-R-AM-ADV", "I-AM", "I-AM-CAU", "I-AM-TMP", "I-A1",
    "I-C-A4", "B-R-AM-LOC", "I-C-A2", "B-C-A5", "O", "B-R-AM-MNR", "I-C-A3", "I-R-AM-DIR",
    "I-AM-PRD", "B-AM-TM", "I-A2", "I-AA", "I-AM-LOC", "I-AM-PNC", "B-AM-MOD", "B-AM-DIR",
    "B-R-A1", "B-AM-TMP", "B-AM-MNR", "I-R-A0", "B-AM-PRD", "I-AM-DIR", "B-AM-DIS",
    "I-C-AM-ADV", "I-R-A1", "B-C-A3", "I-R-AM-MNR", "I-R-A4", "I-C-AM-PNC", "I-C-AM-TMP",
    "I-C-V", "I-A3", "I-C-AM-EXT", "B-C-A1", "B-AA", "I-C-AM-DIR", "B-C-AM-PNC"
    )
    hub_path = None
    local_files = {"train": "conll2005/conll05.train.txt", "validation": "conll2005/conll05.devel.txt",
                   "test": "conll2005/conll05.test.wsj.txt", "test_brown": "conll2005/conll05.test.brown.txt"}
    extra_tests = {"brown": "CoNLL05 Brown"}
    synthetic_roles = {"A0": "A0", "A1": "A1", "TMP": "AM-TMP", "LOC": "AM-LOC"}
