"""The cell runner: the record, the identity rule, skipping and redoing cells, failures
(diverging runs, bugs), bad input caught before the model loads, grids that go on past a
bad cell, seeds a preset cannot override, W&B offline, real data."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from conftest import compose_config as _compose
from hydra.errors import ConfigCompositionException
from safetensors import safe_open

from ptuning.config import TrainConfig, check_config, identity_options
from ptuning.errors import ConfigError, DataUnavailableError
from ptuning.records import RECORD_FILE, load_record
from ptuning.runner import prepare, run_cell
from ptuning.tasks import TASKS, get_task

TINY = ["model=tiny_bert", "data.source=synthetic", "data.synthetic_train=16",
        "data.synthetic_eval=8", "logger=none"]



def _cell(tmp_path: Path, *extra: str):
    return _compose([*TINY, "task=rte", "train.max_steps=2", f"paths.runs_dir={tmp_path}", *extra])


def _records(runs_dir: Path) -> list[dict]:
    return [load_record(p) for p in sorted(runs_dir.rglob(RECORD_FILE))]


def _cli(runs_dir: Path, *args: str, env: dict | None = None, timeout: int = 300):
    return subprocess.run(
        [sys.executable, "-m", "experiments.run", *args, f"paths.runs_dir={runs_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", **(env or {})},
    )


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# ---------------------------------------------------------------- the record


def test_record_fields_and_location(tmp_path):
    cfg = _cell(tmp_path, "method=ptuning_v2", "method.length=4", "seed=3")
    outcome = run_cell(cfg)
    record = outcome.record
    prepared = prepare(cfg)
    variant = prepared.identity.variant
    assert outcome.directory == prepared.directory == (
        tmp_path / "adhoc" / "rte" / "tiny_bert" / "ptuning_v2" / f"seed3-{variant}")
    assert load_record(outcome.directory / RECORD_FILE) == json.loads(json.dumps(record))

    assert record["schema_version"] == 2 and record["status"] == "completed" and record["error"] is None
    assert record["cell"] == {"method": "ptuning_v2", "model": "tiny_bert", "task": "rte", "seed": 3}
    assert record["identity"]["variant"] == variant and record["group"] == "adhoc"
    assert record["identity"]["options"]["method.length"] == 4
    assert record["identity"]["task_version"] == TASKS["rte"].version
    assert record["identity"]["data_fingerprint"] == prepared.splits.fingerprint()
    assert record["task"] == {**get_task("rte").describe(), "reported_split": "validation"}
    assert record["method"] == {"name": "ptuning_v2", "display": "P-Tuning v2", "kind": "prompt",
                                "trains_backbone": False}
    assert record["model"]["display"] == "tiny BERT (random)" and record["model"]["family"] == "bert"
    assert "accuracy" in record["metrics"] and all(math.isfinite(v) for v in record["metrics"].values())
    assert record["metrics"]["accuracy"] % 12.5 == 0  # 8 eval rows

    params = record["params"]
    assert params["method"] == 4 * 2 * 2 * 32  # L * 2 * n * d_kv
    assert params["head"] == 32 * 2 + 2 and params["backbone_trainable"] == 0
    assert params["trainable"] == params["method"] + params["head"]
    assert params["total"] == params["backbone"] + params["trainable"]
    assert params["stored"] == params["trainable"]  # no reparameterisation to fold
    cost = record["cost"]
    assert cost["train_seconds"] > 0 and cost["eval_seconds"] > 0 and cost["peak_memory_mb"] > 50
    assert cost["device"] == "cpu" and cost["steps"] == 2
    assert record["selection"]["rule"] == "best_eval_epoch" and record["selection"]["step"] <= 2
    assert record["selection"]["n_evals"] == len(record["history"]) >= 1
    assert record["config"]["method"]["length"] == 4 and record["config"]["train"]["precision"] == "fp32"
    env = record["env"]
    assert env["python"] == ".".join(map(str, sys.version_info[:3])) and env["torch"] == torch.__version__
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])
    assert record["data"]["source"] == "synthetic"
    assert (record["data"]["train_examples"], record["data"]["eval_examples"]) == (16, 8)
    artefact = outcome.directory / record["artefact"]["path"]
    assert artefact.stat().st_size == record["artefact"]["bytes"]


def test_prefix_tuning_records_trained_and_stored_counts(tmp_path):
    """The MLP trains; the artefact keeps MLP(E) (metadata says so) and the record both counts."""
    outcome = run_cell(_cell(tmp_path, "method=prefix_tuning", "method.length=4", "method.hidden_size=24"))
    params = outcome.record["params"]
    d, n = 32, 2
    assert params["method"] == 4 * d + d * 24 + 24 + 24 * 2 * n * d + 2 * n * d  # E, Linear, Linear
    assert params["stored"] == 4 * 2 * n * d + params["head"]  # the prefix itself + head
    path = outcome.directory / outcome.record["artefact"]["path"]
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata()["stored_form"] == "folded"
        assert sum(handle.get_tensor(k).numel() for k in handle.keys()) == params["stored"]


# ---------------------------------------------------------------- identity


def test_identity_ignores_what_cannot_change_a_result(tmp_path):
    base = prepare(_cell(tmp_path, "method=prompt_tuning")).identity.variant
    for same in (["paths.runs_dir=/elsewhere"], ["redo=true"], ["group=paper"], ["logger=wandb"],
                 ["train.threads=1"], ["train.logging_steps=3"], ["train.eval_batch_size=7"],
                 ["model.gradient_checkpointing=true"], ["train.save_artefact=false"],
                 ["model.attention=eager"], ["method.lr=0.01"], ["train.lr=0.01"]):
        assert prepare(_cell(tmp_path, "method=prompt_tuning", *same)).identity.variant == base, same
    for other in (["train.lr=0.5"], ["method.length=3"], ["data.synthetic_train=32"],
                  ["train.batch_size=4"], ["task.max_length=64"]):
        assert prepare(_cell(tmp_path, "method=prompt_tuning", *other)).identity.variant != base, other
    seeded = prepare(_cell(tmp_path, "method=prompt_tuning", "seed=1"))  # a seed is a folder, not a variant
    assert seeded.identity.variant == base and seeded.directory.name == f"seed1-{base}"


def test_identity_counts_only_values_that_differ_from_their_default():
    """A new option with a default leaves every existing identity unchanged."""
    settings = check_config(_cell(Path("/tmp"), "method=ptuning_v2"))
    options = identity_options(settings, {"max_length": (128, 128)})
    assert options == {"data.source": "synthetic", "data.synthetic_eval": 8, "data.synthetic_train": 16,
                       "model.source": "tiny", "model.tiny_config": options["model.tiny_config"],
                       "train.max_steps": 2}

    @dataclass
    class TrainWithNewOption(TrainConfig):
        label_smoothing: float = 0.0
        extra: list = field(default_factory=list)

    grown = dataclasses.replace(settings, train=TrainWithNewOption(**dataclasses.asdict(settings.train)))
    assert identity_options(grown, {"max_length": (128, 128)}) == options
    grown.train.label_smoothing = 0.1
    assert identity_options(grown, {"max_length": (128, 128)})["train.label_smoothing"] == 0.1


def test_identity_follows_the_data_not_its_folder(tmp_path, data_dir):
    def cell(root: Path):
        return prepare(_compose(["model=tiny_bert", "task=cb", "data.source=local", f"data.root={root}",
                                 "data.max_train_samples=32", f"paths.runs_dir={tmp_path}"]))

    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        shutil.copytree(data_dir / "superglue" / "CB", root / "superglue" / "CB")
    assert cell(first).identity.variant == cell(second).identity.variant
    lines = (second / "superglue/CB/val.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["hypothesis"] += " (edited)"
    (second / "superglue/CB/val.jsonl").write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    edited = cell(second)
    assert edited.identity.variant != cell(first).identity.variant
    assert edited.identity.data_fingerprint != cell(first).identity.data_fingerprint


# ---------------------------------------------------------------- skip, redo, failures


def test_completed_cell_is_skipped_and_redo_reruns(tmp_path, monkeypatch):
    cfg = _cell(tmp_path, "method=prompt_tuning", "method.length=3")
    first = run_cell(cfg)
    path = first.directory / RECORD_FILE
    stamp = path.stat().st_mtime_ns
    with monkeypatch.context() as patch:  # a skipped cell loads no weights
        patch.setattr("ptuning.experiment.load_backbone", lambda *a: pytest.fail("weights loaded"))
        again = run_cell(_cell(tmp_path, "method=prompt_tuning", "method.length=3", "train.threads=1"))
    assert again.status == "skipped" and again.record == json.loads(json.dumps(first.record))
    assert path.stat().st_mtime_ns == stamp
    rerun = run_cell(_cell(tmp_path, "method=prompt_tuning", "method.length=3", "redo=true"))
    assert rerun.status == "completed" and rerun.directory == first.directory
    assert path.stat().st_mtime_ns > stamp
    assert len(_records(tmp_path)) == 1


def test_diverging_run_is_recorded_as_failed(tmp_path):
    cfg = _cell(tmp_path, "method=finetune", "train.lr=1e30")
    outcome = run_cell(cfg)  # returns normally
    record = outcome.record
    assert outcome.status == record["status"] == "failed" and record["metrics"] == {}
    assert record["error"]["type"] == "NonFiniteLossError"
    assert re.search(r"loss is (nan|inf|-inf)", record["error"]["message"])
    assert any("NonFiniteLossError" in line for line in record["error"]["traceback"])
    assert load_record(outcome.directory / RECORD_FILE)["status"] == "failed"
    assert run_cell(cfg).status == "failed"  # a failed cell is not skipped next time


def test_a_bug_in_task_code_is_a_failed_record_with_its_traceback(tmp_path, monkeypatch):
    """A KeyError inside encoding is a bug, not bad input: recorded with type and traceback."""
    task_class = TASKS["rte"]

    def broken(self, row):
        return row["no_such_field"], row["hypothesis"]

    monkeypatch.setattr(task_class, "texts", broken)
    outcome = run_cell(_cell(tmp_path, "method=prompt_tuning"))
    assert outcome.status == "failed" and isinstance(outcome.error, KeyError)
    error = outcome.record["error"]
    assert error["type"] == "KeyError" and "no_such_field" in error["message"]
    assert any("def broken" in line or "in broken" in line for line in error["traceback"])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=-1", "train.lr=-1.0: allowed: a number > 0, or null for the method's lr"),
    ("train.batch_size=0", "train.batch_size=0: allowed: an integer >= 1"),
    ("train.epochs=0", "train.epochs=0: allowed: an integer >= 1 (or set train.max_steps)"),
    ("data.max_train_samples=-5", "data.max_train_samples=-5: allowed: null (all rows) or an integer >= 1"),
    ("train.warmup_steps=-1", "train.warmup_steps=-1: allowed: an integer >= 0"),
    ("train.scheduler=exponential train.warmup_steps=100", "train.warmup_steps=100: allowed: 0 with "
     "train.scheduler=exponential (the official NER/QA schedule has no warmup), or train.scheduler=linear|constant"),
    ("train.warmup_ratio=0.1 train.warmup_steps=100", "train.warmup_steps=100: allowed: 0 when "
     "train.warmup_ratio is set (one warmup, not two)"),
    pytest.param("train.precision=fp16", "train.precision='fp16': needs a CUDA device; allowed without one: "
                 "fp32, bf16", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device exists")),
])
def test_bad_values_fail_before_the_model_loads(tmp_path, override, message):
    """``model=bert_large`` cannot load offline: the option is checked before it would."""
    cfg = _compose(["model=bert_large", "task=rte", "data.source=synthetic", f"paths.runs_dir={tmp_path}",
                    *([] if "epochs" in override else ["train.max_steps=1"]), *override.split()])
    with pytest.raises(ConfigError) as err:
        prepare(cfg)
    assert str(err.value) == message
    assert not any(tmp_path.iterdir())


def test_an_init_the_task_cannot_use_fails_before_the_model_loads(tmp_path):
    cfg = _compose(["model=bert_large", "task=squad", "method=prompt_tuning", "method.init=class_label",
                    "data.source=synthetic", f"paths.runs_dir={tmp_path}"])
    with pytest.raises(ConfigError) as err:
        prepare(cfg)
    assert str(err.value) == ("method.init='class_label': the classes of task squad are not words (spans, tags "
                              "or answer choices); allowed for it: vocab, random")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("method", "message"), [
    ("ptuning_v2", "method.length=600: model=tiny_bert embeds 512 positions and method=ptuning_v2 adds 600 "
                   "before the input; allowed: method.length <= 504 (or method.position_offset=false)"),
    ("prompt_tuning", "method.length=600: model=tiny_bert embeds 512 positions and method=prompt_tuning adds "
                      "600 before the input; allowed: method.length <= 504"),
])
def test_prompt_longer_than_the_positions_fails_before_the_weights_load(tmp_path, monkeypatch, method, message):
    import ptuning.backbones

    def no_weights(*args, **kwargs):
        raise AssertionError("the model's weights were loaded")

    monkeypatch.setattr(ptuning.backbones.AutoModel, "from_config", no_weights)
    cfg = _cell(tmp_path, f"method={method}", "method.length=600")
    with pytest.raises(ConfigError) as err:
        prepare(cfg)
    assert str(err.value) == message
    # without the offset a deep prefix adds no positions: the same length is allowed
    assert prepare(_cell(tmp_path, "method=ptuning_v2", "method.length=600",
                         "method.position_offset=false")).max_length == 128


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=abc", "train.lr: Value 'abc' of type 'str' could not be converted to Float"),
    ("train.precision=fp8", "train.precision: Invalid value 'fp8', expected one of [fp32, bf16, fp16]"),
    ("seed=x", "seed: Value 'x' of type 'str' could not be converted to Integer"),
    ("method.lenght=3", "method.lenght: not an option; options: dropout, hidden_size, init, length, lr, name, "
                        "position_offset"),
])
def test_wrong_types_and_keys_fail_at_compose_time(override, message):
    from experiments.run import one_line

    with pytest.raises(ConfigCompositionException) as err:
        _compose([override])
    assert one_line(err.value) == message


def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path):
    for args, message in ((["train.lr=abc"], "error: train.lr: Value 'abc'"),
                          (["train.batch_size=0"], "error: train.batch_size=0: allowed: an integer >= 1"),
                          (["method=lorax"], "error: Could not find 'method/lorax'; options for method: ")):
        out = _cli(tmp_path, *TINY, "task=rte", *args)
        assert out.returncode == 2, out.stderr
        assert _errors(out.stderr) == [out.stderr.strip()] and out.stderr.startswith(message), out.stderr
    listed = out.stderr.split("options for method: ")[1].strip().split(", ")
    assert "lora" in listed and "ptuning_v2" in listed
    assert not list(tmp_path.rglob(RECORD_FILE))


def test_cli_malformed_jsonl_names_file_and_line(tmp_path):
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
    assert _errors(out.stderr) == [out.stderr.strip()]
    assert out.stderr.startswith(f"error: {root / 'train.jsonl'}:4: invalid JSON")
    assert not list(runs.rglob(RECORD_FILE))


def test_cli_hub_offline_names_offline_options(tmp_path):
    out = _cli(tmp_path, "method=prompt_tuning", "model=tiny_bert", "task=cb", "data.source=hub")
    assert out.returncode == 2
    [line] = _errors(out.stderr)
    assert line.startswith("error: task=cb: cannot load hub dataset") and "HF_HUB_OFFLINE=1" in line
    assert "data.source=local data.root=" in line and "data.source=synthetic" in line
    assert not list(tmp_path.rglob(RECORD_FILE))


# ---------------------------------------------------------------- grids


def test_a_cell_that_cannot_start_does_not_stop_the_grid(tmp_path, data_dir):
    """CB's files are missing: the CB cell is listed, the RTE cell behind it still runs."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "superglue" / "RTE", root / "superglue" / "RTE")
    runs = tmp_path / "runs"
    out = _cli(runs, "-m", "task=cb,rte", "method=prompt_tuning", "model=tiny_bert", "data.source=local",
               f"data.root={root}", "data.max_train_samples=16", "data.max_eval_samples=8",
               "train.max_steps=1", "train.threads=1")
    assert out.returncode == 2, out.stderr[-2000:]
    assert [r["cell"]["task"] for r in _records(runs)] == ["rte"]
    assert "[grid] 2 cells: 1 completed, 1 not started" in out.stdout
    assert f"not started: cb/tiny_bert/prompt_tuning/seed0: task=cb: local file {root}/superglue/CB/val.jsonl" \
        in out.stderr


