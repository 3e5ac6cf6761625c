"""Self-describing artefacts, the prompt table and mixed-task batches: one frozen backbone
serves tasks of all four head kinds, and a batch mixing them gives each task's outputs alone."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import model_cfg
from omegaconf import OmegaConf

from ptuning.artefacts import (
    ArtefactError,
    load_trained,
    model_config,
    read_description,
    write_random,
)
from ptuning.backbones import load_backbone
from ptuning.prompt_table import PromptTable
from ptuning.tasks import get_task
from ptuning.training import FeatureCollator, predict

#: a method per task, so one batch holds deep prefixes of two lengths (one not shifting
#: positions) and input prompts of two lengths (one placed by a template)
TASK_METHODS = {
    "rte": {"name": "ptuning_v2", "length": 4},
    "copa": {"name": "prompt_tuning", "length": 5},
    "conll04": {"name": "prefix_tuning", "length": 2, "hidden_size": 8, "position_offset": False},
    "squad": {"name": "ptuning_v1", "length": 3, "template": [1, 2, 0], "encoder": "mlp", "hidden_size": 8},
}
MAX_LENGTH = 48


def _trained_artefact(directory, model_name: str, task_name: str, method_options: dict, seed: int):
    """A cell's artefact as the runner writes it, with random (non-initial) weights."""
    cfg = OmegaConf.to_object(model_cfg(model_name))
    return write_random(directory / task_name, cfg, load_backbone(cfg), get_task(task_name), method_options,
                        MAX_LENGTH, seed, scale=0.5)


def _rows(task_name: str, n: int):
    return get_task(task_name).synthetic_rows("validation", n, seed=3)


def _table(directory, model_name: str):
    cells = {task: _trained_artefact(directory, model_name, task, options, seed)
             for seed, (task, options) in enumerate(TASK_METHODS.items())}
    return model_name, cells, PromptTable.load([f"{task}={path}" for task, path in cells.items()])


