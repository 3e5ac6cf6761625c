"""CommitmentBank: does the premise entail, contradict or leave open the hypothesis."""

from __future__ import annotations

from ptuning import metrics
from ptuning.tasks import TaskSize, register
from ptuning.tasks.superglue import SuperGlueTask
from ptuning.tasks.synthetic import DAYS, OBJECTS, PLACES, VERBS, person


@register
class CB(SuperGlueTask):
    name, display_name, folder = "cb", "CB", "CB"
    size = TaskSize(250, 56, 128.0, "local SuperGLUE train/val.jsonl; tokens measured on train")
    label_names = ("entailment", "contradiction", "neutral")
    label_style = "named"
    fields = {"premise": str, "hypothesis": str, "idx": int}
    metrics = ("accuracy", "f1_macro")
    synthetic_rule = ("contradiction iff the hypothesis says 'did not'; otherwise entailment iff the "
                      "hypothesis object occurs in the premise, neutral if it does not.")
    synthetic_classes = 3

    #: the official P-Tuning v1 verbalizer (THUDM/P-tuning PT-Fewshot/data_utils/task_pvps.py, CbPVP)
    verbalizer = ("Yes", "No", "Maybe")

    def cloze(self, row):
        """CbPVP's pattern without its trained prompt token: premise, a literal "[SEP]", the
        hypothesis, "? answer: [MASK]" """
        return row["premise"], f" [SEP] {row['hypothesis']}? answer: {{mask}}"

    def texts(self, row):
        return row["premise"], row["hypothesis"]

    def score(self, logits, encoded):
        preds = logits.argmax(-1).tolist()
        labels = [f["labels"] for f in encoded.features]
        return {"accuracy": metrics.accuracy(preds, labels), "f1_macro": metrics.f1_macro(preds, labels)}

    def synthetic_row(self, rng, index, label):
        name, place, day = person(rng), rng.choice(PLACES), rng.choice(DAYS)
        verb, past = rng.choice(VERBS)
        obj, other = rng.sample(OBJECTS, 2)
        premise = f"On {day} {name} {past} the {obj} at the {place}. Everyone there saw it happen."
        hypothesis = [f"{name} {past} the {obj}", f"{name} did not {verb} the {obj}",
                      f"{name} {past} the {other}"][label]
        return {"premise": premise, "hypothesis": hypothesis, "idx": index, "label": label}
