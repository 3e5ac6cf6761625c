"""The result record: one JSON file per cell. This module owns its schema, the cell's
identity, where the record lives and how it is written and read.

It imports nothing from the training stack (no torch), so ``analysis`` and users' own
scripts read records through it. The schema (``SCHEMA_VERSION``) is documented field by
field on :class:`Record` and in the README ("Result records").

Identity: a cell is ``(method, model, task, seed)``. Its *variant* is a hash of the cell's
names, the result-relevant options that differ from their defaults, the task version and a
fingerprint of the data actually read; every seed of one configuration shares the variant.
The record lives at ``<runs_dir>/<group>/<task>/<model>/<method>/seed<S>-<variant>/``, so a
rerun or a requeued job finds it, and moving the runs or data folders changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
STATUSES = ("running", "completed", "failed")
RECORD_FILE = "result.json"
VARIANT_LENGTH = 10
#: traceback lines kept in a failed record
TRACEBACK_LINES = 12


class RecordError(Exception):
    """A record that cannot be read or does not follow the schema; the message names the file."""


def fingerprint(payload: Any) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Cell:
    """The grid coordinates of a run."""

    method: str
    model: str
    task: str
    seed: int

    def label(self) -> str:
        return f"{self.task}/{self.model}/{self.method}/seed{self.seed}"


@dataclass(frozen=True)
class Identity:
    """What makes two runs of a cell the same experiment (the seed aside).

    ``options`` holds only result-relevant options whose value differs from its default, so
    adding a new option with a default keeps every existing identity.
    """

    variant: str
    options: dict[str, Any]
    task_version: int
    data_fingerprint: str

    @classmethod
    def of(cls, cell: Cell, options: Mapping[str, Any], task_version: int,
           data_fingerprint: str) -> Identity:
        payload = {"method": cell.method, "model": cell.model, "task": cell.task,
                   "options": dict(options), "task_version": task_version,
                   "data": data_fingerprint}
        return cls(fingerprint(payload)[:VARIANT_LENGTH], dict(sorted(options.items())),
                   task_version, data_fingerprint)


def cell_dir(runs_dir: str | Path, group: str, cell: Cell, variant: str) -> Path:
    """The folder of a cell's record (from its identity, never from a time)."""
    return (Path(runs_dir) / group / cell.task / cell.model / cell.method
            / f"seed{cell.seed}-{variant}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Record:
    """One cell's result (``result.json``). Fields, in the order they are written:

    - ``schema_version``: :data:`SCHEMA_VERSION`; ``status``: running | completed | failed
    - ``group``: the preset or sweep (W&B group, top folder); ``cell``: method, model, task, seed
    - ``identity``: variant hash, the hashed ``options`` (dotted keys), ``task_version``,
      ``data_fingerprint`` (sha256 of the rows read)
    - ``task``: name, display, family, version, metrics, primary_metric, reported_split
      (the split tables report: ``validation``, or ``test`` for NER where a test split exists),
      ``extra_tests`` (name -> display name of the extra test splits scored)
    - ``model``: name, display, family (HF model_type), hf_name, backbone_params
    - ``method``: name, display, kind (prompt | injection | full), trains_backbone
    - ``params``: total, trainable, method, head, backbone, backbone_trainable (by ownership);
      ``stored``: what a trained cell keeps besides the frozen backbone (the artefact: method
      + head after folding a reparameterised prefix; everything for fine-tuning)
    - ``data``: source, train/eval/test examples (``extra_test_examples`` per extra test),
      train_features, max_length, split_note
    - ``metrics`` / ``test_metrics``: metric -> value (0-100) at the selected evaluation
    - ``extra_test_metrics``: the task's extra test splits (``task.extra_tests``, e.g. CoNLL05's
      Brown), name -> metric -> value at the same evaluation; empty for other tasks (a record
      written before the field existed reads as empty)
    - ``history``: every evaluation (epoch, step, ``<split>/<metric>``)
    - ``selection``: rule, metric, split, epoch, step, n_evals, note
    - ``cost``: train/eval seconds (summed over attempts), peak memory (MB), device, threads,
      steps, ``resumed_from_step`` (the checkpoint the last attempt started from, or null),
      ``processes`` and ``strategy`` (single | fsdp | ddp: one cell on several GPUs)
    - ``wandb``: run_id, project, mode of the cell's one W&B run (kept across resumed
      attempts), or null without a W&B logger
    - ``artefact``: file name and bytes of the trained prompt/prefix/adapter + head, or null
    - ``stage``: MPT-2's multi-task stage the cell started from (tasks, variant, directory,
      epochs, lr, steps, train_loss, train_seconds, ``reused``), or null
    - ``search``: a searched cell's ``axes`` (dotted option -> values of its method's grid) and
      ``point`` (its values), or null (settings not searched: defaults, a preset's, or an
      official script's, named by ``config.search.settings_from``)
    - ``error``: null, or type, message and the last traceback lines of a failed run
    - ``config``: the composed config that ran (resolved); ``env``: package versions, git
    - ``created`` / ``updated``: UTC timestamps
    """

    group: str
    cell: Cell
    identity: Identity
    config: dict[str, Any]
    schema_version: int = SCHEMA_VERSION
    status: str = "running"
    task: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    extra_test_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    wandb: dict[str, Any] | None = None
    artefact: dict[str, Any] | None = None
    stage: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    env: dict[str, Any] = field(default_factory=lambda: environment())
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        order = ("schema_version", "status", "group", "cell", "identity", "task", "model", "method",
                 "params", "data", "metrics", "test_metrics", "extra_test_metrics", "history", "selection", "cost",
                 "wandb", "artefact", "stage", "search", "error", "config", "env", "created", "updated")
        raw = dataclasses.asdict(self)
        return {key: raw[key] for key in order}

    def fail(self, error: BaseException, traceback_lines: list[str]) -> None:
        """Mark the record failed with the exception's type, message and traceback tail."""
        self.status = "failed"
        self.error = {"type": type(error).__name__, "message": str(error),
                      "traceback": traceback_lines[-TRACEBACK_LINES:]}

    def save(self, directory: Path) -> Path:
        """Validate and write ``<directory>/result.json`` atomically."""
        self.updated = _now()
        payload = validate_record(json.loads(json.dumps(self.to_dict(), default=str)),
                                  str(directory / RECORD_FILE))
        return write_json_atomic(directory / RECORD_FILE, payload)


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write JSON through a temporary file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- reading


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_record(record: Any, origin: str) -> dict[str, Any]:
    """Check the schema fields readers rely on; :class:`RecordError` names ``origin``."""

    def bad(why: str) -> RecordError:
        return RecordError(f"{origin}: malformed result record ({why})")

    if not isinstance(record, dict):
        raise bad("top level is not a JSON object")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise bad(f"schema_version {version!r}; this suite reads version {SCHEMA_VERSION} "
                  "(records of older versions must be re-run)")
    if record.get("status") not in STATUSES:
        raise bad(f"status {record.get('status')!r} not one of {', '.join(STATUSES)}")
    cell = record.get("cell")
    if not isinstance(cell, dict):
        raise bad("missing 'cell' object")
    for key in ("method", "model", "task"):
        if not isinstance(cell.get(key), str) or not cell[key]:
            raise bad(f"cell.{key} missing or not a string")
    if not isinstance(cell.get("seed"), int) or isinstance(cell.get("seed"), bool):
        raise bad(f"cell.seed {cell.get('seed')!r} is not an integer")
    identity = record.get("identity")
    if not isinstance(identity, dict) or not isinstance(identity.get("variant"), str):
        raise bad("missing identity.variant")
    for key in ("task", "model", "method", "params", "data", "metrics", "test_metrics",
                "selection", "cost", "config", "env"):
        if not isinstance(record.get(key), dict):
            raise bad(f"'{key}' is not an object")
    primary = record["task"].get("primary_metric")
    if not isinstance(primary, str) or not primary:
        raise bad("task.primary_metric missing")
    if record["status"] == "completed":
        if primary not in record["metrics"]:
            raise bad(f"completed record: primary metric {primary!r} not in metrics "
                      f"{sorted(record['metrics'])}")
        for split in ("metrics", "test_metrics"):
            for name, value in record[split].items():
                if not _is_number(value):
                    raise bad(f"{split}.{name} = {value!r} is not a number")
    extra = record.get("extra_test_metrics", {})
    if not isinstance(extra, dict) or not all(isinstance(m, dict) for m in extra.values()):
        raise bad("'extra_test_metrics' is not an object of split name -> metrics")
    for test, scores in extra.items():
        for name, value in scores.items():
            if not _is_number(value):
                raise bad(f"extra_test_metrics.{test}.{name} = {value!r} is not a number")
    search = record.get("search")
    if search is not None and not (isinstance(search, dict) and isinstance(search.get("axes"), dict)
                                   and isinstance(search.get("point"), dict)):
        raise bad("'search' is neither null nor an object with 'axes' and 'point'")
    if record["status"] == "failed" and not isinstance(record.get("error"), dict):
        raise bad("failed record without an error object")
    return record


def load_record(path: str | Path) -> dict[str, Any]:
    """Read and validate one ``result.json``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read result record ({exc.strerror})") from exc
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: malformed result record (invalid JSON: {exc})") from exc
    return validate_record(record, str(path))


def find_records(runs_dir: str | Path) -> list[Path]:
    """Every ``result.json`` under ``runs_dir`` (sorted); error if the folder is absent."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise RecordError(f"{root}: runs directory does not exist")
    return sorted(root.rglob(RECORD_FILE))


def previous_record(directory: Path) -> dict[str, Any] | None:
    """The record an earlier attempt of this cell left (any status), or None."""
    try:
        return load_record(directory / RECORD_FILE)
    except RecordError:
        return None


def matching_records(runs_dir: str | Path, group: str, cell: Cell, options: Mapping[str, Any],
                     task_version: int) -> list[tuple[Path, dict[str, Any]]]:
    """Records of ``cell`` whose identity has these options and task version, whatever data
    they read (a dry run knows a cell's options without reading its data): ``(folder, record)``,
    newest first; unreadable records are skipped."""
    wanted = json.loads(json.dumps(dict(options), sort_keys=True, default=str))
    found = []
    base = Path(runs_dir) / group / cell.task / cell.model / cell.method
    for path in base.glob(f"seed{cell.seed}-*/{RECORD_FILE}"):
        try:
            record = load_record(path)
        except RecordError:
            continue
        identity = record["identity"]
        if identity["options"] == wanted and identity["task_version"] == task_version:
            found.append((path.parent, record))
    return sorted(found, key=lambda item: item[1].get("updated") or "", reverse=True)


# --------------------------------------------------------------------------- environment


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment() -> dict[str, Any]:
    """Package versions and the code's git commit (``dirty`` when it has local changes)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"python": platform.python_version(), "torch": _version("torch"),
            "transformers": _version("transformers"), "peft": _version("peft"),
            "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None,
            "platform": platform.platform()}
