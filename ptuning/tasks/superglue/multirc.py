"""MultiRC: is an answer option to a question about a paragraph correct (several may be)."""

from __future__ import annotations

import random
from typing import Any

from ptuning import metrics
from ptuning.tasks import Row, TaskSize, register
from ptuning.tasks.formats import Where
from ptuning.tasks.superglue import BINARY, SuperGlueTask
from ptuning.tasks.synthetic import CITIES, FOODS, PLACES, person, stable_seed


@register
class MultiRC(SuperGlueTask):
    """One binary example per (paragraph, question, answer); F1a over answers, EM per question."""

    name, display_name, folder = "multirc", "MultiRC", "MultiRC"
    size = TaskSize(27243, 4848, 128.0, "local SuperGLUE train/val.jsonl (456/83 paragraphs, one row per answer); tokens measured on train")
    label_names = BINARY
    row_keys = frozenset({"paragraph", "question", "answer", "idx", "label"})
    metrics = ("f1a", "em")
    primary_metric = "f1a"
    group_key = staticmethod(lambda row: (row["idx"]["paragraph"], row["idx"]["question"]))
    synthetic_rule = ("two questions per paragraph, four options each: an option is True iff it "
                      "is mentioned in the paragraph.")

    def required_fields(self) -> tuple[str, ...]:
        return ("idx", "passage.text", "passage.questions[].question/idx/answers[].text/idx/label")

    def parse_json(self, where: Where, obj: dict[str, Any]) -> list[Row]:
        paragraph_idx = where.int_field(obj, "idx")
        passage = where.get(obj, "passage")
        text = where.str_field(passage, "text", "passage")
        rows = []
        for qi, question in enumerate(where.get(passage, "questions", "passage")):
            qpath = f"passage.questions[{qi}]"
            q_text = where.str_field(question, "question", qpath)
            q_idx = where.int_field(question, "idx", qpath)
            for ai, answer in enumerate(where.get(question, "answers", qpath)):
                apath = f"{qpath}.answers[{ai}]"
                label = where.binary_label(where.get(answer, "label", apath))
                rows.append({"paragraph": text, "question": q_text,
                             "answer": where.str_field(answer, "text", apath),
                             "idx": {"paragraph": paragraph_idx, "question": q_idx,
                                     "answer": where.int_field(answer, "idx", apath)},
                             "label": label})
        return rows

    def texts(self, row):
        return row["paragraph"], f"{row['question']} {row['answer']}"

    def score(self, logits, encoded):
        preds = logits.argmax(-1).tolist()
        labels = [f["labels"] for f in encoded.features]
        questions = [self.group_key(r) for r in encoded.rows]
        return metrics.multirc_scores(preds, labels, questions)

    def synthetic_rows(self, split: str, n: int, seed: int = 0) -> list[Row]:
        """``n`` answer-option rows (the last question may be cut short)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(stable_seed("synthetic", self.name, split, seed))
        rows: list[Row] = []
        while len(rows) < n:
            p = len(rows) // 8
            rows.extend(self._paragraph(rng, p, 2 * p, 8 * p))
        return rows[:n]

    @staticmethod
    def _paragraph(rng, p_idx: int, q_base: int, a_base: int) -> list[Row]:
        name, city = person(rng), rng.choice(CITIES)
        foods, places = rng.sample(FOODS, 4), rng.sample(PLACES, 4)
        paragraph = (f"{name} lives in {city}. {name} likes to eat {foods[0]} and {foods[1]}. "
                     f"On weekends {name} goes to the {places[0]} and then to the {places[1]}.")
        questions = [(f"What does {name} like to eat?", foods, ""),
                     (f"Where does {name} go on weekends?", places, "the ")]
        rows: list[Row] = []
        a_idx = a_base
        for qi, (question, pool, prefix) in enumerate(questions):
            options = [(pool[k], int(k < 2)) for k in range(4)]
            rng.shuffle(options)
            for text, label in options:
                rows.append({"paragraph": paragraph, "question": question, "answer": prefix + text,
                             "idx": {"paragraph": p_idx, "question": q_base + qi, "answer": a_idx},
                             "label": label})
                a_idx += 1
        return rows
