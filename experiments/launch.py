"""Launch a preset's grid, or say what it holds and what it will cost before it starts.

    python -m experiments.launch PRESET [override ...]                 # run here (Hydra's basic launcher)
    python -m experiments.launch PRESET --launcher slurm [override ...] # one SLURM job per cell
    python -m experiments.launch PRESET --dry-run [override ...]       # list cells, status, GPU-hours

The cells are the preset's sweep (``hydra.sweeper.params``) with the overrides applied, as
``python -m experiments.run -m preset=PRESET ...`` expands them, and then, for a preset with a
search space (``search=<space>``, conf/search/), every point of a searched cell's grid: one
cell per point, its values given as overrides. The grid is run as Hydra multiruns over
products of cells: one when nothing is searched and the launcher is local; otherwise one per
model, resource shape, search grid and task list (the methods that share them run together),
each asking a submitit launcher (``slurm``, ``submitit_local``) for its model's GPUs, CPUs,
memory and time. A cluster's multiruns run side by side, local ones one after another; the
exit code is the worst of theirs (0 all completed, 1 a cell failed, 2 a cell could not start).

The dry run reads no data and no weights and writes nothing: for each cell its status (a
record with the cell's identity options: completed, failed, running with its latest
checkpoint step, or pending) and the cost model's estimate (:mod:`ptuning.cost`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import itertools
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

import ptuning.config  # noqa: F401  (registers the config schemas)
from ptuning.checkpoints import latest_checkpoint
from ptuning.config import (
    DataSource,
    Settings,
    check_config,
    identity_options,
    require_grid_options,
)
from ptuning.cost import A100, CellCost, Throughput, estimate, tokens_per_row, with_stage
from ptuning.errors import SetupError
from ptuning.methods import METHODS, MethodKind
from ptuning.methods.mpt2 import MPT2Config
from ptuning.multitask import stage_options
from ptuning.records import Cell, matching_records
from ptuning.tasks import Task, get_task

CONF = Path(__file__).resolve().parents[1] / "conf"
LAUNCHERS = ("basic", "joblib", "submitit_local", "slurm")
SUBMITIT = ("submitit_local", "slurm")
#: override keys the launcher sets per multirun (a user's value would be replaced)
GROUP_KEYS = ("model", "method", "task")


@dataclass(frozen=True)
class Resources:
    """What one cell asks the cluster for."""

    gpus: int
    cpus_per_gpu: int
    mem_gb_per_gpu: int
    time_min: int

    def launcher_overrides(self, launcher: str) -> list[str]:
        """The Hydra submitit launcher options for a job of this shape (one task per GPU)."""
        common = [f"hydra.launcher.tasks_per_node={self.gpus}", f"hydra.launcher.timeout_min={self.time_min}",
                  f"hydra.launcher.cpus_per_task={self.cpus_per_gpu}"]
        if launcher == "slurm":
            common += [f"hydra.launcher.gpus_per_node={self.gpus}",
                       f"hydra.launcher.mem_gb={self.mem_gb_per_gpu * self.gpus}"]
        return common


@dataclass
class PlannedCell:
    """One cell of the grid as the dry run sees it."""

    overrides: list[str]
    runs_dir: str
    cell: Cell
    settings: Settings
    task: Task
    trains_backbone: bool
    resources: Resources
    status: str
    directory: Path | None
    checkpoint_step: int | None
    cost: CellCost

    @property
    def axes(self) -> dict[str, list[Any]]:
        """The cell's search grid, option -> values ({} when its settings are not searched)."""
        return self.settings.search.axes(self.cell.method, self.cell.task)


def sweep_jobs(preset: str, overrides: Sequence[str]) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper expands ``-m preset=PRESET overrides``
    (the preset's ``hydra.sweeper.params`` first, the command line's values replacing them)."""
    arguments = [f"preset={preset}", *overrides]
    primary = compose("config", overrides=[a for a in arguments if not _is_sweep(a)], return_hydra_config=True)
    params = [f"{key}={value}" for key, value in (primary.hydra.sweeper.params or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    return BasicSweeper.split_arguments(parser.parse_overrides([*params, *arguments]), None)[0]


def _is_sweep(argument: str) -> bool:
    return OverridesParser.create().parse_override(argument).is_sweep_override()


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def override_value(value: Any) -> str:
    """A grid value as Hydra's override grammar reads it back (floats keep their exponent)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def search_points(job: list[str], cfg: DictConfig) -> list[tuple[list[str], DictConfig]]:
    """A job's cells: the job itself when its settings are not searched, else one job per point
    of its method's search grid (``search.grids``), the point's values added as overrides (the
    composed config updated with them: what composing those overrides gives)."""
    settings = check_config(cfg)
    axes = settings.search.axes(settings.method.name, settings.task.name)
    if not axes:
        return [(job, cfg)]
    given = sorted({_key(o) for o in job} & set(axes))
    if given:
        raise SetupError(f"{given[0]}: given as an override and searched by search.grids.{settings.method.name}; "
                         f"narrow the grid instead (search.grids.{settings.method.name}.{given[0]}=[...]) or run "
                         "without the search (search=none)")
    require_grid_options(cfg, settings.method.name, axes)
    points = []
    for values in itertools.product(*axes.values()):
        point = dict(zip(axes, values, strict=True))
        point_cfg = copy.deepcopy(cfg)
        for key, value in point.items():
            OmegaConf.update(point_cfg, key, value, merge=False)
        points.append(([*job, *(f"{k}={override_value(v)}" for k, v in point.items())], point_cfg))
    return points


