"""Task preprocessing and scoring on synthetic rows and (PTUNING_DATA_DIR) real rows, data
loading from local folders, task declarations, and one training step of every
(method, task family) pair through the Hydra config and the runner."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CONF, model_cfg
from conftest import compose_config as _compose

from analysis.style import FAMILY_ORDER
from ptuning.backbones import load_backbone
from ptuning.config import DataConfig, DataSource
from ptuning.errors import ConfigError, DataFormatError, DataUnavailableError
from ptuning.heads import HEADS
from ptuning.methods import METHODS
from ptuning.metrics import squad_f1
from ptuning.tasks import TASKS, Encoded, Task, get_task
from ptuning.tasks.data import cap_rows, read_splits
from ptuning.tasks.synthetic import synthetic_rows
from ptuning.training import FeatureCollator

ALL_TASKS = sorted(TASKS)


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone(model_cfg("tiny_bert")).tokenizer


def _rows(name: str, n: int = 16) -> list[dict]:
    return synthetic_rows(name, "validation", n)


def _real(data_dir, name: str, limit: int | None = None) -> list[dict]:
    task = get_task(name)
    path = data_dir / task.local_files["validation"]
    if not path.exists():
        pytest.skip(f"{path} is not in PTUNING_DATA_DIR")
    rows = task.read_local(str(path))
    return rows[:limit] if limit else rows


# ---------------------------------------------------------------- declarations

def test_every_task_is_declared():
    """Each registered task states every fact the suite needs, and has its config file."""
    configs = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
    assert configs == ALL_TASKS  # one conf/task/<name>.yaml per registered task
    for name in ALL_TASKS:
        task = get_task(name)
        assert task.name == name and task.display_name and task.family in FAMILY_ORDER  # tables order families
        assert isinstance(task.version, int) and task.version >= 1, name
        assert task.metrics and task.primary_metric in task.metrics, name
        assert task.head in HEADS, name
        assert "validation" in task.local_files, name
        assert task.row_keys and task.synthetic_rule, name
        assert task.hub_path or task.local_files.keys() >= {"train", "validation"}, name  # no hub: local files
        for test, display in task.extra_tests.items():  # scored with test, read from their own files
            assert display and f"test_{test}" in task.local_files and task.reported_split == "test", name
        assert task.reported_split in ("validation", "test")
        assert (task.reported_split == "test") == ("test" in task.local_files), name
        assert (task.template is None) == (not task.templates), name
        assert task.describe()["display"] == task.display_name
    with pytest.raises(ConfigError, match="task='mnli': unknown task; valid tasks: boolq, cb, "):
        get_task("mnli")


def test_task_order_of_official_labels():
    """Label ids in the order the official P-Tuning v2 readers and the HF datasets use."""
    assert get_task("conll2003").label_names[:3] == ("O", "B-PER", "I-PER")
    assert get_task("conll04").label_names == (
        "O", "B-Loc", "B-Peop", "B-Org", "B-Other", "I-Loc", "I-Peop", "I-Org", "I-Other")
    onto = get_task("ontonotes").label_names
    assert len(onto) == 37 and onto[0] == "B-CARDINAL" and onto[18] == "I-CARDINAL" and onto[-1] == "O"
    assert get_task("cb").label_names == ("entailment", "contradiction", "neutral")
    assert get_task("sst2").label_names == ("negative", "positive")  # GLUE: 0 negative, 1 positive


# ---------------------------------------------------------------- versions follow preprocessing

#: sha256 (first 16 hex) of the encoded features of tests/task_rows.json (tiny_bert's
#: tokenizer, max_length 64) for each task version. Task.version must be bumped whenever
#: preprocessing changes (records are compared by version); add the new fingerprint here.
FINGERPRINTS = {
    "boolq": {1: "be51c43379c5de0a"}, "cb": {1: "009ba39d48c6f679"},
    "rte": {1: "0aaeb87f63c0c73b"}, "multirc": {1: "7cf8188a800b0cf0"},
    "sst2": {1: "cb834fc209b75039"},
    # NER v2 cuts at 512 tokens by default: same features at the explicit length used here
    "conll2003": {1: "5da4cd68f2447f69", 2: "5da4cd68f2447f69"},
    "conll04": {1: "9f14a903013acf44", 2: "9f14a903013acf44"},
    "ontonotes": {1: "ac60dcabecb7e92f", 2: "ac60dcabecb7e92f"},
    "squad": {1: "63423499dad18d1a"}, "squad_v2": {1: "a081aa24978e6524"},
    "conll2005": {1: "f9401e5a6c8bdb50"}, "conll2012": {1: "12a507f27043af87"},
    # commit a246784 changed these four (official templates) but kept version 1;
    # v3 of WiC and WSC: the official default template 0
    "wic": {1: "1881277f675f3308", 2: "da8e0a501d3d6d48", 3: "03066872c911fa92"},
    "wsc": {1: "56071e71348ddfe3", 2: "6e4e018541a035f8", 3: "b710b995ef7a367f"},
    "copa": {1: "fefed1591a488263", 2: "d839f11f097a9e52"},
    # ReCoRD v3 changes scoring (the official class-1 ranking), not the features
    "record": {1: "b26a45b84a170b65", 2: "a4241fbde49357a2", 3: "a4241fbde49357a2"},
}


def _fingerprint(task: Task, rows: list[dict], tokenizer) -> str:
    encoded = task.encode(rows, tokenizer, 64, train=True)
    payload = json.dumps({"f": encoded.features, "x": encoded.extra}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", ALL_TASKS)
def test_preprocessing_changes_bump_the_version(name, tokenizer):
    """A new task pins its version too: add a few real rows to tests/task_rows.json and the
    fingerprint this test prints to FINGERPRINTS."""
    all_rows = json.loads((Path(__file__).parent / "task_rows.json").read_text())
    assert name in all_rows, f"task {name}: add a few of its rows to tests/task_rows.json"
    task = get_task(name)
    current = _fingerprint(task, all_rows[name], tokenizer)
    known = FINGERPRINTS.get(name, {})
    versions = [v for v, fp in known.items() if fp == current]
    assert known.get(task.version) == current, (
        f"task {name} version {task.version}: preprocessing gives {current}, which "
        + (f"is what version {versions[0]} produced" if versions else "no recorded version produced")
        + f"; recorded: {known}. Bump {type(task).__name__}.version and record the fingerprint.")


# ---------------------------------------------------------------- perfect predictions

def _perfect_logits(task: Task, encoded: Encoded, seed: int = 0) -> np.ndarray:
    """Logits whose argmax is the gold answer of every feature (noise elsewhere)."""
    rng = np.random.default_rng(seed)
    features = encoded.features
    if task.family == "QA":
        width = max(len(f["input_ids"]) for f in features)
        logits = rng.normal(0, 0.1, (len(features), width, 2))
        for i, f in enumerate(features):
            logits[i, len(f["input_ids"]):] = -1e4
            logits[i, f["start_positions"], 0] = logits[i, f["end_positions"], 1] = 10.0
        return logits
    if task.head == "token_classification":
        width = max(len(f["input_ids"]) for f in features)
        logits = rng.normal(0, 0.1, (len(features), width, task.num_labels))
        for i, f in enumerate(features):
            for t, label in enumerate(f["labels"]):
                if label != -100:
                    logits[i, t, label] = 5.0
        return logits
    labels = np.array([f["labels"] for f in features])
    classes = 2 if task.name == "copa" else task.num_labels
    logits = rng.normal(0, 0.1, (len(features), classes))
    logits[np.arange(len(features)), labels] = 5.0
    return logits


@pytest.mark.parametrize("name", ALL_TASKS)
def test_perfect_logits_score_100(name, tokenizer):
    task = get_task(name)
    encoded = task.encode(_rows(name), tokenizer, 128, train=False)
    scores = task.score(_perfect_logits(task, encoded), encoded)
    for metric in task.metrics:
        assert scores[metric] == pytest.approx(100.0), (metric, scores)


@pytest.mark.parametrize("name", ["boolq", "cb", "rte", "wic", "wsc", "copa", "multirc", "record",
                                  "conll2003", "conll04", "squad", "sst2"])
def test_perfect_logits_score_100_on_real_rows(name, tokenizer, data_dir):
    task = get_task(name)
    rows = cap_rows(_real(data_dir, name), task, 60)
    encoded = task.encode(rows, tokenizer, 256, train=False)
    scores = task.score(_perfect_logits(task, encoded), encoded)
    if task.head == "token_classification":  # words cut off at 256 tokens count as "O"
        assert all(len(f["input_ids"]) < 256 for f in encoded.features)
    if task.family == "QA":
        # the best a token-level span can do: the text under the gold tokens ("golden" for
        # the answer "gold"); this is what the predictions must be scored as
        first: dict[int, str] = {}
        for f, owner, offsets in zip(encoded.features, encoded.extra["owners"],
                                     encoded.extra["offsets"], strict=True):
            if f["start_positions"] and owner not in first:
                context = rows[owner]["context"]
                first[owner] = context[offsets[f["start_positions"]][0]:
                                       offsets[f["end_positions"]][1]]
        assert len(first) == len(rows)
        best = np.mean([squad_f1(first[i], r["answers"]["text"]) for i, r in enumerate(rows)])
        assert 90 < 100 * best < 100
        assert scores["f1"] == pytest.approx(100 * best)
        return
    assert scores[task.primary_metric] == pytest.approx(100.0), scores


# ---------------------------------------------------------------- SuperGLUE features

@pytest.mark.parametrize("name", ["boolq", "cb", "rte", "wic", "wsc", "sst2"])
def test_classification_features(name, tokenizer):
    task = get_task(name)
    rows = _rows(name, 12)
    encoded = task.encode(rows, tokenizer, 128, train=True)
    assert len(encoded.features) == len(rows)
    assert [f["labels"] for f in encoded.features] == [r["label"] for r in rows]
    assert set(f["labels"] for f in encoded.features) == set(range(task.num_labels))
    for f in encoded.features:
        n = len(f["input_ids"])
        assert len(f["attention_mask"]) == len(f["token_type_ids"]) == n
        assert f["input_ids"][0] == tokenizer.cls_token_id
        assert f["input_ids"][-1] == tokenizer.sep_token_id
        first, second, final = f["prompt_anchors"]
        assert (first, final) == (1, n - 1)
        paired = 1 in f["token_type_ids"]
        assert second == (f["token_type_ids"].index(1) if paired else final)
    batch = FeatureCollator(tokenizer.pad_token_id)(encoded.features)
    assert batch["labels"].shape == (len(rows),) and batch["input_ids"].dim() == 2


def test_sst2_is_declared_as_glue_publishes_it(tokenizer):
    """GLUE SST-2: hub glue/sst2 (sentence, label, idx), the original tsv files, validation
    reported (test labels are hidden), one segment per row, label names as predictions."""
    task = get_task("sst2")
    assert (task.family, task.display_name, task.head) == ("GLUE", "SST-2", "classification")
    assert (task.hub_path, task.hub_config, task.reported_split) == ("glue", "sst2", "validation")
    assert task.row_keys == {"sentence", "label", "idx"} and task.metrics == ("accuracy",)
    assert task.local_files == {"train": "glue/SST-2/train.tsv", "validation": "glue/SST-2/dev.tsv"}
    assert task.label_words == ("negative", "positive")
    assert (task.size.train_rows, task.size.eval_rows) == (67349, 872)
    rows = _rows("sst2", 8)
    encoded = task.encode(rows, tokenizer, 128, train=False)
    assert all(1 not in f["token_type_ids"] for f in encoded.features)
    assert [tokenizer.decode(f["input_ids"], skip_special_tokens=True) for f in encoded.features] == [
        r["sentence"].lower() for r in rows]
    assert task.predict(_perfect_logits(task, encoded), encoded) == [task.label_names[r["label"]] for r in rows]
    row = task.unlabelled({"sentence": "a fine film .", "idx": 0}, "example 0")
    assert row == {"sentence": "a fine film .", "idx": 0, "label": 0}
    with pytest.raises(DataFormatError, match=r"example 3: a sst2 example needs .* missing \['sentence'\]"):
        task.unlabelled({"idx": 3}, "example 3")


def test_copa_features_have_two_choices(tokenizer):
    task = get_task("copa")
    rows = _rows("copa", 8)
    encoded = task.encode(rows, tokenizer, 128, train=True)
    batch = FeatureCollator(tokenizer.pad_token_id)(encoded.features)
    width = batch["input_ids"].shape[-1]
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (8, 2, width)
    assert batch["token_type_ids"].shape == (8, 2, width)
    assert batch["prompt_anchors"].shape == (8, 2, 3)
    assert batch["labels"].tolist() == [r["label"] for r in rows]
    assert set(batch["labels"].tolist()) == {0, 1}
    for row, f in zip(rows, encoded.features, strict=True):
        connector = "because" if row["question"] == "cause" else "so"
        for choice, ids in zip((row["choice1"], row["choice2"]), f["input_ids"], strict=True):
            text = tokenizer.decode(ids, skip_special_tokens=True)
            assert text == f"{row['premise']} {connector} {choice}".lower()


def test_copa_real_rows(data_dir, tokenizer):
    rows = _real(data_dir, "copa")
    encoded = get_task("copa").encode(rows, tokenizer, 128, train=False)
    assert len(encoded.features) == len(rows) == 100
    assert all(len(f["input_ids"]) == 2 for f in encoded.features)
    assert sorted({f["labels"] for f in encoded.features}) == [0, 1]
    choices = [tokenizer.decode(ids, skip_special_tokens=True)
               for ids in encoded.features[0]["input_ids"]]
    assert choices == ["the man turned on the faucet. so the toilet filled with water.",
                       "the man turned on the faucet. so water flowed from the spout."]
    assert encoded.features[0]["labels"] == 1


def _wsc_marks(task, row, star_span: str | None, hash_span: str | None):
    """The words at the span indices carry the marks, nothing else changes."""
    text, second = task.texts(row)
    assert second == row["span1_text"]
    words, original = text.split(), row["text"].split()
    assert len(words) == len(original)
    spans = {"span1": (row["span1_index"], row["span1_text"]),
             "span2": (row["span2_index"], row["span2_text"])}
    for mark, span in (("*", star_span), ("#", hash_span)):
        added = sum(x.count(mark) for x in words) - sum(x.count(mark) for x in original)
        assert added == (2 if span else 0)
        if span:
            index, span_text = spans[span]
            last = index + len(span_text.split()) - 1
            other = "#" if mark == "*" else "*"
            assert words[index].lstrip(other).startswith(mark)
            assert words[last].rstrip(other).endswith(mark)
    unmarked = [x.replace("*", "").replace("#", "") for x in words]
    assert unmarked == [x.replace("*", "").replace("#", "") for x in original]
    return text


def test_wsc_templates(tokenizer):
    """Official ``tasks/superglue/dataset.py``: --template_id defaults to 0 and neither WSC
    script passes one; template 1 wraps the single word at span2_index in *..*."""
    task = get_task("wsc")
    assert task.template == 0
    rows = _rows("wsc", 20)
    row = {**rows[0], "text": "The man saw his own dog.", "span2_index": 3, "span2_text": "his own"}
    assert task.texts(row) == ("his own: The man saw his own dog.", row["span1_text"])
    task.configure(None, 1)
    assert task.texts(row)[0] == "The man saw *his* own dog."  # the word, not the span
    for row in rows:
        text = _wsc_marks(task, row, star_span="span2", hash_span=None)
        assert "*it*" in text
    task.template = 2
    for row in rows:
        text = _wsc_marks(task, row, star_span="span1", hash_span="span2")
        assert f"*{row['span1_text']}*" in text and "#it#" in text
    task.template = 0
    row = rows[0]
    assert task.texts(row) == (f"it: {row['text']}", row["span1_text"])
    features = task.encode(rows, tokenizer, 128, train=True).features
    assert all(1 in f["token_type_ids"] for f in features)  # a pair: text, span1
    with pytest.raises(ConfigError, match="task.template=5: allowed: one of 0, 1, 2 for wsc"):
        get_task("wsc").configure(None, 5)


def test_wsc_marks_spans_real(data_dir):
    task = get_task("wsc")
    task.template = 2
    rows = _real(data_dir, "wsc")
    matched = 0
    for row in rows:
        text = _wsc_marks(task, row, star_span="span1", hash_span="span2")
        star = re.search(r"\*(.+?)\*", text.replace("#", "")).group(1)
        hash_ = re.search(r"#(.+?)#", text.replace("*", "")).group(1)
        matched += (star.lower().strip(".,;:!?'\"") == row["span1_text"].lower()
                    and hash_.lower().strip(".,;:!?'\"") == row["span2_text"].lower())
    # one official val row has span2_index on "use" instead of "it" (marked as given)
    assert matched >= len(rows) - 1


def _wic_marks(task, row):
    s1, s2 = task.texts(row)
    for text, sentence, start, end in ((s1, row["sentence1"], row["start1"], row["end1"]),
                                       (s2, row["sentence2"], row["start2"], row["end2"])):
        assert text == f"{sentence[:start]}*{sentence[start:end]}*{sentence[end:]}"
        assert text.count("*") == sentence.count("*") + 2


def test_wic_templates(tokenizer):
    """Official default template 0 (run_wic_roberta.sh passes none); run_wic_bert.sh passes 1."""
    task = get_task("wic")
    rows = _rows("wic", 12)
    row = rows[0]
    assert task.template == 0
    assert task.texts(row) == (f"{row['sentence1']} {row['sentence2']} Does {row['word']} have "
                               "the same meaning in both sentences?", None)
    task.configure(None, 1)
    assert task.texts(row) == (f"{row['word']}: {row['sentence1']}",
                               f"{row['word']}: {row['sentence2']}")
    task.template = 0
    assert all(1 not in f["token_type_ids"]
               for f in task.encode(rows, tokenizer, 128, train=True).features)
    task.template = 2
    for row in rows:
        _wic_marks(task, row)
        assert f"*{row['word']}*" in task.texts(row)[0]


def test_wic_marks_target_word_real(data_dir):
    task = get_task("wic")
    task.template = 2
    rows = _real(data_dir, "wic")
    for row in rows:
        _wic_marks(task, row)
    s1, s2 = task.texts(rows[0])
    assert s1 == "An emerging professional *class*."
    assert s2.endswith("showed real *class*.")


def test_multirc_grouping_and_scoring(tokenizer):
    task = get_task("multirc")
    rows = _rows("multirc", 24)  # 3 paragraphs x 2 questions x 4 answers
    encoded = task.encode(rows, tokenizer, 128, train=False)
    assert len(encoded.features) == 24
    questions = [task.group_key(r) for r in rows]
    assert len(set(questions)) == 6
    labels = np.array([f["labels"] for f in encoded.features])
    logits = _perfect_logits(task, encoded)
    # flip one option of the first question: EM loses 1/6, F1a by its closed form
    logits[0] = logits[0][::-1].copy()
    scores = task.score(logits, encoded)
    assert scores["em"] == pytest.approx(100 * 5 / 6)
    positives = labels.sum()
    tp = positives - labels[0]
    fp = 1 - labels[0]
    fn = labels[0]
    assert scores["f1a"] == pytest.approx(100 * 2 * tp / (2 * tp + fp + fn))
    # capping keeps whole questions
    capped = cap_rows(rows, task, 6)
    assert len(capped) == 8 and len({task.group_key(r) for r in capped}) == 2


def test_record_grouping_and_scoring(tokenizer):
    task = get_task("record")
    rows = _rows("record", 6)
    encoded = task.encode(rows, tokenizer, 128, train=False)
    assert len(encoded.features) == sum(len(r["entities"]) for r in rows)
    owners = encoded.extra["owners"]
    assert [q for q, _ in owners] == sorted(q for q, _ in owners)
    for (q, entity), f in zip(owners, encoded.features, strict=True):
        assert f["labels"] == int(entity in rows[q]["answers"])
        text = tokenizer.decode(f["input_ids"], skip_special_tokens=True)
        assert rows[q]["query"].replace("@placeholder", entity).lower() in text
    logits = _perfect_logits(task, encoded)
    # make query 0 prefer a wrong entity: EM and F1 lose exactly that query
    wrong = next(i for i, (q, e) in enumerate(owners) if q == 0 and e not in rows[0]["answers"])
    logits[wrong] = [0.0, 50.0]
    scores = task.score(logits, encoded)
    assert scores["em"] == pytest.approx(100 * 5 / 6)
    assert scores["f1"] < 100


# ---------------------------------------------------------------- NER

def _ner_checks(task, rows, encoded, tokenizer, max_length):
    names = list(task.label_names)
    complete = 0
    for row, f, firsts in zip(rows, encoded.features, encoded.extra["first_subtokens"], strict=True):
        labels = f["labels"]
        assert len(labels) == len(f["input_ids"])
        labelled = [t for t, y in enumerate(labels) if y != -100]
        truncated = len(f["input_ids"]) == max_length
        if not truncated:
            complete += 1
            assert len(labelled) == len(row["tokens"])  # one per word
        assert labelled == [firsts[w] for w in range(len(labelled))]
        for word, position in firsts.items():
            assert names[labels[position]] == row["ner_tags"][word]
            # a word's first sub-token starts it; the continuation pieces are not labelled
            piece = tokenizer.convert_ids_to_tokens(f["input_ids"][position])
            assert not piece.startswith("##")
            end = firsts.get(word + 1, len(labels) - 1 if not truncated else len(labels))
            assert all(y == -100 for y in labels[position + 1:end])
        assert labels[0] == -100 and (truncated or labels[-1] == -100)
    return complete


NER_TYPES = {"conll2003": ("PER", "LOC"), "conll04": ("Peop", "Loc"), "ontonotes": ("PERSON", "GPE")}


@pytest.mark.parametrize("name", ["conll2003", "conll04", "ontonotes"])
def test_ner_labels_on_first_subtokens(name, tokenizer):
    task = get_task(name)
    per, loc = NER_TYPES[name]
    rows = _rows(name, 20) + [{  # words of several sub-tokens
        "id": "split", "tokens": ["Zbigniew", "Brzezinski", "visited", "Ouagadougou", "."],
        "ner_tags": [f"B-{per}", f"I-{per}", "O", f"B-{loc}", "O"]}]
    encoded = task.encode(rows, tokenizer, 128, train=True)
    assert _ner_checks(task, rows, encoded, tokenizer, 128) == len(rows)
    last = encoded.features[-1]
    assert len(last["input_ids"]) > 2 + 5
    assert sum(y != -100 for y in last["labels"]) == 5


@pytest.mark.parametrize("name", ["conll2003", "conll04"])
def test_ner_labels_on_first_subtokens_real(name, tokenizer, data_dir):
    task = get_task(name)
    rows = _real(data_dir, name, 400)
    encoded = task.encode(rows, tokenizer, 32, train=True)
    complete = _ner_checks(task, rows, encoded, tokenizer, 32)
    assert 0 < complete < len(rows)  # both complete and truncated sentences were checked


def test_ner_rejects_unknown_tags(tokenizer):
    row = {"id": "7", "tokens": ["Paris"], "ner_tags": ["B-CITY"]}
    with pytest.raises(DataFormatError, match=r"row 7 has tags \['B-CITY'\]"):
        get_task("conll2003").encode([row], tokenizer, 32, train=True)


# ---------------------------------------------------------------- SQuAD windows

def test_squad_windows_overlap_by_stride(tokenizer):
    task = get_task("squad")
    row = _rows("squad", 1)[0]
    filler = "The weather in the valley was mild and nobody complained about it. "
    before = filler * 6
    row = {**row, "context": before + row["context"] + " " + filler * 6,
           "answers": {"text": row["answers"]["text"],
                       "answer_start": [row["answers"]["answer_start"][0] + len(before)]}}
    max_length = 64
    encoded = task.encode([row], tokenizer, max_length, train=True)
    windows = [[o for o in offsets if o is not None] for offsets in encoded.extra["offsets"]]
    assert len(windows) >= 4 and encoded.extra["owners"] == [0] * len(windows)
    stride = min(128, max_length // 2)
    question = tokenizer.decode(tokenizer(row["question"], add_special_tokens=False)["input_ids"])
    for f in encoded.features:
        assert len(f["input_ids"]) <= max_length
        # every window repeats the whole question before the context slice
        assert tokenizer.decode(f["input_ids"][1:f["prompt_anchors"][1] - 1]) == question
    for a, b in zip(windows, windows[1:], strict=False):
        assert a[-stride:] == b[:stride]  # consecutive windows share exactly `stride` tokens
    full = tokenizer(row["context"], return_offsets_mapping=True,
                     add_special_tokens=False)["offset_mapping"]
    assert windows[0][0] == tuple(full[0]) and windows[-1][-1] == tuple(full[-1])
    hits = [f for f in encoded.features if f["start_positions"] > 0]
    assert 1 <= len(hits) <= 2  # the answer lies in one window or in an overlap


# ---------------------------------------------------------------- data loading

def _local(root, train_from_eval=None) -> DataConfig:
    return DataConfig(source=DataSource.local, root=str(root), train_from_eval=train_from_eval)


def test_missing_train_file_is_an_error_unless_asked(data_dir):
    task = get_task("boolq")
    with pytest.raises(DataUnavailableError, match=r"no train file .*superglue/BoolQ/train\.jsonl.*"
                                                   r"set data\.train_from_eval"):
        read_splits(task, _local(data_dir))


def test_boolq_local_split_is_deterministic(data_dir):
    task = get_task("boolq")
    a = read_splits(task, _local(data_dir, 0.5))
    b = read_splits(task, _local(data_dir, 0.5))
    every = task.read_local(str(data_dir / "superglue/BoolQ/val.jsonl"))
    assert {r["idx"] for r in a.train} == {r["idx"] for r in b.train}
    assert a.validation == b.validation and a.fingerprint() == b.fingerprint()
    assert "no local train file" in a.note and f"train ({len(a.train)} rows)" in a.note
    assert len(a.train) + len(a.validation) == len(every) == 3270
    assert not {r["idx"] for r in a.train} & {r["idx"] for r in a.validation}
    assert 0.4 < len(a.validation) / len(every) < 0.6
    larger = read_splits(task, _local(data_dir, 0.8))
    assert {r["idx"] for r in a.validation} >= {r["idx"] for r in larger.validation}
    assert larger.fingerprint() != a.fingerprint()


def test_squad_local_split_by_article(data_dir):
    splits = read_splits(get_task("squad"), _local(data_dir, 0.5))
    train_titles = {r["title"] for r in splits.train}
    eval_titles = {r["title"] for r in splits.validation}
    assert train_titles and eval_titles and not train_titles & eval_titles
    assert len(splits.train) + len(splits.validation) == 10570
    assert "by groups" in splits.note


def test_squad_trains_on_its_train_file_and_caps_count_questions(tmp_path):
    """As published: train-v1.1.json trains, the whole dev file evaluates; a cap of N gives N
    questions, not whole articles."""
    task = get_task("squad")
    rows = synthetic_rows("squad", "train", 12)

    def write(name: str, part: list[dict], titles: int) -> None:
        data = [{"title": f"T{t}", "paragraphs": [
            {"context": r["context"], "qas": [{"id": r["id"], "question": r["question"], "answers": [
                {"text": r["answers"]["text"][0], "answer_start": r["answers"]["answer_start"][0]}]}]}
            for r in part[t::titles]]} for t in range(titles)]
        (tmp_path / "squad").mkdir(exist_ok=True)
        (tmp_path / "squad" / name).write_text(json.dumps({"data": data}))

    write("train-v1.1.json", rows[:8], titles=2)
    write("dev-v1.1.json", rows[8:], titles=1)
    splits = read_splits(task, _local(tmp_path))
    assert splits.note is None
    assert {r["id"] for r in splits.train} == {r["id"] for r in rows[:8]}
    assert [r["id"] for r in splits.validation] == [r["id"] for r in rows[8:]]
    capped = read_splits(task, DataConfig(source=DataSource.local, root=str(tmp_path), max_train_samples=1,
                                          max_eval_samples=3))
    assert (len(capped.train), len(capped.validation)) == (1, 3)


def test_local_with_train_file_has_no_note(data_dir):
    splits = read_splits(get_task("cb"), _local(data_dir))
    assert (len(splits.train), len(splits.validation), splits.note) == (250, 56, None)


def test_sst2_reads_the_glue_tsv_files(tmp_path):
    """data.source=local reads glue/SST-2/train.tsv and dev.tsv into the hub's rows."""
    folder = tmp_path / "glue" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("sentence\tlabel\nhide new secretions \t0\na gem of a film \t1\n"
                                      "\nsaw it twice \t1\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\r\nit 's a charming journey . \t1\r\n")
    splits = read_splits(get_task("sst2"), _local(tmp_path))
    assert splits.note is None
    assert sorted(splits.train, key=lambda r: r["idx"]) == [
        {"sentence": "hide new secretions ", "label": 0, "idx": 0},
        {"sentence": "a gem of a film ", "label": 1, "idx": 1},
        {"sentence": "saw it twice ", "label": 1, "idx": 2}]  # empty lines are not counted
    assert splits.validation == [{"sentence": "it 's a charming journey . ", "label": 1, "idx": 0}]


