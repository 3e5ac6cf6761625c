"""Tasks: versioned definitions of data, preprocessing and scoring.

A task is a :class:`Task` subclass registered under its config name. It declares its
family (which head it uses), its metrics and primary metric, a ``version`` written into
every result record (bump it whenever preprocessing or scoring changes), where its data
lives (hub dataset, local files) and how to encode rows into model features and score
predictions. Family code lives in ``superglue.py``, ``ner.py`` and ``qa.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from transformers import PreTrainedTokenizerBase

Row = dict[str, Any]


@dataclass
class Encoded:
    """Model features for a list of rows, plus what scoring needs to map them back."""

    rows: list[Row]
    features: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


class Task:
    """One benchmark task: data locations, preprocessing and metrics."""

    name: ClassVar[str]
    family: ClassVar[str]  # superglue | ner | qa
    head: ClassVar[str]  # key of ptuning.heads.HEADS
    version: ClassVar[int]
    metrics: ClassVar[tuple[str, ...]]
    primary_metric: ClassVar[str]
    label_names: ClassVar[tuple[str, ...]] = ()
    hub_path: ClassVar[str]
    hub_config: ClassVar[str | None] = None
    #: split -> file path relative to ``data.root``; ``validation`` is scored
    local_files: ClassVar[dict[str, str]] = {}
    #: rows sharing this key stay together when capping or splitting (questions, queries)
    group_key: ClassVar[Callable[[Row], Any] | None] = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def read_local(self, path: str) -> list[Row]:
        """Rows of one local file in the canonical (hub) schema."""
        raise NotImplementedError

    def from_hub(self, rows: Sequence[Row], features: Any) -> list[Row]:
        """Canonical rows from a hub split (identity unless the hub schema differs)."""
        return [dict(r) for r in rows]

    def encode(self, rows: list[Row], tokenizer: PreTrainedTokenizerBase, max_length: int,
               train: bool) -> Encoded:
        """Tokenise rows into features for :class:`ptuning.model.PromptedModel`."""
        raise NotImplementedError

    def score(self, logits: np.ndarray, encoded: Encoded) -> dict[str, float]:
        """Metrics (0-100 scale) of the predictions ``logits`` for ``encoded``."""
        raise NotImplementedError


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task to :data:`TASKS` under its ``name``."""
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} registered twice")
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    """The task registered as ``name``; an unknown name lists the valid ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()


for _family in ("superglue", "ner", "qa"):
    importlib.import_module(f"{__name__}.{_family}")
