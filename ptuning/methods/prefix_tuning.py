"""Prefix tuning (Li & Liang 2021): per-layer key/value prefixes produced by an MLP
reparameterisation of L embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ptuning.backbones import Backbone
from ptuning.methods import register
from ptuning.methods.base import Method, MethodConfig, PromptOutput
from ptuning.methods.prefix_encoder import PrefixEncoder


@dataclass
class PrefixTuningConfig(MethodConfig):
    name: str = "prefix_tuning"
    length: int = 16
    #: MLP hidden size h (official --prefix_hidden_size default 512); null or 0 disables
    #: the reparameterisation
    hidden_size: int | None = 512
    #: dropout on the prefix keys/values; null: the backbone's hidden dropout
    dropout: float | None = None
    #: shift real tokens' absolute positions by the prefix length (original behaviour)
    position_offset: bool = True


@register("prefix_tuning")
class PrefixTuning(Method):
    """Deep prompts through Embedding(L, d) -> Linear(d, h) -> Tanh -> Linear(h, 2*n*d)."""

    config_class = PrefixTuningConfig

    def __init__(self, config: PrefixTuningConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        dropout = backbone.hidden_dropout if config.dropout is None else config.dropout
        self.prefix = PrefixEncoder(backbone, config.length, config.hidden_size, dropout)
        self.shifts_positions = config.position_offset

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        return PromptOutput(deep_prompt=self.prefix(batch_size))