def _user_preset(root: Path, name: str, method: str, cell_file: str, sweep: str = "") -> Path:
    """A preset of the user's own (``--config-dir``) with a per-cell file for tiny BERT on RTE."""
    (root / "preset").mkdir(parents=True)
    (root / "preset" / f"{name}.yaml").write_text(
        f"# @package _global_\ngroup: {name}\ndata: {{source: synthetic, synthetic_train: 16, synthetic_eval: 8}}\n"
        "train: {max_steps: 1, threads: 1}\n" + sweep)
    cell = root / "hparams" / "cell" / name / method / "tiny_bert"
    cell.mkdir(parents=True)
    (cell / "rte.yaml").write_text(cell_file)
    return root


def test_seeds_of_a_cell_never_share_a_folder(tmp_path):
    """A config file that sets a seed is refused; a cell's base_seed (the official script's seed)
    runs when no seed is given, seed_index=I runs base_seed + I, and a given seed wins."""
    refusing = _user_preset(tmp_path / "refusing", "seedtest", "prompt_tuning", "seed: 44\n")
    refused = _cli(tmp_path / "runs0", f"--config-dir={refusing}", "preset=seedtest", "method=prompt_tuning",
                   "model=tiny_bert", "task=rte")
    assert refused.returncode == 2
    assert _errors(refused.stderr) == [
        "error: seed=44: set by a config file; seed comes only from the command line or the sweep (seed=..., "
        "or hydra.sweeper.params.seed in a preset); a config file sets base_seed"]

    extra = _user_preset(tmp_path / "conf", "seedtest", "prompt_tuning", "method: {length: 3}\nbase_seed: 44\n")
    common = [f"--config-dir={extra}", "preset=seedtest", "method=prompt_tuning", "model=tiny_bert", "task=rte"]
    runs = tmp_path / "runs"
    assert _cli(runs, *common).returncode == 0
    assert [r["cell"]["seed"] for r in _records(runs)] == [44]  # no seed given: the cell's own
    out = _cli(runs, "-m", *common, "seed_index=0,1,2")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "seed=44" in out.stdout and "[skipped]" in out.stdout  # index 0 is the run above
    assert _cli(runs, *common, "seed=7", "seed_index=1").returncode == 0  # a given seed wins
    records = _records(runs)
    assert sorted(r["cell"]["seed"] for r in records) == [7, 44, 45, 46]
    assert len({r["identity"]["variant"] for r in records}) == 1  # one configuration, four seeds
    variant = records[0]["identity"]["variant"]
    assert sorted(p.parent.name for p in runs.rglob(RECORD_FILE)) == [
        f"seed{s}-{variant}" for s in (44, 45, 46, 7)]
    assert all(r["config"]["method"]["length"] == 3 for r in records)


