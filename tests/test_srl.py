"""Semantic role labelling: the official line format (rows and file:line errors), the official
input and label alignment, the hub adapter, CoNLL05's Brown test scored in the same run and
reported as its own task, and the ptv2_srl preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_config, model_cfg

from ptuning.backbones import load_backbone
from ptuning.errors import DataFormatError, DataUnavailableError
from ptuning.tasks import get_task
from ptuning.tasks.formats import read_srl
from ptuning.tasks.srl import PREDICATE_SEPARATOR

SRL_TASKS = ["conll2005", "conll2012"]


@pytest.fixture(scope="module")
def wordpiece():
    return load_backbone(model_cfg("tiny_bert")).tokenizer


@pytest.fixture(scope="module")
def byte_bpe(tmp_path_factory):
    """A small byte-level BPE tokenizer built here (RoBERTa's kind, add_prefix_space=True as
    the official ADD_PREFIX_SPACE sets it for roberta): the hub's own is unreachable."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    words = [w for name in SRL_TASKS for r in get_task(name).synthetic_rows("train", 200) for w in r["tokens"]]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(words)], vocab_size=300, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    folder = tmp_path_factory.mktemp("bpe")
    bpe.save_model(str(folder))
    return RobertaTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"), add_prefix_space=True)


def official_line(row: dict) -> str:
    return f"{row['index']} {' '.join(row['tokens'])} ||| {' '.join(row['tags'])}"


