"""Training a cell with the Hugging Face Trainer: collation, per-epoch evaluation,
checkpoint selection, and the Trainer as a cell runs it on one or several processes."""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from ptuning.config import Precision, Scheduler, TrainConfig
from ptuning.distributed import SINGLE, World
from ptuning.model import PromptedModel
from ptuning.tasks import Encoded, Task

PAD_LABEL = -100


class PeakMemory:
    """Peak device memory during a block: CUDA allocator peak, or sampled process RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._stop = device, 0.0, threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            import psutil

            process = psutil.Process()

            def sample() -> None:
                while not self._stop.is_set():
                    self.peak = max(self.peak, process.memory_info().rss / 2**20)
                    self._stop.wait(0.05)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()


class FeatureCollator:
    """Pads features to the longest in the batch (multiple choice: (batch, choices, T))."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0,
                    "labels": PAD_LABEL}

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in features[0]:
            values = [f[key] for f in features]
            if key in self.pad and isinstance(values[0], list) and values[0] and isinstance(values[0][0], list):
                width = max(len(v) for choices in values for v in choices)
                batch[key] = torch.tensor([[v + [self.pad[key]] * (width - len(v)) for v in choices]
                                           for choices in values])
            elif key in self.pad and isinstance(values[0], list):
                width = max(len(v) for v in values)
                batch[key] = torch.tensor([v + [self.pad[key]] * (width - len(v)) for v in values])
            else:
                batch[key] = torch.tensor(values)
        return batch


def predict(model: nn.Module, encoded: Encoded, collator: FeatureCollator, batch_size: int) -> np.ndarray:
    """Logits for every feature, in order, padded along the token axis with -1e4."""
    return predict_shared(model, encoded, collator, batch_size, SINGLE)


