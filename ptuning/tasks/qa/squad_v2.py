"""SQuAD 2.0: as SQuAD 1.1, plus unanswerable questions (the null answer)."""

from __future__ import annotations

from ptuning.tasks import TaskSize, register
from ptuning.tasks.qa import SquadTask


@register
class SquadV2(SquadTask):
    name, display_name, hub_path, squad_version = "squad_v2", "SQuAD 2.0", "squad_v2", "2.0"
    size = TaskSize(130319, 11873, 360.3, "HF squad_v2 card: 130,319 train, 11,873 validation; tokens measured on SQuAD 1.1 dev (no local 2.0 file)")
    local_files = {"train": "squad_v2/train-v2.0.json", "validation": "squad_v2/dev-v2.0.json"}
    synthetic_rule = SquadTask.synthetic_rule + " One third name an object absent from the context (no answer)."
    synthetic_classes = 3
