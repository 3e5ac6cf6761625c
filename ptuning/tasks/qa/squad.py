"""SQuAD 1.1: every question has an answer span in its paragraph."""

from __future__ import annotations

from ptuning.tasks import register
from ptuning.tasks.qa import SquadTask


@register
class Squad(SquadTask):
    name, display_name, hub_path = "squad", "SQuAD 1.1", "squad"
    #: as published: train on the train file, evaluate on the whole dev file
    local_files = {"train": "squad/train-v1.1.json", "validation": "squad/dev-v1.1.json"}