def predict_shared(model: nn.Module, encoded: Encoded, collator: FeatureCollator, batch_size: int,
                   world: World) -> np.ndarray | None:
    """:func:`predict` by the cell's processes together: the batches of a one-process run are
    shared out whole (batch ``j`` on rank ``j mod N``), so every feature is predicted exactly
    once, in the batch it has on one process; rank 0 gathers the logits and returns them, the
    other ranks return None. Every rank runs the same number of forward passes (one out of
    batches repeats its last batch and drops the result): a sharded model gathers its
    weights in each forward."""
    model.eval()
    device = next(model.parameters()).device
    features = encoded.features
    starts = list(range(0, len(features), batch_size))
    rounds = -(-len(starts) // world.size)
    mine: list[tuple[int, np.ndarray]] = []
    with torch.no_grad():
        for turn in range(rounds):
            index = turn * world.size + world.rank
            start = starts[min(index, len(starts) - 1)]
            batch = collator(features[start:start + batch_size])
            batch = {k: v.to(device) for k, v in batch.items()
                     if k not in ("labels", "start_positions", "end_positions")}
            logits = model(**batch)["logits"].float().cpu().numpy()
            if index < len(starts):
                mine.append((index, logits))
    gathered = world.gather(mine)
    if gathered is None:
        return None
    outputs = [logits for _, logits in sorted((pair for part in gathered for pair in part), key=lambda pair: pair[0])]
    if not outputs:
        return np.zeros((0, 2))
    if outputs[0].ndim == 2:
        return np.concatenate(outputs)
    width = max(o.shape[1] for o in outputs)
    padded = [np.pad(o, [(0, 0), (0, width - o.shape[1])] + [(0, 0)] * (o.ndim - 2), constant_values=-1e4)
              for o in outputs]
    return np.concatenate(padded)


@dataclass
class Evaluation:
    epoch: float
    step: int
    metrics: dict[str, dict[str, float]]  # split -> metrics


@dataclass
class Selector(TrainerCallback):
    """Evaluates on every split at each epoch end (or every ``eval_steps``) and keeps
    the checkpoint chosen by ``rule``: ``best`` (best primary metric on validation,
    the official P-Tuning v2 protocol), ``clean`` (best on the ``selection`` split, held out
    from train; validation never decides) or ``last``."""

    task: Task
    splits: dict[str, Encoded]
    collator: FeatureCollator
    batch_size: int
    rule: str = "best"
    eval_steps: int = 0
    log: Callable[[dict[str, float], int], None] | None = None
    keep_state: Callable[[], dict[str, torch.Tensor]] | None = None
    #: the cell's processes: each evaluates its share of the batches (:func:`predict_shared`),
    #: rank 0 scores and every rank keeps the same history and choice
    world: World = SINGLE
    history: list[Evaluation] = field(default_factory=list)
    chosen: Evaluation | None = None
    chosen_state: dict[str, torch.Tensor] | None = None
    eval_seconds: float = 0.0

    @property
    def deciding_split(self) -> str:
        """The split whose primary metric chooses the checkpoint."""
        return "selection" if self.rule == "clean" else "validation"

    def evaluate(self, model: PromptedModel, epoch: float, step: int) -> None:
        if self.history and self.history[-1].step == step:
            return
        start = time.perf_counter()
        logits = {name: predict(model, enc, self.collator, self.batch_size) if not self.world.distributed
                  else predict_shared(model, enc, self.collator, self.batch_size, self.world)
                  for name, enc in self.splits.items()}
        scored = ({name: self.task.score(logits[name], enc) for name, enc in self.splits.items()}
                  if self.world.main else None)
        results: dict[str, dict[str, float]] = self.world.broadcast(scored)
        self.eval_seconds += time.perf_counter() - start
        model.train()
        current = Evaluation(epoch, step, results)
        self.history.append(current)
        if self.log is not None:
            self.log({f"{split}/{k}": v for split, m in results.items() for k, v in m.items()}, step)
        decides = self.deciding_split
        primary = results[decides][self.task.primary_metric]
        best = self.chosen.metrics[decides][self.task.primary_metric] if self.chosen else -math.inf
        if self.rule == "last" or primary > best:
            self.chosen = current
            if self.keep_state is not None:
                self.chosen_state = copy.deepcopy(self.keep_state())

    def evaluated_at(self, step: int) -> bool:
        return bool(self.history) and self.history[-1].step == step

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the selector (see :mod:`ptuning.checkpoints`)."""
        chosen = next((i for i, e in enumerate(self.history) if e is self.chosen), None)
        return {"history": [dataclasses.asdict(e) for e in self.history], "chosen": chosen,
                "chosen_state": self.chosen_state, "eval_seconds": self.eval_seconds}

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`state` as saved in a checkpoint."""
        self.history = [Evaluation(**e) for e in saved["history"]]
        self.chosen = self.history[saved["chosen"]] if saved["chosen"] is not None else None
        self.chosen_state = saved["chosen_state"]
        self.eval_seconds = float(saved["eval_seconds"])

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if not self.eval_steps:
            self.evaluate(model, float(state.epoch or 0), state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.eval_steps and state.global_step % self.eval_steps == 0:
            self.evaluate(model, float(state.epoch or 0), state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.evaluate(model, float(state.epoch or 0), state.global_step)


# --------------------------------------------------------------------------- the Trainer


def loss_items(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """How many terms a head's mean loss averages over in this batch: the labels that are not
    ``-100`` (a label per example, or per token for NER), else one per example (span QA)."""
    if "labels" in inputs:
        return inputs["labels"].ne(PAD_LABEL).sum()
    positions = inputs["start_positions"]
    return torch.tensor(positions.numel(), device=positions.device)


def layers_to_shard(backbone: nn.Module) -> list[str]:
    """The class name of the backbone's transformer layers, which FSDP wraps one unit each
    (the rest, embeddings included, stays in the root unit: the cell's model looks up the
    input embeddings itself, outside the backbone's embedding module)."""
    stacks = [m for m in backbone.modules() if isinstance(m, nn.ModuleList) and len(m) > 0
              and len({type(layer) for layer in m}) == 1]
    layers = getattr(getattr(backbone, "config", None), "num_hidden_layers", None)
    if layers is not None:
        stacks = [m for m in stacks if len(m) == layers]
    if not stacks:
        raise ValueError(f"{type(backbone).__name__}: no stack of {layers or 'repeated'} layers to shard")
    return [type(max(stacks, key=len)[0]).__name__]


def forget_accelerate_state() -> None:
    """Drop accelerate's process-wide state (its Borg singletons outlive a Trainer), so the
    next ``TrainingArguments`` and Trainer set it up for their own cell: one cell of a grid
    run by the same processes may shard and the next not. Call before ``TrainingArguments``."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


class _ExpectSharded(TrainerCallback):
    """Stops a run asked to shard whose model is not an FSDP module once the Trainer has
    prepared it (nothing else may stand in for FSDP)."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from torch.distributed.fsdp import FSDPModule

        if not isinstance(model, FSDPModule):
            raise RuntimeError(f"FSDP asked for, but the Trainer prepared a {type(model).__name__}")


def training_arguments(train: TrainConfig, output_dir: str, seed: int, lr: float, epochs: float,
                       batch_size: int, **extra: Any) -> TrainingArguments:
    """The Trainer's arguments for ``train`` (a cell's, or MPT-2's stage's with its own
    epochs and rate): no Trainer checkpoints or evaluation (the suite does both), the
    exponential schedule as constant plus :class:`CellTrainer`'s own ``LambdaLR``, and HF's
    ``constant`` replaced by ``constant_with_warmup`` when there is warmup (HF's ignores it)."""
    scheduler = train.scheduler.value
    if train.scheduler is Scheduler.exponential:
        scheduler = "constant"
    elif train.scheduler is Scheduler.constant and (train.warmup_steps or train.warmup_ratio):
        scheduler = "constant_with_warmup"
    return TrainingArguments(
        output_dir=output_dir, num_train_epochs=float(epochs), max_steps=int(train.max_steps),
        per_device_train_batch_size=batch_size, learning_rate=lr, weight_decay=float(train.weight_decay),
        warmup_steps=float(train.warmup_ratio) if train.warmup_ratio else int(train.warmup_steps),
        lr_scheduler_type=scheduler, max_grad_norm=float(train.max_grad_norm), seed=seed,
        logging_steps=int(train.logging_steps), save_strategy="no", eval_strategy="no", remove_unused_columns=False,
        disable_tqdm=True, dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(),
        bf16=train.precision is Precision.bf16, fp16=train.precision is Precision.fp16, logging_nan_inf_filter=False,
        **extra)


class CellTrainer(Trainer):
    """The Hugging Face Trainer as a cell runs it.

    - ``exponential_per_epoch``: the official NER/QA optimisation, AdamW on every trainable
      parameter with the learning rate x0.95 per epoch (``ExponentialLR(0.95)`` stepped each
      epoch, written as a per-step ``LambdaLR``); built here because the Trainer accepts no
      ready optimizer under FSDP.
    - A method that trains parts of the model at their own rates (``Method.optimizer_groups``:
      P-Tuning v1 with ``method.backbone_lr``) gets one AdamW over those groups.
    - Several processes: each averages the loss of its share of the global batch and the
      Trainer averages the ranks' gradients; the loss of rank ``r`` is weighted by
      ``N * n_r / n`` (``n_r`` of the batch's ``n`` loss terms, :func:`loss_items`), so the
      gradient is the one process's mean over the whole batch even when the ranks hold
      different numbers of terms (NER tokens).
    - FSDP on CPU (``fsdp`` set, gloo): accelerate (1.15) keeps its FSDP plugin only on
      accelerator devices and would run DDP instead without a word; here it is turned on
      explicitly, so the Trainer shards with FSDP2's ``fully_shard`` as it does on GPUs.
    """

    def __init__(self, *args: Any, world: World, exponential_per_epoch: int | None = None, **kwargs: Any) -> None:
        self.world, self.exponential_per_epoch = world, exponential_per_epoch  # read by the Trainer's __init__
        super().__init__(*args, **kwargs)
        if self.args.fsdp:
            self.add_callback(_ExpectSharded())

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if not self.args.fsdp or self.is_fsdp_enabled:
            return
        from accelerate.state import PartialState
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        state = self.accelerator.state
        if state.distributed_type is not DistributedType.MULTI_CPU:
            raise RuntimeError(f"FSDP asked for, but accelerate runs {state.distributed_type} without its FSDP plugin")
        plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
        if state.mixed_precision != "no":
            plugin.set_mixed_precision(state.mixed_precision)
        # what AcceleratorState.__init__ does for an accelerator device
        state.fsdp_plugin, state.distributed_type = plugin, DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        self.is_fsdp_enabled = True

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        model = model if model is not None else self.model
        method = getattr(model, "method", None)
        groups = method.optimizer_groups(model, self.args.weight_decay) if method is not None else None
        if self.exponential_per_epoch is None and groups is None:
            return super().create_optimizer(model)
        if self.optimizer is None:  # a group without "lr" runs at the cell's learning rate
            params = groups or [p for p in model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW(params, lr=self.args.learning_rate,
                                               weight_decay=self.args.weight_decay)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> Any:
        if self.exponential_per_epoch is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            per_epoch = self.exponential_per_epoch
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer if optimizer is not None else self.optimizer, lambda step: 0.95 ** (step // per_epoch))
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if not (self.world.distributed and model.training):
            return result
        loss = result[0] if return_outputs else result
        local = loss_items(inputs).to(loss.device, torch.float32)
        loss = loss * (local * self.world.size / self.world.sum(local))
        return (loss, result[1]) if return_outputs else loss
