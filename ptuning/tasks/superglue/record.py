"""ReCoRD: which entity of the passage fills the query's placeholder.

Local rows match HF ``super_glue/record``: the passage is kept verbatim (``@highlight``
markers included) so character offsets index it; the original jsonl stores entity spans
with an *inclusive* end, converted to the exclusive end HF uses
(``passage[start:end] == text``); ``entity_spans`` is sorted by start, ``entities`` and
``answers`` are the sorted sets of distinct texts.
"""

from __future__ import annotations

from typing import Any

from ptuning import metrics
from ptuning.tasks import Encoded, Row, TaskSize, register
from ptuning.tasks.encoding import encode_texts
from ptuning.tasks.formats import Where
from ptuning.tasks.superglue import BINARY, SuperGlueTask
from ptuning.tasks.synthetic import CITIES, FIRST_NAMES, LAST_NAMES, OBJECTS, VERBS, all_offsets


@register
class ReCoRD(SuperGlueTask):
    """One binary example per (query, candidate entity); per query the highest-scoring
    candidate is the prediction, scored by max-over-golds token F1 and EM."""

    name, display_name, folder = "record", "ReCoRD", "ReCoRD"
    size = TaskSize(101_000, 10_000, 1588.0, "SuperGLUE paper Table 1 (101k train, 10k dev); tokens measured on the FewGLUE train32 file (12.4 candidates per query)")
    label_names = BINARY
    row_keys = frozenset({"passage", "query", "entities", "entity_spans", "answers", "idx"})
    label_key = "answers"
    version = 3  # 2: official @highlight handling; 3: official ranking by the class-1 logit
    metrics = ("f1", "em")
    primary_metric = "f1"
    group_key = staticmethod(lambda row: (row["idx"]["passage"], row["idx"]["query"]))
    synthetic_rule = "the answer is the person whose sentence has the query's verb and object."

    @property
    def local_files(self):  # only the few-shot files exist locally
        return {"train": "superglue_fewshot/ReCoRD/train32.jsonl",
                "validation": "superglue_fewshot/ReCoRD/dev32.jsonl"}

    def required_fields(self) -> tuple[str, ...]:
        return ("idx", "passage.text", "passage.entities[].start/end", "qas[].query/idx/answers")

    def parse_json(self, where: Where, obj: dict[str, Any]) -> list[Row]:
        passage_idx = where.int_field(obj, "idx")
        passage = where.get(obj, "passage")
        text = where.str_field(passage, "text", "passage")
        spans = []
        for ei, entity in enumerate(where.get(passage, "entities", "passage")):
            path = f"passage.entities[{ei}]"
            start = where.int_field(entity, "start", path)
            end = where.int_field(entity, "end", path) + 1  # inclusive -> exclusive
            if not 0 <= start < end <= len(text):
                raise where.error(f"entity span [{start}, {end - 1}] outside the passage")
            spans.append((start, end, text[start:end]))
        spans.sort(key=lambda s: s[0])
        entity_spans = {"text": [s[2] for s in spans], "start": [s[0] for s in spans],
                        "end": [s[1] for s in spans]}
        entities = sorted({s[2] for s in spans})
        rows = []
        for qi, qa in enumerate(where.get(obj, "qas")):
            qpath = f"qas[{qi}]"
            answers = sorted({where.str_field(a, "text", f"{qpath}.answers")
                              for a in where.get(qa, "answers", qpath)})
            rows.append({"passage": text, "query": where.str_field(qa, "query", qpath),
                         "entities": list(entities),
                         "entity_spans": {k: list(v) for k, v in entity_spans.items()},
                         "answers": answers,
                         "idx": {"passage": passage_idx, "query": where.int_field(qa, "idx", qpath)}})
        return rows

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

    def predict(self, logits, encoded):
        """Per query the candidate with the highest class-1 logit, ties to the greater entity
        string (official ``reocrd_compute_metrics``: ``sorted((logit1, entity), reverse=True)[0]``);
        "" for a query without candidates."""
        best: dict[int, tuple[float, str]] = {}
        for (q, entity), row in zip(encoded.extra["owners"], logits, strict=True):
            best[q] = max(best.get(q, (-float("inf"), "")), (float(row[1]), entity))
        return [best[q][1] if q in best else "" for q in range(len(encoded.rows))]

    def blank_label(self, row):
        return []

    def score(self, logits, encoded):
        predicted = self.predict(logits, encoded)
        predictions = {q: predicted[q] for q, _ in encoded.extra["owners"]}
        references = {q: row["answers"] for q, row in enumerate(encoded.rows)}
        return metrics.record_scores(predictions, references)

    def synthetic_row(self, rng, index, label):
        firsts, lasts = rng.sample(FIRST_NAMES, 3), rng.sample(LAST_NAMES, 3)
        people = [f"{f} {s}" for f, s in zip(firsts, lasts, strict=True)]
        verbs, objs, city = rng.sample(VERBS, 3), rng.sample(OBJECTS, 3), rng.choice(CITIES)
        facts = [f"{p} {v[1]} the {o}." for p, v, o in zip(people, verbs, objs, strict=True)]
        passage = f"({city}) -- " + " ".join(facts) + f"\n@highlight\nThree friends met in {city}"
        k = rng.randrange(3)
        query = f"Friends said that @placeholder {verbs[k][1]} the {objs[k]} quickly."
        spans = sorted((start, start + len(ent), ent) for ent in [*people, city]
                       for start in all_offsets(passage, ent))
        return {"passage": passage, "query": query, "entities": sorted({s[2] for s in spans}),
                "entity_spans": {"text": [s[2] for s in spans], "start": [s[0] for s in spans],
                                 "end": [s[1] for s in spans]},
                "answers": [people[k]], "idx": {"passage": index, "query": index}}
