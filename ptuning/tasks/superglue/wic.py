"""Word in Context: is the target word used with the same meaning in both sentences."""

from __future__ import annotations

from ptuning.tasks import TaskSize, register
from ptuning.tasks.superglue import BINARY, SuperGlueTask
from ptuning.tasks.synthetic import WIC_TEMPLATES, WIC_TOPICS, WIC_WORDS, person, word_offset


def mark(text: str, start: int, end: int, left: str, right: str) -> str:
    return f"{text[:start]}{left}{text[start:end]}{right}{text[end:]}"


@register
class WiC(SuperGlueTask):
    """Pair classification about the target word, with the official templates
    (``task.template``, official ``tasks/superglue/dataset.py``): 0 = the official default
    (``--template_id`` 0, what run_wic_roberta.sh runs), one segment "s1 s2 Does <word> have
    the same meaning in both sentences?"; 1 = run_wic_bert.sh's ``--template_id 1``,
    "<word>: s1" / "<word>: s2"; 2 = the target word marked *..* at its character offsets in
    each sentence (not in the official code)."""

    name, display_name, folder = "wic", "WiC", "WiC"
    size = TaskSize(5428, 638, 47.6, "local SuperGLUE train/val.jsonl; tokens measured on train")
    label_names = BINARY
    fields = {"word": str, "sentence1": str, "sentence2": str, "start1": int, "start2": int,
              "end1": int, "end2": int, "idx": int}
    version = 3  # 2: official templates; 3: the official default template 0
    templates = (0, 1, 2)
    template = 0
    synthetic_rule = "True iff both sentences place the word next to the same place noun (topic)."
    synthetic_classes = 2

    def texts(self, row):
        word, s1, s2 = row["word"], row["sentence1"], row["sentence2"]
        if self.template == 0:
            return f"{s1} {s2} Does {word} have the same meaning in both sentences?", None
        if self.template == 1:
            return f"{word}: {s1}", f"{word}: {s2}"
        return (mark(s1, row["start1"], row["end1"], "*", "*"),
                mark(s2, row["start2"], row["end2"], "*", "*"))

    def synthetic_row(self, rng, index, label):
        word = rng.choice(WIC_WORDS)
        topic1 = rng.choice(WIC_TOPICS)
        topic2 = topic1 if label else rng.choice([t for t in WIC_TOPICS if t != topic1])
        t1, t2 = rng.sample(WIC_TEMPLATES, 2)
        s1 = t1.format(s=person(rng), w=word, a=topic1)
        s2 = t2.format(s=person(rng), w=word, a=topic2)
        start1, start2 = word_offset(s1, word), word_offset(s2, word)
        return {"word": word, "sentence1": s1, "sentence2": s2, "start1": start1, "start2": start2,
                "end1": start1 + len(word), "end2": start2 + len(word), "idx": index, "label": label}
