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

    def check(self) -> None:
        require(self.length >= 1, "method.length", self.length, "an integer >= 1")
        require(self.hidden_size is None or self.hidden_size >= 1, "method.hidden_size",
                self.hidden_size, "null or an integer >= 1")
        require(0 <= self.dropout < 1, "method.dropout", self.dropout, "0 <= p < 1")
        if self.template is not None:
            require(len(self.template) == 3 and sum(self.template) == self.length
                    and min(self.template) >= 0, "method.template", list(self.template),
                    f"3 non-negative counts summing to method.length={self.length}, or null")

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
        self.lstm = (
            nn.LSTM(d, d // 2, num_layers=2, bidirectional=True, batch_first=True, dropout=config.dropout)
            if config.encoder is PromptEncoder.lstm
            else None
        )
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def encode(self) -> torch.Tensor:
        """The L prompt vectors (L, d) produced by the encoder."""
        states = self.embedding.weight.unsqueeze(0)
        if self.lstm is not None:
            states = self.lstm(states)[0]
        return self.mlp(states).squeeze(0)

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        prompt = self.encode().unsqueeze(0).expand(batch_size, -1, -1)
        template = list(self.config.template) if self.config.template is not None else None
        slots = prompt_slots(template, self.config.length, prompt_anchors, batch_size, prompt.device)
        return PromptOutput(input_prompt=prompt, insert_at=slots)