@pytest.fixture(scope="module", params=["tiny_bert", "tiny_roberta", "tiny_deberta_v2", "tiny_gpt2"])
def table_setup(request, tmp_path_factory):
    return _table(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def bert_table(tmp_path_factory):
    """The command line is the same for every backbone: tiny BERT only."""
    return _table(tmp_path_factory.mktemp("cli"), "tiny_bert")


def test_artefact_describes_its_cell(table_setup):
    model_name, cells, table = table_setup
    description = read_description(cells["rte"])
    assert description["method"]["name"] == "ptuning_v2" and description["method"]["length"] == 4
    assert description["model"]["name"] == model_name and description["model"]["source"] == "tiny"
    assert description["task"]["label_names"] == ["entailment", "not_entailment"]
    assert description["max_length"] == MAX_LENGTH
    tiny = model_cfg(model_name).tiny_config  # the shape the conf file asks for
    assert description["backbone"] == {
        "model_type": tiny.model_type, "hidden_size": tiny.get("hidden_size", tiny.get("n_embd")),
        "num_layers": tiny.get("num_hidden_layers", tiny.get("n_layer")),
        "vocab_size": table.backbone.tokenizer.vocab_size}  # tiny backbones take the MiniLM tokenizer's vocabulary
    assert "resources" not in description["model"]  # where a model runs is not which model it is


def test_load_trained_rebuilds_the_saved_model(table_setup, tmp_path):
    model_name, cells, table = table_setup
    trained = load_trained(cells["rte"])  # its own backbone, loaded from the description
    assert not trained.model.training and trained.max_length == MAX_LENGTH
    shared = table.entries["rte"].model
    for key, value in trained.model.artefact_state().items():
        torch.testing.assert_close(value, shared.artefact_state()[key], rtol=0, atol=0)
    for mine, theirs in zip(trained.backbone.model.parameters(), table.backbone.model.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


def _alone(table, task_name, rows):
    entry = table.entries[task_name]
    encoded = entry.task.encode(rows, table.backbone.tokenizer, entry.max_length, train=False)
    logits = predict(entry.model, encoded, FeatureCollator(table.backbone.tokenizer.pad_token_id), batch_size=4)
    return encoded, logits


def test_mixed_batch_equals_each_task_alone(table_setup):
    """Four tasks (classification, multiple choice, token, span QA), four methods, one batch."""
    _, _, table = table_setup
    items, expected = [], []
    for task_name in TASK_METHODS:
        encoded, logits = _alone(table, task_name, _rows(task_name, 3))
        for feature, value in zip(encoded.features, logits, strict=True):
            length = len(feature["input_ids"])
            items.append((task_name, feature))
            expected.append(value[:length] if value.ndim == 2 else value)
    order = np.random.default_rng(0).permutation(len(items))  # tasks interleaved
    mixed = table.logits([items[i] for i in order])
    for position, i in enumerate(order):
        assert mixed[position].shape == expected[i].shape
        np.testing.assert_allclose(mixed[position], expected[i], rtol=1e-5, atol=1e-5,
                                   err_msg=f"{items[i][0]} feature differs in the mixed batch")


def test_predict_gives_each_task_its_label_space(table_setup):
    _, _, table = table_setup
    rows = {task: _rows(task, 4) for task in TASK_METHODS}
    examples = [(task, {k: v for k, v in row.items() if k != get_task(task).label_key})
                for i in range(4) for task, task_rows in rows.items() for row in [task_rows[i]]]
    predictions = table.predict(examples, batch_size=5)
    for task_name, task_rows in rows.items():
        entry = table.entries[task_name]
        encoded, logits = _alone(table, task_name, task_rows)
        alone = entry.task.predict(logits, encoded)
        assert [p for (t, _), p in zip(examples, predictions, strict=True) if t == task_name] == alone
    labels = {"rte": {"entailment", "not_entailment"}, "copa": {"choice1", "choice2"}}
    for (task_name, row), prediction in zip(examples, predictions, strict=True):
        if task_name in labels:
            assert prediction in labels[task_name]
        elif task_name == "conll04":
            assert len(prediction) == len(row["tokens"])
            assert set(prediction) <= set(get_task("conll04").label_names)
        else:
            assert isinstance(prediction, str) and (prediction == "" or prediction in row["context"])


def test_bad_examples_and_artefacts_are_named(table_setup, tmp_path):
    model_name, cells, table = table_setup
    with pytest.raises(ArtefactError, match=r"task 'wic' is not in the prompt table; loaded: rte, copa"):
        table.predict([("wic", {})])
    with pytest.raises(Exception, match=r"input.jsonl:7: a rte example needs the fields .*missing \['hypothesis'\]"):
        table.predict([("rte", {"premise": "a", "idx": 0})], where=lambda i: "input.jsonl:7")
    with pytest.raises(ArtefactError, match=r"already in the table"):
        table.add(cells["rte"])
    with pytest.raises(ArtefactError, match=r"no trained artefact there"):
        load_trained(tmp_path)
    other = load_backbone(OmegaConf.to_object(model_cfg("tiny_llama")))
    with pytest.raises(ArtefactError, match=rf"trained on model={model_name}.*the backbone given is model=tiny_llama"):
        load_trained(cells["rte"], backbone=other)


def test_injection_methods_cannot_share_the_backbone(tmp_path):
    cell = _trained_artefact(tmp_path, "tiny_bert", "rte", {"name": "lora", "r": 2}, seed=0)
    table = PromptTable(load_backbone(OmegaConf.to_object(model_cfg("tiny_bert"))))
    with pytest.raises(ArtefactError, match=r"method lora \(injection\) changes the backbone"):
        table.add(cell)


def test_bad_model_options_in_a_description_are_named():
    with pytest.raises(ArtefactError, match=r"model\.source"):
        model_config({"model": {"name": "x", "source": "nowhere"}})


def test_predict_cli_writes_predictions_in_input_order(bert_table, tmp_path, capsys):
    from experiments.predict import main

    _, cells, table = bert_table
    rows = [("rte", r) for r in _rows("rte", 3)] + [("conll04", r) for r in _rows("conll04", 2)]
    source = tmp_path / "examples.jsonl"
    lines = [json.dumps({"task": task, **{k: v for k, v in row.items() if k != get_task(task).label_key}})
             for task, row in rows]
    source.write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n")
    target = tmp_path / "out" / "predictions.jsonl"
    code = main(["--artefact", str(cells["rte"]), "--artefact", str(cells["conll04"]), "--input", str(source),
                 "--output", str(target), "--batch-size", "2", "--no-progress"])
    assert code == 0
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert [w["line"] for w in written] == [1, 2, 4, 5, 6]  # the empty line 3 is skipped
    assert [w["task"] for w in written] == [task for task, _ in rows]
    expected = table.predict([(task, {k: v for k, v in row.items() if k != get_task(task).label_key})
                              for task, row in rows])
    assert [w["prediction"] for w in written] == expected
    assert "5 predictions (rte, conll04)" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    ('{"task": "rte", "premise": "a"\n', r"examples.jsonl:1: not JSON"),
    ('{"premise": "a", "hypothesis": "b", "idx": 0}\n', r"examples.jsonl:1: no \"task\" field"),
    ('{"task": "rte", "premise": "a", "hypothesis": "b", "idx": 0}\n{"task": "boolq", "question": "q"}\n',
     r"task 'boolq' is not in the prompt table; loaded: rte"),
    ('{"task": "rte", "premise": "a", "idx": 0}\n', r"examples.jsonl:1: a rte example needs the fields"),
])
def test_predict_cli_bad_input_exits_2_and_writes_nothing(bert_table, tmp_path, capsys, content, message):
    from experiments.predict import main

    _, cells, _ = bert_table
    source = tmp_path / "examples.jsonl"
    source.write_text(content)
    target = tmp_path / "predictions.jsonl"
    assert main(["--artefact", str(cells["rte"]), "--input", str(source), "--output", str(target),
                 "--no-progress"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples.jsonl"]


@pytest.mark.parametrize("task_name, method", [("rte", ["method=prefix_tuning", "method.hidden_size=16"]),
                                               ("conll04", ["method=ptuning_v1", "method.length=4"])])
def test_a_cells_artefact_reproduces_its_record(tmp_path, task_name, method):
    """Run a cell, load its artefact in one call: the validation metrics are the record's."""
    from conftest import compose_config

    from ptuning.runner import prepare, run_cell

    cfg = compose_config(["model=tiny_bert", "data.source=synthetic", "data.synthetic_train=16",
                          "data.synthetic_eval=8", "logger=none", f"task={task_name}", "train.max_steps=4",
                          "train.eval_steps=2", f"paths.runs_dir={tmp_path}", *method])
    outcome = run_cell(cfg)
    assert outcome.status == "completed"
    trained = load_trained(outcome.directory)
    assert trained.description["epoch"] == outcome.record["selection"]["epoch"]
    encoded = trained.task.encode(prepare(cfg).splits.validation, trained.backbone.tokenizer, trained.max_length,
                                  train=False)
    logits = predict(trained.model, encoded, FeatureCollator(trained.backbone.tokenizer.pad_token_id),
                     batch_size=int(cfg.train.eval_batch_size))
    assert trained.task.score(logits, encoded) == pytest.approx(outcome.record["metrics"])

    # an artefact written before the self-describing format is described by the record beside it
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = outcome.directory / "prompt.safetensors"
    with safe_open(str(path), "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        flat = {k: v for k, v in handle.metadata().items() if k != "ptuning"}
    save_file(tensors, str(path), metadata=flat)
    legacy = read_description(outcome.directory)
    assert legacy == {**trained.description, "backbone": {"model_type": "bert"}}
    again = load_trained(outcome.directory, backbone=trained.backbone)
    np.testing.assert_allclose(predict(again.model, encoded, FeatureCollator(trained.backbone.tokenizer.pad_token_id),
                                       batch_size=int(cfg.train.eval_batch_size)), logits, rtol=0, atol=1e-6)
    (outcome.directory / "result.json").unlink()
    with pytest.raises(ArtefactError, match=r"written before artefacts described themselves .* no result.json"):
        read_description(outcome.directory)
