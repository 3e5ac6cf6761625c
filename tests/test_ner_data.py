"""NER data: the official P-Tuning v2 file layouts (``tasks/ner/datasets/*.py``) read from
a local folder, and the hub route mapping tags by the dataset's own names."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pytest

from ptuning.config import DataConfig, DataSource
from ptuning.errors import DataFormatError
from ptuning.tasks import get_task
from ptuning.tasks.data import read_splits
from ptuning.tasks.formats import read_conll

CONLL04_TRAIN = """\
John B-Peop
Wilkes I-Peop
Booth I-Peop
shot O
Lincoln B-Peop
. O

The O
Times B-Org
of O
London I-Loc
. O

"""
CONLL04_DEV = "-DOCSTART- O\n\nIn O\nHavana B-Loc\n\nParis B-Loc\nrain O\n"  # no final empty line
CONLL04_TEST = "Hi O\n\n"


def _conllx(word_tags: list[tuple[str, str]]) -> str:
    """One sentence of 11 tab-separated CoNLL-X columns, NER tag last (the .sd.conllx layout)."""
    return "".join(f"{i}\t{w}\t_\tNNP\tNNP\t_\t0\troot\t_\t_\t{t}\n" for i, (w, t) in enumerate(word_tags, 1))


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def _local(root: Path) -> DataConfig:
    return DataConfig(source=DataSource.local, root=str(root))


# ---------------------------------------------------------------- local files, official layouts

def test_conll04_official_layout(tmp_path: Path) -> None:
    _write(tmp_path, {"conll04/train.txt": CONLL04_TRAIN, "conll04/dev.txt": CONLL04_DEV,
                      "conll04/test.txt": CONLL04_TEST})
    splits = read_splits(get_task("conll04"), _local(tmp_path))
    train = sorted(splits.train, key=lambda r: r["id"])  # train comes in a fixed shuffled order
    assert train == [
        {"id": "0", "tokens": ["John", "Wilkes", "Booth", "shot", "Lincoln", "."],
         "ner_tags": ["B-Peop", "I-Peop", "I-Peop", "O", "B-Peop", "O"]},
        # tags as written, as conll2004.py: a stray I- is not turned into B-
        {"id": "1", "tokens": ["The", "Times", "of", "London", "."],
         "ner_tags": ["O", "B-Org", "O", "I-Loc", "O"]},
    ]
    # -DOCSTART- ends a sentence and is no token; a last sentence without an empty line is kept
    assert splits.validation == [
        {"id": "0", "tokens": ["In", "Havana"], "ner_tags": ["O", "B-Loc"]},
        {"id": "1", "tokens": ["Paris", "rain"], "ner_tags": ["B-Loc", "O"]},
    ]
    assert splits.test == [{"id": "0", "tokens": ["Hi"], "ner_tags": ["O"]}]


def test_ontonotes_official_layout(tmp_path: Path) -> None:
    task = get_task("ontonotes")
    assert task.local_files == {"train": "ontonotes/train.sd.conllx",
                                "validation": "ontonotes/dev.sd.conllx",
                                "test": "ontonotes/test.sd.conllx"}
    first = _conllx([("Barack", "B-PERSON"), ("Obama", "I-PERSON"), ("visited", "O"),
                     ("New", "B-GPE"), ("York", "I-GPE"), ("'s", "O")])
    second = _conllx([("$", "B-MONEY"), ("5", "I-MONEY"), ("today", "B-DATE")])
    _write(tmp_path, {"ontonotes/train.sd.conllx": first + "\n" + second + "\n",
                      "ontonotes/dev.sd.conllx": second + "\n",
                      "ontonotes/test.sd.conllx": first + "\n"})
    splits = read_splits(task, _local(tmp_path))
    assert sorted(splits.train, key=lambda r: r["id"]) == [
        {"id": "0", "tokens": ["Barack", "Obama", "visited", "New", "York", "'s"],
         "ner_tags": ["B-PERSON", "I-PERSON", "O", "B-GPE", "I-GPE", "O"]},
        {"id": "1", "tokens": ["$", "5", "today"], "ner_tags": ["B-MONEY", "I-MONEY", "B-DATE"]},
    ]
    assert splits.validation == [{"id": "0", "tokens": ["$", "5", "today"],
                                  "ner_tags": ["B-MONEY", "I-MONEY", "B-DATE"]}]
    assert [r["tokens"][0] for r in splits.test] == ["Barack"]


def test_conll2003_official_layout(tmp_path: Path) -> None:
    text = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
            "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n")
    path = _write(tmp_path, {"valid.txt": text}) / "valid.txt"
    assert get_task("conll2003").read_local(str(path)) == [
        {"id": "0", "tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]},
        {"id": "1", "tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]},
    ]


@pytest.mark.parametrize(("fmt", "text", "line", "message"), [
    ("token_tag", "John B-Peop\nsaid\tO\n", 2, "tab in the line; the columns (token TAG) are separated by single spaces"),
    ("token_tag", "John B-Peop\nsaid  O\n", 2, "empty column"),
    ("token_tag", "John B-Peop\nsaid O \n", 2, "empty column"),
    ("token_tag", "John B-Peop\n \nsaid O\n", 2, "line of only whitespace"),
    ("token_tag", "John S-Peop\n", 1, "invalid NER tag 'S-Peop' (the token_tag layout has O, B-TYPE and I-TYPE tags)"),
    ("sd_conllx", "1\tParis\tB-GPE\n2 York O\n", 2, "expected tab-separated CoNLL-X columns (ID WORD ... TAG), got 1"),
    ("sd_conllx", "1\t\t_\tO\n", 1, "empty word (2nd column)"),
    ("conll2003", "EU NNP B-NP B-ORG\n\nrejects VBZ B-VP\n", 3, "expected 4 columns (token POS chunk NER), got 3"),
])
def test_malformed_lines_name_file_and_line(tmp_path: Path, fmt: str, text: str, line: int,
                                            message: str) -> None:
    path = _write(tmp_path, {"bad.txt": text}) / "bad.txt"
    with pytest.raises(DataFormatError) as err:
        read_conll(path, fmt)
    assert str(err.value).startswith(f"{path}:{line}: {message}")


def test_tags_outside_the_label_set_name_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, {"conll04/dev.txt": "John B-Peop\n\nParis B-LOC\n"}) / "conll04/dev.txt"
    with pytest.raises(DataFormatError) as err:
        get_task("conll04").read_local(str(path))
    assert str(err.value) == (f"{path}:3: tag 'B-LOC' is not in the label set (O, B-Loc, B-Peop, "
                              "B-Org, B-Other, I-Loc, I-Peop, I-Org, I-Other)")
    onto = _write(tmp_path, {"dev.sd.conllx": _conllx([("Paris", "B-LOCATION")])}) / "dev.sd.conllx"
    with pytest.raises(DataFormatError, match=r"dev\.sd\.conllx:1: tag 'B-LOCATION' is not in the label set"):
        get_task("ontonotes").read_local(str(onto))


def test_real_conll04_files(data_dir: Path) -> None:
    if not (data_dir / "conll04/train.txt").exists():
        pytest.skip("conll04 is not in PTUNING_DATA_DIR")
    task = get_task("conll04")
    splits = read_splits(task, _local(data_dir))
    counts = {"train": (922, 26525, 3377), "validation": (231, 6993, 893), "test": (288, 8336, 1079)}
    for split, (sentences, tokens, entities) in counts.items():  # PROVENANCE.md's counts
        rows = getattr(splits, split)
        tags = Counter(t for r in rows for t in r["ner_tags"])
        assert len(rows) == sentences and sum(tags.values()) == tokens, split
        assert sum(n for t, n in tags.items() if t.startswith("B-")) == entities, split
        assert set(tags) == set(task.label_names), split
        assert all(len(r["tokens"]) == len(r["ner_tags"]) for r in rows)
    # tags exactly as written in the file (the official reader converts nothing)
    dev = (data_dir / "conll04/dev.txt").read_text(encoding="utf-8").split("\n")
    assert [t for r in splits.validation for t in r["ner_tags"]] == [line.split(" ")[-1] for line in dev if line]


# ---------------------------------------------------------------- hub route

def _hub(tag_feature: Any, tags: list[list], column: str = "ner_tags",
         with_id: bool = True) -> datasets.Dataset:
    data: dict[str, list] = {"tokens": [["John", "lives", "in", "Paris"], ["Hi"]][: len(tags)], column: tags}
    features = {"tokens": datasets.Sequence(datasets.Value("string")), column: tag_feature}
    if with_id:
        data["id"], features["id"] = [str(10 + i) for i in range(len(tags))], datasets.Value("string")
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def test_hub_classlabel_in_another_order_maps_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    task = get_task("conll04")
    names = list(reversed(task.label_names))  # ids differ from ours for every tag but B-Other
    ids = {n: i for i, n in enumerate(names)}
    data = _hub(datasets.Sequence(datasets.ClassLabel(names=names)),
                [[ids["B-Peop"], ids["O"], ids["O"], ids["B-Loc"]], [ids["O"]]])
    expected = [{"id": "10", "tokens": ["John", "lives", "in", "Paris"], "ner_tags": ["B-Peop", "O", "O", "B-Loc"]},
                {"id": "11", "tokens": ["Hi"], "ner_tags": ["O"]}]
    assert task.from_hub(list(data), data.features) == expected
    # through the hub source of read_splits (load_dataset replaced by the in-memory dataset)
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, split=None: data)
    splits = read_splits(task, DataConfig(source=DataSource.hub))
    assert splits.validation == splits.test == expected


def test_hub_string_tags_are_used_as_they_are() -> None:
    task = get_task("conll2003")
    data = _hub(datasets.Sequence(datasets.Value("string")), [["B-PER", "O", "O", "B-LOC"]], with_id=False)
    assert task.from_hub(list(data), data.features) == [
        {"id": "0", "tokens": ["John", "lives", "in", "Paris"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]}]


def test_hub_integer_tags_without_names_are_refused() -> None:
    task = get_task("ontonotes")  # tner/ontonotes5: tags = Sequence(Value("int32")), no names
    data = _hub(datasets.Sequence(datasets.Value("int32")), [[1, 0, 0, 2]], column="tags", with_id=False)
    with pytest.raises(DataFormatError) as err:
        task.from_hub(list(data), data.features)
    msg = str(err.value)
    assert msg.startswith("task=ontonotes: hub dataset 'tner/ontonotes5': column 'tags' holds int32 tags "
                          "without ClassLabel names")
    assert "data.source=local data.root=DIR" in msg and "ontonotes/train.sd.conllx" in msg


@pytest.mark.parametrize("scheme", ["classlabel", "string"])
def test_hub_tags_outside_the_label_set_are_listed(scheme: str) -> None:
    task = get_task("conll04")
    if scheme == "classlabel":  # another scheme and spelling: no mapping is applied
        names = ["O", "S-Loc", "B-PER", "I-PER", "B-Loc"]
        data = _hub(datasets.Sequence(datasets.ClassLabel(names=names)), [[2, 0, 0, 1]])
        unknown = "['B-PER', 'I-PER', 'S-Loc']"
    else:
        data = _hub(datasets.Sequence(datasets.Value("string")), [["B-PER", "O", "O", "B-Loc"]])
        unknown = "['B-PER']"
    with pytest.raises(DataFormatError) as err:
        task.from_hub(list(data), data.features)
    assert str(err.value).startswith(f"task=conll04: hub dataset 'conll04': column 'ner_tags' has tags "
                                     f"{unknown} outside the conll04 label set ['O', 'B-Loc', ")


def test_hub_bad_ids_and_columns() -> None:
    task = get_task("conll04")
    data = _hub(datasets.Sequence(datasets.Value("string")), [["O", "O", "O", "O"]], column="labels")
    with pytest.raises(DataFormatError, match=r"has columns \['id', 'labels', 'tokens'\]; expected tokens "
                                              r"and one of ner_tags, tags"):
        task.from_hub(list(data), data.features)
    names = datasets.Sequence(datasets.ClassLabel(names=list(task.label_names)))
    rows = [{"id": "0", "tokens": ["a"], "ner_tags": [9]}]
    with pytest.raises(DataFormatError, match=r"row 0 has ner_tags value 9, not an id 0\.\.8 of its ClassLabel"):
        task.from_hub(rows, datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                               "ner_tags": names}))
