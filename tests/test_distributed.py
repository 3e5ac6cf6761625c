"""A cell on several processes (CPU, gloo, tiny BERT): fine-tuning sharded with FSDP2 trains
as one process does on the same global batch, a frozen-backbone method runs data parallel,
one record and one artefact are written, and an interrupted sharded cell resumes from its
checkpoint to the uninterrupted result. Also: how a cell finds its processes (torchrun's
variables, a submitit job) and the global batch that must divide among them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from conftest import ROOT, Interrupted, save_then_stop_at
from conftest import compose_config as _compose

from ptuning.checkpoints import CHECKPOINTS_DIR, Checkpointer, latest_checkpoint, trainable_state
from ptuning.distributed import World, current_world, export_submitit_env
from ptuning.errors import ConfigError
from ptuning.experiment import Experiment
from ptuning.records import RECORD_FILE, load_record
from ptuning.runner import check_world, prepare, run_cell
from ptuning.training import loss_items

# 64 rows at a global batch of 8: 8 steps an epoch, 16 in all, a checkpoint every 5 steps;
# 14 evaluation rows in batches of 5 (two ranks: 2 + 1 batches). No dropout anywhere: the masks
# drawn for a rank's half batch are not those one process draws for the whole batch.
BASE = ["model=tiny_bert", "task=rte", "data.source=synthetic", "data.synthetic_train=64",
        "data.synthetic_eval=14", "train.batch_size=8", "train.eval_batch_size=5", "train.epochs=2",
        "train.checkpoint_steps=5", "train.threads=1", "train.logging_steps=1", "model.dropout=0",
        "+model.tiny_config.attention_probs_dropout_prob=0", "logger=none"]
FINETUNE = [*BASE, "method=finetune", "train.lr=1e-3"]
FROZEN = [*[o for o in BASE if not o.startswith("task=")], "method=ptuning_v2", "method.length=4"]
#: 1 vs 2 processes: the same batches, the same weights, only float sums in another order
#: (the gradient all-reduce, padding to a rank's own longest sequence)
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-5
STOP_AT = 5
LAUNCH_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _losses(trainer: Any) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def _run(overrides: list[str], report: dict[str, Any]) -> Any:
    """Run the cell; note its record, losses and final weights (full, on rank 0) in ``report``."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import FSDPModule

    trainers: list[Any] = []
    real = Experiment._trainer

    def _trainer(self, *args, **kwargs):
        trainers.append(real(self, *args, **kwargs))
        return trainers[-1]

    Experiment._trainer = _trainer
    try:
        outcome = run_cell(_compose(overrides))
    finally:
        Experiment._trainer = real
    assert trainers, f"{outcome.status}: {outcome.record.get('error')}"
    trainer = trainers[-1]
    model = trainer.accelerator.unwrap_model(trainer.model)  # FSDP2 shards in place: the cell's model
    report.update(status=outcome.status, record=outcome.record, losses=_losses(trainer))
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    if isinstance(model, FSDPModule):
        policy = trainer.accelerator.state.fsdp_plugin.mixed_precision_policy
        report["sharded"] = {"local": sum(p.to_local().numel() for p in model.parameters()),
                             "total": sum(p.numel() for p in model.parameters()),
                             "compute_dtype": str(policy.param_dtype) if policy is not None else None,
                             "checkpointing": model.backbone.is_activation_checkpointing}
        weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        weights = trainable_state(model)
    report["weights"] = {k: v for k, v in weights.items() if k in trained}
    return outcome


def _interrupted(overrides: list[str], step: int) -> dict[str, Any]:
    """Run the cell until its checkpoint at ``step`` is written, then stop it as if killed."""
    real_save = Checkpointer.save
    Checkpointer.save = save_then_stop_at(step)  # patched in this worker process, restored below
    try:
        run_cell(_compose(overrides))
    except Interrupted as stopped:
        checkpoint = Path(str(stopped))
        return {"checkpoint": checkpoint.name, "files": sorted(p.name for p in checkpoint.iterdir()),
                "record": load_record(checkpoint.parent.parent / RECORD_FILE)["status"]}
    finally:
        Checkpointer.save = real_save
    raise AssertionError(f"the cell ended before its checkpoint at step {step}")


