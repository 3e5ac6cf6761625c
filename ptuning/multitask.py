"""The multi-task stage of MPT-2 (``method=mpt2``, :mod:`ptuning.methods.mpt2`).

One deep prompt is trained on the union of the training sets of ``method.stage_tasks`` (by
default every task of the cell's family: NER = CoNLL03, CoNLL04, OntoNotes; QA = SQuAD 1.1,
2.0), each batch drawn from a single dataset, each dataset with its own head; then every
dataset's cell starts from that prompt (and its own stage head, ``method.carry_head``).

The stage is identified like a cell: model, stage tasks and their versions, the options that
shape it (the prefix, the cell's training settings, the stage's own epochs and learning rate),
the seed and the fingerprints of the data it reads. It lives in
``<runs_dir>/<group>/_stages/mpt2/<model>/<tasks>/seed<S>-<variant>/`` (``stage.json`` and
``prompt.safetensors``), outside the records analysis reads. The first cell that needs it trains
it under a file lock; the others wait, then reuse it, so a rerun never repeats it. It checkpoints
as a cell does (``train.checkpoint_steps``, epoch ends, the scheduler's signal; the trainable
state only) and a killed stage resumes from its latest checkpoint. Its
variant enters each dataset cell's data fingerprint, so a different stage is a different cell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ptuning.backbones import Backbone
from ptuning.checkpoints import (
    Checkpointer,
    CheckpointOnSignal,
    latest_checkpoint,
    load_cell_state,
    quiet_frozen_keys,
    remove_checkpoints,
)
from ptuning.config import Scheduler, Settings, identity_options
from ptuning.distributed import SINGLE
from ptuning.errors import ConfigError
from ptuning.methods import build_method
from ptuning.model import PromptedModel
from ptuning.records import Cell, Identity, fingerprint, write_json_atomic
from ptuning.tasks import TASKS, Task, get_task
from ptuning.tasks.data import Splits, read_splits
from ptuning.training import CellTrainer, FeatureCollator, training_arguments

STAGE_FILE = "stage.json"
ARTEFACT = "prompt.safetensors"
#: cell options that cannot change the stage (they act on the dataset's continuation only)
_CONTINUATION_ONLY = ("method.carry_head", "train.selection", "train.eval_steps", "data.selection_holdout",
                      "data.max_eval_samples")


def stage_task_names(method: Any, task: Task) -> list[str]:
    """``method.stage_tasks``, else every registered task of ``task``'s family (sorted)."""
    if method.stage_tasks:
        return list(method.stage_tasks)
    return sorted(name for name, cls in TASKS.items() if cls.family == task.family)


@dataclass
class StagePlan:
    """A cell's multi-task stage, placed and identified; nothing loaded or trained."""

    tasks: list[Task]
    train_rows: dict[str, list[dict[str, Any]]]
    identity: Identity
    directory: Path
    epochs: float
    lr: float

    def describe(self) -> dict[str, Any]:
        return {"tasks": [t.name for t in self.tasks], "variant": self.identity.variant,
                "directory": str(self.directory), "epochs": self.epochs, "lr": self.lr}


def plan_stage(settings: Settings, task: Task, splits: Splits, runs_dir: str | Path) -> StagePlan:
    """Read the stage tasks' training data (the cell's data settings, the cell's own rows for
    its task) and identify the stage."""
    names = stage_task_names(settings.method, task)
    unknown = [name for name in names if name not in TASKS]
    if unknown or len(names) < 2:
        raise ConfigError(f"method.stage_tasks={names}: " + (f"unknown tasks {unknown}; valid: {', '.join(sorted(TASKS))}"
                          if unknown else f"the {task.family} family has one task; name two or more"))
    tasks, rows, fingerprints = [], {}, {}
    for name in names:
        member = task if name == task.name else get_task(name)
        member_splits = splits if member is task else read_splits(member, settings.data)
        tasks.append(member)
        rows[name] = member_splits.train
        fingerprints[name] = fingerprint(member_splits.train)
    options = stage_options(settings, task)
    stage_name = "+".join(names)
    cell = Cell("mpt2", settings.model.name, stage_name, settings.seed)
    identity = Identity.of(cell, options, 0, fingerprint(fingerprints))
    directory = (Path(runs_dir) / settings.group / "_stages" / "mpt2" / settings.model.name / stage_name
                 / f"seed{settings.seed}-{identity.variant}")
    return StagePlan(tasks, rows, identity, directory, options["stage.epochs"], options["stage.lr"])


def stage_options(settings: Settings, task: Task) -> dict[str, Any]:
    """The options that shape a cell's stage: the cell's result-relevant options except those
    acting on its continuation only, with the stage's tasks (and versions), epochs and
    learning rate."""
    names = stage_task_names(settings.method, task)
    options = {k: v for k, v in identity_options(settings, task.options()).items()
               if not k.startswith(_CONTINUATION_ONLY) and k not in ("train.epochs", "train.lr")}
    options.update({"stage.tasks": names, "stage.task_versions": {n: get_task(n).version for n in names},
                    "stage.epochs": float(settings.method.stage_epochs or settings.train.epochs),
                    "stage.lr": float(settings.method.stage_lr or settings.lr)})
    return options


