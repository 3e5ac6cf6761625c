"""P-Tuning v1 (Liu et al. 2021, "GPT Understands, Too"): virtual-token embeddings
produced by a prompt encoder (bi-LSTM + MLP, or MLP) and placed at template positions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ptuning.backbones import Backbone
from ptuning.methods import register
from ptuning.methods.base import Method, MethodConfig, PromptOutput, prompt_slots

ENCODERS = ("lstm", "mlp")


@dataclass
class PTuningV1Config(MethodConfig):
    name: str = "ptuning_v1"
    length: int = 8
    #: "lstm": 2-layer bi-LSTM (hidden d/2 per direction) then MLP d->h->d, as the official
    #: code; "mlp": MLP d->h->d only
    encoder: str = "lstm"
    #: MLP hidden size h (null: the backbone hidden size d, as the official code)
    hidden_size: int | None = None
    #: virtual tokens before the input, before the second segment, before the final
    #: special token; must sum to ``length``. null: all before the input (a prefix)
    template: list[int] | None = None
    dropout: float = 0.0


@register("ptuning_v1")
class PTuningV1(Method):
    """Prompt encoder over L trainable embeddings; only the encoder output enters the model."""

    config_class = PTuningV1Config

    def __init__(self, config: PTuningV1Config, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        if config.encoder not in ENCODERS:
            raise ValueError(f"method.encoder={config.encoder!r}; valid: {', '.join(ENCODERS)}")
        if config.template is not None:
            config.template = [int(n) for n in config.template]
            if len(config.template) != 3 or sum(config.template) != config.length or min(config.template) < 0:
                raise ValueError(
                    f"method.template={config.template} must be 3 non-negative counts summing to "
                    f"method.length={config.length}"
                )
        d = backbone.hidden_size
        hidden = config.hidden_size or d
        self.embedding = nn.Embedding(config.length, d)
        self.lstm = (
            nn.LSTM(d, d // 2, num_layers=2, bidirectional=True, batch_first=True, dropout=config.dropout)
            if config.encoder == "lstm"
            else None
        )
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def encode(self) -> torch.Tensor:
        """The L prompt vectors (L, d) produced by the encoder."""
        states = self.embedding.weight.unsqueeze(0)
        if self.lstm is not None:
            states = self.lstm(states)[0]
        return self.mlp(states).squeeze(0)

    def added_positions(self) -> int:
        return self.config.length

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        prompt = self.encode().unsqueeze(0).expand(batch_size, -1, -1)
        slots = prompt_slots(self.config.template, self.config.length, prompt_anchors, batch_size, prompt.device)
        return PromptOutput(input_prompt=prompt, insert_at=slots)
