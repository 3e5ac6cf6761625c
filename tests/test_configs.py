"""Every Hydra config composes and is checked: every option of every group, every cell of
every preset (per-cell files included), and the paper presets' P-Tuning v2 cells carry the
official scripts' hyperparameters."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CONF, ROOT, TINY_MODELS
from conftest import compose_config as _compose
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ptuning.backbones import FAMILIES, load_backbone
from ptuning.config import CellConfig, check_config, non_identity_options
from ptuning.errors import ConfigError
from ptuning.methods import METHODS
from ptuning.tasks import TASKS, get_task

PRESETS = sorted(p.stem for p in (CONF / "preset").glob("*.yaml"))
REFERENCE = Path(os.environ.get("PTUNING_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))



def _preset_overrides(preset: str) -> list[str]:
    return [f"preset={preset}"] + (["data.root=/data"] if preset in ("mini", "ptv2_ner", "ptv2_srl") else [])


def _sweep(preset: str) -> dict[str, list[str]]:
    """The preset's grid axes, as Hydra's sweeper expands them (experiments.launch.sweep_jobs)."""
    from hydra.core.global_hydra import GlobalHydra

    from experiments.launch import sweep_jobs

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        jobs = [dict(o.split("=", 1) for o in job) for job in sweep_jobs(preset, _preset_overrides(preset)[1:])]
    return {axis: sorted({job[axis] for job in jobs}) for axis in ("method", "model", "task")}


def _cells(preset: str) -> list[tuple[str, str, str]]:
    axes = _sweep(preset)
    return [(m, x, t) for m in axes["method"] for x in axes["model"] for t in axes["task"]]


# ---------------------------------------------------------------- groups


def test_method_and_task_configs_are_the_registries():
    """One conf file per registered method and task (the registries are discovered)."""
    assert _names("method") == sorted(METHODS)
    assert _names("task") == sorted(TASKS)
    assert set(TINY_MODELS) <= set(_names("model"))
    assert {"none", "wandb"} <= set(_names("logger"))
    assert {"basic", "joblib", "slurm"} <= set(_names("launcher"))


@pytest.mark.parametrize("name", _names("method"))
def test_method_config_has_one_source_of_defaults(name):
    """The YAML only selects the method's schema: every default comes from its dataclass."""
    assert set(yaml.safe_load((CONF / "method" / f"{name}.yaml").read_text())) == {"defaults"}
    cfg = _compose([f"method={name}"])
    assert OmegaConf.get_type(cfg.method) is METHODS[name].config_class
    settings = check_config(cfg)
    assert settings.method == METHODS[name].config_class()
    assert 0 < settings.method.lr < 1


@pytest.mark.parametrize("name", _names("model"))
def test_model_config(name):
    cfg = _compose([f"model={name}"])
    assert cfg.model.name == name and cfg.model.display
    check_config(cfg)
    if cfg.model.source == "tiny":
        assert cfg.model.tiny_config.model_type in FAMILIES


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_model_loads(name):
    import torch

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
    assert cfg.task.name == name
    check_config(cfg)


@pytest.mark.parametrize("name", _names("logger"))
def test_logger_config(name):
    cfg = _compose([f"logger={name}"])
    settings = check_config(cfg)
    assert settings.logger.name.value == name  # the file selects the logger it is named after


@pytest.mark.parametrize("name", _names("launcher"))
def test_launcher_config(name):
    cfg = _compose([f"+launcher={name}"], hydra=True)
    target = cfg.hydra.launcher._target_
    expected = {"basic": "BasicLauncher", "joblib": "JoblibLauncher", "slurm": "SlurmLauncher",
                "submitit_local": "LocalLauncher"}
    assert target.endswith(expected[name])


def test_readme_lists_every_option_left_out_of_the_identity():
    """The identity rule users read is the one the code applies (a new NOT_IDENTITY option
    must be documented)."""
    section = (ROOT / "README.md").read_text().split("## Cell identity")[1].split("\n## ")[0]
    missing = [name for name in non_identity_options() if f"`{name}`" not in section]
    assert not missing, f"README 'Cell identity' does not list {missing}"
    assert {"train.threads", "data.root", "model.gradient_checkpointing"} <= set(non_identity_options())


# ---------------------------------------------------------------- presets and per-cell files


