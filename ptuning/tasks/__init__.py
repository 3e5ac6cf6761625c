"""Tasks: one versioned definition per task, discovered like methods.

A task is one module under its family's package (``glue/``, ``superglue/``, ``ner/``, ``qa/``, ``srl/``) holding
one :class:`Task` subclass decorated with :func:`register`. The class owns every fact about
the task: its family and display name, labels, canonical row schema (the Hugging Face hub
schema), where its data lives and how to read it, its synthetic generator, preprocessing,
metrics, the split tables report, and a ``version`` written into every record (bump it
whenever preprocessing or scoring changes). Add a task with one module and one
``conf/task/<name>.yaml``.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from transformers import PreTrainedTokenizerBase

from ptuning.errors import ConfigError, DataFormatError, require
from ptuning.tasks.synthetic import balanced_labels, stable_seed

Row = dict[str, Any]


@dataclass
class Encoded:
    """Model features for a list of rows, plus what scoring needs to map them back."""

    rows: list[Row]
    features: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSize:
    """How big a task's full data is, for the cost model of a dry run (:mod:`ptuning.cost`),
    which reads no data. Rows are the task's canonical rows (MultiRC: one per answer)."""

    train_rows: int
    #: validation rows, plus test rows when the task reports test (scored at every evaluation)
    eval_rows: int
    #: padded tokens the model reads per row (every choice, candidate or window of the row):
    #: :func:`ptuning.cost.tokens_per_row` with MiniLM's WordPiece at the task's max_length
    tokens_per_row: float
    #: where the counts come from
    source: str


