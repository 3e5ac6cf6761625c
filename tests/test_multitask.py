"""MPT-2: the multi-task stage (single-task batches, a head per dataset, one shared prompt)
runs once per identity and every dataset's cell starts from it."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_config
from safetensors import safe_open

from ptuning.errors import ConfigError
from ptuning.multitask import STAGE_FILE, _batches, stage_task_names
from ptuning.runner import prepare, run_cell
from ptuning.tasks import get_task

STAGE = "method.stage_tasks=[conll2003,conll04]"


def _cfg(runs_dir, task: str, *extra: str):
    return compose_config(["model=tiny_bert", "data.source=synthetic", "data.synthetic_train=12",
                           "data.synthetic_eval=6", "logger=none", "method=mpt2", "method.length=4",
                           f"task={task}", "train.epochs=1", "train.batch_size=4", f"paths.runs_dir={runs_dir}",
                           STAGE, "method.stage_lr=0.01", *extra])


def _tensors(path, prefix: str) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as handle:
        return {k[len(prefix):]: handle.get_tensor(k) for k in handle.keys() if k.startswith(prefix)}


def test_batches_hold_one_task_each_and_cover_every_feature():
    features = {"a": [{"i": i} for i in range(10)], "b": [{"i": i} for i in range(5)]}
    batches = _batches(features, 4, seed=0)
    assert [b["task_index"] for b in batches].count(0) == 3 and [b["task_index"] for b in batches].count(1) == 2
    for name, index in (("a", 0), ("b", 1)):
        seen = sorted(f["i"] for b in batches if b["task_index"] == index for f in b["features"])
        assert seen == list(range(len(features[name])))
    assert _batches(features, 4, seed=0) == batches and _batches(features, 4, seed=1) != batches


def test_the_stage_runs_once_and_each_dataset_starts_from_it(tmp_path):
    first = run_cell(_cfg(tmp_path, "conll04", "train.lr=1e-30"))  # lr ~0: the cell keeps what it started from
    assert first.status == "completed", first.record["error"]
    stage = first.record["stage"]
    assert stage["reused"] is False and stage["tasks"] == ["conll2003", "conll04"]
    directory = tmp_path / "adhoc" / "_stages" / "mpt2" / "tiny_bert" / "conll2003+conll04" / f"seed0-{stage['variant']}"
    assert stage["directory"] == str(directory)
    info = json.loads((directory / STAGE_FILE).read_text())
    assert info["train_examples"] == {"conll2003": 12, "conll04": 12}
    assert info["batches_per_epoch"] == 6 and info["steps"] == 6  # 3 single-task batches of 4 per dataset

    stage_prompt = _tensors(directory / "prompt.safetensors", "method.")
    cell_prompt = _tensors(first.directory / "prompt.safetensors", "method.")
    for key, value in stage_prompt.items():
        torch.testing.assert_close(cell_prompt[key], value, rtol=0, atol=1e-6)
    stage_head = _tensors(directory / "prompt.safetensors", "head.conll04.")
    cell_head = _tensors(first.directory / "prompt.safetensors", "head.")
    for key, value in stage_head.items():
        torch.testing.assert_close(cell_head[key], value, rtol=0, atol=1e-6)
    other_head = _tensors(directory / "prompt.safetensors", "head.conll2003.")
    assert not torch.equal(other_head["classifier.weight"], stage_head["classifier.weight"])  # a head per dataset

    second = run_cell(_cfg(tmp_path, "conll2003"))
    assert second.status == "completed" and second.record["stage"]["reused"] is True
    assert second.record["stage"]["variant"] == stage["variant"]
    assert json.loads((directory / STAGE_FILE).read_text()) == info  # not trained again
    assert run_cell(_cfg(tmp_path, "conll04", "train.lr=1e-30")).status == "skipped"


def test_fresh_head_when_not_carried(tmp_path):
    outcome = run_cell(_cfg(tmp_path, "conll04", "train.lr=1e-30", "method.carry_head=false"))
    directory = outcome.record["stage"]["directory"]
    stage_head = _tensors(f"{directory}/prompt.safetensors", "head.conll04.")
    cell_head = _tensors(outcome.directory / "prompt.safetensors", "head.")
    assert not torch.allclose(cell_head["classifier.weight"], stage_head["classifier.weight"], atol=1e-3)


def test_stage_and_cell_identity(tmp_path):
    base = prepare(_cfg(tmp_path, "conll04"))
    same_stage = prepare(_cfg(tmp_path, "conll04", "method.carry_head=false"))
    assert same_stage.stage.identity.variant == base.stage.identity.variant
    assert same_stage.identity.variant != base.identity.variant  # the continuation differs
    other = prepare(_cfg(tmp_path, "conll04", "method.stage_epochs=3"))
    assert other.stage.identity.variant != base.stage.identity.variant
    assert other.identity.variant != base.identity.variant  # another stage, another cell
    more_data = prepare(_cfg(tmp_path, "conll04", "data.synthetic_train=16"))
    assert more_data.stage.identity.variant != base.stage.identity.variant
    shorter = prepare(_cfg(tmp_path, "conll04", "task.max_length=64"))  # the cell's own task only
    assert shorter.stage_lengths == {"conll2003": 512 - 4, "conll04": 64}  # tiny BERT embeds 512, minus the prefix


def test_family_default_and_bad_stage_tasks(tmp_path):
    method = compose_config(["method=mpt2"]).method
    assert stage_task_names(method, get_task("conll04")) == ["conll04", "conll2003", "ontonotes"]
    assert stage_task_names(method, get_task("squad")) == ["squad", "squad_v2"]
    with pytest.raises(ConfigError, match=r"method.stage_tasks=\['conll2003', 'ontonotes'\]: must include the cell's task 'conll04'"):
        prepare(_cfg(tmp_path, "conll04", "method.stage_tasks=[conll2003,ontonotes]"))
    with pytest.raises(ConfigError, match=r"unknown tasks \['conll99'\]; valid:"):
        prepare(_cfg(tmp_path, "conll04", "method.stage_tasks=[conll99,conll04]"))
    with pytest.raises(ConfigError, match=r"method.stage_tasks=\['conll04'\]: allowed: null"):
        prepare(_cfg(tmp_path, "conll04", "method.stage_tasks=[conll04]"))
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_killed_stage_resumes_to_the_same_prompt(tmp_path, monkeypatch):
    """The stage checkpoints as a cell does; killed after step 3 of 6 and rerun, it resumes from
    that checkpoint and ends with the uninterrupted stage's prompt and heads, bitwise (CPU)."""
    from conftest import Interrupted, save_then_stop_at

    from ptuning.checkpoints import Checkpointer

    extra = ("train.lr=1e-30", "train.checkpoint_steps=3")
    whole = run_cell(_cfg(tmp_path / "whole", "conll04", *extra))
    whole_stage = whole.record["stage"]
    assert whole_stage["resumed_from_step"] is None

    with monkeypatch.context() as patch:
        patch.setattr(Checkpointer, "save", save_then_stop_at(3))
        with pytest.raises(Interrupted):
            run_cell(_cfg(tmp_path / "killed", "conll04", *extra))
    resumed = run_cell(_cfg(tmp_path / "killed", "conll04", *extra))
    stage = resumed.record["stage"]
    assert stage["resumed_from_step"] == 3 and stage["steps"] == whole_stage["steps"] == 6
    assert stage["variant"] == whole_stage["variant"]
    theirs = _tensors(f"{whole_stage['directory']}/prompt.safetensors", "")
    ours = _tensors(f"{stage['directory']}/prompt.safetensors", "")
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
    assert not list(tmp_path.rglob("checkpoint-*"))  # completed stages and cells keep no checkpoints
