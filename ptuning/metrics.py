"""Evaluation metrics for the P-Tuning reproduction, all on the 0-100 scale the papers print.

* SuperGLUE: accuracy, CB macro-F1, MultiRC F1a / EM, ReCoRD EM / F1.
* SQuAD v1.1 / v2.0: EM / F1 with the official answer normalisation.
* NER: entity-level micro F1 (seqeval, CoNLL ``conlleval`` semantics) and token accuracy.
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from seqeval.metrics import accuracy_score as seq_accuracy
from seqeval.metrics import f1_score as seq_f1
from seqeval.metrics import precision_score as seq_precision
from seqeval.metrics import recall_score as seq_recall
from sklearn.metrics import f1_score

__all__ = [
    "accuracy",
    "f1_macro",
    "multirc_scores",
    "ner_scores",
    "normalize_answer",
    "record_scores",
    "squad_em",
    "squad_f1",
    "squad_scores",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = frozenset(string.punctuation)


def _check_lengths(preds: Sequence[Any], labels: Sequence[Any]) -> None:
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("cannot score an empty set of predictions")


def accuracy(preds: Sequence[Any], labels: Sequence[Any]) -> float:
    """Percentage of predictions equal to their label."""
    _check_lengths(preds, labels)
    return 100.0 * sum(int(p == y) for p, y in zip(preds, labels, strict=True)) / len(labels)


def f1_macro(
    preds: Sequence[Any], labels: Sequence[Any], classes: Sequence[Any] | None = None
) -> float:
    """Unweighted mean of per-class F1 (CB's second metric), via scikit-learn.

    By default the classes are those occurring in ``labels`` or ``preds`` (what the SuperGLUE
    / HF ``super_glue`` metric does); pass ``classes`` to force a fixed class set, a class never
    predicted nor present then counting as F1 0.
    """
    _check_lengths(preds, labels)
    score = f1_score(
        list(labels),
        list(preds),
        labels=None if classes is None else list(classes),
        average="macro",
        zero_division=0,
    )
    return 100.0 * float(score)


def multirc_scores(
    preds: Sequence[int], labels: Sequence[int], question_ids: Sequence[Hashable]
) -> dict[str, float]:
    """MultiRC F1a (binary F1 over all answer options) and EM (per-question exact match).

    ``question_ids`` identifies the question each answer option belongs to, e.g. the tuple
    ``(idx["paragraph"], idx["question"])``; EM is the percentage of questions whose options
    are all predicted correctly.
    """
    _check_lengths(preds, labels)
    if len(question_ids) != len(labels):
        raise ValueError(f"{len(question_ids)} question ids but {len(labels)} labels")
    f1a = f1_score(list(labels), list(preds), pos_label=1, average="binary", zero_division=0)
    all_correct: dict[Hashable, bool] = defaultdict(lambda: True)
    for p, y, q in zip(preds, labels, question_ids, strict=True):
        all_correct[q] = all_correct[q] and int(p) == int(y)
    em = sum(all_correct.values()) / len(all_correct)
    return {"f1a": 100.0 * float(f1a), "em": 100.0 * em}


def normalize_answer(s: str) -> str:
    """Official SQuAD/ReCoRD normalisation: lowercase, drop punctuation and a/an/the, squash spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _token_f1(prediction: str, gold: str) -> float:
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(gold).split()
    if not pred_toks or not gold_toks:
        # SQuAD 2.0 rule: an empty answer matches only an empty answer.
        return float(pred_toks == gold_toks)
    common = Counter(pred_toks) & Counter(gold_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _golds_or_no_answer(golds: Sequence[str]) -> list[str]:
    """Gold list as the official v2 script uses it: answers normalising to "" dropped, [""] if none."""
    kept = [g for g in golds if normalize_answer(g)]
    return kept or [""]


def squad_em(pred: str, golds: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised gold answer, else 0.0.

    An empty ``golds`` list means unanswerable (SQuAD 2.0): only the empty prediction scores 1.
    """
    norm_pred = normalize_answer(pred)
    return float(any(norm_pred == normalize_answer(g) for g in _golds_or_no_answer(golds)))


def squad_f1(pred: str, golds: Sequence[str]) -> float:
    """Max over gold answers of the bag-of-tokens F1 (0..1); empty ``golds`` = unanswerable."""
    return max(_token_f1(pred, g) for g in _golds_or_no_answer(golds))


def squad_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """SQuAD v1.1 / v2.0 EM and F1 (percent) over every question in ``references``.

    A question without a prediction scores 0 (official v1.1 behaviour). With SQuAD 2.0
    references (some gold lists empty) the ``has_ans_*`` / ``no_ans_*`` breakdown is added,
    each part present only when that subset is non-empty (as in the official v2 script).
    """
    if not references:
        raise ValueError("cannot score an empty set of references")
    ems: dict[str, float] = {}
    f1s: dict[str, float] = {}
    for qid, golds in references.items():
        pred = predictions.get(qid)
        ems[qid] = 0.0 if pred is None else squad_em(pred, golds)
        f1s[qid] = 0.0 if pred is None else squad_f1(pred, golds)
    out = {
        "em": 100.0 * sum(ems.values()) / len(ems),
        "f1": 100.0 * sum(f1s.values()) / len(f1s),
        "total": float(len(ems)),
    }
    has_ans = [q for q, g in references.items() if any(normalize_answer(a) for a in g)]
    no_ans = [q for q, g in references.items() if not any(normalize_answer(a) for a in g)]
    if no_ans:
        for name, qids in (("has_ans", has_ans), ("no_ans", no_ans)):
            if qids:
                out[f"{name}_em"] = 100.0 * sum(ems[q] for q in qids) / len(qids)
                out[f"{name}_f1"] = 100.0 * sum(f1s[q] for q in qids) / len(qids)
                out[f"{name}_total"] = float(len(qids))
    return out


def record_scores(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> dict[str, float]:
    """ReCoRD EM and F1 (percent): per query the max over gold answers, official normalisation.

    A query without a prediction scores 0, as in the official ReCoRD evaluation script.
    """
    if not references:
        raise ValueError("cannot score an empty set of references")
    em_total = f1_total = 0.0
    for qid, golds in references.items():
        if not golds:
            raise ValueError(f"ReCoRD query {qid!r} has no gold answers")
        pred = predictions.get(qid)
        if pred is None:
            continue
        norm_pred = normalize_answer(pred)
        em_total += max(float(norm_pred == normalize_answer(g)) for g in golds)
        f1_total += max(_record_token_f1(pred, g) for g in golds)
    n = len(references)
    return {"em": 100.0 * em_total / n, "f1": 100.0 * f1_total / n}


def _record_token_f1(prediction: str, gold: str) -> float:
    """ReCoRD (= SQuAD v1.1) token F1: no common token, or an empty side, scores 0."""
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(gold).split()
    num_same = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def ner_scores(
    pred_tag_seqs: Sequence[Sequence[str]], gold_tag_seqs: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Entity-level micro precision / recall / F1 (seqeval default mode) and token accuracy."""
    _check_lengths(pred_tag_seqs, gold_tag_seqs)
    preds = [list(p) for p in pred_tag_seqs]
    golds = [list(g) for g in gold_tag_seqs]
    for i, (p, g) in enumerate(zip(preds, golds, strict=True)):
        if len(p) != len(g):
            raise ValueError(f"sequence {i}: {len(p)} predicted tags but {len(g)} gold tags")
    return {
        "f1": 100.0 * float(seq_f1(golds, preds, zero_division=0)),
        "precision": 100.0 * float(seq_precision(golds, preds, zero_division=0)),
        "recall": 100.0 * float(seq_recall(golds, preds, zero_division=0)),
        "accuracy": 100.0 * float(seq_accuracy(golds, preds)),
    }