class Planner:
    """Places the cells of a grid and estimates their cost, reading no data and no weights."""

    def __init__(self, throughput: Throughput = A100) -> None:
        self.throughput = throughput
        self._params: dict[str, float] = {}
        self._synthetic_tokens: dict[tuple[str, int], float] = {}
        self._stages: set[tuple] = set()

    def params(self, settings: Settings) -> float:
        """``model.params`` when stated, else counted by building the (tiny or packaged) model."""
        model = settings.model
        if model.params is not None:
            return float(model.params)
        if model.name not in self._params:
            if model.source.value == "hub":
                raise SetupError(f"model={model.name}: model.params is not set; the dry run reads no weights, so "
                                 f"conf/model/{model.name}.yaml must state the backbone's parameter count")
            from ptuning.backbones import load_backbone

            self._params[model.name] = float(load_backbone(model).num_parameters())
        return self._params[model.name]

    def synthetic_tokens(self, task: Task, settings: Settings) -> float:
        """Padded tokens per synthetic row, measured on the rows the cell would generate."""
        key = (task.name, task.max_length)
        if key not in self._synthetic_tokens:
            from ptuning.backbones import minilm_tokenizer

            tokenizer = minilm_tokenizer()
            rows = task.synthetic_rows("train", min(settings.data.synthetic_train, 512))
            encoded = task.encode(rows, tokenizer, task.max_length, train=True)
            self._synthetic_tokens[key] = tokens_per_row(encoded.features, len(rows))
        return self._synthetic_tokens[key]

    def with_stage(self, settings: Settings, task: Task, cost: CellCost, gpus: int) -> CellCost:
        """An MPT-2 cell's cost plus its multi-task stage, charged to the first cell of the grid
        that needs that stage (the one that trains it; the others reuse it)."""
        options = stage_options(settings, task)
        key = (settings.model.name, settings.seed, json.dumps(options, sort_keys=True, default=str))
        if key in self._stages:
            return cost
        self._stages.add(key)
        stage_settings = dataclasses.replace(settings, train=dataclasses.replace(
            settings.train, epochs=options["stage.epochs"], max_steps=-1))
        members = [task if name == task.name else get_task(name) for name in options["stage.tasks"]]
        stage = [estimate(stage_settings, member, cost.params, False, gpus, self.throughput,
                          self.synthetic_tokens(member, settings) if settings.data.source is DataSource.synthetic else None)
                 for member in members]
        return with_stage(cost, stage, self.throughput, settings.train.precision)

    def plan(self, cfg: DictConfig, overrides: list[str]) -> PlannedCell:
        settings = check_config(cfg)
        task = get_task(settings.task.name).configure(settings.task.max_length, settings.task.template, settings.task.head)
        cell = Cell(settings.method.name, settings.model.name, task.name, settings.seed)
        trains_backbone = METHODS[cell.method].kind is MethodKind.full or settings.method.tunes_backbone()
        spec = settings.model.resources
        resources = Resources(spec.gpus if trains_backbone else spec.gpus_frozen, spec.cpus_per_gpu,
                              spec.mem_gb_per_gpu, spec.time_min)
        found = matching_records(cfg.paths.runs_dir, settings.group, cell, identity_options(settings, task.options()),
                                 task.version)
        directory, record = found[0] if found else (None, None)
        status = record["status"] if record else "pending"
        checkpoint = latest_checkpoint(directory) if directory is not None and status != "completed" else None
        per_row = self.synthetic_tokens(task, settings) if settings.data.source is DataSource.synthetic else None
        cost = estimate(settings, task, self.params(settings), trains_backbone, resources.gpus, self.throughput,
                        per_row)
        if isinstance(settings.method, MPT2Config):
            cost = self.with_stage(settings, task, cost, resources.gpus)
        return PlannedCell(overrides, str(cfg.paths.runs_dir), cell, settings, task, trains_backbone, resources, status, directory,
                           int(checkpoint.name.split("-")[1]) if checkpoint else None, cost)


