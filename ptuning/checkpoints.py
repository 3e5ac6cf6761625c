"""Resumable training state of one cell, and checkpoint-on-signal for preempted jobs.

A checkpoint lives in the cell's own folder, ``<cell>/checkpoints/checkpoint-<step>/``, in the
layout that ``Trainer.train(resume_from_checkpoint=...)`` reads (transformers 5.x):

- ``model.safetensors``: the trainable state only for a frozen-backbone method (prompt,
  prefix, adapter and head, never a copy of the frozen backbone); everything for fine-tuning
- ``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth`` (python, numpy, torch CPU and CUDA
  generators), ``trainer_state.json`` (the step, the epoch, the log history)
- ``cell_state.pt``: what the Trainer does not own: the selector's evaluations, the chosen
  evaluation and its weights, and the seconds spent before the interruption

A cell on several processes (:mod:`ptuning.distributed`) writes one checkpoint together:
each rank's RNG state as ``rng_state_<rank>.pth`` (the Trainer's name for it); with FSDP the
model and optimizer as accelerate's sharded checkpoint, ``pytorch_model_fsdp_0/`` and
``optimizer_0/`` (torch.distributed.checkpoint: every rank writes its own shards, no rank
ever holds the whole model), which the Trainer loads back onto the shards on resume; data
parallel (frozen backbone) as above, from rank 0. Rank 0 creates the folder, writes the
rest and, after a barrier, renames it into place.

It is written into a hidden temporary folder and renamed into place, so a job killed while
writing leaves no half checkpoint that a rerun could pick; only the newest complete one is
kept, and a completed cell's checkpoints are removed (its record and artefact are all it
needs). Checkpoints are written every ``train.checkpoint_steps`` optimizer steps and after
each evaluation; ``train.checkpoint_steps=null`` writes none.

On SLURM (submitit), the job receives a signal before its time limit or on preemption.
:class:`CheckpointOnSignal` turns that signal into a request: the training loop writes a
checkpoint at the end of the current step and then hands the signal to the handler that
was installed before (submitit's, which requeues the job and exits); the requeued job
resumes from that checkpoint. The ranks of a distributed cell agree at each step end
whether any of them holds a request, so they checkpoint the same step together.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import TrainerCallback

from ptuning.distributed import SINGLE, World
from ptuning.model import PromptedModel

CHECKPOINTS_DIR = "checkpoints"
CELL_STATE_FILE = "cell_state.pt"
_NAME = re.compile(r"^checkpoint-(\d+)$")
#: the signals a scheduler sends before stopping a job: submitit's timeout/preemption signal
#: (``SIGUSR2`` unless ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise) and a plain ``SIGTERM``
INTERRUPT_SIGNALS = ("SIGUSR2", "SIGTERM")


def latest_checkpoint(cell_dir: Path) -> Path | None:
    """The newest complete checkpoint of a cell, or None."""
    folder = cell_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return max(steps)[1] if steps else None


def remove_checkpoints(cell_dir: Path) -> None:
    """Delete a cell's checkpoints (a completed cell, or a rerun asked to start over)."""
    shutil.rmtree(cell_dir / CHECKPOINTS_DIR, ignore_errors=True)


def trainable_state(model: PromptedModel) -> dict[str, torch.Tensor]:
    """The state a checkpoint must keep: every parameter that trains (model-level names)."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in trainable}


def load_cell_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / CELL_STATE_FILE, map_location="cpu", weights_only=True)


def _rng_state(distributed: bool) -> dict[str, Any]:
    """This process's generators, as the Trainer saves them (every CUDA device's when distributed)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.random.get_rng_state_all() if distributed else torch.cuda.random.get_rng_state()
    return state


