"""Training a cell with the Hugging Face Trainer: collation, per-epoch evaluation,
checkpoint selection."""

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
from torch.utils.data import DataLoader
from transformers import TrainerCallback

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


def predict(model: PromptedModel, encoded: Encoded, collator: FeatureCollator, batch_size: int) -> np.ndarray:
    """Logits for every feature, in order, padded along the token axis with -1e4."""
    model.eval()
    device = next(model.parameters()).device
    outputs: list[np.ndarray] = []
    loader = DataLoader(encoded.features, batch_size=batch_size, collate_fn=collator)
    with torch.no_grad():
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()
                     if k not in ("labels", "start_positions", "end_positions")}
            outputs.append(model(**batch)["logits"].float().cpu().numpy())
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
        results = {name: self.task.score(predict(model, enc, self.collator, self.batch_size), enc)
                   for name, enc in self.splits.items()}
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