def write_official(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(official_line(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the official line format


def official_examples(text: str) -> list[dict]:
    """THUDM/P-tuning-v2 tasks/srl/datasets/conll2012.py ``_generate_examples``, restated: split
    the line at whitespace, the first field is the index, the rest is cut at '|||'."""
    out = []
    for line in text.splitlines(keepends=True):
        if not line.split():
            continue
        text_part = " ".join(line.split()[1:]).strip()
        out.append({"id": str(len(out)), "index": line.split()[0], "tokens": text_part.split("|||")[0].split(),
                    "tags": text_part.split("|||")[1].split()})
    return out


@pytest.mark.parametrize("name", SRL_TASKS)
def test_reader_reads_what_the_official_loader_reads(name, tmp_path):
    task = get_task(name)
    rows = task.synthetic_rows("train", 30)
    lines = [official_line(r) for r in rows]
    lines[3] = lines[3].replace(" ", "\t", 2)  # tabs separate fields as well
    text = "\n".join(lines[:10]) + "\n\n   \n" + "\n".join(lines[10:]) + "\n"  # whitespace-only lines skipped
    path = tmp_path / "srl.txt"
    path.write_text(text, encoding="utf-8")
    read = read_srl(path, task.label_names)
    official = official_examples(text)
    assert [{**r, "index": str(r["index"])} for r in read] == official
    assert [(r["index"], r["tokens"], r["tags"]) for r in read] == [(r["index"], r["tokens"], r["tags"]) for r in rows]


@pytest.mark.parametrize(("line", "message"), [
    ("1 The cat sat . B-A0 I-A0 B-V O", "no '|||' separators"),
    ("1 The cat ||| sat ||| B-A0 I-A0", "2 '|||' separators"),
    ("x The cat sat ||| B-A0 I-A0 B-V", "predicate index 'x' is not a word position 0..2"),
    ("3 The cat sat ||| B-A0 I-A0 B-V", "predicate index '3' is not a word position 0..2 of the 3 words"),
    ("-1 The cat sat ||| B-A0 I-A0 B-V", "predicate index '-1'"),
    ("2 The cat sat ||| B-A0 I-A0", "3 words but 2 tags"),
    ("2 The cat sat ||| B-A0 I-A0 B-VERB", "tag 'B-VERB' is not in the label set"),
    ("2 ||| B-V", "no words before '|||'"),
])
def test_reader_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "conll05.train.txt"
    path.write_text("1 The cat sat ||| B-A0 I-A0 B-V\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as err:
        read_srl(path, get_task("conll2005").label_names)
    assert f"{path}:3:" in str(err.value) and message in str(err.value)


def test_label_sets_are_the_official_classlabel_lists():
    """Sizes and anchors of the ClassLabel lists in the official conll2005.py / conll2012.py."""
    conll05, conll12 = get_task("conll2005").label_names, get_task("conll2012").label_names
    assert (len(conll05), len(set(conll05))) == (106, 106)
    assert (len(conll12), len(set(conll12))) == (116, 116)
    assert conll05[:3] == ("B-C-AM-TMP", "B-C-AM-DIR", "B-C-A2") and conll05[-1] == "B-C-AM-PNC"
    assert conll12[:3] == ("B-ARG0", "B-ARGM-MNR", "B-V") and conll12[-1] == "I-C-ARGM-MOD"
    assert {"B-V", "I-V", "O", "B-AM", "I-AM-TM"} <= set(conll05) and "I-V" not in conll12


# ---------------------------------------------------------------- input and labels


def official_alignment(row: dict, tokenizer) -> list[int | None]:
    """The labels THUDM/P-tuning-v2 tasks/srl/dataset.py ``tokenize_and_align_labels`` gives a
    row, restated (tag ids replaced by tag positions): word ids from encoding every sentence
    word on its own, nothing on the special tokens, the [SEP] word and the predicate."""
    word_ids: list[int | None] = [None]
    for j, word in enumerate(row["tokens"]):
        word_ids += [j] * len(tokenizer.encode(word, add_special_tokens=False))
    word_ids += [None]
    word_ids += [None] * len(tokenizer.encode(row["tokens"][row["index"]], add_special_tokens=False))
    word_ids += [None]
    labels, previous = [], None
    for word in word_ids:
        labels.append(None if word is None or word == previous else word)
        previous = word
    return labels


@pytest.mark.parametrize("name", SRL_TASKS)
@pytest.mark.parametrize("kind", ["wordpiece", "byte_bpe"])
def test_inputs_and_labels_follow_the_official_alignment(name, kind, request):
    tokenizer = request.getfixturevalue(kind)
    task = get_task(name)
    rows = task.synthetic_rows("validation", 40) + [{
        "id": "long", "index": 1, "tokens": ["Brzezinski", "unbuttoned", "Ouagadougou", "."],
        "tags": ["O", "B-V", "O", "O"]}]
    encoded = task.encode(rows, tokenizer, 512, train=True)
    ids = {t: i for i, t in enumerate(task.label_names)}
    for row, feature in zip(rows, encoded.features, strict=True):
        words = [*row["tokens"], PREDICATE_SEPARATOR, row["tokens"][row["index"]]]
        assert feature["input_ids"] == tokenizer(words, is_split_into_words=True)["input_ids"]
        # the official per-word positions; at the end the official list stops where the [SEP]
        # word's pieces begin (it counts one), the collator pads it with -100
        expected = [-100 if w is None else ids[row["tags"][w]] for w in official_alignment(row, tokenizer)]
        labels = feature["labels"]
        assert len(labels) == len(feature["input_ids"])
        assert labels[:len(expected) - 1] == expected[:-1] and set(labels[len(expected) - 1:]) == {-100}
        assert sum(y != -100 for y in labels) == len(row["tokens"])


def test_predicate_index_is_checked_when_encoding(wordpiece):
    row = {"id": "q", "index": 5, "tokens": ["It", "rained"], "tags": ["O", "B-V"]}
    with pytest.raises(DataFormatError, match=r"row q has predicate index 5, not a word position 0..1"):
        get_task("conll2012").encode([row], wordpiece, 64, train=False)


def test_scores_include_the_predicate_span(wordpiece):
    """seqeval over every span, V included (official compute_metrics): predicting only the
    verb right scores precision 1 and recall 1/3 on a row with A0, V and A1 spans."""
    import numpy as np

    task = get_task("conll2005")
    row = {"id": "0", "index": 2, "tokens": ["the", "man", "bought", "the", "book"],
           "tags": ["B-A0", "I-A0", "B-V", "B-A1", "I-A1"]}
    encoded = task.encode([row], wordpiece, 64, train=False)
    logits = np.zeros((1, len(encoded.features[0]["input_ids"]), task.num_labels))
    logits[..., task.label_names.index("O")] = 1.0
    logits[0, encoded.extra["first_subtokens"][0][2], task.label_names.index("B-V")] = 2.0
    scores = task.score(logits, encoded)
    assert scores["precision"] == pytest.approx(100.0)
    assert scores["recall"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(50.0)


# ---------------------------------------------------------------- hub and local data


class _Features(dict):
    pass


def hub_document(frames: list[list[str]], words: list[str]) -> dict:
    return {"document_id": "bc/cctv/00/cctv_0001", "sentences": [
        {"words": words, "srl_frames": [{"verb": words[f.index("B-V")] if "B-V" in f else "?", "frames": f}
                                        for f in frames]}]}


def test_hub_rows_one_per_frame_with_the_predicate_at_b_v():
    task = get_task("conll2012")
    words = ["He", "said", "they", "left", "."]
    doc = hub_document([["B-ARG0", "B-V", "B-ARG1", "I-ARG1", "O"], ["O", "O", "B-ARG0", "B-V", "O"]], words)
    rows = task.from_hub([doc], _Features(document_id=None, sentences=None))
    assert [(r["index"], r["tags"][r["index"]]) for r in rows] == [(1, "B-V"), (3, "B-V")]
    assert all(r["tokens"] == words for r in rows) and [r["id"] for r in rows] == ["0", "1"]


@pytest.mark.parametrize(("frame", "message"), [
    (["B-ARG0", "O", "O", "O", "O"], "0 B-V tags"),
    (["B-ARG0", "B-V", "O", "O"], "5 words but 4 tags"),
    (["B-ARG0", "B-V", "B-ARGM-FOO", "O", "O"], "tags ['B-ARGM-FOO'] outside the conll2012 label set"),
])
def test_hub_rows_refuse_what_they_cannot_place(frame, message):
    doc = hub_document([frame], ["He", "said", "they", "left", "."])
    with pytest.raises(DataFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_task("conll2012").from_hub([doc], _Features(document_id=None, sentences=None))


def test_conll2005_has_no_hub_copy(tmp_path):
    from ptuning.config import DataConfig, DataSource
    from ptuning.tasks.data import read_splits

    with pytest.raises(DataUnavailableError, match=r"task=conll2005: no hub dataset exists .*data.source=local"):
        read_splits(get_task("conll2005"), DataConfig(source=DataSource.hub))


def srl_data(root: Path, sizes: dict[str, int], brown: bool = True) -> Path:
    """Synthetic rows of both SRL tasks written in the official files' layout under ``root``."""
    for name in SRL_TASKS:
        task = get_task(name)
        for split, relative in task.local_files.items():
            if split == "test_brown" and not brown:
                continue
            n = sizes.get(split, sizes["eval"])
            write_official(root / relative, task.synthetic_rows(split, n))
    return root


def test_local_splits_include_the_brown_test(tmp_path):
    from ptuning.config import DataConfig, DataSource
    from ptuning.tasks.data import read_splits

    root = srl_data(tmp_path, {"train": 20, "eval": 8, "test_brown": 6})
    task = get_task("conll2005")
    splits = read_splits(task, DataConfig(source=DataSource.local, root=str(root), max_eval_samples=5))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (20, 5, 5)
    assert list(splits.extra_tests) == ["brown"] and len(splits.extra_tests["brown"]) == 5
    assert splits.note is None
    without = read_splits(task, DataConfig(source=DataSource.local, root=str(root)))
    (root / task.local_files["test_brown"]).unlink()
    missing = read_splits(task, DataConfig(source=DataSource.local, root=str(root)))
    assert missing.extra_tests == {} and "conll05.test.brown.txt: CoNLL05 Brown not scored" in missing.note
    assert missing.fingerprint() != without.fingerprint()


# ---------------------------------------------------------------- one run, two tests


def test_brown_is_scored_at_the_best_dev_epoch_and_reported_as_its_own_task(tmp_path):
    from analysis.collect import collect
    from analysis.tables import family_table, reported
    from ptuning.runner import run_cell

    root = srl_data(tmp_path / "data", {"train": 48, "eval": 16})
    cfg = compose_config(["model=tiny_bert", "task=conll2005", "method=ptuning_v2", "data.source=local",
                          f"data.root={root}", "train.epochs=3", "train.batch_size=16", "logger=none",
                          f"paths.runs_dir={tmp_path / 'runs'}"])
    outcome = run_cell(cfg)
    record = json.loads((outcome.directory / "result.json").read_text())
    assert record["status"] == "completed" and record["task"]["extra_tests"] == {"brown": "CoNLL05 Brown"}
    assert record["data"]["extra_test_examples"] == {"brown": 16}
    chosen = record["selection"]["epoch"]
    at_choice = [h for h in record["history"] if h["epoch"] == chosen]
    assert len(at_choice) == 1 and len(record["history"]) == 3
    best_dev = max(h["validation/f1"] for h in record["history"])
    assert at_choice[0]["validation/f1"] == best_dev
    for metric, value in record["extra_test_metrics"]["brown"].items():
        assert at_choice[0][f"test_brown/{metric}"] == value
    for metric, value in record["test_metrics"].items():
        assert at_choice[0][f"test/{metric}"] == value

    frame = collect([tmp_path / "runs"])
    values = reported(frame).set_index("task")["value"]
    assert values["conll2005"] == record["test_metrics"]["f1"]
    assert values["conll2005_brown"] == record["extra_test_metrics"]["brown"]["f1"]
    brown = frame[frame["task"] == "conll2005_brown"]
    assert set(brown["task_display"]) == {"CoNLL05 Brown"} and set(brown["family"]) == {"SRL"}
    assert set(brown["test_examples"]) == {16}
    table = family_table(frame, "SRL")
    assert list(table.text.columns) == ["Backbone", "Method", "CoNLL05 Brown", "CoNLL05 WSJ", "Avg"]


def test_the_preset_runs_mpt2_over_both_srl_tasks_on_a_tiny_backbone(tmp_path):
    """ptv2_srl's MPT-2 cell: one prompt trained on CoNLL05 and CoNLL12 (each with its own
    head and label set), then the CoNLL05 cell continues from it and scores both tests."""
    from ptuning.runner import run_cell

    root = srl_data(tmp_path / "data", {"train": 32, "eval": 8})
    cfg = compose_config(["preset=ptv2_srl", "model=tiny_bert", "task=conll2005", "method=mpt2", "logger=none",
                          f"data.root={root}", "train.epochs=1", "train.batch_size=8",
                          f"paths.runs_dir={tmp_path / 'runs'}"])
    assert (cfg.method.length, cfg.train.lr, cfg.group) == (128, 5.0e-3, "ptv2_srl")  # mpt2.yaml
    record = json.loads((run_cell(cfg).directory / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert record["stage"]["tasks"] == ["conll2005", "conll2012"]
    assert set(record["extra_test_metrics"]) == {"brown"} and record["task"]["reported_split"] == "test"
    assert record["config"]["train"]["scheduler"] == "exponential"  # official ExponentialTrainer


def test_the_dry_run_plans_the_preset_and_leaves_unsized_tasks_unpriced(capsys):
    """Official cells are not searched, the others are; SRL cells cost '?' (no sourced size),
    left out of the totals with a line that says so, not counted as zero."""
    import math

    from experiments.launch import plan_grid, print_dry_run, table
    from ptuning.cost import A100

    cells = plan_grid("ptv2_srl", ["data.root=/data", "model=roberta_large,tiny_bert", "method=ptuning_v2"])
    frame = table(cells)
    official = frame[frame["model"] == "roberta_large"]
    assert sorted(official["task"]) == ["conll2005", "conll2012"] and set(official["settings"]) == {"official script"}
    searched = frame[frame["model"] == "tiny_bert"]
    assert set(searched["settings"]) == {"search point"}
    # 3 lr x 2 lengths x 2 epoch counts; CoNLL12 at the shorter schedule only (conf/search/srl.yaml)
    assert searched["task"].value_counts().to_dict() == {"conll2005": 12, "conll2012": 6}
    assert all(math.isnan(c.cost.gpu_hours) for c in cells)
    print_dry_run("ptv2_srl", cells, A100)
    out = capsys.readouterr().out
    assert "GPU-hours: ? for the whole grid" in out
    assert f"unpriced: {len(cells)} cells of conll2005, conll2012 ('?')" in out