class Checkpointer(TrainerCallback):
    """Writes the cell's checkpoint every ``every`` steps (0: only after evaluations) and
    after each evaluation; must come after the selector in the Trainer's callbacks.

    ``cell_state`` returns what the cell adds to a checkpoint (selector history and choice,
    elapsed seconds); ``evaluated_at`` says whether the selector evaluated at a step."""

    def __init__(self, cell_dir: Path, every: int, cell_state: Callable[[], dict[str, Any]],
                 evaluated_at: Callable[[int], bool], on_signal: CheckpointOnSignal | None = None,
                 world: World = SINGLE) -> None:
        self.folder = cell_dir / CHECKPOINTS_DIR
        self.every, self.cell_state, self.evaluated_at, self.on_signal = every, cell_state, evaluated_at, on_signal
        self.world = world
        #: the Trainer's accelerator when it shards the model with FSDP (set by the experiment)
        self.accelerator: Any = None
        self.saved_step: int | None = None

    def save(self, state: Any, model: PromptedModel, optimizer: Any, lr_scheduler: Any) -> Path:
        """Write ``checkpoint-<global step>`` atomically and drop the older ones (on several
        processes: called by every rank, written into rank 0's folder)."""
        world = self.world
        step = state.global_step
        final = self.folder / f"checkpoint-{step}"
        tmp = None
        if world.main:
            tmp = self.folder / f".checkpoint-{step}.partial-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        tmp = world.broadcast(tmp)
        if self.accelerator is not None and self.accelerator.is_fsdp2:  # every rank writes its shards
            from accelerate.utils import save_fsdp_model, save_fsdp_optimizer

            plugin = self.accelerator.state.fsdp_plugin
            quiet = logging.getLogger("accelerate.utils.fsdp_utils")  # four INFO lines per checkpoint
            level = quiet.level
            quiet.setLevel(logging.WARNING)
            try:
                save_fsdp_model(plugin, self.accelerator, model, str(tmp))
                save_fsdp_optimizer(plugin, self.accelerator, optimizer, model, str(tmp))
            finally:
                quiet.setLevel(level)
        elif world.main:
            save_file(trainable_state(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        rng = world.gather(_rng_state(world.distributed))
        if world.main:
            torch.save(lr_scheduler.state_dict(), tmp / "scheduler.pt")
            if world.distributed:
                for rank, generators in enumerate(rng):
                    torch.save(generators, tmp / f"rng_state_{rank}.pth")
            else:
                torch.save(rng[0], tmp / "rng_state.pth")
            torch.save(self.cell_state(), tmp / CELL_STATE_FILE)
            state.save_to_json(str(tmp / "trainer_state.json"))
        world.barrier()  # every rank's part is on disk
        if world.main:
            self._publish(tmp, final, step)
        world.barrier()
        self.saved_step = step
        return final

    def _publish(self, tmp: Path, final: Path, step: int) -> None:
        if final.exists():  # the same step again (an evaluation after a periodic save)
            stale = self.folder / f".checkpoint-{step}.stale-{os.getpid()}"
            final.rename(stale)
            tmp.rename(final)
            shutil.rmtree(stale)
        else:
            tmp.rename(final)
        for old in self.folder.iterdir():
            match = _NAME.match(old.name)
            if old != final and (match and int(match.group(1)) < step or ".partial-" in old.name):
                shutil.rmtree(old, ignore_errors=True)

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        step = state.global_step
        epoch_ends = state.epoch is not None and abs(state.epoch - round(state.epoch)) < 1e-9
        due = (self.every and step % self.every == 0) or self.evaluated_at(step)
        pending = self.on_signal is not None and self.on_signal.pending is not None
        signalled = self.world.any(pending)  # a signal on any rank: all checkpoint this step
        if signalled or (due and not epoch_ends):  # at an epoch end, on_epoch_end saves after evaluating
            path = self.save(state, model, optimizer, lr_scheduler)
        if pending:
            name = signal.Signals(self.on_signal.pending).name
            print(f"[checkpoint] {path.name} written; passing {name} on", flush=True)
            self.on_signal.forward()

    def on_epoch_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if self.saved_step != state.global_step or self.evaluated_at(state.global_step):
            self.save(state, model, optimizer, lr_scheduler)


class CheckpointOnSignal:
    """Defers :data:`INTERRUPT_SIGNALS` until the next step end, where a checkpoint is written
    and the signal goes on to the handler installed before (submitit requeues the job; with
    the default handler the process ends as the signal says)."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self._previous: dict[int, Any] = {}

    def _request(self, signum: int, frame: Any) -> None:
        print(f"[checkpoint] {signal.Signals(signum).name} received: checkpointing at the end of this step",
              flush=True)
        self.pending = signum

    @contextmanager
    def installed(self) -> Iterator[CheckpointOnSignal]:
        """Install the deferring handlers for the block (main thread only; a no-op elsewhere)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        signums = [getattr(signal, name) for name in INTERRUPT_SIGNALS if hasattr(signal, name)]
        preempt = os.environ.get("SUBMITIT_PREEMPT_SIGNAL")
        if preempt and hasattr(signal, f"SIG{preempt}"):
            signums.append(getattr(signal, f"SIG{preempt}"))
        for signum in dict.fromkeys(signums):
            self._previous[signum] = signal.signal(signum, self._request)
        try:
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous.clear()
            if self.pending is not None:  # arrived after the last step: the signal is not swallowed
                signum, self.pending = self.pending, None
                os.kill(os.getpid(), signum)

    def forward(self) -> None:
        """Hand the pending signal to the previous handler (called after the checkpoint)."""
        signum, self.pending = self.pending, None
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, None)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


class _MissingFrozenKeys(logging.Filter):
    """Drops the Trainer's warning that a checkpoint lacks the frozen backbone's weights
    (a checkpoint keeps the trainable state only, by design)."""

    def __init__(self, frozen: set[str]) -> None:
        super().__init__()
        self.frozen = frozen

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        prefix = "There were missing keys in the checkpoint model loaded: "
        if not message.startswith(prefix):
            return True
        return not set(re.findall(r"'([^']+)'", message[len(prefix):])) <= self.frozen


@contextmanager
def quiet_frozen_keys(model: PromptedModel) -> Iterator[None]:
    """While resuming: silence the missing-key warning for exactly the frozen parameters."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    frozen |= {name for name, _ in model.named_buffers()}
    log = logging.getLogger("transformers.trainer")
    quiet = _MissingFrozenKeys(frozen)
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)
