"""Result records (``result.json`` files and/or W&B runs) -> one tidy DataFrame.

Records are read and validated by :mod:`ptuning.records` (the schema's owner, no torch) and
flattened with ``pd.json_normalize``; names, families, primary metrics and splits come from
the records. One row per run (cell x seed x variant) x split x metric. Nothing is dropped
silently: a failed run is a row with ``status=failed`` and its error, a ``running`` record
and every grid cell without a record are ``status=missing`` rows. Runs are told apart by
their identity: two records are the same run only if group, cell, seed and variant agree.
A searched cell keeps its chosen grid point (:mod:`analysis.search`); every point's score is
in ``frame.attrs["search"]`` (rows of :data:`analysis.search.POINT_COLUMNS`). A task's extra
test split (CoNLL05's Brown: the record's ``extra_test_metrics``) is reported as a task of its
own, ``<task>_<name>``, named as the record's ``task.extra_tests`` names it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.search import select_points, settings_source
from ptuning.records import RecordError, find_records, load_record, validate_record

#: record fields -> frame columns (one row per run before the metrics are unfolded)
FIELDS = {
    "group": "group", "cell.task": "task", "cell.model": "model", "cell.method": "method",
    "cell.seed": "seed", "identity.variant": "variant", "identity.task_version": "task_version",
    "status": "status", "task.display": "task_display", "task.family": "family",
    "task.primary_metric": "primary_metric", "task.reported_split": "reported_split",
    "model.display": "model_display", "model.family": "model_family",
    "model.backbone_params": "backbone_params", "method.display": "method_display",
    "method.kind": "method_kind", "params.total": "params_total", "params.trainable": "params_trainable",
    "params.method": "params_method", "params.head": "params_head",
    "params.backbone_trainable": "params_backbone_trainable", "params.stored": "params_stored", "cost.train_seconds": "train_seconds",
    "cost.eval_seconds": "eval_seconds", "cost.peak_memory_mb": "peak_memory_mb", "cost.device": "device",
    "selection.rule": "selection_rule", "selection.split": "selection_split",
    "selection.epoch": "selection_epoch", "data.source": "data_source",
    "data.train_examples": "train_examples", "data.eval_examples": "eval_examples",
    "data.test_examples": "test_examples", "env.python": "python", "env.torch": "torch",
    "env.transformers": "transformers", "env.git_commit": "git_commit", "created": "created",
    "updated": "updated", "origin": "origin",
}
COLUMNS = (*FIELDS.values(), "variant_label", "settings", "search_choice", "error", "split", "metric", "value",
           "is_primary", "trainable_pct")
KEY = ["group", "task", "model", "method", "seed", "variant"]
_STATUS_RANK = {"completed": 0, "failed": 1, "running": 2}


class AnalysisError(Exception):
    """Bad analysis input (unreadable or malformed record, missing directory); names it."""


@dataclass(frozen=True)
class ExpectedGrid:
    """An explicit grid of cells; ``seeds=None`` means any one seed makes a cell present."""

    models: Sequence[str]
    methods: Sequence[str]
    tasks: Sequence[str]
    seeds: Sequence[int] | None = None


# --------------------------------------------------------------------------- W&B


def _plain(obj: Any) -> Any:
    """W&B summary/config objects (dict-like, lazily loaded) as plain Python values."""
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


def collect_wandb(path: str, api: Any = None) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Records stored in the summaries of the W&B runs at ``ENTITY/PROJECT[/GROUP]``.

    The runner stores the whole record in ``summary["result"]`` when a cell ends; a run
    without one (killed, still running) is listed in the notes and counts as missing.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) not in (2, 3):
        raise AnalysisError(f"--wandb {path!r}: expected ENTITY/PROJECT or ENTITY/PROJECT/GROUP")
    project, group = "/".join(parts[:2]), (parts[2] if len(parts) == 3 else None)
    if api is None:
        import wandb  # only needed for --wandb

        api = wandb.Api()
    records, notes = [], []
    for run in api.runs(project, filters={"group": group} if group else None):
        origin = f"wandb:{project}/{getattr(run, 'id', None) or getattr(run, 'name', '?')}"
        summary = _plain(getattr(run, "summary", None) or {})
        result = summary.get("result") if isinstance(summary, dict) else None
        if isinstance(result, str):
            try:
                result = json.loads(result)
            except json.JSONDecodeError as exc:
                raise AnalysisError(f"{origin}: summary 'result' is not valid JSON") from exc
        if not isinstance(result, dict) or not result:
            notes.append(f"{origin} ({getattr(run, 'name', '?')}, state {getattr(run, 'state', '?')}): "
                         "no result record; counted as missing")
            continue
        try:
            record = validate_record(result, origin)
        except RecordError as exc:
            raise AnalysisError(str(exc)) from exc
        if group is None or record["group"] == group:
            records.append((origin, record))
    return records, notes


# --------------------------------------------------------------------------- frame


def _dedupe(records: list[tuple[str, dict[str, Any]]]) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """One record per run identity: completed > failed > running, then the newest."""
    best: dict[tuple, tuple[str, dict[str, Any]]] = {}
    notes = []
    for origin, record in records:
        cell = record["cell"]
        key = (record["group"], cell["task"], cell["model"], cell["method"], cell["seed"],
               record["identity"]["variant"])
        if key in best:
            old_origin, old = best[key]
            new_wins = (_STATUS_RANK[record["status"]], _neg(record["updated"])) < (
                _STATUS_RANK[old["status"]], _neg(old["updated"]))
            keep, drop = ((origin, record), old_origin) if new_wins else (best[key], origin)
            notes.append(f"duplicate record for {'/'.join(map(str, key))}: kept {keep[0]}, ignored {drop}")
            best[key] = keep
        else:
            best[key] = (origin, record)
    return list(best.values()), notes


def _neg(stamp: str) -> str:
    return "".join(chr(0x10FFFF - ord(ch)) for ch in str(stamp))  # newest sorts first


def _describe(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _configured(record: dict[str, Any], dotted: str) -> Any:
    """The value of a dotted option in the record's config (``default`` if it is not there)."""
    value: Any = record.get("config", {})
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "default" if value is None else value