def _worker(rank: int, size: int, port: int, jobs: list[tuple[str, list[str], int | None]], out: str) -> None:
    """One process of a cell (what torchrun or each task of a SLURM job runs). ``jobs``: the
    cells these processes run one after the other, as a grid does (``(name, overrides,
    interrupt_at)``: stopped after the checkpoint at that step, then run again: a resume)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                      HF_HUB_OFFLINE="1", WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")
    torch.set_num_threads(1)
    reports: dict[str, dict[str, Any]] = {}
    for name, overrides, interrupt_at in jobs:
        report = reports[name] = {}
        if interrupt_at is not None:
            report["interrupted"] = _interrupted(overrides, interrupt_at)
        _run(overrides, report)
    torch.save(reports, Path(out) / f"rank{rank}.pt")


def _launch(jobs: list[tuple[str, list[str], int | None]], tmp: Path, processes: int = 2) -> list[dict]:
    """The cells of ``jobs`` on ``processes`` processes; every rank's reports by job name."""
    tmp.mkdir(parents=True, exist_ok=True)
    context = mp.start_processes(_worker, args=(processes, _free_port(), jobs, str(tmp)), nprocs=processes,
                                 start_method="spawn", join=False)
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not context.join(timeout=1):  # raises with the failing rank's traceback
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError(f"the {processes} processes did not end within {LAUNCH_TIMEOUT_S} s (a hang?)")
    return [torch.load(tmp / f"rank{rank}.pt", weights_only=False) for rank in range(processes)]


def _single(overrides: list[str]) -> dict:
    report: dict[str, Any] = {}
    _run(overrides, report)
    return report


def _same_training(two: dict, one: dict, exact: bool = False) -> None:
    if exact:
        assert two["losses"] == one["losses"]
    else:
        assert two["losses"] == pytest.approx(one["losses"], rel=LOSS_RTOL)
    for key in ("metrics", "history", "selection"):
        assert two["record"][key] == one["record"][key], key
    assert two["weights"].keys() == one["weights"].keys()
    for key, value in one["weights"].items():
        if exact:
            assert two["weights"][key].equal(value), key
        else:
            torch.testing.assert_close(two["weights"][key], value, rtol=0, atol=WEIGHT_ATOL, msg=key)


def _difference(two: dict, one: dict) -> str:
    losses = max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True))
    weights = max((two["weights"][k] - v).abs().max().item() for k, v in one["weights"].items())
    return f"max loss difference {losses:.1e}, max weight difference {weights:.1e}"


def test_sharded_fine_tuning_trains_as_one_process(tmp_path):
    """And a large cell's settings, bf16 and gradient checkpointing, in the same processes."""
    one = _single([*FINETUNE, f"paths.runs_dir={tmp_path / 'one'}"])
    large = [*FINETUNE, "train.precision=bf16", "model.gradient_checkpointing=true", "train.epochs=1",
             "train.scheduler=exponential"]  # and the official NER/QA optimizer, built for the shards
    reports = _launch([("fsdp", [*FINETUNE, f"paths.runs_dir={tmp_path / 'two'}"], None),
                       ("large", [*large, f"paths.runs_dir={tmp_path / 'large'}"], None)], tmp_path)
    rank0, rank1 = (r["fsdp"] for r in reports)
    bf16 = reports[0]["large"]
    assert bf16["status"] == "completed" and bf16["record"]["cost"]["strategy"] == "fsdp"
    assert bf16["sharded"]["compute_dtype"] == "torch.bfloat16" and bf16["sharded"]["checkpointing"]
    assert rank0["sharded"]["compute_dtype"] is None and not rank0["sharded"]["checkpointing"]
    # FSDP2 sharded the model: each rank holds a part, together the whole
    for report in (rank0, rank1):
        assert 0 < report["sharded"]["local"] < report["sharded"]["total"]
    assert rank0["sharded"]["local"] + rank1["sharded"]["local"] == rank0["sharded"]["total"]
    assert len(one["losses"]) == 16  # one logged loss a step
    _same_training(rank0, one)
    assert rank1["losses"] == rank0["losses"] and rank1["record"]["metrics"] == rank0["record"]["metrics"]
    [path] = sorted((tmp_path / "two").rglob(RECORD_FILE))  # one record, from rank 0
    record = load_record(path)
    assert record["status"] == "completed" and record["metrics"] == one["record"]["metrics"]
    assert record["cost"]["processes"] == 2 and record["cost"]["strategy"] == "fsdp"
    assert one["record"]["cost"]["processes"] == 1 and one["record"]["cost"]["strategy"] == "single"
    assert record["cost"]["steps"] == 16 and record["data"]["train_features"] == 64
    assert not (path.parent / CHECKPOINTS_DIR).exists()
    print(f"\n[fsdp, 1 vs 2 processes] {_difference(rank0, one)}")