def plan_grid(preset: str, overrides: Sequence[str], throughput: Throughput = A100) -> list[PlannedCell]:
    """Every cell of ``preset`` with ``overrides``: its status and estimated cost."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        planner = Planner(throughput)
        cells = []
        for job in sweep_jobs(preset, overrides):
            for point, cfg in search_points(job, compose("config", overrides=job)):
                cells.append(planner.plan(cfg, point))
    return cells


def table(cells: Sequence[PlannedCell]) -> pd.DataFrame:
    """One row per cell: coordinates, status, resources and cost."""
    axes = ("preset=", "method=", "model=", "task=", "seed=", "seed_index=")
    frame = pd.DataFrame([{
        "task": c.cell.task, "model": c.cell.model, "method": c.cell.method, "seed": c.cell.seed,
        "options": " ".join(o for o in c.overrides if not o.startswith(axes)),
        "settings": _settings_source(c),
        "status": c.status + (f" (checkpoint {c.checkpoint_step})" if c.checkpoint_step else ""),
        "gpus": c.resources.gpus, "params_M": c.cost.params / 1e6,
        "epochs": c.settings.train.epochs if c.settings.train.max_steps < 0 else f"{c.settings.train.max_steps} steps",
        "precision": c.settings.train.precision.value, "train_Mtok": c.cost.train_tokens / 1e6,
        "PFLOP": c.cost.flops / 1e15, "gpu_hours": c.cost.gpu_hours, "wall_hours": c.cost.wall_hours,
    } for c in cells])
    return frame if frame.empty or frame["options"].any() else frame.drop(columns="options")  # a sweep's other axes


def _settings_source(cell: PlannedCell) -> str:
    """Where a cell's settings come from: a search point, a fixed source, or the defaults."""
    if cell.axes:
        return "search point"
    return "official script" if cell.settings.search.settings_from else "defaults"


def _hours(value: float) -> str:
    if math.isnan(value):
        return "?"
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def print_dry_run(preset: str, cells: Sequence[PlannedCell], throughput: Throughput) -> None:
    frame = table(cells)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(frame.to_string(index=False, float_format=lambda v: f"{v:,.2f}",
                              formatters={"gpu_hours": _hours, "wall_hours": _hours, "PFLOP": "{:.3g}".format}))
    counts = frame["status"].str.split(" ").str[0].value_counts()
    pending = frame["status"] != "completed"
    print(f"\n[dry run] preset={preset}: {len(frame)} cells ("
          + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")")
    print(f"  GPU-hours: {_hours(frame['gpu_hours'].sum(min_count=1))} for the whole grid, "
          f"{_hours(frame.loc[pending, 'gpu_hours'].sum(min_count=1))} still to run")
    unpriced = frame["gpu_hours"].isna()
    if unpriced.any():
        tasks = ", ".join(sorted(frame.loc[unpriced, "task"].unique()))
        print(f"  unpriced: {int(unpriced.sum())} cells of {tasks} ('?'): no source states the task's full size "
              "(licensed data, not here to count), so the GPU-hours above leave them out")
    by_model = frame.groupby("model")["gpu_hours"].sum(min_count=1).sort_values(ascending=False)
    print("  by model: " + ", ".join(f"{m} {_hours(h)}" for m, h in by_model.items()))
    by_method = frame.groupby("method")["gpu_hours"].sum(min_count=1).sort_values(ascending=False)
    print("  by method: " + ", ".join(f"{m} {_hours(h)}" for m, h in by_method.items()))
    searched = frame["settings"] == "search point"
    if searched.any():
        per_cell = frame[searched].groupby(["task", "model", "method"]).size()
        print(f"  search: {int(searched.sum())} grid points of {len(per_cell)} searched cells "
              f"({per_cell.min()}-{per_cell.max()} points each, {_hours(frame.loc[searched, 'gpu_hours'].sum(min_count=1))} "
              f"GPU-hours); analysis keeps each cell's best point on dev")
    print("  settings: " + ", ".join(f"{n} {s}" for s, n in frame.drop_duplicates(["task", "model", "method"])
                                     ["settings"].value_counts().items()) + " (cells)")
    print(f"  cost model (ptuning/cost.py): padded train tokens x 6N (fine-tuning) or 4N (frozen backbone) + "
          f"evaluation tokens x 2N, at {throughput.source}")


def resource_shapes(cells: Sequence[PlannedCell]) -> dict[tuple[str, str], Resources]:
    """(model, method) -> the one resource shape its cells ask for (a per-cell file that changes
    ``model.resources`` for some tasks only cannot be launched as one array, and is reported)."""
    shape: dict[tuple[str, str], Resources] = {}
    for c in cells:
        key = (c.cell.model, c.cell.method)
        if shape.setdefault(key, c.resources) != c.resources:
            raise SetupError(f"model={key[0]} method={key[1]}: its cells ask for different resources "
                             f"({shape[key]} and {c.resources}); set model.resources per model, not per task")
    return shape