def test_a_typo_in_a_per_cell_file_stops_the_grid_before_any_cell_runs(tmp_path):
    extra = _user_preset(tmp_path / "conf", "typo", "ptuning_v2", "method: {lenght: 3}\n",
                         sweep="hydra:\n  sweeper:\n    params:\n      method: prompt_tuning,ptuning_v2\n")
    runs = tmp_path / "runs"
    out = _cli(runs, "-m", f"--config-dir={extra}", "preset=typo", "model=tiny_bert", "task=rte")
    assert out.returncode == 2
    assert _errors(out.stderr) == ["error: in hparams/cell/typo/ptuning_v2/tiny_bert/rte: method.lenght: not an "
                                   "option; options: dropout, hidden_size, init, length, lr, name, position_offset"]
    assert not list(runs.rglob(RECORD_FILE))  # the prompt_tuning cell before it did not run either


@pytest.mark.parametrize(("launcher", "banner"), [
    ("joblib", "Joblib.Parallel(n_jobs=2"),
    ("submitit_local", "Submitit 'local' sweep output dir"),  # the SLURM code path on one machine
])
def test_multirun_launchers(tmp_path, launcher, banner):
    """Two cells in worker processes, in the folders a basic run would use; the same grid
    again trains nothing."""
    methods = ["prompt_tuning", "lora"]
    grid = ["-m", f"method={','.join(methods)}", *TINY, "task=rte", "train.max_steps=2", "train.threads=1",
            f"+launcher={launcher}"]
    out = _cli(tmp_path, *grid)
    assert out.returncode == 0, out.stderr[-2000:]
    assert banner in out.stdout + out.stderr
    assert "[grid] 2 cells: 2 completed" in out.stdout
    records = _records(tmp_path)
    assert sorted(r["cell"]["method"] for r in records) == sorted(methods)
    for record in records:
        cfg = _compose([f"method={record['cell']['method']}", *TINY, "task=rte", "train.max_steps=2",
                        f"paths.runs_dir={tmp_path}"])
        assert prepare(cfg).directory == tmp_path / "adhoc" / "rte" / "tiny_bert" / record["cell"]["method"] \
            / f"seed0-{record['identity']['variant']}"
    again = _cli(tmp_path, *grid)
    assert again.returncode == 0 and "[grid] 2 cells: 2 skipped" in again.stdout, again.stderr[-2000:]


