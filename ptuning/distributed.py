"""One cell across the processes of one node (one process per GPU).

A cell finds itself distributed when the torch.distributed ``env://`` variables are set:
``RANK`` and ``WORLD_SIZE`` (with ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), as
``torchrun --nproc_per_node N -m experiments.run ...`` sets them. A SLURM job started by
submitit with several tasks (``tasks_per_node`` = the model config's GPU count) has them
exported here from submitit's own description of the job
(``submitit.helpers.TorchDistributedEnvironment``), so every task runs the same cell.

:func:`init_world` is the one place that detects this and joins the process group; the rest
of the code asks the returned :class:`World` who it is. Every process trains and evaluates;
rank 0 alone writes the record and the artefact and talks to W&B; a checkpoint is written by
all ranks together (:mod:`ptuning.checkpoints`).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ptuning.errors import ConfigError

T = TypeVar("T")

#: the env:// variables a distributed cell needs
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place among the processes running one cell."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the cell's files."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (picklable)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def from_main(self, read: Callable[[], T]) -> T:
        """``read()`` run by rank 0, its value (or its exception, raised) on every rank: one
        decision for all, e.g. which checkpoint to resume from."""
        if not self.distributed:
            return read()
        if self.main:
            try:
                value = read()
            except Exception as err:
                self.broadcast((None, err))
                raise
            return self.broadcast((value, None))[0]
        value, err = self.broadcast(None)
        if err is not None:
            raise err
        return value

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` in rank order on rank 0; None on the others."""
        if not self.distributed:
            return [value]
        out: list[Any] | None = [None] * self.size if self.main else None
        dist.gather_object(value, out, dst=0)
        return out

    def any(self, flag: bool, device: torch.device | None = None) -> bool:
        """Whether ``flag`` is true on some rank (a collective: every rank must call it)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=device or _collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over the ranks, on its device and without waiting for it on
        the host (a collective)."""
        total = value.clone()
        if self.distributed:
            dist.all_reduce(total)
        return total


#: a cell on one process
SINGLE = World()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def export_submitit_env() -> None:
    """Inside a submitit job with more than one task, export the env:// variables from
    submitit's description of the job (rank = task id, rank 0's host as master, a port drawn
    from the job id), unless they are set already. Each task keeps every GPU of the node
    visible and uses the one of its ``LOCAL_RANK``."""
    if not os.environ.get("SUBMITIT_EXECUTOR") or "RANK" in os.environ:
        return
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def current_world() -> World:
    """The :class:`World` the env:// variables describe (a single process when unset)."""
    if "WORLD_SIZE" not in os.environ and "RANK" not in os.environ:
        return World()
    missing = [name for name in ENV_VARS if name not in os.environ]
    if missing:
        raise ConfigError(f"environment: {', '.join(missing)} unset while "
                          f"{' and '.join(n for n in ('RANK', 'WORLD_SIZE') if n in os.environ)} is set; a "
                          f"distributed cell needs all of {', '.join(ENV_VARS)} (torchrun sets them)")
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    if not 0 <= world.rank < world.size:
        raise ConfigError(f"environment: RANK={world.rank} with WORLD_SIZE={world.size}; allowed: "
                          f"0 <= RANK < WORLD_SIZE")
    return world


def init_world() -> World:
    """Detect the cell's processes (:func:`export_submitit_env`, :func:`current_world`) and,
    with more than one, join their process group (gloo for CPU tensors, NCCL for CUDA ones;
    one GPU per process: ``cuda:LOCAL_RANK``). Joining twice is a no-op (a grid of cells
    run by the same processes)."""
    export_submitit_env()
    world = current_world()
    if not world.distributed or dist.is_initialized():
        return world
    if torch.cuda.is_available():
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"environment: LOCAL_RANK={world.local_rank} but this node shows "
                              f"{torch.cuda.device_count()} GPU(s); run one process per GPU")
        torch.cuda.set_device(world.local_rank)
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    atexit.register(_leave)
    return world


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
