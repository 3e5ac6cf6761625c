"""Launching a preset and its dry run (experiments/launch.py) and the cost model (ptuning/cost.py)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from conftest import ROOT, compose_config

from experiments.launch import group_commands, main, plan_grid
from ptuning.backbones import minilm_tokenizer
from ptuning.config import check_config
from ptuning.cost import A100, epochs_run, estimate, evaluations_run, tokens_per_row
from ptuning.tasks import TASKS, get_task
from ptuning.training import FeatureCollator

TINY_GRID = ["model=tiny_bert", "task=rte", "method=finetune,ptuning_v2", "train.max_steps=3", "train.batch_size=8",
             "data.synthetic_train=16", "data.synthetic_eval=16", "train.eval_batch_size=16"]


@pytest.mark.parametrize("task_name", ["rte", "copa", "conll04", "squad"])
def test_tokens_per_row_counts_what_the_collator_pads(task_name):
    """The cost model's token count equals the input_ids the training collator builds for the
    same batches (every choice of a multiple-choice row, every window of a QA row)."""
    task = get_task(task_name)
    rows = task.synthetic_rows("train", 40)
    encoded = task.encode(rows, minilm_tokenizer(), task.max_length, train=True)
    collate = FeatureCollator(0)
    order = list(range(len(encoded.features)))
    random.Random(3).shuffle(order)
    collated = sum(collate([encoded.features[i] for i in order[start:start + 8]])["input_ids"].numel()
                   for start in range(0, len(order), 8))
    assert tokens_per_row(encoded.features, len(rows), batch_size=8, seed=3) == pytest.approx(collated / len(rows))


LOCAL_TRAIN = {"cb": "superglue/CB/train.jsonl", "copa": "superglue/COPA/train.jsonl",
               "wsc": "superglue/WSC/train.jsonl", "rte": "superglue/RTE/train.jsonl",
               "conll04": "conll04/train.txt"}


@pytest.mark.parametrize("task_name", sorted(LOCAL_TRAIN))
def test_task_size_matches_the_real_train_file(task_name, data_dir):
    """A task's stated size (rows and padded tokens per row) is what its train file gives."""
    task = get_task(task_name)
    rows = task.read_local(str(data_dir / LOCAL_TRAIN[task_name]))
    assert task.size.train_rows == len(rows)
    encoded = task.encode(rows, minilm_tokenizer(), task.max_length, train=True)
    assert task.size.tokens_per_row == pytest.approx(tokens_per_row(encoded.features, len(rows)), abs=0.05)


def test_every_task_states_its_size_and_source():
    unsized = sorted(name for name, cls in TASKS.items() if cls.size is None)
    assert unsized == ["conll2005", "conll2012"]  # SRL: licensed files, no source for their counts
    for name, cls in TASKS.items():
        size = cls.size
        if size is not None:
            assert size.train_rows > 0 and size.eval_rows > 0 and size.tokens_per_row > 0, name
            assert size.source, name


def _settings(*overrides):
    return check_config(compose_config(["model=bert_large", "task=rte", *overrides]))


def test_cost_scales_with_epochs_params_and_backward_kind():
    """Training FLOPs: 6N per token when the backbone trains, 4N when it is frozen; doubling the
    epochs doubles the training tokens; max_steps converts to the same epochs."""
    task = get_task("rte")
    three, six = _settings("train.epochs=3"), _settings("train.epochs=6")
    full = estimate(three, task, 1e8, trains_backbone=True, gpus=1)
    frozen = estimate(three, task, 1e8, trains_backbone=False, gpus=1)
    assert full.train_tokens == pytest.approx(task.size.train_rows * task.size.tokens_per_row * 3)
    assert full.flops - frozen.flops == pytest.approx(2 * 1e8 * full.train_tokens)
    assert estimate(six, task, 1e8, True, 1).train_tokens == pytest.approx(2 * full.train_tokens)
    steps = 3 * task.size.train_rows // 30  # three epochs at batch 30 (2490 rows), in steps
    by_steps = estimate(_settings(f"train.max_steps={steps}", "train.batch_size=30"), task, 1e8, True, 1)
    assert by_steps.train_tokens == pytest.approx(full.train_tokens)
    bf16 = estimate(_settings("train.precision=bf16"), task, 1e8, True, 1)
    assert full.gpu_hours / bf16.gpu_hours == pytest.approx(A100.peak_flops["bf16"] / A100.peak_flops["fp32"])
    assert estimate(three, task, 1e8, True, gpus=4).wall_hours == pytest.approx(full.gpu_hours / 4)


