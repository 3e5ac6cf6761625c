"""P-Tuning v1 (Liu et al. 2021, "GPT Understands, Too"): virtual-token embeddings
produced by a prompt encoder (bi-LSTM + MLP, or MLP) and placed at template positions."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import nn

from ptuning.backbones import Backbone
from ptuning.errors import require
from ptuning.methods import register
from ptuning.methods.base import Method, MethodConfig, PromptOutput, prompt_slots


class PromptEncoder(str, enum.Enum):
    lstm = "lstm"  # 2-layer bi-LSTM (d/2 per direction) then MLP d->h->d, as the official code
    mlp = "mlp"  # MLP d->h->d only
    #: the SuperGLUE encoder of the v1 paper (THUDM/P-tuning PT-Fewshot/pet/wrapper.py): 2-layer
    #: bi-LSTM with d per direction, then Linear(2d, h), ReLU, Linear(h, d)
    lstm_full = "lstm_full"


@dataclass
class PTuningV1Config(MethodConfig):
    name: str = "ptuning_v1"
    lr: float = 1.0e-2
    length: int = 8
    encoder: PromptEncoder = PromptEncoder.lstm
    #: MLP hidden size h (null: the backbone hidden size d, as the official code)
    hidden_size: int | None = None
    #: virtual tokens before the input, before the second segment, before the final
    #: special token; must sum to ``length``. null: all before the input (a prefix)
    template: list[int] | None = None
    dropout: float = 0.0
    #: null: the backbone stays frozen (the v2 paper's P-Tuning v1 baseline); a value: the
    #: backbone is tuned jointly at this learning rate, as the v1 paper's fully supervised
    #: SuperGLUE runs (official PT-Fewshot/pet/wrapper.py: AdamW 1e-5 with weight decay on the
    #: model, a second AdamW at the method's lr without it on the prompt encoder)
    backbone_lr: float | None = None

    def tunes_backbone(self) -> bool:
        return self.backbone_lr is not None

    def check(self) -> None:
        require(self.length >= 1, "method.length", self.length, "an integer >= 1")
        require(self.hidden_size is None or self.hidden_size >= 1, "method.hidden_size",
                self.hidden_size, "null or an integer >= 1")
        require(0 <= self.dropout < 1, "method.dropout", self.dropout, "0 <= p < 1")
        if self.template is not None:
            require(len(self.template) == 3 and sum(self.template) == self.length
                    and min(self.template) >= 0, "method.template", list(self.template),
                    f"3 non-negative counts summing to method.length={self.length}, or null")
        require(self.backbone_lr is None or self.backbone_lr > 0, "method.backbone_lr", self.backbone_lr,
                "null (frozen backbone) or > 0")

    def added_positions(self, positions: str) -> int:
        return self.length


@register("ptuning_v1")
class PTuningV1(Method):
    """Prompt encoder over L trainable embeddings; only the encoder output enters the model."""

    config_class = PTuningV1Config
    display_name = "P-Tuning v1"

    def __init__(self, config: PTuningV1Config, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        d = backbone.hidden_size
        hidden = config.hidden_size or d
        self.embedding = nn.Embedding(config.length, d)
        per_direction = {PromptEncoder.lstm: d // 2, PromptEncoder.lstm_full: d}.get(config.encoder)
        self.lstm = (
            nn.LSTM(d, per_direction, num_layers=2, bidirectional=True, batch_first=True, dropout=config.dropout)
            if per_direction is not None
            else None
        )
        width = 2 * d if config.encoder is PromptEncoder.lstm_full else d
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def encode(self) -> torch.Tensor:
        """The L prompt vectors (L, d) produced by the encoder."""
        states = self.embedding.weight.unsqueeze(0)
        if self.lstm is not None:
            states = self.lstm(states)[0]
        return self.mlp(states).squeeze(0)

    def optimizer_groups(self, model: nn.Module, weight_decay: float) -> list[dict] | None:
        """With ``backbone_lr``: the backbone (its masked-LM head included) at that rate, with
        weight decay except on biases and LayerNorm weights; the prompt encoder and the head at
        the method's rate without weight decay (official PT-Fewshot: two AdamW optimizers, one
        linear schedule each, here two groups under one schedule)."""
        if self.config.backbone_lr is None:
            return None
        mine = {id(p) for p in self.parameters()} | {id(p) for p in model.head.parameters()}
        backbone = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in mine]
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")
        return [
            {"params": [p for n, p in backbone if not n.endswith(no_decay)], "lr": self.config.backbone_lr,
             "weight_decay": weight_decay},
            {"params": [p for n, p in backbone if n.endswith(no_decay)], "lr": self.config.backbone_lr,
             "weight_decay": 0.0},
            {"params": [p for p in model.parameters() if id(p) in mine and p.requires_grad], "weight_decay": 0.0},
        ]

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        prompt = self.encode().unsqueeze(0).expand(batch_size, -1, -1)
        template = list(self.config.template) if self.config.template is not None else None
        slots = prompt_slots(template, self.config.length, prompt_anchors, batch_size, prompt.device)
        return PromptOutput(input_prompt=prompt, insert_at=slots)
