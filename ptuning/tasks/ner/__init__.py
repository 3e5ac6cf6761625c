"""Named-entity recognition: token classification, label on the first sub-token,
entity-level micro-F1 (seqeval), test reported at the best dev epoch, as the official
P-Tuning v2 code. Local files are CoNLL-style columns, read into the hub's
``conll2003`` schema with IOB2 string tags (``label_names`` gives the id order)."""

from __future__ import annotations

import random
from typing import ClassVar

import numpy as np

from ptuning import metrics
from ptuning.errors import DataFormatError
from ptuning.tasks import Encoded, Row, Task
from ptuning.tasks.encoding import prompt_anchors
from ptuning.tasks.formats import read_conll
from ptuning.tasks.synthetic import CITIES, DAYS, LAST_NAMES, NATIONALITIES, ORGS, person

#: sentence templates of the synthetic rows; {PER} {LOC} {ORG} {MISC} are entities
TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "{PER} met {PER} at the {ORG} office on {DAY} .",
    "The {MISC} team lost to {ORG} in {LOC} .",
    "{ORG} opened a new shop in {LOC} last week .",
    "{PER} , the {MISC} singer , moved to {LOC} .",
    "Police in {LOC} said {PER} had left the city .",
    "{LOC} and {LOC} signed a new trade deal .",
    "The {MISC} player {PER} joined {ORG} .",
]
FILLERS = {"LOC": CITIES, "ORG": ORGS, "MISC": NATIONALITIES}


class NerTask(Task):
    family = "NER"
    head = "token_classification"
    version = 2  # 2: inputs cut at 512 tokens, the tokenizer maximum the official reader uses
    #: the official NER reader (``tasks/ner/dataset.py``) truncates at the tokenizer's maximum,
    #: not at --max_seq_length
    max_length = 512
    metrics = ("f1", "precision", "recall", "accuracy")
    primary_metric = "f1"
    row_keys = frozenset({"id", "tokens", "ner_tags"})
    reported_split = "test"
    #: column layout of the local files (see ptuning.tasks.formats.read_conll)
    conll_format: ClassVar[str] = "conll2003"
    #: the task's entity type for each synthetic slot (PER, LOC, ORG, MISC)
    synthetic_types: ClassVar[dict[str, str]] = {}

    @property
    def synthetic_rule(self) -> str:  # type: ignore[override]
        return ("capitalised names from fixed lists, tagged "
                + "/".join(self.synthetic_types.values()) + " in sentence templates.")

    def read_local(self, path: str) -> list[Row]:
        return read_conll(path, self.conll_format)

    def from_hub(self, rows, features):
        if features is None or "tokens" not in features or "ner_tags" not in features:
            raise DataFormatError(
                f"task={self.name}: hub dataset {self.hub_path!r} has columns "
                f"{sorted(features) if features is not None else None}; expected tokens and ner_tags "
                "(use data.source=local with the original files)")
        tag_feature = features["ner_tags"].feature
        names = getattr(tag_feature, "names", None) or list(self.label_names)
        return [{"id": str(r["id"]), "tokens": list(r["tokens"]),
                 "ner_tags": [t if isinstance(t, str) else names[t] for t in r["ner_tags"]]}
                for r in rows]

    def encode(self, rows, tokenizer, max_length, train):
        ids = {name: i for i, name in enumerate(self.label_names)}
        for row in rows:
            unknown = set(row["ner_tags"]) - set(ids)
            if unknown:
                raise DataFormatError(f"task {self.name}: sentence {row['id']} has tags {sorted(unknown)} "
                                      f"outside the label set {list(self.label_names)}")
        kwargs = {"add_prefix_space": True} if getattr(tokenizer, "add_prefix_space", None) is not None else {}
        enc = tokenizer([r["tokens"] for r in rows], is_split_into_words=True, truncation=True,
                        max_length=max_length, **kwargs)
        features, first_subtokens = [], []
        for i, row in enumerate(rows):
            words = enc.word_ids(i)
            labels, firsts, previous = [], {}, None
            for position, word in enumerate(words):
                if word is None or word == previous:
                    labels.append(-100)
                else:
                    labels.append(ids[row["ner_tags"][word]])
                    firsts[word] = position
                previous = word
            feature = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                       "prompt_anchors": prompt_anchors(enc, i), "labels": labels}
            if "token_type_ids" in enc:
                feature["token_type_ids"] = enc["token_type_ids"][i]
            features.append(feature)
            first_subtokens.append(firsts)
        return Encoded(rows, features, {"first_subtokens": first_subtokens})

    def score(self, logits: np.ndarray, encoded: Encoded) -> dict[str, float]:
        """Word-level tags from each word's first sub-token; words cut off by truncation
        are predicted "O" so every gold entity counts."""
        predicted = logits.argmax(-1)
        preds, golds = [], []
        for i, row in enumerate(encoded.rows):
            firsts = encoded.extra["first_subtokens"][i]
            preds.append([self.label_names[predicted[i, firsts[w]]] if w in firsts else "O"
                          for w in range(len(row["tokens"]))])
            golds.append(list(row["ner_tags"]))
        return metrics.ner_scores(preds, golds)

    def synthetic_row(self, rng: random.Random, index: int, label: int) -> Row:
        tokens: list[str] = []
        tags: list[str] = []
        for piece in rng.choice(TEMPLATES).split():
            slot = piece.strip("{}") if piece.startswith("{") else None
            if slot == "DAY":
                tokens.append(rng.choice(DAYS))
                tags.append("O")
                continue
            if slot is None:
                tokens.append(piece)
                tags.append("O")
                continue
            if slot == "PER":
                words = [person(rng)] + ([rng.choice(LAST_NAMES)] if rng.random() < 0.5 else [])
            else:
                words = rng.choice(FILLERS[slot]).split()
            kind = self.synthetic_types[slot]
            tokens.extend(words)
            tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
        return {"id": str(index), "tokens": tokens, "ner_tags": tags}