@dataclass(frozen=True)
class Multirun:
    """Cells that form one product: a model, its methods, their tasks, the search grid's options."""

    model: str
    resources: Resources
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    tasks: tuple[str, ...]
    methods: tuple[str, ...] = ()


def multiruns(cells: Sequence[PlannedCell]) -> list[Multirun]:
    """The grid as products: per model, resource shape, search grid and task list, the methods
    that share them (a method searched on some tasks and fixed by an official script on others
    is two multiruns)."""
    shapes = resource_shapes(cells)
    tasks: dict[tuple, list[str]] = {}
    for c in cells:
        axes = tuple((k, tuple(v)) for k, v in c.axes.items())
        listed = tasks.setdefault((c.cell.model, c.cell.method, axes), [])
        if c.cell.task not in listed:
            listed.append(c.cell.task)
    methods: dict[Multirun, list[str]] = {}
    for (model, method, axes), names in tasks.items():
        methods.setdefault(Multirun(model, shapes[(model, method)], axes, tuple(names)), []).append(method)
    return [dataclasses.replace(run, methods=tuple(names)) for run, names in methods.items()]


def group_commands(preset: str, overrides: Sequence[str], launcher: str, cells: Sequence[PlannedCell],
                   stamp: str) -> list[list[str]]:
    """The ``experiments.run`` multiruns that launch the grid: the preset as one multirun when
    nothing is searched and the launcher is local; else one per :class:`Multirun`."""
    base = [sys.executable, "-m", "experiments.run", "-m", f"preset={preset}"]
    flag = [f"+launcher={launcher}"] if launcher != "basic" else []
    if launcher not in SUBMITIT and not any(c.axes for c in cells):
        return [[*base, *overrides, *flag]]
    kept = [o for o in overrides if _key(o) not in GROUP_KEYS]
    commands = []
    for index, run in enumerate(multiruns(cells)):
        resources = run.resources.launcher_overrides(launcher) if launcher in SUBMITIT else []
        shape = f"-{run.resources.gpus}gpu" if launcher in SUBMITIT else ""
        sweep_dir = f"{cells[0].runs_dir}/.hydra/multirun-{stamp}-{index:03d}-{run.model}{shape}"
        axes = [f"{key}={','.join(override_value(v) for v in values)}" for key, values in run.axes]
        commands.append([*base, *kept, f"model={run.model}", f"method={','.join(run.methods)}",
                         f"task={','.join(run.tasks)}", *axes, *flag, *resources, f"hydra.sweep.dir={sweep_dir}"])
    return commands


def run_commands(commands: Sequence[list[str]], side_by_side: bool) -> int:
    """Run the multiruns, side by side (a cluster's queue) or one after another (this machine);
    the worst exit code (2 > 1 > 0)."""
    codes, processes = [], []
    for command in commands:
        print("[launch] " + " ".join(command[2:]), flush=True)
        process = subprocess.Popen(command, env={**os.environ, "HYDRA_FULL_ERROR": "1"})
        if side_by_side:
            processes.append(process)
        else:
            codes.append(process.wait())
    codes += [p.wait() for p in processes]
    return max(codes, default=0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="a preset in conf/preset")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for experiments.run")
    parser.add_argument("--launcher", default="basic", choices=LAUNCHERS)
    parser.add_argument("--dry-run", action="store_true", help="list the cells, their status and cost; run nothing")
    parser.add_argument("--utilisation", type=float, default=A100.utilisation,
                        help=f"model-FLOPs utilisation of the cost model (default {A100.utilisation})")
    args = parser.parse_intermixed_args(argv)
    presets = sorted(p.stem for p in (CONF / "preset").glob("*.yaml"))
    if args.preset not in presets:
        print(f"error: preset={args.preset!r}: no conf/preset/{args.preset}.yaml; presets: {', '.join(presets)}",
              file=sys.stderr)
        return 2
    if not 0 < args.utilisation <= 1:
        print(f"error: --utilisation={args.utilisation}: allowed: 0 < u <= 1", file=sys.stderr)
        return 2
    throughput = Throughput(A100.name, A100.peak_flops, args.utilisation,
                            A100.source.replace(f"{A100.utilisation:.0%}", f"{args.utilisation:.0%}"))
    try:
        cells = plan_grid(args.preset, args.overrides, throughput)
        if args.dry_run:
            print_dry_run(args.preset, cells, throughput)
            return 0
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        commands = group_commands(args.preset, args.overrides, args.launcher, cells, stamp)
    except (SetupError, HydraException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run_commands(commands, side_by_side=args.launcher in SUBMITIT)


if __name__ == "__main__":
    sys.exit(main())
