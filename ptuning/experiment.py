"""Everything one cell needs, built from its config: task, data, backbone, method, head."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from transformers import Trainer, TrainingArguments

from ptuning.backbones import Backbone, BackboneUnavailableError, load_backbone
from ptuning.methods import build_method
from ptuning.model import PromptedModel
from ptuning.runner import PeakMemory, SetupError
from ptuning.tasks import Encoded, Task, get_task
from ptuning.tasks.data import DataUnavailableError, cap_rows, fixed_order, load_splits
from ptuning.tasks.readers import DataFormatError
from ptuning.tracking import WandbRun
from ptuning.training import FeatureCollator, Selector

BAD_INPUT = (ValueError, KeyError, FileNotFoundError, DataUnavailableError, BackboneUnavailableError,
             DataFormatError, NotImplementedError)
TASK_FIELDS = ("name", "max_length")
SCHEDULERS = ("linear", "constant", "exponential")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_task(cfg: DictConfig) -> Task:
    """The registered task with the config's extra options (e.g. WiC ``template``) applied."""
    task = get_task(cfg.task.name)
    for key, value in cfg.task.items():
        if key in TASK_FIELDS:
            continue
        if not hasattr(task, key):
            raise ValueError(f"task={task.name}: unknown option task.{key}")
        setattr(task, key, value)
    return task


