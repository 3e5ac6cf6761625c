"""One grid cell: composed config -> checked settings -> data -> identity -> trained,
evaluated model -> one result record (:mod:`ptuning.records`).

Everything that can be checked without the model's weights is checked first: option
values, the launch (a preset never changes a cell's method, model, task or seed), the
backbone's positions (from its config file alone) and the data. Bad input raises a
:class:`~ptuning.errors.SetupError` and nothing is written. Once the cell's identity is
known, any other exception is stored in a ``failed`` record with its traceback.

A cell may run on several processes (:mod:`ptuning.distributed`: torchrun, or a SLURM job
with one task per GPU): every process runs :func:`run_cell` with the same config, rank 0
alone writes the record and talks to W&B.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ptuning.backbones import FAMILIES, backbone_config, max_positions
from ptuning.checkpoints import remove_checkpoints
from ptuning.config import (
    CellConfig,
    Precision,
    Selection,
    Settings,
    check_config,
    identity_options,
    search_point,
)
from ptuning.distributed import SINGLE, World, init_world
from ptuning.errors import ConfigError, DataUnavailableError, SetupError
from ptuning.experiment import Experiment
from ptuning.methods import METHODS
from ptuning.methods.mpt2 import MPT2Config
from ptuning.multitask import StagePlan, ensure_stage, plan_stage, start_from_stage
from ptuning.records import Cell, Identity, Record, cell_dir, fingerprint, previous_record
from ptuning.tasks import Task, get_task
from ptuning.tasks.data import Splits, read_splits

#: the fewest real tokens a cell must leave for its input after a method's added positions
MIN_INPUT_TOKENS = 8


@dataclass
class Prepared:
    """A cell checked and placed, before any weights are loaded."""

    settings: Settings
    task: Task
    splits: Splits
    cell: Cell
    identity: Identity
    directory: Path
    max_length: int
    model_config: Any  # the backbone's transformers config (read once, without weights)
    #: MPT-2's multi-task stage (method=mpt2) and its tasks' input lengths, else None
    stage: StagePlan | None = None
    stage_lengths: dict[str, int] | None = None
    #: a searched cell's grid and point (:func:`ptuning.config.search_point`), else None
    search: dict[str, Any] | None = None


@dataclass
class Outcome:
    """What became of a cell: completed, skipped (already completed) or failed."""

    cell: Cell
    status: str
    directory: Path
    record: dict[str, Any]
    error: BaseException | None = None

    def line(self) -> str:
        """``[status] task model method seed=S metric=value -> folder`` (or the error)."""
        primary = self.record["task"]["primary_metric"]
        value = self.record["metrics"].get(primary)
        if value is not None:
            shown = f"{primary}={value:.2f}"
        else:
            error = self.record["error"]
            shown = f"error={error['type']}: {(error['message'].splitlines() or [''])[0]}"
        cell = self.cell
        return f"[{self.status}] {cell.task} {cell.model} {cell.method} seed={cell.seed} {shown} -> {self.directory}"


def check_launch(cfg: DictConfig) -> None:
    """Under Hydra: the composed method, model and task are the ones the cell was launched
    with, and a ``seed`` or ``seed_index`` came from the command line or the sweep (config
    files set only ``base_seed``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    for axis in ("method", "model", "task"):
        chosen = hydra.runtime.choices.get(axis)
        if chosen != cfg[axis].name:
            raise ConfigError(f"{axis}.name={cfg[axis].name!r}: the cell was launched with {axis}={chosen}; "
                              "presets and per-cell configs must not change a cell's method, model or task")
    given = {o.split("=", 1)[0].lstrip("+~") for o in hydra.overrides.task}
    for name in ("seed", "seed_index"):
        if name not in given and cfg[name] != getattr(CellConfig, name):
            raise ConfigError(f"{name}={cfg[name]}: set by a config file; {name} comes only from the command "
                              f"line or the sweep ({name}=..., or hydra.sweeper.params.{name} in a preset); "
                              "a config file sets base_seed")


def fit_length(settings: Settings, task: Task, model_config: Any) -> int:
    """The input length: the task's (or ``data.max_length``), shortened so a method's added
    positions fit the backbone; :class:`ConfigError` if they leave no room."""
    wanted = settings.data.max_length or task.max_length
    limit = max_positions(model_config)
    if limit is None:
        return wanted
    added = settings.method.added_positions(FAMILIES[model_config.model_type].positions)
    if limit - added < MIN_INPUT_TOKENS:
        raise ConfigError(
            f"method.length={getattr(settings.method, 'length', '?')}: model={settings.model.name} embeds "
            f"{limit} positions and method={settings.method.name} adds {added} before the input; allowed: "
            f"method.length <= {limit - MIN_INPUT_TOKENS}"
            + (" (or method.position_offset=false)" if hasattr(settings.method, "position_offset") else ""))
    if wanted > limit - added:
        print(f"[note] {task.name}: inputs cut at {limit - added} tokens, not {wanted}: model={settings.model.name} "
              f"embeds {limit} positions and method={settings.method.name} adds {added}")
    return min(wanted, limit - added)


def check_device(settings: Settings) -> None:
    if settings.train.precision is Precision.fp16 and not torch.cuda.is_available():
        raise ConfigError("train.precision='fp16': needs a CUDA device; allowed without one: fp32, bf16")


def check_world(settings: Settings, world: World) -> None:
    """On several processes ``train.batch_size`` stays the global batch (the official
    scripts' batch size): each process takes ``batch_size / processes`` of it, which must be
    whole."""
    batch = settings.train.batch_size
    if batch % world.size:
        raise ConfigError(f"train.batch_size={batch}: the global batch, shared by the {world.size} processes of "
                          f"this cell, must divide evenly; allowed: a multiple of {world.size}")


def prepare(cfg: DictConfig, world: World = SINGLE) -> Prepared:
    """Check a composed cell config, read its data and place it; loads no weights."""
    settings = check_config(cfg)
    check_launch(cfg)
    search = search_point(cfg, settings)
    check_device(settings)
    check_world(settings, world)
    task = get_task(settings.task.name).configure(settings.task.max_length, settings.task.template, settings.task.head)
    settings.method.check_task(task.name, task.label_words)
    model_config = backbone_config(settings.model)
    max_length = fit_length(settings, task, model_config)
    clean = settings.train.selection is Selection.clean
    splits = read_splits(task, settings.data, settings.data.selection_holdout if clean else None)
    if splits.note and settings.data.source.value == "local":
        print(f"[data] {task.name}: {splits.note}")
    if not splits.train or not splits.validation:
        raise DataUnavailableError(f"task={task.name}: empty train ({len(splits.train)} rows) or evaluation "
                                   f"({len(splits.validation)} rows) split after data.max_*_samples")
    cell = Cell(settings.method.name, settings.model.name, task.name, settings.seed)
    data_fingerprint, stage, stage_lengths = splits.fingerprint(), None, None
    if isinstance(settings.method, MPT2Config):
        if world.distributed:
            raise ConfigError(f"method=mpt2: its multi-task stage runs on one process, not {world.size}")
        stage = plan_stage(settings, task, splits, cfg.paths.runs_dir)
        stage_lengths = {t.name: max_length if t is task else fit_length(settings, t, model_config) for t in stage.tasks}
        data_fingerprint = fingerprint([data_fingerprint, stage.identity.variant])  # another stage: another cell
    identity = Identity.of(cell, identity_options(settings, task.options()), task.version, data_fingerprint)
    directory = cell_dir(cfg.paths.runs_dir, settings.group, cell, identity.variant)
    return Prepared(settings, task, splits, cell, identity, directory, max_length, model_config, stage, stage_lengths,
                    search)


def _new_record(cfg: DictConfig, prepared: Prepared) -> Record:
    settings = prepared.settings
    return Record(
        group=settings.group, cell=prepared.cell, identity=prepared.identity,
        config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        task=prepared.task.describe(),
        model={"name": settings.model.name, "display": settings.model.display or settings.model.name,
               "hf_name": settings.model.hf_name},
        method=METHODS[settings.method.name].describe(),
        data={"source": settings.data.source.value, "split_note": prepared.splits.note},
        search=prepared.search,
    )


def _failed(record: Record, directory: Path, err: BaseException, world: World) -> Outcome:
    record.fail(err, traceback.format_exception(err))
    if world.main:
        record.save(directory)
    return Outcome(record.cell, "failed", directory, record.to_dict(), err)


def run_cell(cfg: DictConfig) -> Outcome:
    """Train and evaluate one cell and write its record; a completed cell is skipped unless
    ``redo=true``, an interrupted one resumes from its latest checkpoint. Bad input raises
    :class:`SetupError` with nothing written; a failure once the cell is placed (a diverging
    loss, a bug) is returned as a ``failed`` outcome. On several processes every rank calls
    this with the same config and gets the same outcome; rank 0 writes."""
    world = init_world()
    prepared = prepare(cfg, world)
    directory = prepared.directory
    previous = world.from_main(lambda: previous_record(directory))
    if cfg.redo:
        if world.main:
            remove_checkpoints(directory)
        previous = None
    elif previous is not None and previous["status"] == "completed":
        return Outcome(prepared.cell, "skipped", directory, previous)
    record = _new_record(cfg, prepared)
    try:
        experiment = Experiment.build(prepared.settings, prepared.task, prepared.splits, prepared.max_length,
                                      prepared.model_config, world)
    except SetupError:
        raise
    except Exception as err:  # a bug while building: recorded with its traceback
        return _failed(record, directory, err, world)
    if prepared.stage is not None:
        try:
            stage = ensure_stage(prepared.stage, prepared.settings, experiment.backbone, prepared.stage_lengths)
            start_from_stage(prepared.stage, experiment.model, prepared.task.name, prepared.settings.method.carry_head)
        except Exception as err:  # the stage failed: this cell fails with its reason
            return _failed(record, directory, err, world)
        record.stage = {k: v for k, v in stage.items() if k not in ("identity", "status")}
    described = experiment.describe()
    for key, value in described.items():
        setattr(record, key, {**getattr(record, key), **value} if isinstance(value, dict) else value)
    run_id = ((previous or {}).get("wandb") or {}).get("run_id")  # an interrupted attempt's run
    tracker = experiment.start_tracking(Path(cfg.paths.runs_dir), record.to_dict(), run_id)
    if tracker is not None:
        record.wandb = tracker.describe()
    if world.main:
        record.save(directory)
    try:
        for key, value in experiment.train_and_evaluate(directory, tracker).items():
            setattr(record, key, value)
        record.status = "completed"
        if world.main:
            record.save(directory)
            remove_checkpoints(directory)  # the record and the artefact are all a completed cell keeps
        return Outcome(prepared.cell, "completed", directory, record.to_dict())
    except Exception as err:  # a failed cell must not stop the rest of a grid
        return _failed(record, directory, err, world)
    finally:
        if tracker is not None:
            tracker.finish(record.to_dict())
