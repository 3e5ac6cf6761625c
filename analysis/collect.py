"""Collect result records (local ``result.json`` files and/or W&B runs) into one tidy DataFrame.

One row per cell x seed x metric x split (``eval`` = the record's ``metrics``, ``test`` = its
``test_metrics``). Nothing is dropped silently:

* a ``failed`` record gives one row with ``status="failed"``, its ``error`` and ``value`` NaN;
* a ``running`` record (a job that died mid-way) gives one row with ``status="missing"``;
* a grid cell with no record at all gives one row with ``status="missing"`` (seed ``<NA>``
  unless an explicit grid lists seeds). The grid is, per group, the cross product of the
  models, methods and tasks seen, or an explicit :class:`ExpectedGrid`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import catalog

SCHEMA_VERSION = 1
STATUSES = ("completed", "failed", "running")

COLUMNS: tuple[str, ...] = (
    "group",
    "family",
    "task",
    "task_version",
    "model",
    "model_family",
    "backbone_params",
    "method",
    "seed",
    "status",
    "error",
    "split",
    "metric",
    "value",
    "primary_metric",
    "is_primary",
    "params_total",
    "params_trainable",
    "params_method",
    "params_head",
    "params_backbone_trainable",
    "trainable_pct",
    "train_seconds",
    "eval_seconds",
    "peak_memory_mb",
    "device",
    "selection_rule",
    "selection_metric",
    "selection_epoch",
    "selection_step",
    "selection_split",
    "data_source",
    "train_examples",
    "eval_examples",
    "test_examples",
    "python",
    "torch",
    "transformers",
    "git_commit",
    "created",
    "origin",
)


class AnalysisError(Exception):
    """Bad analysis input (unreadable/malformed record, missing directory); message names it."""


@dataclass(frozen=True)
class ExpectedGrid:
    """An explicit grid of cells; ``seeds=None`` means any one seed makes a cell present."""

    models: Sequence[str]
    methods: Sequence[str]
    tasks: Sequence[str]
    seeds: Sequence[int] | None = None


# --------------------------------------------------------------------------- records


def find_result_files(runs_dir: str | Path) -> list[Path]:
    """All ``result.json`` files under ``runs_dir`` (recursive, sorted); error if it is absent."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise AnalysisError(f"{root}: runs directory does not exist")
    return sorted(root.rglob("result.json"))


