"""SuperGLUE (Wang et al. 2019): the eight tasks, scored on the validation split.

Preprocessing follows the official P-Tuning v2 code (``tasks/superglue/dataset.py``)
where it is sound; departures are noted on each task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ptuning import metrics
from ptuning.tasks import Encoded, Row, Task, register
from ptuning.tasks.encoding import encode_texts
from ptuning.tasks.readers import LABEL_NAMES, read_superglue_jsonl


class SuperGlueTask(Task):
    family = "superglue"
    head = "classification"
    version = 1
    metrics = ("accuracy",)
    primary_metric = "accuracy"
    hub_path = "super_glue"
    folder: str = ""

    @property
    def local_files(self) -> dict[str, str]:  # type: ignore[override]
        return {"train": f"superglue/{self.folder}/train.jsonl",
                "validation": f"superglue/{self.folder}/val.jsonl"}

    @property
    def hub_config(self) -> str:  # type: ignore[override]
        return self.name

    def read_local(self, path: str) -> list[Row]:
        return read_superglue_jsonl(path, self.name)

    def texts(self, row: Row) -> tuple[str, str | None]:
        """The (first, second) segment of a row."""
        raise NotImplementedError

    def encode(self, rows, tokenizer, max_length, train) -> Encoded:
        pairs = [self.texts(r) for r in rows]
        second = [p[1] for p in pairs]
        features = encode_texts(tokenizer, [p[0] for p in pairs],
                                second if any(s is not None for s in second) else None, max_length)
        for feature, row in zip(features, rows, strict=True):
            feature["labels"] = int(row["label"])
        return Encoded(rows, features)

    def score(self, logits: np.ndarray, encoded: Encoded) -> dict[str, float]:
        preds = logits.argmax(-1).tolist()
        labels = [f["labels"] for f in encoded.features]
        return {"accuracy": metrics.accuracy(preds, labels)}


@register
class BoolQ(SuperGlueTask):
    name, folder, label_names = "boolq", "BoolQ", tuple(LABEL_NAMES["boolq"])

    def texts(self, row):
        return row["question"], row["passage"]


@register
class CB(SuperGlueTask):
    name, folder, label_names = "cb", "CB", tuple(LABEL_NAMES["cb"])
    metrics = ("accuracy", "f1_macro")

    def texts(self, row):
        return row["premise"], row["hypothesis"]

    def score(self, logits, encoded):
        preds = logits.argmax(-1).tolist()
        labels = [f["labels"] for f in encoded.features]
        return {"accuracy": metrics.accuracy(preds, labels),
                "f1_macro": metrics.f1_macro(preds, labels)}


@register
class RTE(SuperGlueTask):
    name, folder, label_names = "rte", "RTE", tuple(LABEL_NAMES["rte"])

    def texts(self, row):
        return row["premise"], row["hypothesis"]


def _mark(text: str, start: int, end: int, left: str, right: str) -> str:
    return f"{text[:start]}{left}{text[start:end]}{right}{text[end:]}"


@register
class WiC(SuperGlueTask):
    """Pair classification about the target word, with the official templates
    (``task.template``): 0 = official RoBERTa template, one segment "s1 s2 Does <word>
    have the same meaning in both sentences?"; 1 = official BERT template (default, as
    run_wic_bert.sh), "<word>: s1" / "<word>: s2"; 2 = the target word marked *..* at its
    character offsets in each sentence (not in the official code)."""

    name, folder, label_names = "wic", "WiC", tuple(LABEL_NAMES["wic"])
    version = 2  # 2: official templates / connector / @highlight handling
    template = 1

    def texts(self, row):
        word, s1, s2 = row["word"], row["sentence1"], row["sentence2"]
        if self.template == 0:
            return f"{s1} {s2} Does {word} have the same meaning in both sentences?", None
        if self.template == 1:
            return f"{word}: {s1}", f"{word}: {s2}"
        if self.template == 2:
            return (_mark(s1, row["start1"], row["end1"], "*", "*"),
                    _mark(s2, row["start2"], row["end2"], "*", "*"))
        raise ValueError(f"task.template={self.template} for wic; valid: 0, 1, 2")


@register
class WSC(SuperGlueTask):
    """Does the pronoun (span2) refer to span1? Pairs the marked text with span1's text.

    ``task.template``: 0 = official "<pronoun>: text"; 1 = official, the pronoun marked
    *..* in the text (default); 2 = both spans marked in the text, span1 as *..* and the
    pronoun as #..# (not in the official code)."""

    name, folder, label_names = "wsc", "WSC", tuple(LABEL_NAMES["wsc"])
    version = 2  # 2: official templates / connector / @highlight handling
    template = 1

    def texts(self, row):
        words = row["text"].split()
        marks = {0: [], 1: [(row["span2_index"], row["span2_text"], "*", "*")],
                 2: [(row["span2_index"], row["span2_text"], "#", "#"),
                     (row["span1_index"], row["span1_text"], "*", "*")]}
        if self.template not in marks:
            raise ValueError(f"task.template={self.template} for wsc; valid: 0, 1, 2")
        for index, text, left, right in marks[self.template]:
            last = index + len(text.split()) - 1
            words[index] = left + words[index]
            words[last] = words[last] + right
        first = " ".join(words)
        if self.template == 0:
            first = f"{row['span2_text']}: {row['text']}"
        return first, row["span1_text"]