class Task:
    """One benchmark task: data, preprocessing and metrics."""

    name: ClassVar[str]
    #: how tables and figures name the task
    display_name: ClassVar[str]
    #: GLUE | SuperGLUE | NER | QA | SRL (tables group tasks by family)
    family: ClassVar[str]
    #: key of ptuning.heads.HEADS
    head: ClassVar[str]
    version: ClassVar[int]
    metrics: ClassVar[tuple[str, ...]]
    primary_metric: ClassVar[str]
    label_names: ClassVar[tuple[str, ...]] = ()
    #: keys of a canonical row (the hub dataset's columns)
    row_keys: ClassVar[frozenset[str]]
    #: the row key holding the gold answer (absent from rows to predict)
    label_key: ClassVar[str] = "label"
    #: maximum input length in tokens (``task.max_length`` overrides it)
    max_length: int = 128
    #: input templates the task offers (``task.template`` picks one); empty: none
    templates: ClassVar[tuple[int, ...]] = ()
    template: int | None = None
    #: the Hugging Face hub dataset (None: none exists, e.g. licensed data: local files only)
    hub_path: ClassVar[str | None]
    hub_config: ClassVar[str | None] = None
    #: split -> file path relative to ``data.root`` (``test_<name>`` for an extra test)
    local_files: ClassVar[dict[str, str]] = {}
    #: further test splits scored with ``test`` at every evaluation and reported at the same
    #: checkpoint, name -> display name (CoNLL05: ``brown`` -> "CoNLL05 Brown"); the record
    #: keeps them in ``extra_test_metrics`` and analysis reports each as task ``<task>_<name>``
    extra_tests: ClassVar[dict[str, str]] = {}
    #: the split tables report: ``validation``, or ``test`` (scored at the checkpoint chosen
    #: on validation) when the task has one
    reported_split: ClassVar[str] = "validation"
    #: rows sharing this key stay together when splitting (questions, articles) and, unless
    #: ``caps_keep_groups`` is false, when capping
    group_key: ClassVar[Callable[[Row], Any] | None] = None
    caps_keep_groups: ClassVar[bool] = True
    #: the rule every synthetic row follows (so a model can learn it)
    synthetic_rule: ClassVar[str] = ""
    #: synthetic labels are balanced over this many classes (1: the row decides)
    synthetic_classes: ClassVar[int] = 1
    #: the full data's size (the dry run's cost model); None where no source states it (licensed
    #: data that is not here to count): the dry run then prices the task's cells as unknown
    size: ClassVar[TaskSize | None]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def label_words(self) -> tuple[str, ...] | None:
        """The words that name each class, in label order (None: the classes are not words,
        e.g. spans, tags or answer choices). Lester et al.'s class-label init uses them."""
        return None

    #: the words the masked-LM head predicts for each class, in label order (``task.head=verbalizer``;
    #: None: the task has no cloze pattern)
    verbalizer: ClassVar[tuple[str, ...] | None] = None

    def cloze(self, row: Row) -> tuple[str, str]:
        """(text shortened to fit, the pattern after it with ``{mask}``) of a row, for the
        verbalizer head."""
        raise NotImplementedError

    def configure(self, max_length: int | None, template: int | None, head: str | None = None) -> Task:
        """Apply the ``task.*`` options of a config."""
        if head is not None:
            with_cloze = sorted(name for name, cls in TASKS.items() if cls.verbalizer)
            require(head == "verbalizer", "task.head", head, "null (the task's own head) or verbalizer")
            if not self.verbalizer:
                raise ConfigError(f"task.head=verbalizer: task {self.name} has no cloze pattern and label words; "
                                  f"tasks with them: {', '.join(with_cloze)}")
            self.head = head
        if max_length is not None:
            require(max_length >= 8, "task.max_length", max_length, "an integer >= 8")
            self.max_length = max_length
        if template is not None:
            if not self.templates:
                raise ConfigError(f"task.template={template}: task {self.name} has no templates")
            require(template in self.templates, "task.template", template,
                    f"one of {', '.join(map(str, self.templates))} for {self.name}")
            self.template = template
        return self

    def options(self) -> dict[str, tuple[Any, Any]]:
        """Option -> (value in use, the task's default), for the cell's identity."""
        cls = type(self)
        return {"max_length": (self.max_length, cls.max_length), "template": (self.template, cls.template),
                "head": (self.head, cls.head)}

    def describe(self) -> dict[str, Any]:
        """The record's ``task`` block."""
        return {"name": self.name, "display": self.display_name, "family": self.family,
                "version": self.version, "metrics": list(self.metrics),
                "primary_metric": self.primary_metric, "reported_split": self.reported_split,
                "extra_tests": dict(self.extra_tests)}

    # --- data -----------------------------------------------------------------------------

    def read_local(self, path: str) -> list[Row]:
        """Rows of one local file in the canonical schema."""
        raise NotImplementedError

    def from_hub(self, rows: Sequence[Row], features: Any) -> list[Row]:
        """Canonical rows from a hub split (identity unless the hub schema differs)."""
        return [dict(r) for r in rows]

    def synthetic_row(self, rng: random.Random, index: int, label: int) -> Row:
        """One synthetic row following :attr:`synthetic_rule` (``label`` is balanced)."""
        raise NotImplementedError

    def synthetic_rows(self, split: str, n: int, seed: int = 0) -> list[Row]:
        """``n`` deterministic synthetic rows; the rows for ``n`` prefix those for more."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(stable_seed("synthetic", self.name, split, seed))
        labels = balanced_labels(random.Random(stable_seed("labels", self.name, split, seed)),
                                 self.synthetic_classes)
        return [self.synthetic_row(rng, i, next(labels)) for i in range(n)]

    # --- model ----------------------------------------------------------------------------

    def encode(self, rows: list[Row], tokenizer: PreTrainedTokenizerBase, max_length: int,
               train: bool) -> Encoded:
        """Tokenise rows into features for :class:`ptuning.model.PromptedModel`."""
        raise NotImplementedError

    def score(self, logits: np.ndarray, encoded: Encoded) -> dict[str, float]:
        """Metrics (0-100 scale) of the predictions ``logits`` for ``encoded``."""
        raise NotImplementedError

    def predict(self, logits: np.ndarray, encoded: Encoded) -> list[Any]:
        """One prediction per row of ``encoded``, in the task's label space (a label name, a
        tag per word, an answer text, an entity), decided as :meth:`score` decides."""
        raise NotImplementedError

    def blank_label(self, row: Row) -> Any:
        """A placeholder for :attr:`label_key` in a row to predict (it is never scored)."""
        return 0

    def unlabelled(self, row: Row, where: str) -> Row:
        """A row to predict, checked against the canonical schema, its label filled with a
        placeholder; :class:`DataFormatError` naming ``where`` if a field is missing."""
        if not isinstance(row, dict):
            raise DataFormatError(f"{where}: a {self.name} example must be an object with the fields "
                                  f"{sorted(self.row_keys - {self.label_key})}; got {type(row).__name__}")
        missing = sorted(self.row_keys - {self.label_key} - set(row))
        if missing:
            raise DataFormatError(f"{where}: a {self.name} example needs the fields "
                                  f"{sorted(self.row_keys - {self.label_key})}; missing {missing}")
        return {**row, self.label_key: self.blank_label(row)}


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task to :data:`TASKS` under its ``name``."""
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} registered twice")
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    """A fresh instance of the task registered as ``name``; an unknown name lists the valid ones."""
    if name not in TASKS:
        raise ConfigError(f"task={name!r}: unknown task; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()


for _module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
    importlib.import_module(_module.name)
