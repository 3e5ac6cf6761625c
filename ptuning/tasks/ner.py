"""Named-entity recognition: token classification, label on the first sub-token,
entity-level micro-F1 (seqeval), as the official P-Tuning v2 code."""

from __future__ import annotations

import numpy as np

from ptuning import metrics
from ptuning.tasks import Encoded, Row, Task, register
from ptuning.tasks.encoding import prompt_anchors
from ptuning.tasks.readers import LABEL_NAMES, read_conll


class NerTask(Task):
    family = "ner"
    head = "token_classification"
    version = 1
    metrics = ("f1", "precision", "recall", "accuracy")
    primary_metric = "f1"
    conll_format = "conll2003"

    def read_local(self, path: str) -> list[Row]:
        return read_conll(path, self.conll_format)

    def from_hub(self, rows, features):
        if features is None or "tokens" not in features or "ner_tags" not in features:
            raise ValueError(
                f"task={self.name}: hub dataset {self.hub_path!r} has columns "
                f"{sorted(features) if features is not None else None}; expected tokens and ner_tags "
                "(set task.hub_path to a dataset in the conll2003 schema, or use data.source=local)"
            )
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
                raise ValueError(f"task {self.name}: sentence {row['id']} has tags {sorted(unknown)} "
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


@register
class CoNLL2003(NerTask):
    name, label_names = "conll2003", tuple(LABEL_NAMES["conll2003"])
    hub_path = "conll2003"
    local_files = {"train": "conll2003/train.txt", "validation": "conll2003/valid.txt",
                   "test": "conll2003/test.txt"}


@register
class CoNLL04(NerTask):
    name, label_names = "conll04", tuple(LABEL_NAMES["conll04"])
    hub_path = "conll04"  # no canonical hub copy: point task.hub_path at one you trust
    local_files = {"train": "conll04/train.txt", "validation": "conll04/dev.txt",
                   "test": "conll04/test.txt"}
    conll_format = "token_tag"


@register
class OntoNotes(NerTask):
    name, label_names = "ontonotes", tuple(LABEL_NAMES["ontonotes"])
    hub_path = "tner/ontonotes5"
    local_files = {"train": "ontonotes/train.conll", "validation": "ontonotes/dev.conll",
                   "test": "ontonotes/test.conll"}
    conll_format = "generic"
