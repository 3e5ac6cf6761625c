"""Sentence and sentence-pair classification, as the GLUE and SuperGLUE families share it: a
row's (first, second) texts, one label index per row, accuracy on the argmax."""

from __future__ import annotations

import numpy as np

from ptuning import metrics
from ptuning.tasks import Encoded, Row, Task
from ptuning.tasks.encoding import encode_cloze, encode_texts


class TextClassificationTask(Task):
    """A task whose row is one or two texts and a ``label`` index."""

    head = "classification"
    metrics = ("accuracy",)
    primary_metric = "accuracy"

    @property
    def label_words(self) -> tuple[str, ...] | None:
        """The label names as words ("not_entailment" -> "not entailment")."""
        return tuple(name.replace("_", " ") for name in self.label_names)

    def texts(self, row: Row) -> tuple[str, str | None]:
        """The (first, second) segment of a row."""
        raise NotImplementedError

    def encode(self, rows, tokenizer, max_length, train) -> Encoded:
        if self.head == "verbalizer":
            clozes = [self.cloze(r) for r in rows]
            features = encode_cloze(tokenizer, [c[0] for c in clozes], [c[1] for c in clozes], max_length)
            for feature, row in zip(features, rows, strict=True):
                feature["labels"] = int(row["label"])
            return Encoded(rows, features)
        pairs = [self.texts(r) for r in rows]
        second = [p[1] for p in pairs]
        features = encode_texts(tokenizer, [p[0] for p in pairs],
                                second if any(s is not None for s in second) else None, max_length)
        for feature, row in zip(features, rows, strict=True):
            feature["labels"] = int(row["label"])
        return Encoded(rows, features)

    def predict(self, logits: np.ndarray, encoded: Encoded) -> list[str]:
        return [self.label_names[i] for i in logits.argmax(-1).tolist()]

    def score(self, logits: np.ndarray, encoded: Encoded) -> dict[str, float]:
        preds = logits.argmax(-1).tolist()
        labels = [f["labels"] for f in encoded.features]
        return {"accuracy": metrics.accuracy(preds, labels)}
