"""Extractive QA (SQuAD 1.1 / 2.0): 384-token windows with stride 128, n-best 20,
answers up to 30 tokens, the null answer for 2.0, official EM/F1 normalisation. Local files
are the original SQuAD JSON, read into the hub's ``squad`` / ``squad_v2`` rows."""

from __future__ import annotations

import hashlib
import random
from typing import Any, ClassVar

import numpy as np

from ptuning import metrics
from ptuning.tasks import Encoded, Row, Task
from ptuning.tasks.encoding import prompt_anchors
from ptuning.tasks.formats import read_squad_json
from ptuning.tasks.synthetic import FIRST_NAMES, OBJECTS

DOC_STRIDE = 128
N_BEST = 20
MAX_ANSWER_TOKENS = 30

#: synthetic transfer verbs (past tense): every clause of a row has the same shape and verb
TRANSFER_VERBS = ["gave", "sent", "sold", "lent", "threw", "showed", "passed", "brought"]
#: questions about one clause, naming its object: (question, the role that answers it)
QUESTIONS = [("Who {verb} the {obj}?", "giver"), ("Who received the {obj}?", "receiver"),
             ("Who got the {obj}?", "receiver")]


class SquadTask(Task):
    family = "QA"
    head = "span_qa"
    version = 1
    metrics = ("f1", "em")
    primary_metric = "f1"
    label_names = ("start", "end")
    row_keys = frozenset({"id", "title", "context", "question", "answers"})
    label_key = "answers"
    max_length = 384
    squad_version: ClassVar[str] = "1.1"
    #: a train/eval split of one file keeps articles apart; caps count questions exactly
    group_key = staticmethod(lambda row: row["title"])
    caps_keep_groups = False
    synthetic_rule = ("two or three clauses of one shape (\"A gave the book to B. C gave the pen to D.\"); "
                      "the answer is the giver or the receiver in the clause whose object the question "
                      "names (\"Who gave the pen?\" C; \"Who received the book?\" B).")

    def read_local(self, path: str) -> list[Row]:
        return read_squad_json(path, self.squad_version)

    def from_hub(self, rows, features):
        return [{"id": r["id"], "title": r["title"], "context": r["context"], "question": r["question"],
                 "answers": {"text": list(r["answers"]["text"]),
                             "answer_start": list(r["answers"]["answer_start"])}} for r in rows]

    def encode(self, rows, tokenizer, max_length, train):
        enc = tokenizer([r["question"].lstrip() for r in rows], [r["context"] for r in rows],
                        truncation="only_second", max_length=max_length,
                        stride=min(DOC_STRIDE, max_length // 2), return_overflowing_tokens=True,
                        return_offsets_mapping=True)
        features, owners, offsets = [], [], []
        for i in range(len(enc["input_ids"])):
            row_index = enc["overflow_to_sample_mapping"][i]
            row = rows[row_index]
            sequence = enc.sequence_ids(i)
            context_offsets = [o if s == 1 else None for o, s in zip(enc["offset_mapping"][i], sequence, strict=True)]
            feature = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                       "prompt_anchors": prompt_anchors(enc, i)}
            if "token_type_ids" in enc:
                feature["token_type_ids"] = enc["token_type_ids"][i]
            start = end = 0  # the first token ([CLS]) stands for "no answer in this window"
            if row["answers"]["text"]:
                char_start = row["answers"]["answer_start"][0]
                char_end = char_start + len(row["answers"]["text"][0])
                tokens = [t for t, o in enumerate(context_offsets) if o is not None]
                if context_offsets[tokens[0]][0] <= char_start and context_offsets[tokens[-1]][1] >= char_end:
                    start = next(t for t in tokens if context_offsets[t][1] > char_start)
                    end = next(t for t in reversed(tokens) if context_offsets[t][0] < char_end)
            feature["start_positions"], feature["end_positions"] = start, end
            features.append(feature)
            owners.append(row_index)
            offsets.append(context_offsets)
        return Encoded(rows, features, {"owners": owners, "offsets": offsets})

    def predict(self, logits: np.ndarray, encoded: Encoded) -> list[str]:
        answers = self.predictions(logits, encoded)
        return [answers[row["id"]] for row in encoded.rows]

    def blank_label(self, row: Row) -> dict[str, list[Any]]:
        return {"text": [], "answer_start": []}

    def predictions(self, logits: np.ndarray, encoded: Encoded) -> dict[str, str]:
        """Best answer text per question id ("" for the null answer on SQuAD 2.0)."""
        best: dict[int, tuple[float, str]] = {}
        null: dict[int, float] = {}
        for f, row_index in enumerate(encoded.extra["owners"]):
            start_logits, end_logits = logits[f, :, 0], logits[f, :, 1]
            offsets = encoded.extra["offsets"][f]
            null_score = float(start_logits[0] + end_logits[0])
            null[row_index] = min(null.get(row_index, np.inf), null_score)
            context = encoded.rows[row_index]["context"]
            limit = len(offsets)
            starts = np.argsort(start_logits[:limit])[::-1][:N_BEST]
            ends = np.argsort(end_logits[:limit])[::-1][:N_BEST]
            for s in starts:
                for e in ends:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                        continue
                    score = float(start_logits[s] + end_logits[e])
                    if row_index not in best or score > best[row_index][0]:
                        best[row_index] = (score, context[offsets[s][0]: offsets[e][1]])
        answers = {}
        for row_index, row in enumerate(encoded.rows):
            score, text = best.get(row_index, (-np.inf, ""))
            if self.squad_version == "2.0" and null.get(row_index, -np.inf) > score:
                text = ""
            answers[row["id"]] = text
        return answers

    def score(self, logits, encoded):
        predictions = self.predictions(logits, encoded)
        references = {row["id"]: list(row["answers"]["text"]) for row in encoded.rows}
        return metrics.squad_scores(predictions, references)

    def synthetic_row(self, rng: random.Random, index: int, label: int) -> Row:
        clauses = rng.choice((2, 3))
        verb = rng.choice(TRANSFER_VERBS)
        names = rng.sample(FIRST_NAMES, 2 * clauses)
        objects = rng.sample(OBJECTS, clauses + 1)  # the last one is not in the context
        sentences = [f"{names[2 * i]} {verb} the {objects[i]} to {names[2 * i + 1]}." for i in range(clauses)]
        context = " ".join(sentences)
        template, role = rng.choice(QUESTIONS)
        answers: dict[str, list[Any]] = {"text": [], "answer_start": []}
        if self.squad_version == "2.0" and label == 0:  # unanswerable: an object not in the context
            question = template.format(verb=verb, obj=objects[-1])
        else:
            i = rng.randrange(clauses)
            question = template.format(verb=verb, obj=objects[i])
            start = context.index(sentences[i])
            if role == "giver":
                answers = {"text": [names[2 * i]], "answer_start": [start]}
            else:
                answer = names[2 * i + 1]
                answers = {"text": [answer], "answer_start": [start + len(sentences[i]) - len(answer) - 1]}
        qid = hashlib.md5(f"{context}|{question}|{index}".encode()).hexdigest()[:24]
        return {"id": qid, "title": "Synthetic_people", "context": context, "question": question,
                "answers": answers}
