"""Semantic role labelling: one example per predicate, tagged as a sequence, as THUDM/P-tuning-v2
``tasks/srl/`` runs it.

A row is ``{id, index, tokens, tags}``: the sentence's words, the predicate's word index and
one BIO tag per word (the official loaders' schema, ``tasks/srl/datasets/conll2005.py`` and
``conll2012.py``). The model reads the words, a literal ``[SEP]`` word and the predicate word
again (official ``tasks/srl/dataset.py``, ``tokenize_and_align_labels``); each sentence word's
tag sits on its first sub-token, the appended words carry none. The official code aligns
labels by encoding each word on its own; :meth:`NerTask.encode` takes the tokenizer's own
word ids, the same positions wherever a word's sub-tokens do not depend on its neighbours.
Inputs are cut at the tokenizer maximum (512), as the official tokenizer call has no
``max_length``. Scores are seqeval's micro-F1 over every labelled span, the predicate's ``V``
span included, as the official ``compute_metrics`` computes them (the CoNLL shared tasks'
``srl-eval.pl`` leaves ``V`` out, so its F1 is not this one). Test is reported at the best
dev epoch; CoNLL05 also scores its Brown test there (:attr:`Task.extra_tests`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from ptuning.errors import DataFormatError
from ptuning.tasks import Row
from ptuning.tasks.formats import read_srl
from ptuning.tasks.ner import NerTask
from ptuning.tasks.synthetic import DAYS, OBJECTS, PEOPLE, PLACES, VERBS

#: the word between the sentence and the repeated predicate (official ``tokenize_and_align_labels``)
PREDICATE_SEPARATOR = "[SEP]"


class SrlTask(NerTask):
    family = "SRL"
    version = 1
    row_keys = frozenset({"id", "index", "tokens", "tags"})
    label_key = "tags"
    #: the task's tag name for each synthetic role: A0 (agent), A1 (patient), TMP, LOC
    synthetic_roles: ClassVar[dict[str, str]] = {}
    #: the synthetic label picks which of a sentence's two clauses holds the predicate
    synthetic_classes = 2
    #: a sentence's predicates stay on one side of a split; caps count predicates (rows)
    group_key = staticmethod(lambda row: tuple(row["tokens"]))
    caps_keep_groups = False

    @property
    def synthetic_rule(self) -> str:  # type: ignore[override]
        return ("two clauses joined by 'and', each a different verb with its agent and patient (active, or passive "
                "with 'by'), sometimes a time or place; the row's predicate is one clause's verb, and only "
                "that clause's words carry role tags (V on the verb), the other clause's are O.")

    def input_words(self, row: Row) -> list[str]:
        tokens, index = row["tokens"], row["index"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(tokens):
            raise DataFormatError(f"task {self.name}: row {row['id']} has predicate index {index!r}, "
                                  f"not a word position 0..{len(tokens) - 1}")
        return [*tokens, PREDICATE_SEPARATOR, tokens[index]]

    def read_local(self, path: str) -> list[Row]:
        return read_srl(path, self.label_names)

    def from_hub(self, rows: Sequence[Row], features: Any) -> list[Row]:
        """One row per predicate of the hub's ``conll2012_ontonotesv5`` documents: each
        sentence's ``words`` and, per ``srl_frames`` entry, its tag strings (the dataset's own
        names, checked against the label set, never mapped); the predicate is the word tagged
        ``B-V``. A frame without exactly one ``B-V`` is refused, naming it."""
        source = f"task={self.name}: hub dataset {self.hub_path!r}"
        if features is None or "sentences" not in features:
            raise DataFormatError(f"{source} has columns {sorted(features) if features is not None else None}; "
                                  "expected the conll2012_ontonotesv5 schema (document_id, sentences with words "
                                  "and srl_frames); use data.source=local with the official files")
        out: list[Row] = []
        for document in rows:
            for s, sentence in enumerate(document["sentences"]):
                words = list(sentence["words"])
                for f, frame in enumerate(sentence["srl_frames"]):
                    tags = list(frame["frames"])
                    where = f"{source}: document {document.get('document_id')!r} sentence {s} frame {f} " \
                            f"(verb {frame.get('verb')!r})"
                    if len(tags) != len(words):
                        raise DataFormatError(f"{where}: {len(words)} words but {len(tags)} tags")
                    if tags.count("B-V") != 1:
                        raise DataFormatError(f"{where}: {tags.count('B-V')} B-V tags; the predicate is the "
                                              "one word tagged B-V")
                    out.append({"id": str(len(out)), "index": tags.index("B-V"), "tokens": words, "tags": tags})
        self._check_tags(source, "srl_frames", {t for r in out for t in r["tags"]})
        return out

    def synthetic_row(self, rng: random.Random, index: int, label: int) -> Row:
        clauses = [self._synthetic_clause(rng, past) for _, past in rng.sample(VERBS, 2)]  # two verbs
        words: list[str] = []
        roles: list[str | None] = []
        verbs: list[int] = []
        for number, clause in enumerate(clauses):
            if number:
                words.append("and")
                roles.append(None)
            for phrase, role in clause:
                mine = role if number == label else None
                if role == "V":
                    verbs.append(len(words))
                words.extend(phrase)
                roles.extend([mine] * len(phrase))
        words.append(".")
        roles.append(None)
        tags, previous = [], None
        for role in roles:
            if role is None:
                tags.append("O")
            else:
                name = "V" if role == "V" else self.synthetic_roles[role]
                tags.append(f"{'I' if role == previous else 'B'}-{name}")
            previous = role
        return {"id": str(index), "index": verbs[label], "tokens": words, "tags": tags}

    @staticmethod
    def _synthetic_clause(rng: random.Random, verb: str) -> list[tuple[list[str], str | None]]:
        """(words, role) phrases of one clause of ``verb``: active (A0 V A1) or passive (A1 was
        V by A0), with an optional place and time."""
        agent, patient = ["the", rng.choice(PEOPLE)], ["the", rng.choice(OBJECTS)]
        if rng.random() < 0.5:
            phrases: list[tuple[list[str], str | None]] = [(agent, "A0"), ([verb], "V"), (patient, "A1")]
        else:
            phrases = [(patient, "A1"), (["was"], None), ([verb], "V"), (["by", *agent], "A0")]
        if rng.random() < 0.4:
            phrases.append((["in", "the", rng.choice(PLACES)], "LOC"))
        if rng.random() < 0.4:
            phrases.append((["on", rng.choice(DAYS)], "TMP"))
        return phrases
