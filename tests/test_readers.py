"""Readers: real files from PTUNING_DATA_DIR (skipped when unset) and malformed temp files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ptuning.errors import ConfigError, DataFormatError, DataUnavailableError
from ptuning.tasks import get_task
from ptuning.tasks.formats import read_conll, read_squad_json, read_tsv, to_iob2


def read_superglue_jsonl(path, task: str) -> list[dict]:
    """The original jsonl of a SuperGLUE task, through the task's own reader."""
    return get_task(task.lower()).read_local(str(path))


def row_keys(task: str) -> frozenset[str]:
    return get_task(task).row_keys


def label_names(task: str) -> list[str]:
    return list(get_task(task).label_names)

# ---------------------------------------------------------------- real data


def test_cb_val(data_dir: Path) -> None:
    rows = read_superglue_jsonl(data_dir / "superglue/CB/val.jsonl", "cb")
    assert len(rows) == 56
    assert set(rows[0]) == row_keys("cb")
    assert rows[0]["hypothesis"] == "Valence was helping"
    assert rows[0]["label"] == label_names("cb").index("contradiction") == 1
    assert rows[0]["idx"] == 0


def test_cb_train_label_counts(data_dir: Path) -> None:
    rows = read_superglue_jsonl(data_dir / "superglue/CB/train.jsonl", "CB")
    assert len(rows) == 250
    # official: 115 entailment / 119 contradiction / 16 neutral
    assert Counter(r["label"] for r in rows) == {0: 115, 1: 119, 2: 16}


def test_copa_rte_boolq(data_dir: Path) -> None:
    copa = read_superglue_jsonl(data_dir / "superglue/COPA/val.jsonl", "copa")
    assert len(copa) == 100 and set(copa[0]) == row_keys("copa")
    assert copa[0]["premise"] == "The man turned on the faucet."
    assert (copa[0]["question"], copa[0]["label"]) == ("effect", 1)
    assert len(read_superglue_jsonl(data_dir / "superglue/COPA/train.jsonl", "copa")) == 400

    rte = read_superglue_jsonl(data_dir / "superglue/RTE/val.jsonl", "rte")
    assert len(rte) == 277 and set(rte[0]) == row_keys("rte")
    assert rte[0]["label"] == 1  # not_entailment
    rte_train = read_superglue_jsonl(data_dir / "superglue/RTE/train.jsonl", "rte")
    assert len(rte_train) == 2490 and rte_train[0]["label"] == 1

    boolq = read_superglue_jsonl(data_dir / "superglue/BoolQ/val.jsonl", "boolq")
    assert len(boolq) == 3270 and set(boolq[0]) == row_keys("boolq")
    assert boolq[0]["question"] == "does ethanol take more energy make that produces"
    assert boolq[0]["label"] == 0  # false


def test_wic(data_dir: Path) -> None:
    rows = read_superglue_jsonl(data_dir / "superglue/WiC/val.jsonl", "wic")
    assert len(rows) == 638 and set(rows[0]) == row_keys("wic")
    r = rows[0]
    assert (r["word"], r["label"], r["start1"], r["end1"]) == ("class", 0, 25, 30)
    assert r["sentence1"][r["start1"] : r["end1"]] == "class"
    assert r["sentence2"][r["start2"] : r["end2"]] == "class"
    train = read_superglue_jsonl(data_dir / "superglue/WiC/train.jsonl", "wic")
    assert Counter(x["label"] for x in train) == {0: 2714, 1: 2714}


def test_wsc_spans(data_dir: Path) -> None:
    rows = read_superglue_jsonl(data_dir / "superglue/WSC/val.jsonl", "wsc")
    assert len(rows) == 104 and set(rows[0]) == row_keys("wsc")
    r = rows[0]
    assert (r["span1_index"], r["span1_text"], r["span2_index"], r["span2_text"]) == (
        32,
        "anyone",
        47,
        "him",
    )
    assert r["label"] == 0
    words = r["text"].split()
    assert words[r["span1_index"]] == "anyone" and words[r["span2_index"]] == "him"
    train = read_superglue_jsonl(data_dir / "superglue/WSC/train.jsonl", "wsc")
    assert len(train) == 554
    t = train[0]  # "Mark told Pete many lies about himself, ... He should have been ..."
    assert (t["span1_text"], t["span2_index"]) == ("Mark", 13)
    assert t["text"].split()[t["span2_index"]] == "He"