def test_local_needs_files(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"superglue/RTE/val\.jsonl does not exist"):
        read_splits(get_task("rte"), _local(tmp_path))


# ---------------------------------------------------------------- one step per (method, family)


FAMILY_TASK = {"superglue": "rte", "multiple_choice": "copa", "ner": "conll2003", "qa": "squad"}


@pytest.mark.parametrize("task", list(FAMILY_TASK.values()))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_one_step_every_method_and_family(method, task, tmp_path):
    from ptuning.experiment import Experiment
    from ptuning.runner import prepare, run_cell

    cfg = _compose([f"method={method}", "model=tiny_bert", f"task={task}", "data.source=synthetic",
                    "data.synthetic_train=16", "data.synthetic_eval=8", "train.max_steps=1",
                    "train.batch_size=4", "logger=none", f"paths.runs_dir={tmp_path}"])
    cell = prepare(cfg)
    experiment = Experiment.build(cell.settings, cell.task, cell.splits, cell.max_length)
    assert isinstance(experiment.model.head, HEADS[get_task(task).head])
    assert len(experiment.encoded["train"].rows) == 16
    assert len(experiment.encoded["validation"].rows) == 8
    described = experiment.describe()
    outcome = run_cell(cfg)
    record = outcome.record
    assert outcome.status == record["status"] == "completed", record["error"]
    assert record["cost"]["steps"] == 1
    stored = record["params"].pop("stored")
    assert record["params"] == described["params"]
    params = described["params"]
    if method == "finetune":
        assert stored == params["total"]
    elif method != "prefix_tuning":  # prefix tuning keeps MLP(E), fewer numbers than it trains
        assert stored == params["method"] + params["head"]
    metrics = record["metrics"]
    assert set(get_task(task).metrics) <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0 <= metrics[record["task"]["primary_metric"]] <= 100
