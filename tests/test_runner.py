"""The cell runner: the result record, skipping and redoing cells, diverging runs, bad input
through the Hydra CLI, multiruns (basic and joblib launchers), W&B offline, real data."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONF, ROOT
from hydra import compose, initialize_config_dir

from ptuning.runner import SetupError, apply_cell_overrides, cell_dir, cell_identity, run_cell
from ptuning.tasks import TASKS

METHODS = ["finetune", "prompt_tuning", "ptuning_v1", "prefix_tuning", "ptuning_v2"]
TINY = ["model=tiny_bert", "data.source=synthetic", "data.synthetic_train=16",
        "data.synthetic_eval=8", "logger=none"]


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _cell(tmp_path: Path, *extra: str):
    return _compose([*TINY, "task=rte", "train.max_steps=2", f"paths.runs_dir={tmp_path}", *extra])


def _records(runs_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs_dir.rglob("result.json"))]


def _cli(runs_dir: Path, *args: str, env: dict | None = None, timeout: int = 300):
    return subprocess.run(
        [sys.executable, "-m", "experiments.run", *args, f"paths.runs_dir={runs_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", **(env or {})},
    )


# ---------------------------------------------------------------- the record

def test_record_fields_and_location(tmp_path):
    cfg = _cell(tmp_path, "method=ptuning_v2", "method.length=4", "seed=3")
    record = run_cell(cfg)
    cell, digest = cell_identity(cfg)
    directory = cell_dir(cfg)
    assert directory == tmp_path / "adhoc" / "rte" / "tiny_bert" / "ptuning_v2" / f"seed3-{digest}"
    assert json.loads((directory / "result.json").read_text()) == json.loads(json.dumps(record))

    assert record["status"] == "completed" and record["error"] is None
    assert record["cell"] == cell == {"method": "ptuning_v2", "model": "tiny_bert", "task": "rte",
                                      "seed": 3}
    assert record["identity_hash"] == digest and record["group"] == "adhoc"
    assert record["primary_metric"] == "accuracy" and "accuracy" in record["metrics"]
    assert all(math.isfinite(v) for v in record["metrics"].values())
    # 8 balanced eval rows: accuracy is a multiple of 12.5
    assert record["metrics"]["accuracy"] % 12.5 == 0

    params = record["params"]
    assert {"total", "trainable", "method", "head", "backbone_trainable"} <= set(params)
    assert params["method"] == 4 * 2 * 2 * 32  # L * 2 * n * d_kv
    assert params["head"] == 32 * 2 + 2
    assert params["backbone_trainable"] == 0
    assert params["trainable"] == params["method"] + params["head"]
    assert params["total"] == params["backbone"] + params["trainable"]

    cost = record["cost"]
    assert {"train_seconds", "eval_seconds", "peak_memory_mb", "device"} <= set(cost)
    assert cost["train_seconds"] > 0 and cost["eval_seconds"] > 0 and cost["peak_memory_mb"] > 50
    assert cost["device"] == "cpu" and cost["steps"] == 2

    selection = record["selection"]
    assert selection["metric"] == "accuracy" and selection["split"] == "validation"
    assert selection["rule"] == "best_eval_epoch" and selection["step"] <= 2
    assert selection["n_evals"] == len(record["history"]) >= 1

    config = record["config"]
    assert config["method"]["length"] == 4 and config["train"]["max_steps"] == 2
    assert config["paths"]["runs_dir"] == str(tmp_path)
    env = record["env"]
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["torch"] == torch.__version__
    import transformers

    assert env["transformers"] == transformers.__version__
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])
    assert record["task"]["version"] == TASKS["rte"].version
    assert record["task"]["name"] == "rte" and record["task"]["family"] == "superglue"
    assert record["data"]["source"] == "synthetic"
    assert record["data"]["train_examples"] == 16 and record["data"]["eval_examples"] == 8
    artefact = directory / record["artefact"]["path"]
    assert artefact.stat().st_size == record["artefact"]["bytes"]


def test_identity_ignores_paths_logger_group_and_redo(tmp_path):
    base = _cell(tmp_path, "method=prompt_tuning")
    _, digest = cell_identity(base)
    for same in (["paths.runs_dir=/elsewhere"], ["redo=true"], ["group=paper"],
                 ["logger=wandb"]):
        assert cell_identity(_cell(tmp_path, "method=prompt_tuning", *same))[1] == digest, same
    for other in (["seed=1"], ["train.lr=0.5"], ["method.length=3"], ["data.synthetic_train=32"]):
        assert cell_identity(_cell(tmp_path, "method=prompt_tuning", *other))[1] != digest, other
    assert cell_dir(_cell(tmp_path, "method=prompt_tuning", "group=paper")).parts[-5] == "paper"


def test_completed_cell_is_skipped_and_redo_reruns(tmp_path, capsys):
    cfg = _cell(tmp_path, "method=prompt_tuning", "method.length=3")
    first = run_cell(cfg)
    path = cell_dir(cfg) / "result.json"
    stamp = path.stat().st_mtime_ns
    again = run_cell(cfg)
    assert again == json.loads(json.dumps(first))
    assert path.stat().st_mtime_ns == stamp
    assert "[skip]" in capsys.readouterr().out
    redo = _cell(tmp_path, "method=prompt_tuning", "method.length=3", "redo=true")
    assert cell_dir(redo) == cell_dir(cfg)
    rerun = run_cell(redo)
    assert rerun["status"] == "completed"
    assert path.stat().st_mtime_ns > stamp
    assert len(_records(tmp_path)) == 1


def test_diverging_run_is_recorded_as_failed(tmp_path):
    cfg = _cell(tmp_path, "method=finetune", "train.lr=1e30")
    record = run_cell(cfg)  # returns normally
    assert record["status"] == "failed"
    assert record["error"].startswith("NonFiniteLossError") and "loss" in record["error"]
    assert re.search(r"loss is (nan|inf|-inf)", record["error"])
    assert record["metrics"] == {}
    on_disk = json.loads((cell_dir(cfg) / "result.json").read_text())
    assert on_disk["status"] == "failed" and on_disk["error"] == record["error"]
    # a failed cell is not skipped next time
    assert run_cell(cfg)["status"] == "failed"


def test_bad_input_in_process_writes_nothing(tmp_path):
    for overrides in (["method=ptuning_v2", "+method.lenght=3"],
                      ["method=ptuning_v1", "method.template=[1,1,1]"],
                      ["method=prompt_tuning", "train.scheduler=cosine"],
                      ["method=prompt_tuning", "+task.bogus=1"]):
        cfg = _cell(tmp_path, *overrides)
        with pytest.raises(SetupError) as err:
            run_cell(cfg)
        assert "\n" not in str(err.value)
        assert not cell_dir(cfg).exists(), overrides
    assert not list(tmp_path.rglob("result.json"))


def test_cell_overrides_apply_per_cell(tmp_path):
    rule = "cell_overrides=[{when:{method:ptuning_v2},set:{method.length:3}}]"
    v2 = apply_cell_overrides(_cell(tmp_path, "method=ptuning_v2", rule))
    assert v2.method.length == 3
    v1 = apply_cell_overrides(_cell(tmp_path, "method=ptuning_v1", rule))
    assert v1.method.length == 8
    bad = _cell(tmp_path, "method=ptuning_v2", "cell_overrides=[{when:{method:ptuning_v2},set:{method.bogus:1}}]")
    with pytest.raises(SetupError, match=r"cell_overrides\[0\]: method.bogus is not an option"):
        run_cell(bad)
    assert not list(tmp_path.rglob("result.json"))


# ---------------------------------------------------------------- bad input through the CLI

@pytest.mark.parametrize(("group", "bad", "valid"), [
    ("method", "lora", METHODS),
    ("model", "gpt5", ["tiny_bert", "tiny_llama", "minilm_l6", "bert_large"]),
    ("task", "mnli", sorted(TASKS)),
])
def test_cli_unknown_choice(tmp_path, group, bad, valid):
    out = _cli(tmp_path, f"{group}={bad}", "model=tiny_bert" if group != "model" else "task=rte")
    assert out.returncode != 0
    assert f"Could not find '{group}/{bad}'" in out.stderr
    listed = out.stderr.split(f"Available options in '{group}':")[1].split("Config search path")[0]
    assert set(valid) <= set(listed.split())
    assert not list(tmp_path.rglob("result.json"))


def test_cli_malformed_jsonl(tmp_path):
    root = tmp_path / "data" / "superglue" / "RTE"
    root.mkdir(parents=True)
    row = {"premise": "A cat sat.", "hypothesis": "A cat exists.", "label": "entailment", "idx": 0}
    good = "\n".join(json.dumps({**row, "idx": i}) for i in range(3)) + "\n"
    (root / "val.jsonl").write_text(good)
    (root / "train.jsonl").write_text(good + '{"premise": "broken\n' + json.dumps(row) + "\n")
    runs = tmp_path / "runs"
    out = _cli(runs, "method=prompt_tuning", "model=tiny_bert", "task=rte", "data.source=local",
               f"data.root={tmp_path / 'data'}")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {root / 'train.jsonl'}:4: ")
    assert "JSON" in lines[0]
    assert not list(runs.rglob("result.json"))


def test_cli_hub_offline_names_offline_options(tmp_path):
    out = _cli(tmp_path, "method=prompt_tuning", "model=tiny_bert", "task=cb", "data.source=hub")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: task=cb: cannot load hub dataset")
    assert "HF_HUB_OFFLINE=1" in lines[0]
    assert "data.source=local data.root=" in lines[0] and "data.source=synthetic" in lines[0]
    assert not list(tmp_path.rglob("result.json"))


def test_cli_prints_where_the_record_is(tmp_path):
    """The printed path is the record's folder, also when a cell_overrides rule applies."""
    rule = "cell_overrides=[{when:{method:ptuning_v2},set:{method.position_offset:false}}]"
    out = _cli(tmp_path, *TINY, "task=rte", "method=ptuning_v2", "train.max_steps=1",
               "train.threads=1", rule)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = re.search(r"^\[completed\] rte tiny_bert ptuning_v2 seed=0 accuracy=[\d.]+ -> (\S+)$",
                        out.stdout, re.M)
    assert printed, out.stdout[-2000:]
    [record] = _records(tmp_path)
    assert record["config"]["method"]["position_offset"] is False
    assert (Path(printed.group(1)) / "result.json").exists()


