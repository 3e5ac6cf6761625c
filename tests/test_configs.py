"""Every Hydra config composes, and each names something the code knows: method configs
build their typed config, task configs name registered tasks, tiny models load."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import CONF, TINY_MODELS
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ptuning.backbones import FAMILIES, load_backbone
from ptuning.experiment import configure_task
from ptuning.methods import METHODS
from ptuning.runner import apply_cell_overrides
from ptuning.tasks import TASKS


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides: list[str], hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=hydra)


def test_groups_are_not_empty():
    assert _names("method") == sorted(METHODS)
    assert _names("task") == sorted(TASKS)
    assert set(TINY_MODELS) <= set(_names("model"))
    assert {"none", "wandb"} <= set(_names("logger"))
    assert {"basic", "joblib", "slurm"} <= set(_names("launcher"))
    assert "default" in _names("preset")


def test_default_config():
    cfg = _compose([])
    assert (cfg.method.name, cfg.model.name, cfg.task.name, cfg.logger.name) == (
        "ptuning_v2", "minilm_l6", "rte", "none")
    assert cfg.data.source == "hub" and cfg.redo is False and cfg.seed == 0


@pytest.mark.parametrize("name", _names("method"))
def test_method_config(name):
    cfg = _compose([f"method={name}"])
    assert cfg.method.name == name
    values = OmegaConf.to_container(cfg.method, resolve=True)
    cls = METHODS[name].config_class
    typed = cls.from_mapping(values)
    assert isinstance(typed, cls)
    assert dataclasses.asdict(typed) == {**dataclasses.asdict(cls()), **values}
    assert set(values) == {f.name for f in dataclasses.fields(cls)}  # yaml lists every option
    assert isinstance(typed.lr, float) and 0 < typed.lr < 1


@pytest.mark.parametrize("name", _names("model"))
def test_model_config(name):
    cfg = _compose([f"model={name}"])
    model = cfg.model
    assert model.name == name
    assert model.source in ("hub", "package", "tiny")
    assert model.get("attention", "sdpa") in ("sdpa", "eager")
    if model.source == "hub":
        assert model.hf_name and "/" in model.hf_name or "-" in model.hf_name
    if model.source == "tiny":
        family = model.tiny_config.model_type
        assert family in FAMILIES


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_model_loads(name):
    cfg = _compose([f"model={name}"])
    backbone = load_backbone(cfg.model)
    tiny = cfg.model.tiny_config
    assert backbone.family == tiny.model_type
    assert backbone.hidden_size == tiny.get("hidden_size", tiny.get("n_embd"))
    assert backbone.num_layers == tiny.get("num_hidden_layers", tiny.get("n_layer"))
    assert backbone.tokenizer.pad_token_id is not None
    ids = torch.tensor([[101, 2023, 2003, 102]])
    with torch.no_grad():
        hidden = backbone.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert hidden.shape == (1, 4, backbone.hidden_size) and torch.isfinite(hidden).all()


@pytest.mark.parametrize("name", _names("task"))
def test_task_config(name):
    cfg = _compose([f"task={name}"])
    assert cfg.task.name == name and name in TASKS
    assert int(cfg.task.max_length) >= 64
    task = configure_task(cfg)  # extra options (WiC template) are task attributes
    for key, value in cfg.task.items():
        if key not in ("name", "max_length"):
            assert getattr(task, key) == value


def test_unknown_task_option_is_rejected():
    cfg = _compose(["task=rte", "+task.template=2"])
    with pytest.raises(ValueError, match="task=rte: unknown option task.template"):
        configure_task(cfg)
    assert configure_task(_compose(["task=wic", "task.template=2"])).template == 2


@pytest.mark.parametrize("name", _names("logger"))
def test_logger_config(name):
    cfg = _compose([f"logger={name}"])
    assert cfg.logger.name == name
    if name == "wandb":
        assert cfg.logger.mode in ("auto", "online", "offline", "disabled")


@pytest.mark.parametrize("name", _names("launcher"))
def test_launcher_config(name):
    cfg = _compose([f"+launcher={name}"], hydra=True)
    target = cfg.hydra.launcher._target_
    expected = {"basic": "BasicLauncher", "joblib": "JoblibLauncher", "slurm": "SlurmLauncher"}
    assert target.endswith(expected.get(name, "Launcher"))
    if name == "joblib":
        assert cfg.hydra.launcher.n_jobs == 2


@pytest.mark.parametrize("name", _names("preset"))
def test_preset_config(name):
    overrides = [f"+preset={name}"]
    if name == "mini":
        overrides.append("data.root=/data")  # the preset requires it (???)
    cfg = _compose(overrides, hydra=True)
    assert cfg.group == name
    params = cfg.hydra.sweeper.params
    for group in ("method", "model", "task"):
        for value in str(params[group]).split(","):
            assert value.strip() in _names(group), (group, value)
    assert sorted(str(params.method).split(",")) == sorted(METHODS)
    # every per-cell rule applies to a cell it matches and sets what it says
    for index, rule in enumerate(cfg.get("cell_overrides") or []):
        assert set(rule.when) <= {"method", "model", "task", "seed"}
        cell = [f"{k}={v}" for k, v in rule.when.items()]
        matched = apply_cell_overrides(_compose([*overrides, *cell]))
        for key, value in rule.set.items():
            assert OmegaConf.select(matched, key) == value, (index, key)