def test_multirc_flattening(data_dir: Path) -> None:
    rows = read_superglue_jsonl(data_dir / "superglue/MultiRC/val.jsonl", "multirc")
    assert len(rows) == 4848
    assert len({(r["idx"]["paragraph"], r["idx"]["question"]) for r in rows}) == 953
    assert len({r["idx"]["paragraph"] for r in rows}) == 83
    assert set(rows[0]) == row_keys("multirc")
    assert rows[0]["idx"] == {"paragraph": 0, "question": 0, "answer": 0}
    assert [r["answer"] for r in rows[:2]] == ["No", "Yes"]
    assert [r["label"] for r in rows[:4]] == [0, 1, 1, 0]
    assert rows[0]["paragraph"].startswith("What causes a change in motion?")
    train = read_superglue_jsonl(data_dir / "superglue/MultiRC/train.jsonl", "multirc")
    assert len(train) == 27243
    assert len({(r["idx"]["paragraph"], r["idx"]["question"]) for r in train}) == 5131


def test_record_entity_spans(data_dir: Path) -> None:
    rows = read_superglue_jsonl(data_dir / "superglue_fewshot/ReCoRD/train32.jsonl", "record")
    assert len(rows) == 32
    r = rows[0]
    assert set(r) == row_keys("record")
    assert r["idx"] == {"passage": 3088, "query": 4756}
    assert r["answers"] == ["Olimpija Ljubljana"]
    assert "@placeholder" in r["query"]
    assert "\n@highlight\n" in r["passage"]  # kept verbatim, offsets index it directly
    spans = r["entity_spans"]
    assert (spans["text"][0], spans["start"][0], spans["end"][0]) == ("Hamish Mackay", 3, 16)
    for row in rows:
        s = row["entity_spans"]
        assert s["start"] == sorted(s["start"])
        for text, start, end in zip(s["text"], s["start"], s["end"], strict=True):
            assert row["passage"][start:end] == text  # exclusive end (original end + 1)
        assert row["entities"] == sorted(set(s["text"]))
        assert set(row["answers"]) <= set(row["entities"])


def test_conll2003_valid(data_dir: Path) -> None:
    path = data_dir / "conll2003/valid.txt"
    rows = read_conll(path, "conll2003")
    assert len(rows) == 3250
    assert sum(len(r["tokens"]) for r in rows) == 51362
    assert set(rows[0]) == row_keys("conll2003")
    assert rows[0]["id"] == "0" and rows[-1]["id"] == "3249"
    assert rows[0]["tokens"][:3] == ["CRICKET", "-", "LEICESTERSHIRE"]
    assert rows[0]["ner_tags"][:3] == ["O", "O", "B-ORG"]
    assert rows[1] == {"id": "1", "tokens": ["LONDON", "1996-08-30"], "ner_tags": ["B-LOC", "O"]}
    # the file is IOB2 already: tags come back exactly as written
    raw = [
        line.split()[-1]
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("-DOCSTART-")
    ]
    assert [t for r in rows for t in r["ner_tags"]] == raw
    assert {t for r in rows for t in r["ner_tags"]} == set(label_names("conll2003"))


def test_conll04_dev(data_dir: Path) -> None:
    rows = read_conll(data_dir / "conll04/dev.txt", "token_tag")
    assert len(rows) == 231
    assert sum(len(r["tokens"]) for r in rows) == 6993
    assert rows[0]["tokens"][:4] == ["John", "Wilkes", "Booth", ","]
    assert rows[0]["ner_tags"][:8] == ["B-Peop", "I-Peop", "I-Peop", "O", "O", "O"] + [
        "B-Peop",
        "I-Peop",
    ]
    assert {t for r in rows for t in r["ner_tags"]} <= set(label_names("conll04"))


def test_squad_dev(data_dir: Path) -> None:
    rows = read_squad_json(data_dir / "squad/dev-v1.1.json", "1.1")
    assert len(rows) == 10570
    assert len({r["title"] for r in rows}) == 48
    assert len({r["context"] for r in rows}) == 2067
    r = rows[0]
    assert set(r) == row_keys("squad")
    assert (r["id"], r["title"]) == ("56be4db0acb8001400a502ec", "Super_Bowl_50")
    assert r["answers"] == {"text": ["Denver Broncos"] * 3, "answer_start": [177] * 3}
    for row in rows:
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"], strict=True):
            assert row["context"][start : start + len(text)] == text


# ---------------------------------------------------------------- bad input


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


CB_OK = {"premise": "It rained.", "hypothesis": "It was wet.", "label": "entailment", "idx": 0}


def test_missing_file() -> None:
    with pytest.raises(DataUnavailableError, match="no_such_dir/val.jsonl"):
        read_superglue_jsonl("/tmp/no_such_dir/val.jsonl", "cb")
    with pytest.raises(DataUnavailableError, match="nope.txt"):
        read_conll("/tmp/nope.txt", "conll2003")
    with pytest.raises(DataUnavailableError, match="nope.json"):
        read_squad_json("/tmp/nope.json")


