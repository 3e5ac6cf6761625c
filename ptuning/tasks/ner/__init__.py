"""Named-entity recognition: token classification, label on the first sub-token,
entity-level micro-F1 (seqeval), test reported at the best dev epoch, as the official
P-Tuning v2 code. Rows follow the hub's ``conll2003`` schema with IOB2 string tags
(``label_names`` gives the id order, the official ``ClassLabel`` order). Local files are
the official data pack's layouts, read as its ``tasks/ner/datasets/*.py`` read them (see
:func:`ptuning.tasks.formats.read_conll`); hub tags are mapped by the names the dataset
gives them, never by an assumed order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from ptuning import metrics
from ptuning.errors import DataFormatError
from ptuning.tasks import Encoded, Row, Task
from ptuning.tasks.encoding import prompt_anchors
from ptuning.tasks.formats import read_conll
from ptuning.tasks.synthetic import DAYS, SHARED_NAMES

#: synthetic relations: (sentence with slots {A} and {B}, type of A, type of B). Every entity
#: comes from one shared name pool, so its type is set by the relation words around it, often
#: not the adjacent word ("was hired by" vs "is spoken by"; "is the home of" vs "is spoken by").
RELATIONS: list[tuple[str, str, str]] = [
    ("{A} works for {B}", "PER", "ORG"),
    ("{A} hired {B}", "ORG", "PER"),
    ("{A} was hired by {B}", "PER", "ORG"),
    ("{A} moved to {B}", "PER", "LOC"),
    ("{A} is the home of {B}", "LOC", "PER"),
    ("{A} has an office in {B}", "ORG", "LOC"),
    ("{A} was founded in {B}", "ORG", "LOC"),
    ("{A} is home to {B}", "LOC", "ORG"),
    ("{A} speaks {B} at home", "PER", "MISC"),
    ("{A} is spoken by {B}", "MISC", "PER"),
    ("{A} is spoken in {B}", "MISC", "LOC"),
    ("{A} sells {B} food", "ORG", "MISC"),
]
#: words before / after the relation, so absolute positions carry no type either
PREFIXES = ["", "", "On {DAY} ,", "Reports say", "Last year ,", "We heard that"]
SUFFIXES = ["", "", "on {DAY}", "last year", "they said", "again"]
#: hub columns that may hold the tags: HF ``ner_tags``, T-NER ``tags``
HUB_TAG_COLUMNS = ("ner_tags", "tags")


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
    label_key = "ner_tags"
    reported_split = "test"
    #: column layout of the local files (see ptuning.tasks.formats.read_conll)
    conll_format: ClassVar[str] = "conll2003"
    #: the task's entity type for each synthetic slot (PER, LOC, ORG, MISC)
    synthetic_types: ClassVar[dict[str, str]] = {}

    @property
    def synthetic_rule(self) -> str:  # type: ignore[override]
        types = "/".join(self.synthetic_types.values())
        return (f"names (one or two words) from one shared pool, tagged {types} by the relation "
                "words around them (\"A works for B\": A person, B organisation; \"A hired B\": "
                "the reverse), not by the name itself.")

    def read_local(self, path: str) -> list[Row]:
        return read_conll(path, self.conll_format, self.label_names)

    def from_hub(self, rows: Sequence[Row], features: Any) -> list[Row]:
        """Rows of a hub split; string tags are used as they are, integer tags through the
        dataset's own ``ClassLabel`` names. Integer tags without names, or tags outside the
        label set, are refused: no label order or tag mapping is assumed."""
        source = f"task={self.name}: hub dataset {self.hub_path!r}"
        column = next((c for c in HUB_TAG_COLUMNS if features is not None and c in features), None)
        if column is None or "tokens" not in features:
            raise DataFormatError(
                f"{source} has columns {sorted(features) if features is not None else None}; expected "
                f"tokens and one of {', '.join(HUB_TAG_COLUMNS)} (use data.source=local with the original files)")
        names = self._hub_tag_names(features[column], source, column)
        out = []
        for i, r in enumerate(rows):
            tags = []
            for t in r[column]:
                if names is None and isinstance(t, str):
                    tags.append(t)
                elif names is not None and isinstance(t, Integral) and not isinstance(t, bool) \
                        and 0 <= t < len(names):
                    tags.append(names[int(t)])
                else:
                    valid = "a string" if names is None else f"an id 0..{len(names) - 1} of its ClassLabel"
                    raise DataFormatError(f"{source}: row {i} has {column} value {t!r}, not {valid}")
            out.append({"id": str(r["id"]) if "id" in r else str(i), "tokens": list(r["tokens"]),
                        "ner_tags": tags})
        self._check_tags(source, column, {t for r in out for t in r["ner_tags"]})
        return out

    def _hub_tag_names(self, feature: Any, source: str, column: str) -> list[str] | None:
        """The ``ClassLabel`` names of a tag column (checked against the label set), or None
        for string tags; integer tags without names are an error."""
        inner = feature[0] if isinstance(feature, list) and len(feature) == 1 else getattr(feature, "feature", None)
        names = getattr(inner, "names", None)
        if names:
            self._check_tags(source, column, set(names))
            return list(names)
        dtype = getattr(inner, "dtype", None)
        if dtype in ("string", "large_string"):
            return None
        files = ", ".join(self.local_files.values())
        raise DataFormatError(
            f"{source}: column {column!r} holds {dtype or type(inner).__name__} tags without ClassLabel "
            f"names, so which id is which tag is unknown (the {self.name} label order is not assumed); "
            f"use data.source=local data.root=DIR with the original files ({files}), or a hub "
            f"dataset whose {column} are ClassLabel ids with names or tag strings")

    def _check_tags(self, source: str, column: str, tags: set[str]) -> None:
        unknown = sorted(tags - set(self.label_names))
        if unknown:
            raise DataFormatError(
                f"{source}: column {column!r} has tags {unknown} outside the {self.name} label set "
                f"{list(self.label_names)}; no mapping between tagging schemes or spellings is "
                "applied: convert the dataset to these tags")

    def input_words(self, row: Row) -> list[str]:
        """The words the model reads, in order; the first ``len(row["tokens"])`` are the
        sentence's and are tagged (NER: the sentence alone)."""
        return list(row["tokens"])

    def encode(self, rows, tokenizer, max_length, train):
        """Words tokenised with ``is_split_into_words``, truncated at ``max_length``; each
        sentence word's label on its first sub-token, -100 on the other sub-tokens, on special
        tokens and on the words :meth:`input_words` adds after the sentence."""
        ids = {name: i for i, name in enumerate(self.label_names)}
        for row in rows:
            unknown = set(row[self.label_key]) - set(ids)
            if unknown:
                raise DataFormatError(f"task {self.name}: row {row['id']} has tags {sorted(unknown)} "
                                      f"outside the label set {list(self.label_names)}")
        kwargs = {"add_prefix_space": True} if getattr(tokenizer, "add_prefix_space", None) is not None else {}
        enc = tokenizer([self.input_words(r) for r in rows], is_split_into_words=True, truncation=True,
                        max_length=max_length, **kwargs)
        features, first_subtokens = [], []
        for i, row in enumerate(rows):
            tags, tagged = row[self.label_key], len(row["tokens"])
            labels, firsts, previous = [], {}, None
            for position, word in enumerate(enc.word_ids(i)):
                if word is None or word == previous or word >= tagged:
                    labels.append(-100)
                else:
                    labels.append(ids[tags[word]])
                    firsts[word] = position
                previous = word
            feature = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                       "prompt_anchors": prompt_anchors(enc, i), "labels": labels}
            if "token_type_ids" in enc:
                feature["token_type_ids"] = enc["token_type_ids"][i]
            features.append(feature)
            first_subtokens.append(firsts)
        return Encoded(rows, features, {"first_subtokens": first_subtokens})

    def predict(self, logits: np.ndarray, encoded: Encoded) -> list[list[str]]:
        """A tag per word, from the word's first sub-token; words cut off by truncation are
        predicted "O"."""
        predicted = logits.argmax(-1)
        return [[self.label_names[predicted[i, firsts[w]]] if w in firsts else "O" for w in range(len(row["tokens"]))]
                for i, (row, firsts) in enumerate(zip(encoded.rows, encoded.extra["first_subtokens"], strict=True))]

    def blank_label(self, row: Row) -> list[str]:
        return ["O"] * len(row["tokens"])

    def score(self, logits: np.ndarray, encoded: Encoded) -> dict[str, float]:
        """seqeval scores of :meth:`predict` (a truncated word's "O" keeps every gold entity counted)."""
        return metrics.ner_scores(self.predict(logits, encoded), [list(row[self.label_key]) for row in encoded.rows])

    def synthetic_row(self, rng: random.Random, index: int, label: int) -> Row:
        template, type_a, type_b = rng.choice(RELATIONS)
        sentence = " ".join(filter(None, (rng.choice(PREFIXES), template, rng.choice(SUFFIXES), ".")))
        tokens: list[str] = []
        tags: list[str] = []
        for piece in sentence.replace("{DAY}", rng.choice(DAYS)).split():
            if piece not in ("{A}", "{B}"):
                tokens.append(piece)
                tags.append("O")
                continue
            kind = self.synthetic_types[type_a if piece == "{A}" else type_b]
            words = rng.sample(SHARED_NAMES, 2 if rng.random() < 0.3 else 1)
            tokens.extend(words)
            tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
        return {"id": str(index), "tokens": tokens, "ner_tags": tags}
