"""Checkpoints and resume: an interrupted cell resumes from its latest complete checkpoint
and ends with the metrics of an uninterrupted run; a killed process, a half-written
checkpoint, a preemption signal and a requeue through submitit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, Interrupted, save_then_stop_at
from conftest import compose_config as _compose
from safetensors import safe_open

from ptuning.checkpoints import (
    CHECKPOINTS_DIR,
    Checkpointer,
    CheckpointOnSignal,
    latest_checkpoint,
    trainable_state,
)
from ptuning.experiment import Experiment
from ptuning.records import RECORD_FILE, load_record
from ptuning.runner import run_cell

# 64 rows at batch 8: 8 steps an epoch, 24 in all, a checkpoint every 5 steps and each epoch end
CELL = ["model=tiny_bert", "task=rte", "data.source=synthetic", "data.synthetic_train=64",
        "data.synthetic_eval=16", "train.batch_size=8", "train.epochs=3", "train.checkpoint_steps=5",
        "train.threads=1"]



def _record(runs_dir: Path) -> dict:
    [path] = sorted(runs_dir.rglob(RECORD_FILE))
    return load_record(path)


def _interrupt_after_save_at(monkeypatch, step: int) -> None:
    monkeypatch.setattr(Checkpointer, "save", save_then_stop_at(step))


def _capture_final_weights(monkeypatch) -> list[dict]:
    """Every trained model's trainable weights at the end of training, in run order."""
    captured: list[dict] = []
    real = Experiment.train_and_evaluate

    def train_and_evaluate(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        captured.append(trainable_state(self.model))
        return result

    monkeypatch.setattr(Experiment, "train_and_evaluate", train_and_evaluate)
    return captured


def _same_training(resumed: dict, straight: dict) -> None:
    assert resumed["metrics"] == straight["metrics"]
    assert resumed["history"] == straight["history"]
    assert resumed["selection"] == straight["selection"]
    assert resumed["cost"]["steps"] == straight["cost"]["steps"] == 24


@pytest.mark.parametrize(("method", "extra", "stop_at"), [
    # mid-epoch: batches skipped, dropout masks continued; "last" keeps the final weights
    ("ptuning_v2", ["train.selection=last"], 10),
    # an epoch end, our own LambdaLR; "best" keeps a chosen state that must survive the resume
    ("ptuning_v2", ["train.scheduler=exponential"], 16),
    ("finetune", ["train.selection=last"], 5),  # the whole model is the trainable state
])
def test_an_interrupted_cell_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, method, extra, stop_at):
    overrides = [*CELL, f"method={method}", *extra]
    final_weights = _capture_final_weights(monkeypatch)
    straight = run_cell(_compose([*overrides, f"paths.runs_dir={tmp_path / 'straight'}"]))
    assert straight.status == "completed" and straight.record["cost"]["resumed_from_step"] is None

    runs = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        _interrupt_after_save_at(patch, stop_at)
        with pytest.raises(Interrupted):
            run_cell(_compose([*overrides, f"paths.runs_dir={runs}"]))
    assert _record(runs)["status"] == "running"
    checkpoint = latest_checkpoint(runs / straight.directory.relative_to(tmp_path / "straight"))
    assert checkpoint is not None and checkpoint.name == f"checkpoint-{stop_at}"

    resumed = run_cell(_compose([*overrides, f"paths.runs_dir={runs}"]))
    assert resumed.status == "completed"
    assert resumed.record["cost"]["resumed_from_step"] == stop_at
    _same_training(resumed.record, straight.record)
    assert not (resumed.directory / CHECKPOINTS_DIR).exists()  # pruned once the record is written
    # the model at the end: the final weights, or (frozen backbone, "best") the chosen ones
    straight_weights, resumed_weights = final_weights  # the interrupted attempt returned nothing
    assert straight_weights.keys() == resumed_weights.keys()
    for key, value in straight_weights.items():  # dropout masks, data order, optimizer: all continued
        assert value.equal(resumed_weights[key]), key
    if method != "finetune":  # the artefact holds the selected evaluation's weights
        with safe_open(str(straight.directory / "prompt.safetensors"), "pt") as a, \
                safe_open(str(resumed.directory / "prompt.safetensors"), "pt") as b:
            assert sorted(a.keys()) == sorted(b.keys())
            for key in a.keys():
                assert a.get_tensor(key).equal(b.get_tensor(key)), key


def test_a_checkpoint_keeps_the_trainable_state_only(tmp_path, monkeypatch):
    _interrupt_after_save_at(monkeypatch, 5)
    with pytest.raises(Interrupted) as stopped:
        run_cell(_compose([*CELL, "method=ptuning_v2", f"paths.runs_dir={tmp_path}"]))
    checkpoint = Path(str(stopped.value))
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as handle:
        keys = set(handle.keys())
    assert keys and all(k.startswith(("method.", "head.")) for k in keys), sorted(keys)[:5]
    assert {p.name for p in checkpoint.iterdir()} == {
        "model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "cell_state.pt"}
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 5


def test_a_half_written_checkpoint_is_ignored(tmp_path, monkeypatch):
    _interrupt_after_save_at(monkeypatch, 5)
    with pytest.raises(Interrupted) as stopped:
        run_cell(_compose([*CELL, "method=prompt_tuning", f"paths.runs_dir={tmp_path}"]))
    complete = Path(str(stopped.value))
    partial = complete.parent / ".checkpoint-9.partial-123"  # a job killed while writing step 9
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 10)
    assert latest_checkpoint(complete.parent.parent) == complete