def load_record(path: str | Path) -> dict[str, Any]:
    """Read and validate one ``result.json``; raises :class:`AnalysisError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AnalysisError(f"{path}: cannot read result record ({exc.strerror})") from exc
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"{path}: malformed result record (invalid JSON: {exc})") from exc
    return validate_record(record, str(path))


def validate_record(record: Any, origin: str) -> dict[str, Any]:
    """Check the fields analysis relies on; raises :class:`AnalysisError` naming ``origin``."""

    def bad(why: str) -> AnalysisError:
        return AnalysisError(f"{origin}: malformed result record ({why})")

    if not isinstance(record, dict):
        raise bad("top level is not a JSON object")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise bad(f"schema_version {record.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    status = record.get("status")
    if status not in STATUSES:
        raise bad(f"status {status!r} not one of {', '.join(STATUSES)}")
    cell = record.get("cell")
    if not isinstance(cell, dict):
        raise bad("missing 'cell' object")
    for key in ("method", "model", "task"):
        if not isinstance(cell.get(key), str) or not cell[key]:
            raise bad(f"cell.{key} missing or not a string")
    seed = cell.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int | float) or seed != int(seed):
        raise bad(f"cell.seed {seed!r} is not an integer")
    for key in (
        "metrics",
        "test_metrics",
        "params",
        "cost",
        "selection",
        "data",
        "env",
        "task",
        "model_info",
    ):
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise bad(f"'{key}' is not an object")
    if status == "completed":
        metrics = record.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            raise bad("completed record without metrics")
        primary = _primary_metric(record)
        if primary not in metrics:
            raise bad(f"primary metric {primary!r} not in metrics {sorted(metrics)}")
        for split in ("metrics", "test_metrics"):
            for name, value in (record.get(split) or {}).items():
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float)
                ):
                    raise bad(f"{split}.{name} = {value!r} is not a number")
    return record


def _primary_metric(record: Mapping[str, Any]) -> str:
    task = record.get("task") or {}
    cell_task = (record.get("cell") or {}).get("task", "")
    return str(
        record.get("primary_metric")
        or task.get("primary_metric")
        or catalog.PRIMARY_METRIC.get(cell_task, "")
    )


# --------------------------------------------------------------------------- W&B


def _plain(obj: Any) -> Any:
    """Turn W&B summary/config objects (dict-like, lazily loaded) into plain Python values."""
    raw = getattr(obj, "_json_dict", None)
    if isinstance(raw, dict) and not isinstance(obj, dict):
        obj = raw
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if hasattr(obj, "keys") and hasattr(obj, "__getitem__") and not isinstance(obj, str | bytes):
        return {str(k): _plain(obj[k]) for k in obj.keys()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _unwrap_config(config: Any) -> dict[str, Any]:
    config = _plain(config) or {}
    if not isinstance(config, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and set(value) <= {"value", "desc"} and "value" in value:
            value = value["value"]
        out[key] = value
    return out


def _cell_from_config(config: Mapping[str, Any], tags: Iterable[str]) -> dict[str, Any] | None:
    cell = config.get("cell")
    if isinstance(cell, dict) and all(k in cell for k in ("method", "model", "task", "seed")):
        return dict(cell)
    found: dict[str, Any] = {}
    for axis in ("method", "model", "task"):
        value = config.get(axis)
        if isinstance(value, dict):
            value = value.get("name")
        if isinstance(value, str):
            found[axis] = value
    known = {"method": catalog.METHODS, "model": tuple(catalog.MODELS), "task": catalog.TASKS}
    for tag in tags:
        for axis, names in known.items():
            if axis not in found and tag in names:
                found[axis] = tag
    seed = config.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        found["seed"] = seed
    return found if len(found) == 4 else None


def collect_wandb(
    path: str, api: Any = None, filters: dict[str, Any] | None = None
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Records of the W&B runs at ``ENTITY/PROJECT[/GROUP]`` via ``api.runs(path, filters=...)``.

    Each run's ``summary["result"]`` holds the whole record. A run without one becomes a
    ``failed`` (or, while ``state == "running"``, a ``running``) record built from its config
    and tags. Returns ``(records, notes)``; notes list runs that could not be placed.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) not in (2, 3):
        raise AnalysisError(f"--wandb {path!r}: expected ENTITY/PROJECT or ENTITY/PROJECT/GROUP")
    project = "/".join(parts[:2])
    group = parts[2] if len(parts) == 3 else None
    if api is None:
        import wandb  # lazy: only needed for --wandb

        api = wandb.Api()
    query = dict(filters or {})
    if group:
        query["group"] = group
    records: list[tuple[str, dict[str, Any]]] = []
    notes: list[str] = []
    for run in api.runs(project, filters=query or None):
        name = str(getattr(run, "name", None) or getattr(run, "id", "?"))
        origin = f"wandb:{project}/{getattr(run, 'id', None) or name}"
        run_group = getattr(run, "group", None)
        summary = _plain(getattr(run, "summary", None) or {})
        result = summary.get("result") if isinstance(summary, dict) else None
        if isinstance(result, str):
            try:
                result = json.loads(result)
            except json.JSONDecodeError as exc:
                raise AnalysisError(f"{origin}: summary 'result' is not valid JSON") from exc
        if isinstance(result, dict) and result:
            record = validate_record(result, origin)
        else:
            config = _unwrap_config(getattr(run, "config", None))
            cell = _cell_from_config(config, getattr(run, "tags", None) or ())
            if cell is None:
                notes.append(f"{origin} ({name}): no result record and no cell in config; skipped")
                continue
            state = str(getattr(run, "state", "") or "")
            status = "running" if state == "running" else "failed"
            why = (
                "W&B run finished without a result record"
                if state == "finished"
                else f"W&B run state '{state or 'unknown'}' without a result record"
            )
            record = {
                "schema_version": SCHEMA_VERSION,
                "status": status,
                "error": None if status == "running" else why,
                "group": run_group or config.get("group") or "default",
                "cell": cell,
                "metrics": {},
                "test_metrics": {},
                "config": config,
            }
        record_group = run_group or record.get("group")
        if group and record_group != group:
            continue
        records.append((origin, record))
    return records, notes


# --------------------------------------------------------------------------- frame


def _num(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _base_row(record: Mapping[str, Any], origin: str) -> dict[str, Any]:
    cell = record["cell"]
    task = record.get("task") or {}
    model_info = record.get("model_info") or {}
    params = record.get("params") or {}
    cost = record.get("cost") or {}
    selection = record.get("selection") or {}
    data = record.get("data") or {}
    env = record.get("env") or {}
    backbone = _num(model_info.get("backbone_params"))
    if math.isnan(backbone):
        backbone = _num(params.get("backbone"))
    trainable = _num(params.get("trainable"))
    pct = trainable / backbone * 100 if backbone and not math.isnan(backbone) else math.nan
    return {
        "group": record.get("group") or "default",
        "family": catalog.task_family(cell["task"], task.get("family")),
        "task": cell["task"],
        "task_version": task.get("version"),
        "model": cell["model"],
        "model_family": model_info.get("family"),
        "backbone_params": backbone,
        "method": cell["method"],
        "seed": int(cell["seed"]),
        "status": record["status"],
        "error": record.get("error"),
        "primary_metric": _primary_metric(record),
        "params_total": _num(params.get("total")),
        "params_trainable": trainable,
        "params_method": _num(params.get("method")),
        "params_head": _num(params.get("head")),
        "params_backbone_trainable": _num(params.get("backbone_trainable")),
        "trainable_pct": pct,
        "train_seconds": _num(cost.get("train_seconds")),
        "eval_seconds": _num(cost.get("eval_seconds")),
        "peak_memory_mb": _num(cost.get("peak_memory_mb")),
        "device": cost.get("device"),
        "selection_rule": selection.get("rule"),
        "selection_metric": selection.get("metric"),
        "selection_epoch": _num(selection.get("epoch")),
        "selection_step": _num(selection.get("step")),
        "selection_split": selection.get("split"),
        "data_source": data.get("source"),
        "train_examples": _num(data.get("train_examples")),
        "eval_examples": _num(data.get("eval_examples")),
        "test_examples": _num(data.get("test_examples")),
        "python": env.get("python"),
        "torch": env.get("torch"),
        "transformers": env.get("transformers"),
        "git_commit": env.get("git_commit"),
        "created": record.get("created"),
        "origin": origin,
    }


def _rows_for_record(record: Mapping[str, Any], origin: str) -> list[dict[str, Any]]:
    base = _base_row(record, origin)
    primary = base["primary_metric"]
    status = record["status"]
    if status == "running":
        note = "record status 'running' (job died or still running): counted as missing"
        return [
            base
            | {
                "status": "missing",
                "error": note,
                "split": "eval",
                "metric": primary,
                "value": math.nan,
                "is_primary": True,
            }
        ]
    if status == "failed":
        return [
            base
            | {
                "error": record.get("error") or "failed (no reason recorded)",
                "split": "eval",
                "metric": primary,
                "value": math.nan,
                "is_primary": True,
            }
        ]
    rows = []
    for split, key in (("eval", "metrics"), ("test", "test_metrics")):
        for metric, value in (record.get(key) or {}).items():
            rows.append(
                base
                | {
                    "split": split,
                    "metric": metric,
                    "value": _num(value),
                    "is_primary": metric == primary,
                }
            )
    return rows


_STATUS_RANK = {"completed": 0, "failed": 1, "running": 2}


def _dedupe(
    records: list[tuple[str, dict[str, Any]]],
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Keep one record per group x cell x seed: completed > failed > running, then newest."""
    best: dict[tuple, tuple[str, dict[str, Any]]] = {}
    notes = []
    for origin, rec in records:
        c = rec["cell"]
        key = (rec.get("group") or "default", c["task"], c["model"], c["method"], int(c["seed"]))
        if key not in best:
            best[key] = (origin, rec)
            continue
        old_origin, old = best[key]
        new_rank = (_STATUS_RANK[rec["status"]], _neg_created(rec))
        old_rank = (_STATUS_RANK[old["status"]], _neg_created(old))
        keep, drop = ((origin, rec), old_origin) if new_rank < old_rank else (best[key], origin)
        best[key] = keep
        notes.append(
            f"duplicate record for {'/'.join(map(str, key))}: kept {keep[0]}, ignored {drop}"
        )
    return list(best.values()), notes