def test_invalid_json_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.jsonl", json.dumps(CB_OK) + '\n{"premise": "x",\n')
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:2: invalid JSON \("):
        read_superglue_jsonl(path, "cb")


def test_missing_field(tmp_path: Path) -> None:
    row = {k: v for k, v in CB_OK.items() if k != "hypothesis"}
    path = _write(tmp_path, "cb.jsonl", "\n" + json.dumps(CB_OK) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataFormatError) as err:
        read_superglue_jsonl(path, "cb")
    assert str(err.value) == (
        f"{path}:3: missing field 'hypothesis' (cb rows need premise, hypothesis, idx, label)"
    )


def test_missing_nested_field(tmp_path: Path) -> None:
    row = {
        "idx": 0,
        "passage": {
            "text": "Some text.",
            "questions": [{"question": "Q?", "idx": 0, "answers": [{"text": "A", "idx": 0}]}],
        },
    }
    path = _write(tmp_path, "mrc.jsonl", json.dumps(row) + "\n")
    with pytest.raises(DataFormatError, match=r"mrc\.jsonl:1: missing field "):
        read_superglue_jsonl(path, "multirc")
    with pytest.raises(DataFormatError, match=r"passage\.questions\[0\]\.answers\[0\]\.label"):
        read_superglue_jsonl(path, "multirc")
    row["passage"]["questions"][0]["answers"][0]["label"] = True
    path = _write(tmp_path, "mrc.jsonl", json.dumps(row) + "\n")
    rows = read_superglue_jsonl(path, "multirc")
    assert rows[0]["label"] == 1 and rows[0]["idx"] == {"paragraph": 0, "question": 0, "answer": 0}


def test_wsc_missing_target_field(tmp_path: Path) -> None:
    row = {"text": "a b", "target": {"span1_index": 0, "span1_text": "a"}, "label": True, "idx": 0}
    path = _write(tmp_path, "wsc.jsonl", json.dumps(row) + "\n")
    with pytest.raises(DataFormatError, match=r"wsc\.jsonl:1: missing field 'target\.span2_index'"):
        read_superglue_jsonl(path, "wsc")


def test_invalid_label(tmp_path: Path) -> None:
    path = _write(tmp_path, "cb.jsonl", json.dumps({**CB_OK, "label": "maybe"}) + "\n")
    with pytest.raises(DataFormatError) as err:
        read_superglue_jsonl(path, "cb")
    assert str(err.value) == (
        f"{path}:1: invalid cb label 'maybe' (valid: entailment, contradiction, neutral)"
    )
    bad_bool = {"question": "q", "passage": "p", "label": "yes", "idx": 0}
    path = _write(tmp_path, "boolq.jsonl", json.dumps(bad_bool) + "\n")
    with pytest.raises(DataFormatError, match=r"boolq\.jsonl:1: invalid boolq label 'yes'"):
        read_superglue_jsonl(path, "boolq")


def test_unknown_task() -> None:
    with pytest.raises(ConfigError, match="task='mnli': unknown task; valid tasks: boolq, cb, "):
        read_superglue_jsonl("/tmp/x.jsonl", "mnli")


def test_conll_wrong_column_count(tmp_path: Path) -> None:
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP\n"
    path = _write(tmp_path, "train.txt", text)
    with pytest.raises(DataFormatError) as err:
        read_conll(path, "conll2003")
    assert str(err.value) == f"{path}:4: expected 4 columns (token POS chunk NER), got 3"
    path = _write(tmp_path, "dev.txt", "John B-Peop\nsaid O extra\n")
    with pytest.raises(
        DataFormatError, match=r"dev\.txt:2: expected 2 columns \(token TAG\), got 3"
    ):
        read_conll(path, "token_tag")


def test_conll_invalid_tag(tmp_path: Path) -> None:
    path = _write(tmp_path, "dev.txt", "John B-Peop\n\nsaid PER\n")
    with pytest.raises(DataFormatError, match=r"dev\.txt:3: invalid NER tag 'PER'"):
        read_conll(path, "token_tag")


def test_tag_normalisation() -> None:
    # IOB1 (CoNLL-2003 original): I- opening an entity or changing type becomes B-
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "B-ORG",
    ]
    # BILOU
    assert to_iob2(["U-Loc", "B-Peop", "I-Peop", "L-Peop"]) == [
        "B-Loc",
        "B-Peop",
        "I-Peop",
        "I-Peop",
    ]


def _squad_file(tmp_path: Path, answer_start: int, version_2: bool = False) -> Path:
    qas = [
        {
            "id": "q1",
            "question": "Who won?",
            "answers": [{"text": "Denver Broncos", "answer_start": answer_start}],
        }
    ]
    if version_2:
        qas.append({"id": "q2", "question": "Who lost?", "answers": [], "is_impossible": True})
    data = {
        "version": "x",
        "data": [
            {"title": "T", "paragraphs": [{"context": "The Denver Broncos won.", "qas": qas}]}
        ],
    }
    return _write(tmp_path, "squad.json", json.dumps(data))


