"""SST-2 (Socher et al. 2013, as in GLUE): is a sentence from a film review negative or positive."""

from __future__ import annotations

from ptuning.tasks import TaskSize, register
from ptuning.tasks.glue import GlueTask
from ptuning.tasks.synthetic import (
    DAYS,
    FILM_PARTS,
    INTENSIFIERS,
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    person,
)

#: review sentences; {adj} is the one word that carries the sentiment, {other} another part
TEMPLATES = (
    "The {part} of this film is {adv} {adj}.",
    "{name} saw it on {day} and found the {part} {adv} {adj}.",
    "A {adj} {part}, and the {other} is about what you would expect.",
    "From the first scene to the last, the {part} stays {adv} {adj}.",
    "{name} said the {other} was fine but the {part} was {adv} {adj}.",
)


@register
class SST2(GlueTask):
    name, display_name = "sst2", "SST-2"
    size = TaskSize(67349, 872, 16.0,
                    "rows: GLUE paper (Wang et al. 2018) / HF glue dataset card, config sst2: 67,349 "
                    "train, 872 validation sentences; tokens: ptuning.cost.tokens_per_row on 2,000 "
                    "synthetic train rows (no real SST-2 file was available), an underestimate: real "
                    "sentences are longer")
    label_names = ("negative", "positive")  # GLUE's order: 0 negative, 1 positive
    #: our choice (no official P-Tuning pattern exists for SST-2): "terrible" / "great"
    verbalizer = ("terrible", "great")

    def cloze(self, row):
        """The sentence, then " It was [MASK]." (our pattern; see :attr:`verbalizer`)."""
        return row["sentence"], " It was {mask}."
    row_keys = frozenset({"sentence", "label", "idx"})
    text_columns = ("sentence",)
    hub_config = "sst2"
    local_files = {"train": "glue/SST-2/train.tsv", "validation": "glue/SST-2/dev.tsv"}
    synthetic_rule = ("positive iff the review's sentiment adjective is a positive word (good, great, ...), "
                      "negative iff it is a negative word (bad, dull, ...); the other words are neutral.")
    synthetic_classes = 2

    def synthetic_row(self, rng, index, label):
        part, other = rng.sample(FILM_PARTS, 2)
        adj = rng.choice(POSITIVE_WORDS if label else NEGATIVE_WORDS)
        sentence = rng.choice(TEMPLATES).format(part=part, other=other, adj=adj, name=person(rng),
                                                day=rng.choice(DAYS), adv=rng.choice(INTENSIFIERS))
        return {"sentence": sentence, "label": label, "idx": index}