def _covering_cells(preset: str) -> list[tuple[str, str, str]]:
    """Cells that compose every config the preset's grid can use: each method, model and task
    (and so each per-method and per-task file) at least once, and every cell with a per-cell file."""
    axes = _sweep(preset)
    width = max(len(values) for values in axes.values())
    cells = {(axes["method"][i % len(axes["method"])], axes["model"][i % len(axes["model"])],
              axes["task"][i % len(axes["task"])]) for i in range(width)}
    cells |= {cell for cell in _cells(preset)
              if (CONF / "hparams" / "cell" / preset / cell[0] / cell[1] / f"{cell[2]}.yaml").exists()}
    return sorted(cells)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_config_of_every_preset_composes_and_checks(preset):
    """A typo in a preset or a per-method, per-task or per-cell file fails here, not on a
    cluster node."""
    cells = _covering_cells(preset)
    assert cells
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for method, model, task in cells:
            cfg = compose(config_name="config", overrides=[
                *_preset_overrides(preset), f"method={method}", f"model={model}", f"task={task}"])
            settings = check_config(cfg)
            # a preset never changes what a cell was launched with, nor picks its seed
            assert (cfg.method.name, cfg.model.name, cfg.task.name) == (method, model, task)
            assert (cfg.seed, cfg.seed_index) == (CellConfig.seed, CellConfig.seed_index)
            assert settings.seed == cfg.base_seed and settings.group == preset


def test_every_per_cell_file_applies_to_a_preset_cell():
    """An optional per-cell file whose path names no preset cell would silently never apply."""
    grids = {preset: _sweep(preset) for preset in PRESETS}
    files = sorted((CONF / "hparams").rglob("*.yaml"))
    assert files
    for path in files:
        level, preset, *rest = path.relative_to(CONF / "hparams").with_suffix("").parts
        assert preset in grids, path
        axes = grids[preset]
        if level == "cell":
            method, model, task = rest
            assert method in axes["method"] and model in axes["model"] and task in axes["task"], path
        else:
            assert level in ("method", "task") and rest[0] in axes[level], path
        content = yaml.safe_load(path.read_text()) or {}
        assert not {"seed", "seed_index", "group"} & set(content), f"{path} sets a cell's seed or group"


def _official_rows() -> list[dict[str, str]]:
    path = REFERENCE / "ptv2_official_hparams.csv"
    if not path.exists():
        pytest.skip(f"{path} absent (set PTUNING_REFERENCE_DIR)")
    with path.open(newline="") as handle:
        return [r for r in csv.DictReader(handle)
                if r["method"].startswith("P-Tuning v2") and "SEARCH" not in r["method"]]


HF_MODEL = {"bert-large-cased": "bert_large", "bert-large-uncased": "bert_large_uncased",
            "roberta-large": "roberta_large"}
TASK = {"conll2004": "conll04"}


