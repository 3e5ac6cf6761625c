"""What a cell will cost before it runs: the dry run's model of FLOPs and GPU-hours.

Training reads ``train_rows x tokens_per_row`` padded tokens per epoch and every evaluation
reads ``eval_rows x tokens_per_row`` (the task's :class:`~ptuning.tasks.TaskSize`, capped by
``data.max_*_samples``). A token costs ``2N`` FLOPs forward for a backbone of ``N``
parameters (Kaplan et al. 2020, "Scaling laws", C_forward ~ 2N) and, in training, a backward
pass of ``4N`` when the method trains the backbone (activation and weight gradients) or ``2N``
when the backbone is frozen (activation gradients only; the prompt, prefix, LoRA and head
weights are a negligible share)::

    FLOPs = train_tokens x (6N | 4N) + eval_tokens x 2N
    GPU-hours = FLOPs / (peak FLOP/s of the precision x utilisation) / 3600

What it leaves out, so a figure is a planning estimate, not a promise: the attention scores
(``2 x layers x context x width`` per token, a few per cent at 128-512 tokens), the tokens an
input prompt adds (``method.length`` per sequence), the token embedding's share of ``N`` (a
lookup, no matmul: the estimate is high for large-vocabulary models such as XLM-R), data
loading and checkpoint writing. The throughput is stated, not measured: an A100's datasheet
peak per precision times an assumed model-FLOPs utilisation (:data:`A100`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from ptuning.config import DataSource, Precision, Settings
from ptuning.tasks import Task

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Throughput:
    """A GPU's dense peak FLOP/s per training precision and the share of it a cell achieves."""

    name: str
    peak_flops: dict[str, float]
    #: model FLOPs utilisation assumed for every cell (an assumption, said in every dry run)
    utilisation: float
    source: str

    def flops_per_second(self, precision: Precision) -> float:
        return self.peak_flops[precision.value] * self.utilisation


#: NVIDIA A100 SXM datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4): FP32 19.5 TFLOP/s
#: (fp32 cells: PyTorch leaves TF32 matmuls off by default), BF16/FP16 tensor cores 312.
A100 = Throughput("A100", {"fp32": 19.5e12, "bf16": 312e12, "fp16": 312e12}, utilisation=0.3,
                  source="NVIDIA A100 datasheet peaks; 30% model-FLOPs utilisation assumed")


@dataclass(frozen=True)
class CellCost:
    """The estimate for one cell."""

    params: float
    train_tokens: float
    eval_tokens: float
    flops: float
    gpus: int
    gpu_hours: float

    @property
    def wall_hours(self) -> float:
        return self.gpu_hours / self.gpus


def epochs_run(settings: Settings, train_rows: int) -> float:
    """Epochs a cell trains: ``train.epochs``, or ``train.max_steps`` batches when set."""
    train = settings.train
    if train.max_steps > 0:
        return train.max_steps * train.batch_size / max(train_rows, 1)
    return float(train.epochs)


def evaluations_run(settings: Settings, train_rows: int, epochs: float) -> float:
    """How many times the evaluation splits are scored: at each epoch end (or every
    ``train.eval_steps`` steps), plus once at the end of training when that is not one of
    them (the selector never scores one step twice)."""
    train = settings.train
    if train.eval_steps:
        steps = math.ceil(epochs * train_rows / train.batch_size)
        return steps // train.eval_steps + (1 if steps % train.eval_steps else 0)
    return math.floor(epochs) + (0 if epochs == math.floor(epochs) else 1)


def estimate(settings: Settings, task: Task, params: float, trains_backbone: bool, gpus: int,
             throughput: Throughput = A100, per_row: float | None = None) -> CellCost:
    """The cost of one cell (see the module docstring for the model). ``per_row``: padded
    tokens per row when measured on the cell's own rows (synthetic data), else the task's. A
    task without a known size (``task.size is None``) costs NaN: unknown, not zero."""
    data = settings.data
    if data.source is DataSource.synthetic:
        train_rows, eval_rows = data.synthetic_train, data.synthetic_eval
    elif task.size is None:
        return CellCost(params, math.nan, math.nan, math.nan, gpus, math.nan)
    else:
        train_rows, eval_rows = task.size.train_rows, task.size.eval_rows
    train_rows = min(train_rows, data.max_train_samples or train_rows)
    eval_rows = min(eval_rows, data.max_eval_samples or eval_rows)
    epochs = epochs_run(settings, train_rows)
    per_row = per_row if per_row is not None else task.size.tokens_per_row
    train_tokens = train_rows * per_row * epochs
    eval_tokens = eval_rows * per_row * evaluations_run(settings, train_rows, epochs)
    flops = train_tokens * (6 if trains_backbone else 4) * params + eval_tokens * 2 * params
    hours = flops / throughput.flops_per_second(settings.train.precision) / SECONDS_PER_HOUR
    return CellCost(params, train_tokens, eval_tokens, flops, gpus, hours)


def with_stage(cost: CellCost, stage: list[CellCost], throughput: Throughput, precision: Precision) -> CellCost:
    """``cost`` plus the training of MPT-2's multi-task stage (``stage``: the estimate of each
    stage task at the stage's epochs; the stage trains with a frozen backbone and evaluates
    nothing)."""
    tokens = sum(c.train_tokens for c in stage)
    flops = tokens * 4 * cost.params
    hours = flops / throughput.flops_per_second(precision) / SECONDS_PER_HOUR
    return CellCost(cost.params, cost.train_tokens + tokens, cost.eval_tokens, cost.flops + flops, cost.gpus,
                    cost.gpu_hours + hours)


def tokens_per_row(features: list[dict[str, Any]], rows: int, batch_size: int = 32, seed: int = 0) -> float:
    """Padded tokens the model reads per row when ``features`` (a task's encoding of ``rows``
    rows) are shuffled into batches padded to their longest sequence, as the collator does;
    a multiple-choice feature counts every choice. How :attr:`TaskSize.tokens_per_row` is measured."""
    order = list(range(len(features)))
    random.Random(seed).shuffle(order)
    total = 0
    for start in range(0, len(order), batch_size):
        batch = [features[i]["input_ids"] for i in order[start:start + batch_size]]
        sequences = [s for f in batch for s in (f if f and isinstance(f[0], list) else [f])]
        total += max(len(s) for s in sequences) * len(sequences)
    return total / rows