# ---------------------------------------------------------------- W&B offline, real data


def test_wandb_offline_run(tmp_path):
    out = _cli(tmp_path, *TINY[:-1], "logger=wandb", "task=rte", "method=prompt_tuning",
               "train.max_steps=1", "train.threads=1", env={"WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-2000:]
    [record] = _records(tmp_path)
    assert record["status"] == "completed" and record["config"]["logger"]["name"] == "wandb"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))


def test_real_data_cell(tmp_path, data_dir):
    cfg = _compose(["method=lora", "model=tiny_bert", "task=cb", "data.source=local",
                    f"data.root={data_dir}", "train.max_steps=2", "data.max_train_samples=32",
                    "data.max_eval_samples=16", "logger=none", f"paths.runs_dir={tmp_path}"])
    record = run_cell(cfg).record
    assert record["status"] == "completed", record["error"]
    assert record["data"]["source"] == "local" and record["config"]["data"]["root"] == str(data_dir)
    assert (record["data"]["train_examples"], record["data"]["eval_examples"]) == (32, 16)
    assert record["data"]["split_note"] is None
    assert set(record["metrics"]) >= {"accuracy", "f1_macro"}
    assert record["metrics"]["accuracy"] % (100 / 16) == pytest.approx(0, abs=1e-9)