def test_an_interrupted_sharded_cell_resumes_to_the_uninterrupted_result(tmp_path):
    """Dropout on (each rank's generators must be restored), two cells in the same processes
    (a grid): one straight, one stopped after its checkpoint at step 5 and run again."""
    cell = [*FINETUNE, "model.dropout=0.1"]
    rank0, rank1 = _launch([("straight", [*cell, f"paths.runs_dir={tmp_path / 'straight'}"], None),
                            ("resumed", [*cell, f"paths.runs_dir={tmp_path / 'resumed'}"], STOP_AT)], tmp_path)
    stopped = rank0["resumed"]["interrupted"]
    assert stopped["checkpoint"] == f"checkpoint-{STOP_AT}" and stopped["record"] == "running"
    # accelerate's sharded checkpoint (every rank wrote its shards) and each rank's generators
    assert stopped["files"] == sorted(["pytorch_model_fsdp_0", "optimizer_0", "scheduler.pt", "rng_state_0.pth",
                                       "rng_state_1.pth", "trainer_state.json", "cell_state.pt"])
    for report in (rank0["resumed"], rank1["resumed"]):
        assert report["status"] == "completed" and report["record"]["cost"]["resumed_from_step"] == STOP_AT
    # the step of the checkpoint logs its loss after the checkpoint is written: the stopped run
    # never logged it, the resumed one starts after it
    straight = {**rank0["straight"], "losses": [loss for step, loss in enumerate(rank0["straight"]["losses"], 1)
                                                if step != STOP_AT]}
    _same_training(rank0["resumed"], straight, exact=True)
    [path] = sorted((tmp_path / "resumed").rglob(RECORD_FILE))
    assert load_record(path)["cost"]["resumed_from_step"] == STOP_AT
    assert latest_checkpoint(path.parent) is None


@pytest.mark.slow  # ~35 s on 2 cores; the sharded (FSDP) tests run by default
def test_a_frozen_backbone_runs_data_parallel_as_one_process(tmp_path):
    """P-Tuning v2 on RTE and on NER, where the ranks' batches hold different numbers of
    labelled tokens (each rank's loss is weighted by its share); RTE once more, interrupted
    and resumed."""
    cells = {"rte": [*FROZEN, "task=rte"], "ner": [*FROZEN, "task=conll04"]}
    ones = {name: _single([*cell, f"paths.runs_dir={tmp_path / 'one'}"]) for name, cell in cells.items()}
    jobs = [(name, [*cell, f"paths.runs_dir={tmp_path / 'two'}"], None) for name, cell in cells.items()]
    rank0, _ = _launch([*jobs, ("resumed", [*cells["rte"], f"paths.runs_dir={tmp_path / 'resumed'}"], STOP_AT)],
                       tmp_path)
    for name, one in ones.items():
        two = rank0[name]
        assert "sharded" not in two and two["record"]["cost"]["strategy"] == "ddp"
        _same_training(two, one)
        print(f"\n[ddp {name}, 1 vs 2 processes] {_difference(two, one)}")
    assert len(sorted((tmp_path / "two").rglob(RECORD_FILE))) == 2  # one per cell, from rank 0
    assert len(sorted((tmp_path / "two").rglob("prompt.safetensors"))) == 2
    # data parallel checkpoints: the trainable state and optimizer from rank 0, each rank's generators
    resumed = rank0["resumed"]
    assert resumed["interrupted"]["files"] == sorted(["model.safetensors", "optimizer.pt", "scheduler.pt",
                                                      "rng_state_0.pth", "rng_state_1.pth", "trainer_state.json",
                                                      "cell_state.pt"])
    assert resumed["record"]["cost"]["resumed_from_step"] == STOP_AT
    straight = {**rank0["rte"], "losses": [x for step, x in enumerate(rank0["rte"]["losses"], 1) if step != STOP_AT]}
    _same_training(resumed, straight, exact=True)


def test_each_rank_weighs_its_loss_by_the_terms_it_holds():
    labels = torch.tensor([[1, -100, 2], [-100, -100, 0]])
    assert int(loss_items({"labels": labels})) == 3  # tokens (NER)
    assert int(loss_items({"labels": torch.tensor([0, 1, 1])})) == 3  # examples
    assert int(loss_items({"start_positions": torch.tensor([4, 0]), "end_positions": torch.tensor([5, 0])})) == 2


# ---------------------------------------------------------------- finding the processes


DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*DIST_VARS, "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_world_comes_from_torchrun_variables(clean_env):
    assert current_world() == World() and not World().distributed
    clean_env.setenv("RANK", "1")
    clean_env.setenv("WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match="LOCAL_RANK, MASTER_ADDR, MASTER_PORT unset"):
        current_world()
    for name, value in (("LOCAL_RANK", "1"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        clean_env.setenv(name, value)
    world = current_world()
    assert world == World(rank=1, size=4, local_rank=1) and world.distributed and not world.main
    clean_env.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="RANK=4 with WORLD_SIZE=4"):
        current_world()


def test_a_submitit_job_with_several_tasks_exports_the_variables(clean_env):
    """What each task of a SLURM job with tasks_per_node=2 finds (submitit's local executor
    describes a job by the same kind of variables)."""
    for name, value in (("SUBMITIT_EXECUTOR", "local"), ("SUBMITIT_LOCAL_JOB_ID", "123"),
                        ("SUBMITIT_LOCAL_NTASKS", "2"), ("SUBMITIT_LOCAL_JOB_NUM_NODES", "1"),
                        ("SUBMITIT_LOCAL_NODEID", "0"), ("SUBMITIT_LOCAL_GLOBALID", "1"),
                        ("SUBMITIT_LOCAL_LOCALID", "1")):
        clean_env.setenv(name, value)
    for name in DIST_VARS:  # export writes os.environ directly: restored by monkeypatch
        clean_env.setenv(name, "")
        clean_env.delenv(name)
    export_submitit_env()
    assert current_world() == World(rank=1, size=2, local_rank=1)
    assert os.environ["MASTER_ADDR"] == socket.gethostname() and int(os.environ["MASTER_PORT"]) >= 20000


def test_a_submitit_job_with_one_task_stays_single(clean_env):
    for name, value in (("SUBMITIT_EXECUTOR", "local"), ("SUBMITIT_LOCAL_JOB_ID", "123"),
                        ("SUBMITIT_LOCAL_NTASKS", "1"), ("SUBMITIT_LOCAL_GLOBALID", "0"),
                        ("SUBMITIT_LOCAL_LOCALID", "0")):
        clean_env.setenv(name, value)
    export_submitit_env()
    assert "RANK" not in os.environ and current_world() == World()


def test_the_global_batch_must_divide_among_the_processes(tmp_path):
    settings = prepare(_compose([*FINETUNE, f"paths.runs_dir={tmp_path}"])).settings
    check_world(settings, World(rank=0, size=4))
    with pytest.raises(ConfigError, match=r"train.batch_size=8: .* 3 processes .* a multiple of 3"):
        check_world(settings, World(rank=0, size=3))


def _torchrun(runs_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         "-m", "experiments.run", *args, f"paths.runs_dir={runs_dir}"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"})


@pytest.mark.slow
def test_torchrun_stopped_by_a_signal_checkpoints_and_a_new_launch_resumes(tmp_path):
    """``torchrun --nproc_per_node 2 -m experiments.run``, then ``kill`` (SIGTERM, which
    torchrun passes to every worker): the ranks agree on one step, checkpoint it together and
    end; a second launch (fresh processes) resumes from it and completes with one record."""
    cell = [*FINETUNE, "train.max_steps=120", "train.eval_steps=60", "train.checkpoint_steps=10"]
    first = _torchrun(tmp_path, *cell)
    deadline = time.monotonic() + 300
    while not sorted(tmp_path.rglob("checkpoint-*")):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0][-3000:]
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)
    assert first.returncode != 0
    written = re.findall(r"\[checkpoint\] (checkpoint-\d+) written; passing SIGTERM on", output)
    assert len(written) == 2 and written[0] == written[1], output[-3000:]  # both ranks, the same step
    [path] = sorted(tmp_path.rglob(RECORD_FILE))
    assert load_record(path)["status"] == "running" and latest_checkpoint(path.parent).name == written[0]

    second = _torchrun(tmp_path, *cell)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output[-3000:]
    assert output.count("[resume]") == 1 and output.count("[completed] rte tiny_bert finetune") == 2
    [path] = sorted(tmp_path.rglob(RECORD_FILE))
    record = load_record(path)
    assert record["status"] == "completed" and record["cost"]["strategy"] == "fsdp"
    assert record["cost"]["steps"] == 120 and record["cost"]["resumed_from_step"] == int(written[0].split("-")[1])
    assert [e["step"] for e in record["history"]] == [60, 120]
