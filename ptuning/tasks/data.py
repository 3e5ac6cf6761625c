"""Loading a task's splits from the hub, local files or the synthetic generator.

All three sources yield the same canonical rows, so everything downstream has one
code path. Where a local folder lacks a train split (BoolQ, ReCoRD dev only, SQuAD
dev only) the evaluation file is split deterministically into train and eval parts
(by question/article group when the task has one), and the record says so.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptuning.tasks import Row, Task
from ptuning.tasks.synthetic import synthetic_rows

SOURCES = ("hub", "local", "synthetic")


class DataUnavailableError(RuntimeError):
    """A data source cannot provide the task (hub unreachable, files missing)."""


@dataclass
class Splits:
    """Rows for training, evaluation (model selection) and an optional test split."""

    train: list[Row]
    validation: list[Row]
    test: list[Row]
    note: str | None = None


def _stable_fraction(key: Any) -> float:
    digest = hashlib.sha256(repr(key).encode()).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF


def split_rows(rows: list[Row], task: Task, train_fraction: float) -> tuple[list[Row], list[Row]]:
    """Deterministic train/eval split; rows of one group (question, article) stay together."""
    key = task.group_key or (lambda row: row.get("idx", row.get("id")))
    train, held_out = [], []
    for row in rows:
        (train if _stable_fraction(key(row)) < train_fraction else held_out).append(row)
    return train, held_out


def fixed_order(rows: list[Row], task: Task) -> list[Row]:
    """A seed-independent shuffle (groups kept together), so that every method and seed
    capped with :func:`cap_rows` trains on the same subset."""
    key = task.group_key or (lambda row: row.get("idx", row.get("id")))
    order = sorted(range(len(rows)), key=lambda i: (_stable_fraction(("cap", key(rows[i]))), i))
    return [rows[i] for i in order]


def cap_rows(rows: list[Row], task: Task, limit: int | None) -> list[Row]:
    """The first ``limit`` rows; for grouped tasks whole groups (questions, queries,
    articles) are kept until ``limit`` rows are reached, so no group is cut in two."""
    if limit is None or limit >= len(rows):
        return rows
    if task.group_key is None:
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


def _local_path(task: Task, root: str | None, split: str) -> Path | None:
    if root is None:
        raise DataUnavailableError(
            f"task={task.name}: data.source=local needs data.root (a folder laid out like "
            "superglue/<Task>/, conll2003/, conll04/, squad/)"
        )
    relative = task.local_files.get(split)
    if relative is None:
        return None
    path = Path(root) / relative
    return path if path.exists() else None


def load_splits(task: Task, source: str, root: str | None = None, synthetic_sizes: dict | None = None,
                eval_fraction: float = 0.5) -> Splits:
    """Train / validation / test rows of ``task`` from ``source`` (hub, local, synthetic)."""
    if source == "synthetic":
        sizes = synthetic_sizes or {}
        return Splits(
            train=synthetic_rows(task.name, "train", int(sizes.get("train", 512))),
            validation=synthetic_rows(task.name, "validation", int(sizes.get("validation", 256))),
            test=[],
            note="synthetic rows (ptuning.tasks.synthetic), deterministic",
        )
    if source == "hub":
        test = []
        if "test" in task.local_files and task.family == "ner":
            test = _load_hub(task, "test")
        return Splits(_load_hub(task, "train"), _load_hub(task, "validation"), test)
    if source != "local":
        raise ValueError(f"data.source={source!r}; valid sources: {', '.join(SOURCES)}")

    paths = {split: _local_path(task, root, split) for split in ("train", "validation", "test")}
    if paths["validation"] is None:
        wanted = Path(root) / task.local_files.get("validation", "?")
        raise DataUnavailableError(f"task={task.name}: local file {wanted} does not exist")
    validation = task.read_local(str(paths["validation"]))
    test = task.read_local(str(paths["test"])) if paths["test"] else []
    if paths["train"] is not None:
        return Splits(task.read_local(str(paths["train"])), validation, test)
    train, held_out = split_rows(validation, task, 1.0 - eval_fraction)
    unit = "groups" if task.group_key else "rows"
    note = (f"no local train split: {paths['validation'].name} split deterministically by "
            f"{unit} (sha256 of the group key) into train ({len(train)} rows) and "
            f"eval ({len(held_out)} rows)")
    return Splits(train, held_out, test, note)