def test_plan_expands_the_preset_sweep_with_overrides():
    cells = plan_grid("ptv2_superglue", ["task=rte,cb", "model=bert_large,llama2_13b"])
    pairs = {(c.cell.task, c.cell.model, c.cell.method) for c in cells}
    from ptuning.methods import METHODS

    assert pairs == {(t, m, meth) for t in ("rte", "cb") for m in ("bert_large", "llama2_13b") for meth in METHODS
                     if meth != "mpt2"}  # MPT-2 is a Table 3 method (ptv2_ner, ptv2_qa)
    assert all(c.status == "pending" and c.cost.gpu_hours > 0 for c in cells)
    seeds = {c.cell.seed for c in cells if c.cell.method == "ptuning_v2" and c.cell.model == "bert_large"}
    assert seeds == {11}  # the official scripts' seed, as the preset and per-cell files set it
    small = next(c for c in cells if c.cell.model == "bert_large" and c.cell.method == "finetune")
    large = next(c for c in cells if c.cell.model == "llama2_13b" and c.cell.method == "finetune"
                 and c.cell.task == small.cell.task)
    assert large.cost.gpu_hours > 10 * small.cost.gpu_hours


def test_slurm_commands_ask_each_group_for_its_model_resources():
    """Unsearched (search=none), the methods of a model that share a resource shape run as one
    array (tests/test_search.py covers searched grids)."""
    overrides = ["task=rte", "model=bert_large,llama2_13b", "search=none"]
    cells = plan_grid("ptv2_superglue", overrides)
    commands = group_commands("ptv2_superglue", overrides, "slurm", cells, "T")
    launched = set()
    for command in commands:
        options = dict(a.split("=", 1) for a in command if "=" in a)
        model, methods = options["model"], options["method"].split(",")
        assert options["task"] == "rte" and options["+launcher"] == "slurm"
        group = [c for c in cells if c.cell.model == model and c.cell.method in methods]
        gpus = {c.resources.gpus for c in group}
        assert len(gpus) == 1
        assert options["hydra.launcher.gpus_per_node"] == options["hydra.launcher.tasks_per_node"] == str(gpus.pop())
        assert int(options["hydra.launcher.mem_gb"]) == group[0].resources.mem_gb_per_gpu * group[0].resources.gpus
        assert options["hydra.sweep.dir"].endswith(f"-{model}-{group[0].resources.gpus}gpu")
        launched |= {(model, m) for m in methods}
    assert launched == {(c.cell.model, c.cell.method) for c in cells}
    llama = {c.cell.method: c.resources.gpus for c in cells if c.cell.model == "llama2_13b"}
    assert llama["finetune"] > llama["ptuning_v2"]  # a 13B fine-tuning cell asks for a node's GPUs
    assert len(commands) == 3  # bert_large (one shape), llama2_13b fine-tuning, llama2_13b frozen methods