def _neg_created(rec: Mapping[str, Any]) -> str:
    # ISO timestamps sort lexically; invert so that the newest sorts first.
    return "".join(chr(0x10FFFF - ord(ch)) for ch in str(rec.get("created") or ""))


def records_to_frame(
    records: list[tuple[str, dict[str, Any]]],
    expected: ExpectedGrid | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Tidy DataFrame (:data:`COLUMNS`) from ``(origin, record)`` pairs, plus missing rows."""
    records, dup_notes = _dedupe(records)
    rows: list[dict[str, Any]] = []
    for origin, rec in records:
        rows.extend(_rows_for_record(rec, origin))
    rows.extend(_missing_rows(rows, expected))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["seed"] = df["seed"].astype("Int64")
    df["is_primary"] = df["is_primary"].astype(bool)
    df = df.sort_values(
        [
            "group",
            "family",
            "task",
            "backbone_params",
            "model",
            "method",
            "seed",
            "split",
            "metric",
        ],
        key=_sort_key,
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)
    df.attrs["notes"] = [*(notes or []), *dup_notes]
    return df


def _sort_key(col: pd.Series) -> pd.Series:
    if col.name == "method":
        return col.map(catalog.method_order)
    if col.name == "task":
        return col.map(catalog.task_order)
    if col.name == "family":
        return col.map(lambda f: catalog.FAMILIES.index(f) if f in catalog.FAMILIES else 99)
    return col


def _missing_rows(rows: list[dict[str, Any]], expected: ExpectedGrid | None) -> list[dict]:
    """Rows for grid cells (per group) that have no completed/failed record."""
    groups = sorted({r["group"] for r in rows}) or ["default"]
    present = {
        (r["group"], r["task"], r["model"], r["method"], r["seed"])
        for r in rows
        if r["status"] in ("completed", "failed")
    }
    present_cells = {k[:4] for k in present}
    placeholders = {
        (r["group"], r["task"], r["model"], r["method"]) for r in rows if r["status"] == "missing"
    }
    placeholder_runs = {
        (r["group"], r["task"], r["model"], r["method"], r["seed"])
        for r in rows
        if r["status"] == "missing"
    }
    backbone: dict[str, float] = {}
    model_family: dict[str, Any] = {}
    task_info: dict[str, tuple[str, str, Any]] = {}
    for r in rows:
        if not math.isnan(r["backbone_params"]):
            backbone.setdefault(r["model"], r["backbone_params"])
        model_family.setdefault(r["model"], r["model_family"])
        if r["primary_metric"]:
            task_info.setdefault(r["task"], (r["family"], r["primary_metric"], r["task_version"]))
    out: list[dict[str, Any]] = []
    for group in groups:
        grow = [r for r in rows if r["group"] == group]
        if expected is not None:
            models, methods, tasks = expected.models, expected.methods, expected.tasks
        else:
            models = sorted({r["model"] for r in grow})
            methods = sorted({r["method"] for r in grow}, key=catalog.method_order)
            tasks = sorted({r["task"] for r in grow}, key=catalog.task_order)
        for task in tasks:
            family, primary, version = task_info.get(
                task, (catalog.task_family(task), catalog.PRIMARY_METRIC.get(task, ""), None)
            )
            for model in models:
                for method in methods:
                    cell = (group, task, model, method)
                    if expected is not None and expected.seeds is not None:
                        seeds: list[int | None] = [
                            s for s in expected.seeds if (*cell, s) not in present
                        ]
                    elif cell in present_cells or cell in placeholders:
                        seeds = []
                    else:
                        seeds = [None]
                    for seed in seeds:
                        if (*cell, seed) in placeholder_runs:
                            continue  # already a 'running' placeholder for this seed
                        row = dict.fromkeys(COLUMNS)
                        row.update(
                            group=group,
                            family=family,
                            task=task,
                            task_version=version,
                            model=model,
                            model_family=model_family.get(model),
                            backbone_params=backbone.get(
                                model, catalog.MODELS.get(model, ("", math.nan))[1]
                            ),
                            method=method,
                            seed=seed,
                            status="missing",
                            error="no result record",
                            split="eval",
                            metric=primary,
                            value=math.nan,
                            primary_metric=primary,
                            is_primary=True,
                        )
                        out.append(row)
    return out


def collect(
    runs_dirs: Sequence[str | Path] = (),
    wandb_path: str | None = None,
    api: Any = None,
    expected: ExpectedGrid | None = None,
    groups: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Tidy DataFrame of every record under ``runs_dirs`` and (optionally) a W&B project/group.

    ``groups`` keeps only those groups (before the grid of missing cells is built). Raises
    :class:`AnalysisError` for an absent directory, a malformed record, or no record at all.
    """
    records: list[tuple[str, dict[str, Any]]] = []
    notes: list[str] = []
    for runs_dir in runs_dirs:
        for path in find_result_files(runs_dir):
            records.append((str(path), load_record(path)))
    if wandb_path:
        wb_records, wb_notes = collect_wandb(wandb_path, api=api)
        records.extend(wb_records)
        notes.extend(wb_notes)
    if groups:
        records = [(o, r) for o, r in records if (r.get("group") or "default") in set(groups)]
    if not records:
        where = ", ".join(map(str, runs_dirs)) + (f", wandb {wandb_path}" if wandb_path else "")
        raise AnalysisError(f"{where}: no result.json records found")
    return records_to_frame(records, expected=expected, notes=notes)


def cell_status_counts(df: pd.DataFrame) -> dict[str, int]:
    """Runs (cell x seed) per status: completed, failed, missing."""
    runs = df.drop_duplicates(["group", "task", "model", "method", "seed", "status"])
    counts = runs["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in ("completed", "failed", "missing")}
