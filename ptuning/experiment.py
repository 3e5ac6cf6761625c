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

from ptuning.artefacts import ARTEFACT_NAME, describe
from ptuning.artefacts import save as save_artefact
from ptuning.backbones import Backbone, load_backbone
from ptuning.checkpoints import (
    Checkpointer,
    CheckpointOnSignal,
    latest_checkpoint,
    load_cell_state,
    quiet_frozen_keys,
)
from ptuning.config import LoggerName, Scheduler, Selection, Settings
from ptuning.distributed import SINGLE, World
from ptuning.methods import build_method
from ptuning.model import PromptedModel
from ptuning.tasks import Encoded, Task
from ptuning.tasks.data import Splits
from ptuning.tracking import WandbRun
from ptuning.training import (
    CellTrainer,
    FeatureCollator,
    PeakMemory,
    Selector,
    forget_accelerate_state,
    layers_to_shard,
    training_arguments,
)

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
    #: the processes that run the cell together (:mod:`ptuning.distributed`)
    world: World = SINGLE

    @classmethod
    def build(cls, settings: Settings, task: Task, splits: Splits, max_length: int,
              model_config: Any = None, world: World = SINGLE) -> Experiment:
        """Load the backbone (from ``model_config`` when already read), attach the method
        and head, encode the splits (every rank builds the same model from the same seed)."""
        seed_everything(settings.seed)
        verbalizer = task.head == "verbalizer"
        backbone = load_backbone(settings.model, model_config, masked_lm=verbalizer)
        method = build_method(settings.method, backbone, task.label_words)
        model = PromptedModel(backbone, method, task.head, max(task.num_labels, 1), settings.train.head_dropout,
                              label_words=task.verbalizer if verbalizer else None)
        tokenizer = backbone.tokenizer
        encoded = {"train": task.encode(splits.train, tokenizer, max_length, train=True),
                   "validation": task.encode(splits.validation, tokenizer, max_length, train=False)}
        if splits.test:
            encoded["test"] = task.encode(splits.test, tokenizer, max_length, train=False)
        for name, rows in splits.extra_tests.items():
            encoded[f"test_{name}"] = task.encode(rows, tokenizer, max_length, train=False)
        if splits.selection:
            encoded["selection"] = task.encode(splits.selection, tokenizer, max_length, train=False)
        return cls(settings, task, splits, backbone, model, encoded, max_length, world)

    @property
    def strategy(self) -> str:
        """How the cell's processes share the work: ``single`` (one process), ``fsdp`` (the
        backbone trains: parameters, gradients and optimizer state sharded over the
        processes, FSDP2 full sharding, one unit per transformer layer) or ``ddp`` (frozen
        backbone: every process holds the model, the trained gradients are averaged)."""
        if not self.world.distributed:
            return "single"
        return "fsdp" if self.model.method.trains_backbone else "ddp"

    def describe(self) -> dict[str, Any]:
        """Record fields known before training."""
        counts = self.model.parameter_counts()
        model = self.settings.model
        task = self.task.describe()
        if "test" not in self.encoded:
            task["reported_split"] = "validation"
        task["extra_tests"] = {name: display for name, display in task["extra_tests"].items()
                               if f"test_{name}" in self.encoded}
        return {
            "task": task,
            "model": {"name": model.name, "display": model.display or model.name,
                      "family": self.backbone.family, "hf_name": model.hf_name,
                      "backbone_params": counts["backbone"]},
            "method": {**self.model.method.describe(), "trains_backbone": self.model.method.trains_backbone},
            "params": counts,
            "data": {"source": self.settings.data.source.value,
                     "train_examples": len(self.splits.train), "eval_examples": len(self.splits.validation),
                     "test_examples": len(self.splits.test), "selection_examples": len(self.splits.selection),
                     "extra_test_examples": {name: len(rows) for name, rows in self.splits.extra_tests.items()},
                     "train_features": len(self.encoded["train"].features),
                     "max_length": self.max_length, "split_note": self.splits.note},
        }

    def start_tracking(self, runs_dir: Path, record: dict[str, Any], run_id: str | None) -> WandbRun | None:
        """The cell's W&B run (``run_id``: the run an interrupted attempt began, resumed), on
        rank 0 only."""
        logger = self.settings.logger
        if logger.name is LoggerName.none or not self.world.main:
            return None
        cell = record["cell"]
        return WandbRun(logger, runs_dir, name=f"{cell['task']}-{cell['model']}-{cell['method']}-s{cell['seed']}",
                        group=self.settings.group, tags=[cell["method"], cell["model"], cell["task"]],
                        config=record["config"], run_id=run_id)

    def _trainer(self, directory: Path, selector: Selector, checkpointer: Checkpointer | None) -> CellTrainer:
        train = self.settings.train
        lr = self.settings.lr
        sharded = self.strategy == "fsdp"
        if self.world.distributed:
            forget_accelerate_state()
        fsdp_config = None
        if sharded:  # FSDP2 full sharding; checkpoints as torch.distributed.checkpoint shards
            fsdp_config = {"version": 2, "reshard_after_forward": True, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                           "transformer_layer_cls_to_wrap": layers_to_shard(self.backbone.model),
                           "state_dict_type": "SHARDED_STATE_DICT"}
        args = training_arguments(
            train, str(directory / "trainer"), self.settings.seed, lr, train.epochs,
            int(train.batch_size) // self.world.size,
            report_to=["wandb"] if self.settings.logger.name is LoggerName.wandb else [],
            fsdp=True if sharded else None, fsdp_config=fsdp_config,
            ddp_find_unused_parameters=False if self.strategy == "ddp" else None,  # every trained parameter is used
        )
        per_epoch = None
        if train.scheduler is Scheduler.exponential:  # official NER/QA: ExponentialLR(0.95) stepped per epoch
            per_epoch = max(1, -(-len(self.encoded["train"].features) // int(train.batch_size)))
        trainer = CellTrainer(model=self.model, args=args, train_dataset=self.encoded["train"].features,
                              data_collator=selector.collator, world=self.world, exponential_per_epoch=per_epoch,
                              callbacks=[selector] + ([checkpointer] if checkpointer else []))  # selector first
        if checkpointer is not None and sharded:
            checkpointer.accelerator = trainer.accelerator
        return trainer

    def train_and_evaluate(self, directory: Path, tracker: WandbRun | None) -> dict[str, Any]:
        """Train, select the checkpoint, save the small artefact; return record fields."""
        train = self.settings.train
        eval_splits = {k: v for k, v in self.encoded.items() if k != "train"}
        keeps_state = not self.model.method.trains_backbone and train.save_artefact
        selector = Selector(
            self.task, eval_splits, FeatureCollator(self.backbone.tokenizer.pad_token_id),
            int(train.eval_batch_size), rule=train.selection.value, eval_steps=int(train.eval_steps),
            log=tracker.log if tracker else None,
            keep_state=self.model.artefact_state if keeps_state else None, world=self.world,
        )
        checkpoint = None  # rank 0's choice: every rank resumes from the same checkpoint
        if train.checkpoint_steps is not None:
            checkpoint = self.world.from_main(lambda: latest_checkpoint(directory))
        seconds_before = 0.0
        if checkpoint is not None:
            saved = load_cell_state(checkpoint)
            selector.restore(saved["selector"])
            seconds_before = float(saved["seconds"])
            if self.world.main:
                print(f"[resume] {directory}: from {checkpoint.name}", flush=True)
        start = time.perf_counter()
        on_signal = CheckpointOnSignal()
        checkpointer = None
        if train.checkpoint_steps is not None:
            checkpointer = Checkpointer(
                directory, int(train.checkpoint_steps),
                lambda: {"selector": selector.state(), "seconds": seconds_before + time.perf_counter() - start},
                selector.evaluated_at, on_signal, self.world)
        trainer = self._trainer(directory, selector, checkpointer)
        if train.threads:  # after the Trainer: accelerate sets its own count on CPU processes without OMP_NUM_THREADS
            torch.set_num_threads(train.threads)
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
            "extra_test_metrics": {name: chosen.metrics[f"test_{name}"] for name in self.splits.extra_tests},
            "history": [{"epoch": e.epoch, "step": e.step, **{f"{s}/{k}": v for s, m in e.metrics.items()
                                                               for k, v in m.items()}}
                        for e in selector.history],
            "selection": {"rule": rule, "metric": self.task.primary_metric, "split": selector.deciding_split,
                          "epoch": chosen.epoch, "step": chosen.step, "n_evals": len(selector.history),
                          "note": note},
            "cost": {"train_seconds": round(total - selector.eval_seconds, 3),
                     "eval_seconds": round(selector.eval_seconds, 3), "peak_memory_mb": round(memory.peak, 1),
                     "device": str(device), "threads": torch.get_num_threads(),
                     "processes": self.world.size, "strategy": self.strategy,
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
            if selector.chosen_state is not None and self.world.main:
                path = directory / ARTEFACT_NAME
                settings = self.settings
                cell = {"method": settings.method.name, "model": settings.model.name, "task": self.task.name,
                        "seed": settings.seed, "group": settings.group}
                description = describe(settings.method, settings.model, self.backbone, self.task, self.max_length,
                                       settings.train.head_dropout, cell, chosen.epoch)
                save_artefact(self.model, path, description, folded)
                result["artefact"] = {"path": path.name, "bytes": path.stat().st_size}
        result["params"] = params
        return result