# ---------------------------------------------------------------- multiruns

def _multirun(methods: list[str]) -> list[str]:
    return ["-m", f"method={','.join(methods)}", *TINY, "task=rte", "train.max_steps=2",
            "train.threads=1"]


def _check_multirun(runs_dir: Path, methods: list[str]) -> dict[str, str]:
    records = _records(runs_dir)
    assert sorted(r["cell"]["method"] for r in records) == sorted(methods)
    assert all(r["status"] == "completed" for r in records)
    assert all(r["cost"]["steps"] == 2 for r in records)
    return {r["cell"]["method"]: r["identity_hash"] for r in records}


def test_multirun_basic_launcher(tmp_path):
    out = _cli(tmp_path, *_multirun(METHODS))
    assert out.returncode == 0, out.stderr[-2000:]
    hashes = _check_multirun(tmp_path, METHODS)
    assert len(set(hashes.values())) == 5
    assert out.stdout.count("[completed]") == 5


def test_multirun_joblib_launcher(tmp_path):
    """Two cells in two joblib worker processes (n_jobs: 2)."""
    methods = ["prompt_tuning", "ptuning_v2"]
    out = _cli(tmp_path, *_multirun(methods), "+launcher=joblib")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Joblib.Parallel(n_jobs=2" in out.stdout + out.stderr
    hashes = _check_multirun(tmp_path, methods)
    # the launcher is not part of a cell's identity: same folders as a basic multirun
    for method, digest in hashes.items():
        cfg = _compose([f"method={method}", *TINY, "task=rte", "train.max_steps=2",
                        "train.threads=1", f"paths.runs_dir={tmp_path}"])
        assert cell_identity(cfg)[1] == digest


# ---------------------------------------------------------------- W&B offline

def test_wandb_offline_run(tmp_path):
    out = _cli(tmp_path, *TINY[:-1], "logger=wandb", "task=rte", "method=prompt_tuning",
               "train.max_steps=1", "train.threads=1", env={"WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-2000:]
    [record] = _records(tmp_path)
    assert record["status"] == "completed"
    assert record["config"]["logger"]["name"] == "wandb"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))


# ---------------------------------------------------------------- real data

def test_real_data_cell(tmp_path, data_dir):
    cfg = _compose(["method=ptuning_v2", "model=tiny_bert", "task=cb", "data.source=local",
                    f"data.root={data_dir}", "train.max_steps=2", "data.max_train_samples=32",
                    "data.max_eval_samples=16", "logger=none", f"paths.runs_dir={tmp_path}"])
    record = run_cell(cfg)
    assert record["status"] == "completed", record["error"]
    assert record["data"]["source"] == "local" and record["config"]["data"]["root"] == str(data_dir)
    assert record["data"]["train_examples"] == 32 and record["data"]["eval_examples"] == 16
    assert record["data"]["split_note"] is None
    assert set(record["metrics"]) >= {"accuracy", "f1_macro"}
    assert record["metrics"]["accuracy"] % (100 / 16) == pytest.approx(0, abs=1e-9)