@register
class COPA(SuperGlueTask):
    """Two-way multiple choice: ("<premise> because|so", <choice>) per choice, as the
    official code, scored by a multiple-choice head."""

    name, folder, label_names = "copa", "COPA", tuple(LABEL_NAMES["copa"])
    version = 2  # 2: official templates / connector / @highlight handling
    head = "multiple_choice"

    def encode(self, rows, tokenizer, max_length, train):
        first, second = [], []
        for row in rows:
            connector = "because" if row["question"] == "cause" else "so"
            for choice in (row["choice1"], row["choice2"]):
                first.append(f"{row['premise']} {connector}")
                second.append(choice)
        flat = encode_texts(tokenizer, first, second, max_length)
        features = []
        for i, row in enumerate(rows):
            pair = flat[2 * i: 2 * i + 2]
            feature: dict[str, Any] = {k: [p[k] for p in pair] for k in pair[0]}
            feature["labels"] = int(row["label"])
            features.append(feature)
        return Encoded(rows, features)


@register
class MultiRC(SuperGlueTask):
    """One binary example per (paragraph, question, answer); F1a over answers, EM per question."""

    name, folder, label_names = "multirc", "MultiRC", tuple(LABEL_NAMES["multirc"])
    metrics = ("f1a", "em")
    primary_metric = "f1a"
    group_key = staticmethod(lambda row: (row["idx"]["paragraph"], row["idx"]["question"]))

    def texts(self, row):
        return row["paragraph"], f"{row['question']} {row['answer']}"

    def score(self, logits, encoded):
        preds = logits.argmax(-1).tolist()
        labels = [f["labels"] for f in encoded.features]
        questions = [self.group_key(r) for r in encoded.rows]
        return metrics.multirc_scores(preds, labels, questions)


@register
class ReCoRD(SuperGlueTask):
    """One binary example per (query, candidate entity); per query the highest-scoring
    candidate is the prediction, scored by max-over-golds token F1 and EM."""

    name, folder, label_names = "record", "ReCoRD", tuple(LABEL_NAMES["multirc"])
    version = 2  # 2: official templates / connector / @highlight handling
    metrics = ("f1", "em")
    primary_metric = "f1"
    group_key = staticmethod(lambda row: (row["idx"]["passage"], row["idx"]["query"]))

    @property
    def local_files(self):  # only the few-shot files exist locally
        return {"train": "superglue_fewshot/ReCoRD/train32.jsonl",
                "validation": "superglue_fewshot/ReCoRD/dev32.jsonl"}

    def encode(self, rows, tokenizer, max_length, train):
        first, second, owners, labels = [], [], [], []
        for q, row in enumerate(rows):
            answers = set(row["answers"])
            for entity in row["entities"]:
                first.append(row["passage"].replace("@highlight\n", "- "))  # as the official code
                second.append(row["query"].replace("@placeholder", entity))
                owners.append((q, entity))
                labels.append(int(entity in answers))
        features = encode_texts(tokenizer, first, second, max_length) if first else []
        for feature, label in zip(features, labels, strict=True):
            feature["labels"] = label
        return Encoded(rows, features, {"owners": owners})

    def score(self, logits, encoded):
        positive = logits[:, 1] - logits[:, 0] if len(logits) else logits
        best: dict[int, tuple[float, str]] = {}
        for (q, entity), value in zip(encoded.extra["owners"], positive, strict=True):
            if q not in best or value > best[q][0]:
                best[q] = (float(value), entity)
        predictions = {q: best[q][1] for q in best}
        references = {q: row["answers"] for q, row in enumerate(encoded.rows)}
        return metrics.record_scores(predictions, references)