def test_squad_answer_start_mismatch(tmp_path: Path) -> None:
    path = _squad_file(tmp_path, answer_start=5)
    with pytest.raises(DataFormatError) as err:
        read_squad_json(path, "1.1")
    assert str(err.value) == (
        f"{path}: question id q1: answer_start 5 does not match answer text 'Denver Broncos' "
        "(context has 'enver Broncos ')"
    )
    assert read_squad_json(path, "1.1", check_offsets=False)[0]["answers"]["answer_start"] == [5]


def test_squad_v2_unanswerable_and_errors(tmp_path: Path) -> None:
    rows = read_squad_json(_squad_file(tmp_path, 4, version_2=True), "2.0")
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert rows[0]["answers"] == {"text": ["Denver Broncos"], "answer_start": [4]}
    assert rows[1]["answers"] == {"text": [], "answer_start": []}
    assert set(rows[1]) == row_keys("squad_v2")
    with pytest.raises(DataFormatError, match=r"squad\.json: question id q2: no answers"):
        read_squad_json(_squad_file(tmp_path, 4, version_2=True), "1.1")
    path = _write(tmp_path, "broken.json", '{"data": [\n{"title": }')
    with pytest.raises(DataFormatError, match=r"broken\.json:2: invalid JSON"):
        read_squad_json(path)


# ---------------------------------------------------------------- GLUE tsv (SST-2)


def test_sst2_tsv(tmp_path: Path) -> None:
    """GLUE's SST-2 files: header ``sentence<TAB>label``, text kept as written (trailing space,
    quotes), idx = the data line's 0-based number, empty lines skipped."""
    text = 'sentence\tlabel\nit \'s a charming journey . \t1\n"not" funny at all \t0\n\nfine \t1\n'
    rows = get_task("sst2").read_local(str(_write(tmp_path, "dev.tsv", text)))
    assert rows == [{"sentence": "it 's a charming journey . ", "label": 1, "idx": 0},
                    {"sentence": '"not" funny at all ', "label": 0, "idx": 1},
                    {"sentence": "fine ", "label": 1, "idx": 2}]
    assert all(set(r) == row_keys("sst2") for r in rows)
    # columns are found by name, a byte-order mark is ignored, an extra column is allowed
    text = "\ufefflabel\tsentence\tsource\n0\ta dull film\trt\n"
    assert get_task("sst2").read_local(str(_write(tmp_path, "bom.tsv", text))) == [
        {"sentence": "a dull film", "label": 0, "idx": 0}]


@pytest.mark.parametrize("content, message", [
    ("sentence\tscore\na fine film\t1\n",
     ":1: missing column 'label' (sst2 rows need sentence, label; the header has 'sentence', 'score')"),
    ("sentence\tlabel\na fine film\t1\n\na dull film\tnegative\n", ":4: invalid sst2 label 'negative' (valid: 0, 1)"),
    ("sentence\tlabel\na fine film\t2\n", ":2: invalid sst2 label '2' (valid: 0, 1)"),
    ("sentence\tlabel\na fine film\t1\na tab\tin it\t0\n",
     ":3: expected 2 tab-separated fields (sentence, label), got 3"),
    ("sentence\tlabel\nno label here\n", ":2: expected 2 tab-separated fields (sentence, label), got 1"),
    ("sentence\tlabel\tsentence\nx\t0\ty\n", ":1: column 'sentence' named twice in the header"),
    ("", ":1: no header line; the first line names the tab-separated columns (sentence, label)"),
])
def test_sst2_tsv_errors_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = _write(tmp_path, "dev.tsv", content)
    with pytest.raises(DataFormatError) as err:
        get_task("sst2").read_local(str(path))
    assert str(err.value) == f"{path}{message}"


def test_a_missing_sst2_file_is_named() -> None:
    sst2 = get_task("sst2")
    with pytest.raises(DataUnavailableError, match="no_such_dir/dev.tsv"):
        sst2.read_local("/tmp/no_such_dir/dev.tsv")


def test_read_tsv_passes_records_and_data_line_numbers(tmp_path: Path) -> None:
    """The reader knows the format, not the task: ``parse`` gets each record and its index."""
    path = _write(tmp_path, "x.tsv", "a\tb\n1\t2\n\n3\t4\n")
    seen = read_tsv(path, "x", ("a",), lambda where, record, index: [{**record, "i": index,
                                                                      "at": where.where}])
    assert seen == [{"a": "1", "b": "2", "i": 0, "at": f"{path}:2"},
                    {"a": "3", "b": "4", "i": 1, "at": f"{path}:4"}]
