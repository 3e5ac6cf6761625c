"""A task's rows for one cell: from the hub, local files or the synthetic generator, capped.

All three sources yield the same canonical rows, so everything downstream has one code
path. A local folder without a train file is an error unless ``data.train_from_eval`` asks
for the evaluation file to be split deterministically (by question/article group when the
task has one); the split is printed and recorded. :func:`data_fingerprint` hashes the rows
a cell actually uses (part of its identity, instead of the folder they came from).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptuning.config import DataConfig, DataSource
from ptuning.errors import DataUnavailableError
from ptuning.records import fingerprint
from ptuning.tasks import Row, Task


@dataclass
class Splits:
    """Rows for training, evaluation, an optional test split, the task's extra test splits
    that were found (:attr:`Task.extra_tests`) and, under the ``clean`` selection protocol, the
    slice of train held out to choose the epoch on (``selection``)."""

    train: list[Row]
    validation: list[Row]
    test: list[Row]
    note: str | None = None
    selection: list[Row] = field(default_factory=list)
    extra_tests: dict[str, list[Row]] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """sha256 of the rows of every split (what the cell trains, selects and is scored on)."""
        payload: dict[str, Any] = {"train": self.train, "validation": self.validation, "test": self.test}
        if self.selection:
            payload["selection"] = self.selection
        if self.extra_tests:
            payload["extra_tests"] = self.extra_tests
        return fingerprint(payload)


def _stable_fraction(key: Any) -> float:
    digest = hashlib.sha256(repr(key).encode()).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF


def _group(task: Task, row: Row) -> Any:
    return task.group_key(row) if task.group_key else row.get("idx", row.get("id"))


def split_rows(rows: list[Row], task: Task, train_fraction: float) -> tuple[list[Row], list[Row]]:
    """Deterministic train/eval split; rows of one group (question, article) stay together."""
    train, held_out = [], []
    for row in rows:
        (train if _stable_fraction(_group(task, row)) < train_fraction else held_out).append(row)
    return train, held_out


def fixed_order(rows: list[Row], task: Task) -> list[Row]:
    """A seed-independent shuffle (groups kept together), so that every method and seed
    capped with :func:`cap_rows` trains on the same subset."""
    order = sorted(range(len(rows)), key=lambda i: (_stable_fraction(("cap", _group(task, rows[i]))), i))
    return [rows[i] for i in order]


def cap_rows(rows: list[Row], task: Task, limit: int | None) -> list[Row]:
    """The first ``limit`` rows; for tasks whose caps keep groups (MultiRC questions, ReCoRD
    queries) whole groups are kept until ``limit`` rows are reached, so none is cut in two."""
    if limit is None or limit >= len(rows):
        return rows
    if task.group_key is None or not task.caps_keep_groups:
        return rows[:limit]
    kept, seen = [], set()
    for row in rows:
        group = task.group_key(row)
        if group not in seen:
            if len(kept) >= limit:
                break
            seen.add(group)
        kept.append(row)
    return kept


def _load_hub(task: Task, split: str) -> list[Row]:
    if task.hub_path is None:
        files = ", ".join(task.local_files.values())
        raise DataUnavailableError(f"task={task.name}: no hub dataset exists (the data is licensed); use "
                                   f"data.source=local data.root=DIR with the official files ({files})")
    from datasets import load_dataset

    try:
        data = load_dataset(task.hub_path, task.hub_config, split=split)
    except Exception as err:  # datasets raises many types for an unreachable hub
        offline = " (HF_HUB_OFFLINE=1)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise DataUnavailableError(
            f"task={task.name}: cannot load hub dataset {task.hub_path!r}"
            f"{'/' + task.hub_config if task.hub_config else ''} split {split!r}{offline}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. "
            "Offline options: data.source=local data.root=<folder of original files> "
            "or data.source=synthetic"
        ) from err
    return task.from_hub(list(data), data.features)


def _local_files(task: Task, root: str) -> dict[str, Path | None]:
    paths: dict[str, Path | None] = {}
    for split in ("train", "validation", "test", *(f"test_{name}" for name in task.extra_tests)):
        relative = task.local_files.get(split)
        paths[split] = Path(root) / relative if relative and (Path(root) / relative).exists() else None
    return paths


def _read_local(task: Task, data: DataConfig) -> Splits:
    root = str(data.root)
    paths = _local_files(task, root)
    if paths["validation"] is None:
        wanted = Path(root) / task.local_files.get("validation", "?")
        raise DataUnavailableError(f"task={task.name}: local file {wanted} does not exist")
    validation = task.read_local(str(paths["validation"]))
    test = task.read_local(str(paths["test"])) if paths["test"] else []
    extra = {name: task.read_local(str(paths[f"test_{name}"])) for name in task.extra_tests
             if paths[f"test_{name}"] is not None}
    unscored = "; ".join(f"no {Path(root) / task.local_files[f'test_{name}']}: {display} not scored"
                         for name, display in task.extra_tests.items() if name not in extra) or None
    if paths["train"] is not None:
        return Splits(task.read_local(str(paths["train"])), validation, test, unscored, extra_tests=extra)
    if data.train_from_eval is None:
        wanted = Path(root) / task.local_files.get("train", f"<no train file known for {task.name}>")
        raise DataUnavailableError(
            f"task={task.name}: no train file ({wanted}); to train on part of "
            f"{paths['validation'].name} and evaluate on the rest, set data.train_from_eval "
            "(e.g. 0.5: a deterministic split by question/article)")
    train, held_out = split_rows(validation, task, data.train_from_eval)
    unit = "groups" if task.group_key else "rows"
    note = (f"no local train file: {paths['validation'].name} split deterministically by {unit} "
            f"(data.train_from_eval={data.train_from_eval}) into train ({len(train)} rows) and "
            f"eval ({len(held_out)} rows)")
    return Splits(train, held_out, test, "; ".join(filter(None, (note, unscored))), extra_tests=extra)


def read_splits(task: Task, data: DataConfig, holdout: float | None = None) -> Splits:
    """The cell's rows: read from ``data.source``, train in a fixed seed-independent order,
    every split capped by ``data.max_train_samples`` / ``data.max_eval_samples``. ``holdout``
    (the ``clean`` protocol): that share of train, split off by group before capping, becomes
    the ``selection`` split (capped as an evaluation split)."""
    if data.source is DataSource.synthetic:
        splits = Splits(task.synthetic_rows("train", data.synthetic_train),
                        task.synthetic_rows("validation", data.synthetic_eval), [],
                        "synthetic rows (the task's generator), deterministic")
    elif data.source is DataSource.hub:
        test = _load_hub(task, "test") if task.reported_split == "test" else []
        splits = Splits(_load_hub(task, "train"), _load_hub(task, "validation"), test,
                        extra_tests={name: _load_hub(task, f"test_{name}") for name in task.extra_tests})
    else:
        splits = _read_local(task, data)
    train, selection = splits.train, []
    if holdout is not None:
        train, selection = split_rows(splits.train, task, 1 - holdout)
        if not train or not selection:
            raise DataUnavailableError(
                f"task={task.name}: data.selection_holdout={holdout} leaves {len(train)} train and "
                f"{len(selection)} held-out rows of {len(splits.train)}; both must be non-empty")
    return Splits(cap_rows(fixed_order(train, task), task, data.max_train_samples),
                  cap_rows(splits.validation, task, data.max_eval_samples),
                  cap_rows(splits.test, task, data.max_eval_samples), splits.note,
                  cap_rows(selection, task, data.max_eval_samples),
                  {name: cap_rows(rows, task, data.max_eval_samples) for name, rows in splits.extra_tests.items()})
