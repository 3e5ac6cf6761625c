"""SuperGLUE (Wang et al. 2019): what the eight tasks share. Scored on the validation split.

Preprocessing follows the official P-Tuning v2 code (``tasks/superglue/dataset.py``) where
it is sound; departures are noted on each task. Local files are the original jsonl
(``superglue/<Folder>/{train,val}.jsonl``), read into the rows of the hub's ``super_glue``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ptuning.tasks import Row
from ptuning.tasks.classification import TextClassificationTask
from ptuning.tasks.formats import Where, read_jsonl

BINARY = ("False", "True")


class SuperGlueTask(TextClassificationTask):
    family = "SuperGLUE"
    version = 1
    hub_path = "super_glue"
    #: the task's folder under ``superglue/`` in a local data root
    folder: ClassVar[str] = ""
    #: fields of a flat jsonl row and their types (str or int), besides ``label``
    fields: ClassVar[dict[str, type]] = {}
    #: how the jsonl stores the label: binary (true/false), named (label_names) or index
    label_style: ClassVar[str] = "binary"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.fields and "row_keys" not in cls.__dict__:
            cls.row_keys = frozenset(cls.fields) | {"label"}

    @property
    def local_files(self) -> dict[str, str]:  # type: ignore[override]
        return {"train": f"superglue/{self.folder}/train.jsonl",
                "validation": f"superglue/{self.folder}/val.jsonl"}

    @property
    def hub_config(self) -> str:  # type: ignore[override]
        return self.name

    def required_fields(self) -> tuple[str, ...]:
        return (*self.fields, "label")

    def parse_json(self, where: Where, obj: dict[str, Any]) -> list[Row]:
        """Canonical rows of one jsonl object (flat tasks: one row)."""
        row: Row = {key: where.int_field(obj, key) if kind is int else where.str_field(obj, key)
                    for key, kind in self.fields.items()}
        label = where.get(obj, "label")
        if self.label_style == "named":
            row["label"] = where.named_label(label, self.label_names)
        elif self.label_style == "index":
            row["label"] = where.index_label(label, self.num_labels)
        else:
            row["label"] = where.binary_label(label)
        return [row]

    def read_local(self, path: str) -> list[Row]:
        return read_jsonl(path, self.name, self.required_fields(), self.parse_json)