def test_redo_starts_over_without_the_checkpoints(tmp_path, monkeypatch):
    overrides = [*CELL, "method=prompt_tuning", f"paths.runs_dir={tmp_path}"]
    with monkeypatch.context() as patch:
        _interrupt_after_save_at(patch, 10)
        with pytest.raises(Interrupted):
            run_cell(_compose(overrides))
    outcome = run_cell(_compose([*overrides, "redo=true"]))
    assert outcome.status == "completed" and outcome.record["cost"]["resumed_from_step"] is None


def test_a_signal_after_the_last_step_still_reaches_the_previous_handler():
    """No step end comes to write a checkpoint: leaving the block re-delivers the signal."""
    received: list[int] = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        with CheckpointOnSignal().installed() as on_signal:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.01)
            assert on_signal.pending == signal.SIGUSR2 and not received  # deferred
        time.sleep(0.01)
        assert received == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, before)


# ---------------------------------------------------------------- a real process, killed


def _launch(runs_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.run", *args, f"paths.runs_dir={runs_dir}"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"})


def _wait_for_checkpoint(process: subprocess.Popen, runs_dir: Path, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(runs_dir.rglob("checkpoint-*"))
        if found:
            return found[0]
        if process.poll() is not None:
            raise AssertionError(f"the cell ended before its first checkpoint:\n{process.stdout.read()[-3000:]}")
        time.sleep(0.02)
    process.kill()
    raise AssertionError("no checkpoint appeared")


# 300 steps: the process is killed long before it could finish
LONG = ["model=tiny_bert", "task=rte", "method=ptuning_v2", "data.source=synthetic", "data.synthetic_train=64",
        "data.synthetic_eval=16", "train.batch_size=8", "train.max_steps=300", "train.eval_steps=150",
        "train.checkpoint_steps=20", "train.threads=1", "logger=wandb"]


def test_a_killed_process_resumes_with_one_record_and_one_wandb_run(tmp_path):
    process = _launch(tmp_path, *LONG)
    _wait_for_checkpoint(process, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    interrupted = _record(tmp_path)
    assert interrupted["status"] == "running"
    stopped_at = int(latest_checkpoint(next(tmp_path.rglob(CHECKPOINTS_DIR)).parent).name.split("-")[1])
    assert 0 < stopped_at < 300

    rerun = _launch(tmp_path, *LONG)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output[-3000:]
    assert "[resume]" in output
    [path] = sorted(tmp_path.rglob(RECORD_FILE))
    record = load_record(path)
    assert record["status"] == "completed" and record["cost"]["steps"] == 300
    assert record["cost"]["resumed_from_step"] >= stopped_at
    assert record["wandb"]["run_id"] == interrupted["wandb"]["run_id"]
    run_dirs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 2 and all(record["wandb"]["run_id"] in d.name for d in run_dirs)
    assert [e["step"] for e in record["history"]] == [150, 300]


def test_a_termination_signal_checkpoints_before_the_process_ends(tmp_path):
    """``kill PID`` (SIGTERM, as a scheduler sends before stopping a job): the step in
    progress ends, a checkpoint of that step is written, then the process ends by the signal."""
    process = _launch(tmp_path, *LONG[:-1], "logger=none")
    _wait_for_checkpoint(process, tmp_path)  # training has started
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM, output[-3000:]
    written = re.search(r"\[checkpoint\] (checkpoint-\d+) written; passing SIGTERM on", output)
    assert written, output[-3000:]
    assert latest_checkpoint(next(tmp_path.rglob(RECORD_FILE)).parent).name == written.group(1)


@pytest.mark.slow
def test_a_preempted_submitit_job_checkpoints_is_requeued_and_resumes(tmp_path):
    """submitit's timeout/preemption signal (SIGUSR2) to a running job: a checkpoint of the
    current step, submitit requeues the job, the new attempt resumes and completes."""
    import psutil

    process = _launch(tmp_path, "-m", *LONG[:-1], "logger=none", "+launcher=submitit_local")
    _wait_for_checkpoint(process, tmp_path, timeout=300)
    tasks = [p for p in psutil.Process(process.pid).children(recursive=True)
             if "submitit.core._submit" in " ".join(p.cmdline())]
    assert len(tasks) == 1, [p.cmdline() for p in tasks]
    tasks[0].send_signal(signal.SIGUSR2)  # what submitit's own tests send (LocalJob._interrupt)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    record = _record(tmp_path)
    assert record["status"] == "completed" and record["cost"]["steps"] == 300
    assert 0 < record["cost"]["resumed_from_step"] < 300
    [log] = sorted(tmp_path.glob(".hydra/multirun-*/.submitit/*/*_0_log.out"))
    text = log.read_text()
    assert f"[checkpoint] checkpoint-{record['cost']['resumed_from_step']} written; passing SIGUSR2 on" in text
    assert "[resume]" in text