def test_missing_train_file_is_an_error_naming_the_option(tmp_path, data_dir):
    cfg = _compose(["model=tiny_bert", "task=boolq", "data.source=local", f"data.root={data_dir}",
                    f"paths.runs_dir={tmp_path}"])
    with pytest.raises(DataUnavailableError, match="set data.train_from_eval"):
        prepare(cfg)


# ---------------------------------------------------------------- the clean selection protocol


def test_clean_selection_holds_out_train_rows_the_same_for_every_seed():
    """data.selection_holdout of train, split by group before caps: disjoint from train, the
    same rows whatever the seed, and the protocol is part of the data fingerprint."""
    from ptuning.config import DataConfig, DataSource
    from ptuning.tasks.data import read_splits

    task = get_task("multirc")  # grouped rows: a question's answers stay on one side
    data = DataConfig(source=DataSource.synthetic, synthetic_train=200, synthetic_eval=20)
    plain = read_splits(task, data)
    clean = read_splits(task, data, holdout=0.25)
    key = task.group_key
    assert clean.selection and clean.train
    assert {key(r) for r in clean.selection}.isdisjoint({key(r) for r in clean.train})
    assert sorted(map(repr, clean.train + clean.selection)) == sorted(map(repr, plain.train))
    assert 0.1 < len(clean.selection) / len(plain.train) < 0.4
    assert clean.validation == plain.validation
    assert read_splits(task, data, holdout=0.25).selection == clean.selection  # deterministic
    assert plain.fingerprint() != clean.fingerprint()
    capped = read_splits(task, DataConfig(source=DataSource.synthetic, synthetic_train=200, synthetic_eval=20,
                                          max_eval_samples=5), holdout=0.25)
    assert len(capped.selection) <= 5 + 10  # an eval cap, whole questions kept