def variant_labels(records: list[dict[str, Any]]) -> dict[tuple, str]:
    """Per (group, task, model, method) holding several variants: each variant's options that
    differ among them (``train.lr=0.01``; the configured value, or ``default``, where a variant
    keeps an option's default)."""
    by_cell: dict[tuple, dict[str, dict[str, Any]]] = {}
    configs: dict[str, dict[str, Any]] = {}
    for record in records:
        cell = record["cell"]
        key = (record["group"], cell["task"], cell["model"], cell["method"])
        identity = record["identity"]
        options = {**identity["options"], "task version": identity.get("task_version"),
                   "data": str(identity.get("data_fingerprint", ""))[:8]}
        by_cell.setdefault(key, {})[identity["variant"]] = options
        configs[identity["variant"]] = record
    labels = {}
    for key, variants in by_cell.items():
        if len(variants) < 2:
            continue
        names = sorted({name for options in variants.values() for name in options})
        shown = {variant: {n: options[n] if n in options else _configured(configs[variant], n) for n in names}
                 for variant, options in variants.items()}
        differing = [n for n in names if len({_describe(s[n]) for s in shown.values()}) > 1]
        for variant in variants:
            labels[(*key, variant)] = ", ".join(f"{n}={_describe(shown[variant][n])}" for n in differing)
    return labels


def records_to_frame(records: list[tuple[str, dict[str, Any]]], expected: ExpectedGrid | None = None,
                     notes: list[str] | None = None) -> pd.DataFrame:
    """The tidy frame (:data:`COLUMNS`) of ``(origin, record)`` pairs, plus missing rows."""
    records, duplicate_notes = _dedupe(records)
    records, points, search_notes = select_points(records)
    records = [pair for origin, record in records for pair in _with_extra_tests(origin, record)]
    plain = [record for _, record in records]
    labels = variant_labels(plain)
    runs = pd.json_normalize([{**record, "origin": origin} for origin, record in records])
    metric_columns = [c for c in runs.columns if c.startswith(("metrics.", "test_metrics."))]
    wide = runs.reindex(columns=[*FIELDS, *metric_columns]).rename(columns=FIELDS)
    wide["variant_label"] = [labels.get((r["group"], r["cell"]["task"], r["cell"]["model"], r["cell"]["method"],
                                         r["identity"]["variant"]), "") for r in plain]
    wide["settings"] = [settings_source(r) for r in plain]
    wide["search_choice"] = [_choice(r) for r in plain]
    wide["error"] = [f"{r['error']['type']}: {r['error']['message']}" if r.get("error") else None for r in plain]
    wide.loc[wide["status"] == "running", "error"] = "record status 'running' (job died or still running)"
    wide.loc[wide["status"] == "running", "status"] = "missing"
    long = wide.melt(id_vars=[c for c in wide.columns if c not in metric_columns], value_vars=metric_columns,
                     var_name="measure", value_name="value").dropna(subset=["value"])
    long["split"] = long["measure"].str.startswith("test_").map({True: "test", False: "eval"})
    long["metric"] = long["measure"].str.split(".", n=1).str[1]
    long = long.drop(columns="measure")
    unscored = wide[wide["status"] != "completed"].drop(columns=metric_columns)
    unscored = unscored.assign(split="eval", metric=unscored["primary_metric"], value=math.nan)
    frame = pd.concat([long, unscored, _missing(wide, expected)], ignore_index=True)
    frame["is_primary"] = frame["metric"] == frame["primary_metric"]
    frame["trainable_pct"] = frame["params_trainable"] / frame["backbone_params"] * 100
    frame["seed"] = frame["seed"].astype("Int64")
    frame = frame.reindex(columns=list(COLUMNS)).sort_values(
        ["group", "family", "task", "backbone_params", "model", "method", "variant", "seed", "split", "metric"],
        na_position="last", kind="stable").reset_index(drop=True)
    frame.attrs["notes"] = [*(notes or []), *duplicate_notes, *search_notes]
    frame.attrs["search"] = points.to_dict("records")  # plain rows: pandas compares attrs when it combines frames
    return frame