class MultiTaskModel(nn.Module):
    """One shared method (prompt) with a head per task; each batch names its task."""

    #: read by the Trainer when a resumed checkpoint lacks keys (it keeps the trainable state only)
    _keys_to_ignore_on_save: list[str] | None = None

    def __init__(self, members: dict[str, nn.Module]) -> None:
        super().__init__()
        self.names = list(members)
        self.members = nn.ModuleDict(members)

    def forward(self, task_index: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, prompt_anchors: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None,
                mask_position: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        return self.members[self.names[int(task_index)]](
            input_ids, attention_mask, token_type_ids=token_type_ids, prompt_anchors=prompt_anchors, labels=labels,
            start_positions=start_positions, end_positions=end_positions, mask_position=mask_position)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the stage folder (cells of one stage may start together)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _batches(features: dict[str, list[dict[str, Any]]], batch_size: int, seed: int) -> list[dict[str, Any]]:
    """Single-task batches: each task's features shuffled (seeded) and cut into ``batch_size``."""
    rng = random.Random(seed)
    batches = []
    for index, items in enumerate(features.values()):
        order = list(range(len(items)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batches.append({"task_index": index, "features": [items[i] for i in order[start:start + batch_size]]})
    return batches


def train_stage(plan: StagePlan, settings: Settings, backbone: Backbone, max_lengths: dict[str, int]) -> dict[str, Any]:
    """Train the shared prompt and the per-task heads; write the stage's artefact and
    ``stage.json``; return the latter."""
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    method = build_method(settings.method, backbone)
    members = {t.name: PromptedModel(backbone, method, t.head, max(t.num_labels, 1), settings.train.head_dropout,
                                     label_words=t.verbalizer if t.head == "verbalizer" else None)
               for t in plan.tasks}
    model = MultiTaskModel(members)
    features = {t.name: t.encode(plan.train_rows[t.name], backbone.tokenizer, max_lengths[t.name], train=True).features
                for t in plan.tasks}
    batches = _batches(features, int(settings.train.batch_size), settings.seed)
    collate = FeatureCollator(backbone.tokenizer.pad_token_id)
    train = settings.train
    # the stage runs its epochs whole (a cell's train.max_steps bounds the cell's own training)
    args = training_arguments(dataclasses.replace(train, max_steps=-1), str(plan.directory / "trainer"),
                              settings.seed, plan.lr, plan.epochs, 1, report_to=[])
    trainer = CellTrainer(
        model=model, args=args, train_dataset=batches, world=SINGLE,
        data_collator=lambda items: {"task_index": torch.tensor(items[0]["task_index"]),
                                     **collate(items[0]["features"])},
        exponential_per_epoch=len(batches) if train.scheduler is Scheduler.exponential else None)
    checkpoint = latest_checkpoint(plan.directory) if train.checkpoint_steps is not None else None
    seconds_before = float(load_cell_state(checkpoint)["seconds"]) if checkpoint is not None else 0.0
    start = time.perf_counter()
    on_signal = CheckpointOnSignal()
    signals = contextlib.nullcontext()
    if train.checkpoint_steps is not None:  # as a cell: every N steps, at epoch ends, and on the scheduler's signal
        trainer.add_callback(Checkpointer(plan.directory, int(train.checkpoint_steps),
                                          lambda: {"seconds": seconds_before + time.perf_counter() - start},
                                          lambda step: False, on_signal))
        signals = on_signal.installed()
        if checkpoint is not None:
            print(f"[resume] MPT-2 stage {plan.directory}: from {checkpoint.name}", flush=True)
    with signals, quiet_frozen_keys(model):
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = seconds_before + time.perf_counter() - start
    state = {f"method.{k}": v for k, v in method.state_dict().items()}
    for name, member in members.items():
        state.update({f"head.{name}.{k}": v for k, v in member.head.state_dict().items()})
    tmp = plan.directory / f".{ARTEFACT}.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(plan.directory / ARTEFACT)
    info = {"status": "completed", **plan.describe(), "identity": {"variant": plan.identity.variant,
                                                                    "options": plan.identity.options,
                                                                    "data_fingerprint": plan.identity.data_fingerprint},
            "batches_per_epoch": len(batches), "steps": trainer.state.global_step,
            "resumed_from_step": int(checkpoint.name.split("-")[1]) if checkpoint else None,
            "train_examples": {t.name: len(plan.train_rows[t.name]) for t in plan.tasks},
            "train_loss": round(float(result.training_loss), 6), "train_seconds": round(seconds, 3)}
    write_json_atomic(plan.directory / STAGE_FILE, info)
    remove_checkpoints(plan.directory)  # the artefact and stage.json are all a completed stage keeps
    return info


def ensure_stage(plan: StagePlan, settings: Settings, backbone: Backbone, max_lengths: dict[str, int]) -> dict[str, Any]:
    """The stage's ``stage.json``, training the stage first unless a completed one exists;
    ``reused`` says which."""
    with _locked(plan.directory):
        path = plan.directory / STAGE_FILE
        if path.is_file() and (plan.directory / ARTEFACT).is_file():
            info = json.loads(path.read_text())
            if info.get("status") == "completed" and info["identity"]["variant"] == plan.identity.variant:
                return {**info, "reused": True}
        return {**train_stage(plan, settings, backbone, max_lengths), "reused": False}


def start_from_stage(plan: StagePlan, model: PromptedModel, task: str, carry_head: bool) -> None:
    """Load the stage's prompt (and ``task``'s stage head when ``carry_head``) into a cell's model."""
    with safe_open(str(plan.directory / ARTEFACT), "pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    method = {k[len("method."):]: v for k, v in state.items() if k.startswith("method.")}
    model.method.load_state_dict(method, strict=True)
    if carry_head:
        prefix = f"head.{task}."
        model.head.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