@dataclass
class Experiment:
    cfg: DictConfig
    task: Task
    backbone: Backbone
    model: PromptedModel
    splits: dict[str, Encoded]
    data_note: str | None
    max_length: int

    @classmethod
    def prepare(cls, cfg: DictConfig) -> Experiment:
        """Build everything before training; bad input raises :class:`SetupError`."""
        try:
            seed_everything(int(cfg.seed))
            if cfg.train.get("threads"):
                torch.set_num_threads(int(cfg.train.threads))
            if cfg.train.scheduler not in SCHEDULERS:
                raise ValueError(f"train.scheduler={cfg.train.scheduler!r}; valid: {', '.join(SCHEDULERS)}")
            if cfg.train.selection not in ("best", "last"):
                raise ValueError(f"train.selection={cfg.train.selection!r}; valid: best, last")
            task = configure_task(cfg)
            data = cfg.data
            splits = load_splits(task, data.source, data.get("root"),
                                 {"train": data.synthetic_train, "validation": data.synthetic_eval},
                                 eval_fraction=float(data.eval_fraction))
            train_rows = cap_rows(fixed_order(splits.train, task), task, data.max_train_samples)
            eval_rows = cap_rows(splits.validation, task, data.max_eval_samples)
            test_rows = cap_rows(splits.test, task, data.max_eval_samples)
            if not train_rows or not eval_rows:
                raise ValueError(f"task={task.name}: empty train ({len(train_rows)}) or eval "
                                 f"({len(eval_rows)}) split after data caps")
            backbone = load_backbone(cfg.model)
            method = build_method(OmegaConf.to_container(cfg.method, resolve=True), backbone)
            model = PromptedModel(backbone, method, task.head, max(task.num_labels, 1),
                                  cfg.train.get("head_dropout"))
            max_length = cls._max_length(cfg, model, backbone)
            tokenizer = backbone.tokenizer
            encoded = {"train": task.encode(train_rows, tokenizer, max_length, train=True),
                       "validation": task.encode(eval_rows, tokenizer, max_length, train=False)}
            if test_rows:
                encoded["test"] = task.encode(test_rows, tokenizer, max_length, train=False)
        except BAD_INPUT as err:
            message = err.args[0] if err.args else type(err).__name__
            raise SetupError(str(message)) from err
        return cls(cfg, task, backbone, model, encoded, splits.note, max_length)

    @staticmethod
    def _max_length(cfg: DictConfig, model: PromptedModel, backbone: Backbone) -> int:
        """Task length, shortened so input prompts and shifted positions fit the backbone."""
        wanted = int(cfg.data.get("max_length") or cfg.task.max_length)
        limit = backbone.max_positions
        if limit is None:
            return wanted
        return max(8, min(wanted, limit - model.method.added_positions()))

    def describe(self) -> dict[str, Any]:
        """Record fields known before training."""
        counts = self.model.parameter_counts()
        return {
            "task": {"name": self.task.name, "family": self.task.family, "version": self.task.version,
                     "metrics": list(self.task.metrics), "primary_metric": self.task.primary_metric},
            "model_info": {"name": self.cfg.model.name, "family": self.backbone.family,
                           "hf_name": self.cfg.model.get("hf_name"), "backbone_params": counts["backbone"]},
            "primary_metric": self.task.primary_metric,
            "params": counts,
            "data": {"source": self.cfg.data.source, "train_examples": len(self.splits["train"].rows),
                     "eval_examples": len(self.splits["validation"].rows),
                     "test_examples": len(self.splits["test"].rows) if "test" in self.splits else 0,
                     "train_features": len(self.splits["train"].features),
                     "max_length": self.max_length, "split_note": self.data_note},
        }

    def start_tracking(self, directory: Path, record: dict[str, Any]) -> WandbRun | None:
        logger = self.cfg.logger
        if logger.name == "none":
            return None
        cell = record["cell"]
        return WandbRun(logger, Path(self.cfg.paths.runs_dir), name=f"{cell['task']}-{cell['model']}-{cell['method']}-s{cell['seed']}",
                        group=str(self.cfg.group), tags=[cell["method"], cell["model"], cell["task"]],
                        config=record["config"])

    def _trainer(self, directory: Path, selector: Selector) -> Trainer:
        train = self.cfg.train
        lr = float(train.lr if train.get("lr") is not None else self.cfg.method.lr)
        use_cuda = torch.cuda.is_available()
        args = TrainingArguments(
            output_dir=str(directory / "trainer"), num_train_epochs=float(train.epochs),
            max_steps=int(train.max_steps), per_device_train_batch_size=int(train.batch_size),
            learning_rate=lr, weight_decay=float(train.weight_decay), warmup_steps=float(train.warmup_ratio) if train.warmup_ratio else 0,
            lr_scheduler_type="constant" if train.scheduler == "exponential" else train.scheduler,
            max_grad_norm=float(train.max_grad_norm), seed=int(self.cfg.seed), logging_steps=int(train.logging_steps),
            save_strategy="no", eval_strategy="no", report_to=["wandb"] if self.cfg.logger.name != "none" else [],
            remove_unused_columns=False, disable_tqdm=True, dataloader_num_workers=0, use_cpu=not use_cuda,
            bf16=train.precision == "bf16", fp16=train.precision == "fp16", logging_nan_inf_filter=False,
        )
        optimizers = (None, None)
        if train.scheduler == "exponential":  # official NER/QA: ExponentialLR(0.95) stepped per epoch
            params = [p for p in self.model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=float(train.weight_decay))
            per_epoch = max(1, -(-len(self.splits["train"].features) // int(train.batch_size)))
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.95 ** (step // per_epoch))
            optimizers = (optimizer, schedule)
        return Trainer(model=self.model, args=args, train_dataset=self.splits["train"].features,
                       data_collator=selector.collator, callbacks=[selector], optimizers=optimizers)

    def train_and_evaluate(self, directory: Path, tracker: WandbRun | None) -> dict[str, Any]:
        """Train, select the checkpoint, save the small artefact; return record fields."""
        train = self.cfg.train
        eval_splits = {k: v for k, v in self.splits.items() if k != "train"}
        keeps_state = not self.model.method.trains_backbone and bool(train.save_artefact)
        selector = Selector(
            self.task, eval_splits, FeatureCollator(self.backbone.tokenizer.pad_token_id),
            int(train.eval_batch_size), rule=train.selection, eval_steps=int(train.eval_steps or 0),
            log=tracker.log if tracker else None,
            keep_state=self.model.artefact_state if keeps_state else None,
        )
        trainer = self._trainer(directory, selector)
        device = trainer.args.device
        start = time.perf_counter()
        with PeakMemory(device) as memory:
            trainer.train()
        total = time.perf_counter() - start
        chosen = selector.chosen
        if chosen is None:
            raise RuntimeError("no evaluation happened")
        result = {
            "metrics": chosen.metrics["validation"],
            "test_metrics": chosen.metrics.get("test", {}),
            "history": [{"epoch": e.epoch, "step": e.step, **{f"{s}/{k}": v for s, m in e.metrics.items()
                                                               for k, v in m.items()}}
                        for e in selector.history],
            "selection": {"rule": "best_eval_epoch" if train.selection == "best" else "last",
                          "metric": self.task.primary_metric, "split": "validation",
                          "epoch": chosen.epoch, "step": chosen.step, "n_evals": len(selector.history),
                          "note": "metrics of the evaluation chosen by the rule; the official P-Tuning v2 "
                                  "protocol selects on the split it reports" if train.selection == "best"
                          else "metrics of the final evaluation"},
            "cost": {"train_seconds": round(total - selector.eval_seconds, 3),
                     "eval_seconds": round(selector.eval_seconds, 3), "peak_memory_mb": round(memory.peak, 1),
                     "device": str(device), "threads": torch.get_num_threads(),
                     "steps": trainer.state.global_step},
        }
        if selector.chosen_state is not None:
            self.model.method.load_state_dict(
                {k[7:]: v for k, v in selector.chosen_state.items() if k.startswith("method.")})
            self.model.head.load_state_dict(
                {k[5:]: v for k, v in selector.chosen_state.items() if k.startswith("head.")})
            path = directory / "prompt.safetensors"
            self.model.save_artefact(path, {"method": self.cfg.method.name, "model": self.cfg.model.name,
                                            "task": self.task.name, "epoch": str(chosen.epoch)})
            result["artefact"] = {"path": path.name, "bytes": path.stat().st_size}
        return result


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