def test_clean_selection_chooses_on_the_held_out_slice(tmp_path):
    outcome = run_cell(_cell(tmp_path, "method=prompt_tuning", "train.selection=clean", "train.max_steps=-1",
                             "train.epochs=3", "train.batch_size=4", "data.selection_holdout=0.25"))
    record = outcome.record
    assert outcome.status == "completed", record["error"]
    selection = record["selection"]
    assert (selection["rule"], selection["split"]) == ("best_heldout_epoch", "selection")
    history = record["history"]
    scores = [h["selection/accuracy"] for h in history]
    chosen = history[scores.index(max(scores))]  # the first best held-out epoch
    assert (chosen["epoch"], chosen["step"]) == (selection["epoch"], selection["step"])
    assert record["metrics"] == {k.split("/", 1)[1]: v for k, v in chosen.items() if k.startswith("validation/")}
    assert record["data"]["selection_examples"] > 0
    assert record["data"]["train_examples"] + record["data"]["selection_examples"] == 16
    assert record["identity"]["options"]["train.selection"] == "clean"


@pytest.mark.parametrize(("rule", "epoch"), [("best", 2), ("clean", 1), ("last", 3)])
def test_selector_rules_decide_on_their_split(monkeypatch, rule, epoch):
    """Validation peaks at epoch 2, the held-out slice at epoch 1: ``clean`` never looks at
    validation, ``best`` does (the official protocol), ``last`` takes the end."""
    import ptuning.training as training

    scripted = {"validation": iter([50.0, 70.0, 60.0]), "selection": iter([80.0, 40.0, 30.0])}

    class Scripted:
        primary_metric = "accuracy"

        def score(self, logits, split):
            return {"accuracy": next(scripted[split])}

    monkeypatch.setattr(training, "predict", lambda model, enc, collator, size: enc)
    selector = training.Selector(Scripted(), {"validation": "validation", "selection": "selection"},
                                 collator=None, batch_size=1, rule=rule)
    model = torch.nn.Linear(1, 1)
    for step in (1, 2, 3):
        selector.evaluate(model, float(step), step)
    assert selector.chosen.epoch == epoch


def test_trainer_arguments_keep_warmup_and_the_exponential_schedule(tmp_path):
    """HF's "constant" ignores warmup: a constant schedule with warmup runs as
    constant_with_warmup (cells and MPT-2's stage share these arguments); the exponential
    schedule runs as constant plus the CellTrainer's own per-epoch LambdaLR."""
    from ptuning.config import Scheduler
    from ptuning.training import training_arguments

    def kind(**options):
        train = dataclasses.replace(TrainConfig(), **options)
        args = training_arguments(train, str(tmp_path), seed=0, lr=1e-3, epochs=1, batch_size=2)
        return str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)), args.warmup_steps

    assert kind(scheduler=Scheduler.constant, warmup_steps=5) == ("constant_with_warmup", 5)
    assert kind(scheduler=Scheduler.constant) == ("constant", 0)
    assert kind(scheduler=Scheduler.exponential, warmup_steps=5) == ("constant", 5)
    assert kind(scheduler=Scheduler.linear, warmup_ratio=0.1) == ("linear", 0.1)
