"""P-Tuning v1 as its paper ran fully supervised SuperGLUE: the SuperGLUE prompt encoder
(bi-LSTM with d per direction, Linear(2d, d), ReLU, Linear(d, d)) and the backbone tuned
jointly at its own learning rate (official PT-Fewshot/pet/wrapper.py)."""

from __future__ import annotations

import torch
from conftest import compose_config, model_cfg
from omegaconf import OmegaConf
from transformers import TrainingArguments

from ptuning.backbones import load_backbone
from ptuning.distributed import SINGLE
from ptuning.methods import build_method
from ptuning.model import PromptedModel
from ptuning.runner import run_cell
from ptuning.tasks import get_task
from ptuning.training import CellTrainer, FeatureCollator

BACKBONE_LR, ENCODER_LR = 1e-5, 1e-2


def _model(**options):
    backbone = load_backbone(OmegaConf.to_object(model_cfg("tiny_bert")))
    method = build_method({"name": "ptuning_v1", "length": 4, "encoder": "lstm_full", **options}, backbone)
    return PromptedModel(backbone, method, "classification", 2), backbone


def test_the_superglue_prompt_encoder_shapes():
    model, backbone = _model()
    d = backbone.hidden_size
    lstm, mlp = model.method.lstm, model.method.mlp
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bidirectional) == (d, d, 2, True)
    assert [(m.in_features, m.out_features) for m in mlp if isinstance(m, torch.nn.Linear)] == [(2 * d, d), (d, d)]
    assert model.method.encode().shape == (4, d)
    assert not model.method.trains_backbone and not any(p.requires_grad for p in model.backbone.parameters())


def test_backbone_and_encoder_train_at_their_own_rates():
    """AdamW's first step moves every parameter by its group's lr (|g| >> eps, no decay): the
    backbone's largest move is 1e-5, the encoder's and the head's 1e-2."""
    model, backbone = _model(backbone_lr=BACKBONE_LR)
    assert model.method.trains_backbone and all(p.requires_grad for p in model.backbone.parameters())
    task = get_task("rte")
    features = task.encode(task.synthetic_rows("train", 8), backbone.tokenizer, 32, train=True).features
    args = TrainingArguments(output_dir="/tmp/unused", learning_rate=ENCODER_LR, weight_decay=0.0, max_steps=1,
                             per_device_train_batch_size=8, lr_scheduler_type="constant", report_to=[],
                             use_cpu=True, save_strategy="no", remove_unused_columns=False, max_grad_norm=0.0)
    trainer = CellTrainer(model=model, args=args, train_dataset=features, world=SINGLE,
                          data_collator=FeatureCollator(backbone.tokenizer.pad_token_id))
    groups = trainer.create_optimizer().param_groups
    assert [g["lr"] for g in groups] == [BACKBONE_LR, BACKBONE_LR, ENCODER_LR]
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    assert {id(p) for g in groups[:2] for p in g["params"]} == backbone_ids
    assert {id(p) for p in groups[2]["params"]} == {id(p) for p in [*model.method.parameters(), *model.head.parameters()]}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
    backbone_move = max(v for n, v in moved.items() if n.startswith("backbone."))
    encoder_move = max(v for n, v in moved.items() if n.startswith("method."))
    assert abs(backbone_move - BACKBONE_LR) < 0.01 * BACKBONE_LR
    assert abs(encoder_move - ENCODER_LR) < 0.01 * ENCODER_LR


def test_a_joint_cell_records_that_it_trains_the_backbone(tmp_path):
    outcome = run_cell(compose_config([
        "model=tiny_bert", "data.source=synthetic", "data.synthetic_train=8", "data.synthetic_eval=4", "logger=none",
        "task=rte", "method=ptuning_v1", "method.encoder=lstm_full", f"method.backbone_lr={BACKBONE_LR}",
        "train.max_steps=2", f"paths.runs_dir={tmp_path}"]))
    record = outcome.record
    assert outcome.status == "completed" and record["method"]["trains_backbone"] is True
    assert record["params"]["backbone_trainable"] == record["params"]["backbone"] > 0
    assert record["artefact"] is None  # a tuned backbone is not a small artefact
    assert record["identity"]["options"]["method.backbone_lr"] == BACKBONE_LR