def test_paper_presets_carry_the_official_hyperparameters():
    """Each official P-Tuning v2 script of a task the suite has is a preset cell whose composed
    config has the script's prefix length, lr, epochs, batch size, dropout and projection."""
    presets = {"superglue": "ptv2_superglue", "ner": "ptv2_ner", "qa": "ptv2_qa", "srl": "ptv2_srl"}
    checked, scripts = 0, {}
    for row in _official_rows():
        family, task = row["task"].split("/")
        task = TASK.get(task, task)
        if family not in presets or task not in TASKS:
            continue
        preset, model = presets[family], HF_MODEL[row["model"]]
        cfg = _compose([*_preset_overrides(preset), "method=ptuning_v2", f"model={model}", f"task={task}"])
        settings = check_config(cfg)
        where = f"{preset}/{model}/{task} ({row['other'].split(' |')[0]})"
        script = re.match(r"script=(\S+)", row["other"]).group(1)
        scripts.setdefault((preset, model, task), set()).add(script)
        if not settings.search.settings_from.endswith(script):  # two scripts for one cell: the file names its choice
            continue
        assert settings.method.length == int(row["pre_seq_len"]), where
        assert settings.lr == pytest.approx(float(row["lr"])), where
        assert settings.train.epochs == int(row["epochs"]), where
        assert settings.train.batch_size == int(row["batch_size"]), where
        # --hidden_dropout_prob goes into the backbone config: backbone, prefix and head alike
        assert settings.model.dropout == pytest.approx(float(row["hidden_dropout"])), where
        assert settings.method.dropout is None and settings.train.head_dropout is None, where
        assert (settings.method.hidden_size is not None) == (row["prefix_projection"] == "yes"), where
        # no seed given: the script's own seed runs
        assert settings.seed == int(row["seed"]) and cfg.seed is None, where
        other = row["other"]
        if row["prefix_projection"] == "yes":  # --prefix_hidden_size 512 (the official default)
            assert settings.method.hidden_size == 512 and "prefix_hidden_size=512" in other, where
        # the input length that runs: SuperGLUE --max_seq_length; QA's 384 is hard-coded in the
        # official tasks/qa/dataset.py; NER and SRL truncate at the tokenizer's 512 whatever the script says
        the_task = get_task(task).configure(settings.task.max_length, settings.task.template)
        length = settings.data.max_length or the_task.max_length
        assert length == (512 if family in ("ner", "srl") else int(row["max_len"])), where
        # the template that runs: --template_id when the script passes one, else the official 0
        if the_task.templates:
            wanted = re.search(r"template_id=(\d+)", other)
            assert the_task.template == (int(wanted.group(1)) if wanted else 0), where
        # scheduler, warmup, weight decay and the selection protocol
        if "ExponentialLR(gamma=0.95)" in other:
            assert settings.train.scheduler.value == "exponential", where
        else:
            assert "HF Trainer default linear decay; no warmup; weight_decay 0" in other, where
            assert settings.train.scheduler.value == "linear", where
        assert (settings.train.warmup_steps, settings.train.warmup_ratio, settings.train.weight_decay) == (0, 0, 0)
        assert "best dev epoch reported" in other and settings.train.selection.value == "best", where
        assert settings.method.position_offset, where  # past_key_values shifted positions
        checked += 1
    assert checked == len(scripts) >= 19  # every cell with a script matches one of its scripts
    assert scripts[("ptv2_srl", "roberta_large", "conll2012")] == {"run_script/run_conll12_roberta.sh",
                                                                   "run_script/run_conll12_bert.sh"}


def test_cfg_job_shows_the_official_cell():
    """``--cfg job`` prints the config that runs: the per-cell file is in it."""
    out = subprocess.run(
        [sys.executable, "-m", "experiments.run", "preset=ptv2_superglue", "method=ptuning_v2",
         "model=bert_large", "task=wic", "--cfg", "job"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    shown = yaml.safe_load(out.stdout)
    assert shown["method"] == {"name": "ptuning_v2", "lr": 0.01, "length": 20, "hidden_size": 512,
                               "dropout": None, "position_offset": True, "init": "backbone"}
    assert shown["model"]["dropout"] == 0.1  # --hidden_dropout_prob: backbone, prefix and head
    assert (shown["train"]["lr"], shown["train"]["epochs"], shown["train"]["batch_size"]) == (1e-4, 80, 16)
    assert shown["task"]["template"] == 1 and shown["logger"]["name"] == "wandb"
    assert (shown["seed"], shown["base_seed"], shown["seed_index"]) == (None, 44, 0)  # run_wic_bert.sh --seed 44


@pytest.mark.parametrize("overrides, message", [
    (["seed_index=-1"], "seed_index=-1: allowed: an integer >= 0"),
    (["base_seed=-3"], "base_seed=-3: allowed: an integer >= 0"),
    (["seed=-2"], "seed=-2: allowed: an integer >= 0 or null"),
])
def test_bad_seeds_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(_compose(["method=prompt_tuning", "model=tiny_bert", "task=rte", *overrides]))


def test_the_seed_that_runs():
    """seed wins; otherwise base_seed + seed_index (a paper cell's base is its script's seed)."""
    def seed(*overrides: str) -> int:
        return check_config(_compose(["preset=ptv2_superglue", "method=ptuning_v2", "model=roberta_large",
                                      "task=wsc", *overrides])).seed
    assert seed() == 44  # run_wsc_roberta.sh --seed 44
    assert seed("seed_index=2") == 46
    assert seed("seed=3", "seed_index=2") == 3
    assert check_config(_compose(["preset=ptv2_superglue", "method=finetune", "model=roberta_large",
                                  "task=wsc"])).seed == 11  # the preset's base
