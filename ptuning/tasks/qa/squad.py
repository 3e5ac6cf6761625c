"""SQuAD 1.1: every question has an answer span in its paragraph."""

from __future__ import annotations

from ptuning.tasks import TaskSize, register
from ptuning.tasks.qa import SquadTask


@register
class Squad(SquadTask):
    name, display_name, hub_path = "squad", "SQuAD 1.1", "squad"
    size = TaskSize(87599, 10570, 360.3, "HF squad: 87,599 train, 10,570 validation (= local dev-v1.1.json); tokens measured on dev-v1.1.json (1.02 windows per question)")
    #: as published: train on the train file, evaluate on the whole dev file
    local_files = {"train": "squad/train-v1.1.json", "validation": "squad/dev-v1.1.json"}