def test_dry_run_reports_pending_then_completed(tmp_path, capsys):
    """Before: every cell pending and nothing written; after the cells ran: the same cells, completed."""
    from ptuning.runner import run_cell

    overrides = [*TINY_GRID, f"paths.runs_dir={tmp_path}"]
    assert main(["default", "--dry-run", *overrides]) == 0
    before = capsys.readouterr().out
    assert "2 cells (2 pending)" in before and "finetune" in before and "ptuning_v2" in before
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
    cells = plan_grid("default", overrides)
    for cell in cells:
        outcome = run_cell(compose_config(cell.overrides))
        assert outcome.status == "completed"
        rows = outcome.record["data"]["train_examples"]  # the cost model counts the evaluations that ran
        assert evaluations_run(cell.settings, rows, epochs_run(cell.settings, rows)) == \
            outcome.record["selection"]["n_evals"]
    assert main(["default", "--dry-run", *overrides]) == 0
    assert "2 cells (2 completed)" in capsys.readouterr().out


@pytest.mark.slow
def test_launch_through_submitit_writes_every_record(tmp_path, capsys):
    """The grid through the submitit_local launcher (one multirun per resource shape)."""
    overrides = [*TINY_GRID, f"paths.runs_dir={tmp_path}"]
    done = subprocess.run([sys.executable, "-m", "experiments.launch", "default", "--launcher", "submitit_local",
                           *overrides], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(list(tmp_path.glob("default/**/result.json"))) == 2
    assert main(["default", "--dry-run", *overrides]) == 0
    assert "2 cells (2 completed)" in capsys.readouterr().out


def test_bad_preset_and_unsized_model_are_refused(capsys):
    assert main(["no_such_preset", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "preset='no_such_preset'" in err and "ptv2_superglue" in err
    assert main(["ptv2_superglue", "--dry-run", "task=rte", "method=finetune", "model=bert_large",
                 "model.params=null"]) == 2
    assert "model.params is not set" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["tiny_xlm_roberta_xl", "tiny_pythia"])
def test_scale_ladder_cells_run_on_tiny_stand_ins(model, tmp_path):
    """The scale-ladder protocol (bf16, its methods) runs on a tiny model of each family."""
    from ptuning.runner import run_cell

    for method in ("finetune", "ptuning_v2"):
        cfg = compose_config(["preset=scale_ladder", f"model={model}", "task=cb", f"method={method}", "logger=none",
                              "data.source=synthetic", "data.synthetic_train=16", "data.synthetic_eval=8",
                              "train.max_steps=2", f"paths.runs_dir={tmp_path}"])
        outcome = run_cell(cfg)
        assert outcome.status == "completed", outcome.record.get("error")
        assert outcome.record["config"]["train"]["precision"] == "bf16"
        assert outcome.record["model"]["family"] == {"tiny_xlm_roberta_xl": "xlm-roberta-xl",
                                                     "tiny_pythia": "gpt_neox"}[model]


def test_mpt2_stage_is_charged_once_to_the_cell_that_trains_it():
    """The multi-task stage (SQuAD 1.1 + 2.0 at the stage's epochs, frozen backbone) is added to the
    first MPT-2 cell of the grid that needs it; the other dataset's cell reuses it."""
    cells = plan_grid("ptv2_qa", ["method=mpt2,ptuning_v2", "model=bert_large", "task=squad,squad_v2"])
    mpt2 = {c.cell.task: c for c in cells if c.cell.method == "mpt2"}
    epochs = mpt2["squad"].settings.train.epochs
    alone = {t: estimate(c.settings, c.task, c.cost.params, False, 1) for t, c in mpt2.items()}
    stage_tokens = sum(a.train_tokens for a in alone.values())  # stage epochs = the cell's (stage_epochs: null)
    assert mpt2["squad"].cost.train_tokens == pytest.approx(alone["squad"].train_tokens + stage_tokens)
    assert mpt2["squad_v2"].cost.train_tokens == pytest.approx(alone["squad_v2"].train_tokens)
    assert mpt2["squad"].cost.flops == pytest.approx(alone["squad"].flops + 4 * stage_tokens * mpt2["squad"].cost.params)
    assert stage_tokens == pytest.approx(epochs * sum(c.task.size.train_rows * c.task.size.tokens_per_row
                                                      for c in mpt2.values()))
