"""Metrics against values computed by hand (comments show the arithmetic)."""

from __future__ import annotations

import pytest

from ptuning.metrics import (
    accuracy,
    f1_macro,
    multirc_scores,
    ner_scores,
    normalize_answer,
    record_scores,
    squad_em,
    squad_f1,
    squad_scores,
)


def test_accuracy() -> None:
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == pytest.approx(50.0)
    assert accuracy(["a", "b"], ["a", "b"]) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        accuracy([1, 0], [1])


def test_cb_macro_f1_by_hand() -> None:
    labels = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 2]
    # class 0: P 2/2 R 2/3 -> F1 0.8; class 1: P 1/2 R 1/2 -> 0.5; class 2: P 1/2 R 1/1 -> 2/3
    expected = 100 * (0.8 + 0.5 + 2 / 3) / 3
    assert f1_macro(preds, labels) == pytest.approx(expected)
    assert f1_macro(preds, labels) == pytest.approx(65.5555556)
    # forcing the 3 CB classes: absent classes count as F1 0
    assert f1_macro([0, 0], [0, 0], classes=[0, 1, 2]) == pytest.approx(100 / 3)
    assert f1_macro([0, 0], [0, 0]) == pytest.approx(100.0)


def test_multirc_f1a_and_em_by_hand() -> None:
    qids = [(0, 0)] * 3 + [(0, 1)] * 2 + [(1, 2)] * 2
    labels = [1, 0, 1, 0, 1, 1, 0]
    preds = [1, 0, 0, 0, 1, 1, 1]
    # TP = 3 (options 0, 4, 5), FP = 1 (option 6), FN = 1 (option 2): F1a = 6 / 8
    # question (0,0) misses option 2, (0,1) all right, (1,2) wrong on option 6: EM = 1/3
    scores = multirc_scores(preds, labels, qids)
    assert scores["f1a"] == pytest.approx(75.0)
    assert scores["em"] == pytest.approx(100 / 3)
    perfect = multirc_scores(labels, labels, qids)
    assert perfect == {"f1a": pytest.approx(100.0), "em": pytest.approx(100.0)}


def test_normalize_answer() -> None:
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear\tand the fig.") == "apple pear and fig"
    assert normalize_answer("Theatre") == "theatre"  # "the" only removed as a whole word


def test_squad_em_f1_normalisation_and_partial_overlap() -> None:
    assert squad_em("The  Denver Broncos!", ["denver broncos"]) == 1.0
    assert squad_f1("The  Denver Broncos!", ["denver broncos"]) == 1.0
    # pred {denver, broncos, team} vs gold {denver, broncos}: P 2/3, R 1 -> F1 0.8
    assert squad_em("Denver Broncos team", ["the Denver Broncos"]) == 0.0
    assert squad_f1("Denver Broncos team", ["the Denver Broncos"]) == pytest.approx(0.8)
    # max over golds: "2016" gives P 1/3 R 1 -> 0.5; "february 7 2016" gives 1/3
    assert squad_f1("in the year 2016", ["2016", "February 7, 2016"]) == pytest.approx(0.5)
    assert squad_em("Carolina Panthers", ["Panthers", "the Carolina Panthers"]) == 1.0
    assert squad_f1("Broncos", ["Panthers"]) == 0.0


def test_squad_scores_v11() -> None:
    refs = {"q1": ["Denver Broncos"], "q2": ["2016", "February 7, 2016"], "q3": ["Santa Clara"]}
    preds = {"q1": "the Denver Broncos", "q2": "in the year 2016"}  # q3 missing -> 0
    scores = squad_scores(preds, refs)
    assert scores["em"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)
    assert scores["total"] == 3
    assert not any(k.startswith("no_ans") for k in scores)


def test_squad_v2_no_answer_both_ways() -> None:
    # unanswerable: only the empty prediction is right
    assert squad_em("", []) == 1.0 and squad_f1("", []) == 1.0
    assert squad_em("Denver", []) == 0.0 and squad_f1("Denver", []) == 0.0
    # answerable: abstaining scores 0
    assert squad_em("", ["Denver"]) == 0.0 and squad_f1("", ["Denver"]) == 0.0
    refs = {"a": ["Denver Broncos"], "b": [], "c": []}
    preds = {"a": "Broncos", "b": "", "c": "Carolina"}
    # a: EM 0, F1 P 1 R 1/2 -> 2/3;  b: 1 / 1;  c: 0 / 0
    scores = squad_scores(preds, refs)
    assert scores["em"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    assert scores["has_ans_em"] == pytest.approx(0.0)
    assert scores["has_ans_f1"] == pytest.approx(200 / 3)
    assert scores["no_ans_em"] == pytest.approx(50.0)
    assert scores["no_ans_f1"] == pytest.approx(50.0)
    assert (scores["has_ans_total"], scores["no_ans_total"]) == (1, 2)


def test_record_scores_multiple_golds() -> None:
    refs = {0: ["Olimpija Ljubljana", "Olimpija"], 1: ["Diego Costa"], 2: ["Chelsea"], 3: ["Blues"]}
    preds = {0: "olimpija", 1: "Costa", 2: "Kurt Zouma"}  # 3 has no prediction -> 0
    # q0: EM 1 (2nd gold), F1 1;  q1: EM 0, F1 P 1 R 1/2 -> 2/3;  q2: 0 / 0;  q3: 0 / 0
    scores = record_scores(preds, refs)
    assert scores["em"] == pytest.approx(25.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 4)
    with pytest.raises(ValueError, match="no gold answers"):
        record_scores({0: "x"}, {0: []})


def test_ner_scores_partial_entity_overlap() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "O", "B-MISC", "B-LOC", "O"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    # gold entities PER[0:2] LOC[3] ORG[0:3] = 3; predicted PER[0:1] MISC[2] LOC[3] ORG[0:3] = 4
    # correct: LOC, ORG -> P 2/4, R 2/3, F1 = 2*(1/2)(2/3)/(7/6) = 4/7; tokens 7/9 right
    scores = ner_scores(pred, gold)
    assert scores["precision"] == pytest.approx(50.0)
    assert scores["recall"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(400 / 7)
    assert scores["accuracy"] == pytest.approx(700 / 9)


def test_ner_scores_default_mode_is_conlleval() -> None:
    # conlleval (seqeval default) accepts an entity opening with I-
    assert ner_scores([["I-PER", "O"]], [["B-PER", "O"]])["f1"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="sequence 0"):
        ner_scores([["O"]], [["O", "O"]])