def _with_extra_tests(origin: str, record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The record, then one per extra test split of its task: task ``<task>_<name>`` with the
    split's scores as its test metrics, the same dev metrics (they chose the checkpoint both
    tests are reported at) and everything else of the run."""
    pairs = [(origin, record)]
    for name, display in (record["task"].get("extra_tests") or {}).items():
        task = f"{record['cell']['task']}_{name}"
        data = {**record["data"], "test_examples": (record["data"].get("extra_test_examples") or {}).get(name)}
        pairs.append((origin, {**record, "cell": {**record["cell"], "task": task},
                               "task": {**record["task"], "name": task, "display": display, "extra_tests": {}},
                               "data": data, "test_metrics": (record.get("extra_test_metrics") or {}).get(name, {}),
                               "extra_test_metrics": {}}))
    return pairs


def _choice(record: dict[str, Any]) -> str | None:
    """A searched record's chosen point and how many points it was chosen from."""
    choice = (record.get("search") or {}).get("choice")
    if not choice:
        return None
    return f"{choice['label']} (best of {choice['points_completed']}/{choice['points']} on dev)"


def _missing(wide: pd.DataFrame, expected: ExpectedGrid | None) -> pd.DataFrame:
    """One row per grid cell (or seed of an explicit grid) with no completed or failed run."""
    present = wide[wide["status"].isin(["completed", "failed"])]
    task_facts = wide.drop_duplicates("task").set_index("task")[
        ["task_display", "family", "primary_metric", "reported_split"]]
    model_facts = wide.drop_duplicates("model").set_index("model")[["model_display", "model_family", "backbone_params"]]
    method_facts = wide.drop_duplicates("method").set_index("method")[["method_display", "method_kind"]]
    rows = []
    for group, sub in wide.groupby("group"):
        models = expected.models if expected else sorted(sub["model"].unique())
        methods = expected.methods if expected else sorted(sub["method"].unique())
        tasks = expected.tasks if expected else sorted(sub["task"].unique())
        done = present[present["group"] == group]
        placeholders = sub[sub["status"] == "missing"]
        for task in tasks:
            for model in models:
                for method in methods:
                    cell = (done["task"] == task) & (done["model"] == model) & (done["method"] == method)
                    waiting = placeholders[(placeholders["task"] == task) & (placeholders["model"] == model)
                                           & (placeholders["method"] == method)]
                    if expected is not None and expected.seeds is not None:
                        seeds = [s for s in expected.seeds if not (cell & (done["seed"] == s)).any()
                                 and s not in set(waiting["seed"])]
                    else:
                        seeds = [] if cell.any() or len(waiting) else [None]
                    for seed in seeds:
                        row = {"group": group, "task": task, "model": model, "method": method, "seed": seed,
                               "status": "missing", "error": "no result record", "split": "eval",
                               "value": math.nan}
                        for facts, key in ((task_facts, task), (model_facts, model), (method_facts, method)):
                            row.update(facts.loc[key].to_dict() if key in facts.index else {})
                        row["metric"] = row.get("primary_metric")
                        rows.append(row)
    return pd.DataFrame(rows)


def read_records(runs_dirs: Iterable[str | Path] = (), wandb_path: str | None = None,
                 api: Any = None) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Every record under ``runs_dirs`` (recursively) and, optionally, in a W&B project."""
    records, notes = [], []
    try:
        for runs_dir in runs_dirs:
            records += [(str(path), load_record(path)) for path in find_records(runs_dir)]
    except RecordError as exc:
        raise AnalysisError(str(exc)) from exc
    if wandb_path:
        found, notes = collect_wandb(wandb_path, api=api)
        records += found
    return records, notes


def collect(runs_dirs: Sequence[str | Path] = (), wandb_path: str | None = None, api: Any = None,
            expected: ExpectedGrid | None = None, groups: Sequence[str] | None = None) -> pd.DataFrame:
    """The tidy frame of every record under ``runs_dirs`` and (optionally) a W&B project/group.

    ``groups`` keeps only those groups (before the grid of missing cells is built).
    """
    records, notes = read_records(runs_dirs, wandb_path, api)
    if groups:
        records = [(o, r) for o, r in records if r["group"] in set(groups)]
    if not records:
        where = ", ".join(map(str, runs_dirs)) + (f", wandb {wandb_path}" if wandb_path else "")
        raise AnalysisError(f"{where}: no result.json records found"
                            + (f" in groups {', '.join(groups)}" if groups else ""))
    return records_to_frame(records, expected=expected, notes=notes)


def run_counts(df: pd.DataFrame) -> dict[str, int]:
    """Runs (cell x seed x variant) per status: completed, failed, missing."""
    runs = df.drop_duplicates([*KEY, "status"])
    counts = runs["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in ("completed", "failed", "missing")}
