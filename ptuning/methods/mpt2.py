"""Multi-task P-Tuning v2 (MPT-2; Liu et al. 2022, Table 3): one deep prompt pre-trained on
the union of a task family's training sets, then trained further on each dataset.

As the authors describe it (THUDM/P-tuning-v2 issue #22, paper appendix A; the official
code for it was never published): the training sets of the family's datasets are combined,
every batch holds examples of a single dataset, each dataset has its own linear head, and the
continuous prompt is shared; then each dataset's cell continues from that prompt. The
multi-task stage is run by :mod:`ptuning.multitask` once per (model, stage tasks, options,
seed) and reused by every dataset's cell by its identity.

The module is P-Tuning v2's deep prefix; the options below only describe the stage. Our
choice where the description is silent: a dataset's cell starts from the stage's prompt and
from its own stage head (``carry_head``), at the cell's own learning rate and epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptuning.errors import ConfigError, require
from ptuning.methods import register
from ptuning.methods.ptuning_v2 import PTuningV2, PTuningV2Config


@dataclass
class MPT2Config(PTuningV2Config):
    name: str = "mpt2"
    #: the datasets whose training sets pre-train the shared prompt, the cell's own task among
    #: them, e.g. [conll2003, conll04]; null: every task of the cell's family (the paper's
    #: setting: NER = CoNLL03, CoNLL04, OntoNotes; QA = SQuAD 1.1 and 2.0)
    stage_tasks: list[str] | None = None
    #: epochs of the multi-task stage (null: the cell's train.epochs)
    stage_epochs: float | None = None
    #: learning rate of the multi-task stage (null: the cell's)
    stage_lr: float | None = None
    #: start a dataset's cell from its own head of the stage too (else a fresh head)
    carry_head: bool = True

    def check(self) -> None:
        super().check()
        if self.stage_tasks is not None:
            require(len(self.stage_tasks) >= 2 and len(set(self.stage_tasks)) == len(self.stage_tasks),
                    "method.stage_tasks", list(self.stage_tasks), "null (the task's family) or two or more distinct "
                    "task names")
        require(self.stage_epochs is None or self.stage_epochs > 0, "method.stage_epochs", self.stage_epochs,
                "null (the cell's train.epochs) or > 0")
        require(self.stage_lr is None or self.stage_lr > 0, "method.stage_lr", self.stage_lr,
                "null (the cell's learning rate) or > 0")

    def check_task(self, task: str, label_words: tuple[str, ...] | None) -> None:
        if self.stage_tasks is not None and task not in self.stage_tasks:
            raise ConfigError(f"method.stage_tasks={list(self.stage_tasks)}: must include the cell's task {task!r}")


@register("mpt2")
class MPT2(PTuningV2):
    """P-Tuning v2's deep prefix, started from the multi-task stage's prompt."""

    config_class = MPT2Config
    display_name = "MPT-2 (multi-task P-Tuning v2)"
