"""GLUE (Wang et al. 2018): what its single-sentence and pair classification tasks share.
Scored on the validation split (GLUE's test labels are hidden).

Local files are the original GLUE release (``glue/<Folder>/{train,dev}.tsv``: a header line
naming the tab-separated columns, labels as class indices), read into the rows of the hub's
``glue`` dataset: the text columns, ``label`` (the class index) and ``idx`` (the 0-based
number of the data line, as the hub numbers rows).
"""

from __future__ import annotations

from typing import ClassVar

from ptuning.tasks import Row
from ptuning.tasks.classification import TextClassificationTask
from ptuning.tasks.formats import Where, read_tsv


class GlueTask(TextClassificationTask):
    family = "GLUE"
    version = 1
    hub_path = "glue"
    #: the tsv columns that become row fields, in input order (one: a single sentence; two: a pair)
    text_columns: ClassVar[tuple[str, ...]] = ()

    def required_columns(self) -> tuple[str, ...]:
        return (*self.text_columns, "label")

    def parse_tsv(self, where: Where, record: dict[str, str], index: int) -> list[Row]:
        """The canonical row of one data line: its text columns as written, the label index
        (``"0"``, ``"1"``, ...) as an int, ``idx`` the data line's number."""
        row: Row = {column: record[column] for column in self.text_columns}
        row["label"] = where.named_label(record["label"], [str(i) for i in range(self.num_labels)])
        row["idx"] = index
        return [row]

    def read_local(self, path: str) -> list[Row]:
        return read_tsv(path, self.name, self.required_columns(), self.parse_tsv)

    def texts(self, row: Row) -> tuple[str, str | None]:
        """The (first, second) segment of a row."""
        first, *second = (row[column] for column in self.text_columns)
        return first, second[0] if second else None
