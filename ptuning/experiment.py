"""Everything one cell trains with, built from its checked settings: backbone, method,
head and encoded splits; training with the Hugging Face Trainer and checkpoint selection."""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from ptuning.backbones import Backbone, load_backbone
from ptuning.checkpoints import (
    Checkpointer,
    CheckpointOnSignal,
    latest_checkpoint,
    load_cell_state,
    quiet_frozen_keys,
)
from ptuning.config import LoggerName, Precision, Scheduler, Selection, Settings
from ptuning.methods import build_method
from ptuning.model import PromptedModel
from ptuning.tasks import Encoded, Task
from ptuning.tasks.data import Splits
from ptuning.tracking import WandbRun
from ptuning.training import FeatureCollator, PeakMemory, Selector

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Experiment:
    settings: Settings
    task: Task
    splits: Splits
    backbone: Backbone
    model: PromptedModel
    encoded: dict[str, Encoded]
    max_length: int

    @classmethod
    def build(cls, settings: Settings, task: Task, splits: Splits, max_length: int,
              model_config: Any = None) -> Experiment:
        """Load the backbone (from ``model_config`` when already read), attach the method
        and head, encode the splits."""
        seed_everything(settings.seed)
        backbone = load_backbone(settings.model, model_config)
        method = build_method(settings.method, backbone, task.label_words)
        model = PromptedModel(backbone, method, task.head, max(task.num_labels, 1), settings.train.head_dropout)
        tokenizer = backbone.tokenizer
        encoded = {"train": task.encode(splits.train, tokenizer, max_length, train=True),
                   "validation": task.encode(splits.validation, tokenizer, max_length, train=False)}
        if splits.test:
            encoded["test"] = task.encode(splits.test, tokenizer, max_length, train=False)
        if splits.selection:
            encoded["selection"] = task.encode(splits.selection, tokenizer, max_length, train=False)
        return cls(settings, task, splits, backbone, model, encoded, max_length)

    def describe(self) -> dict[str, Any]:
        """Record fields known before training."""
        counts = self.model.parameter_counts()
        model = self.settings.model
        task = self.task.describe()
        if "test" not in self.encoded:
            task["reported_split"] = "validation"
        return {
            "task": task,
            "model": {"name": model.name, "display": model.display or model.name,
                      "family": self.backbone.family, "hf_name": model.hf_name,
                      "backbone_params": counts["backbone"]},
            "method": self.model.method.describe(),
            "params": counts,
            "data": {"source": self.settings.data.source.value,
                     "train_examples": len(self.splits.train), "eval_examples": len(self.splits.validation),
                     "test_examples": len(self.splits.test), "selection_examples": len(self.splits.selection),
                     "train_features": len(self.encoded["train"].features),
                     "max_length": self.max_length, "split_note": self.splits.note},
        }

    def start_tracking(self, runs_dir: Path, record: dict[str, Any], run_id: str | None) -> WandbRun | None:
        """The cell's W&B run (``run_id``: the run an interrupted attempt began, resumed)."""
        logger = self.settings.logger
        if logger.name is LoggerName.none:
            return None
        cell = record["cell"]
        return WandbRun(logger, runs_dir, name=f"{cell['task']}-{cell['model']}-{cell['method']}-s{cell['seed']}",
                        group=self.settings.group, tags=[cell["method"], cell["model"], cell["task"]],
                        config=record["config"], run_id=run_id)

    def _hf_scheduler(self) -> str:
        """The Trainer's scheduler name (exponential runs as constant plus our own LambdaLR)."""
        train = self.settings.train
        if train.scheduler is Scheduler.exponential:
            return "constant"
        if train.scheduler is Scheduler.constant and (train.warmup_steps or train.warmup_ratio):
            return "constant_with_warmup"  # HF's "constant" ignores warmup
        return train.scheduler.value

    def _trainer(self, directory: Path, selector: Selector, checkpointer: Checkpointer | None) -> Trainer:
        train = self.settings.train
        lr = self.settings.lr
        use_cuda = torch.cuda.is_available()
        args = TrainingArguments(
            output_dir=str(directory / "trainer"), num_train_epochs=float(train.epochs),
            max_steps=int(train.max_steps), per_device_train_batch_size=int(train.batch_size),
            learning_rate=lr, weight_decay=float(train.weight_decay),
            warmup_steps=float(train.warmup_ratio) if train.warmup_ratio else int(train.warmup_steps),
            lr_scheduler_type=self._hf_scheduler(),
            max_grad_norm=float(train.max_grad_norm), seed=self.settings.seed, logging_steps=int(train.logging_steps),
            save_strategy="no", eval_strategy="no",
            report_to=["wandb"] if self.settings.logger.name is LoggerName.wandb else [],
            remove_unused_columns=False, disable_tqdm=True, dataloader_num_workers=0, use_cpu=not use_cuda,
            bf16=train.precision is Precision.bf16, fp16=train.precision is Precision.fp16,
            logging_nan_inf_filter=False,
        )
        optimizers = (None, None)
        if train.scheduler is Scheduler.exponential:  # official NER/QA: ExponentialLR(0.95) stepped per epoch
            params = [p for p in self.model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=float(train.weight_decay))
            per_epoch = max(1, -(-len(self.encoded["train"].features) // int(train.batch_size)))
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.95 ** (step // per_epoch))
            optimizers = (optimizer, schedule)
        return Trainer(model=self.model, args=args, train_dataset=self.encoded["train"].features,
                       data_collator=selector.collator, optimizers=optimizers,
                       callbacks=[selector] + ([checkpointer] if checkpointer else []))  # selector first

    def train_and_evaluate(self, directory: Path, tracker: WandbRun | None) -> dict[str, Any]:
        """Train, select the checkpoint, save the small artefact; return record fields."""
        train = self.settings.train
        if train.threads:
            torch.set_num_threads(train.threads)
        eval_splits = {k: v for k, v in self.encoded.items() if k != "train"}
        keeps_state = not self.model.method.trains_backbone and train.save_artefact
        selector = Selector(
            self.task, eval_splits, FeatureCollator(self.backbone.tokenizer.pad_token_id),
            int(train.eval_batch_size), rule=train.selection.value, eval_steps=int(train.eval_steps),
            log=tracker.log if tracker else None,
            keep_state=self.model.artefact_state if keeps_state else None,
        )
        checkpoint = latest_checkpoint(directory) if train.checkpoint_steps is not None else None
        seconds_before = 0.0
        if checkpoint is not None:
            saved = load_cell_state(checkpoint)
            selector.restore(saved["selector"])
            seconds_before = float(saved["seconds"])
            print(f"[resume] {directory}: from {checkpoint.name}", flush=True)
        start = time.perf_counter()
        on_signal = CheckpointOnSignal()
        checkpointer = None
        if train.checkpoint_steps is not None:
            checkpointer = Checkpointer(
                directory, int(train.checkpoint_steps),
                lambda: {"selector": selector.state(), "seconds": seconds_before + time.perf_counter() - start},
                selector.evaluated_at, on_signal)
        trainer = self._trainer(directory, selector, checkpointer)
        device = trainer.args.device
        signals = on_signal.installed() if checkpointer else contextlib.nullcontext()  # no checkpoint: signals act at once
        with PeakMemory(device) as memory, signals, quiet_frozen_keys(self.model):
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        total = seconds_before + time.perf_counter() - start
        chosen = selector.chosen
        if chosen is None:
            raise RuntimeError("no evaluation happened")
        rules = {Selection.best: ("best_eval_epoch", "metrics of the evaluation chosen by the rule; the "
                                  "official P-Tuning v2 protocol selects on the split it reports"),
                 Selection.clean: ("best_heldout_epoch", "epoch chosen on a held-out slice of train "
                                   "(data.selection_holdout); validation and test are reported at that epoch and "
                                   "took no part in the choice"),
                 Selection.last: ("last", "metrics of the final evaluation")}
        rule, note = rules[train.selection]
        result = {
            "metrics": chosen.metrics["validation"],
            "test_metrics": chosen.metrics.get("test", {}),
            "history": [{"epoch": e.epoch, "step": e.step, **{f"{s}/{k}": v for s, m in e.metrics.items()
                                                               for k, v in m.items()}}
                        for e in selector.history],
            "selection": {"rule": rule, "metric": self.task.primary_metric, "split": selector.deciding_split,
                          "epoch": chosen.epoch, "step": chosen.step, "n_evals": len(selector.history),
                          "note": note},
            "cost": {"train_seconds": round(total - selector.eval_seconds, 3),
                     "eval_seconds": round(selector.eval_seconds, 3), "peak_memory_mb": round(memory.peak, 1),
                     "device": str(device), "threads": torch.get_num_threads(),
                     "steps": trainer.state.global_step,
                     "resumed_from_step": int(checkpoint.name.split("-")[1]) if checkpoint else None},
        }
        params = self.model.parameter_counts()
        if selector.chosen_state is not None:
            self.model.method.load_state_dict(
                {k[7:]: v for k, v in selector.chosen_state.items() if k.startswith("method.")})
            self.model.head.load_state_dict(
                {k[5:]: v for k, v in selector.chosen_state.items() if k.startswith("head.")})
        if self.model.method.trains_backbone:
            params["stored"] = params["total"]
        else:
            folded = self.model.method.fold_for_storage()
            params["stored"] = sum(v.numel() for v in self.model.artefact_state().values())
            if selector.chosen_state is not None:
                path = directory / "prompt.safetensors"
                self.model.save_artefact(path, {
                    "method": self.settings.method.name, "model": self.settings.model.name,
                    "task": self.task.name, "epoch": str(chosen.epoch),
                    "stored_form": "folded" if folded else "trained"})
                result["artefact"] = {"path": path.name, "bytes": path.stat().st_size}
        result["params"] = params
        return result
