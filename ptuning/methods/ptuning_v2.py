"""P-Tuning v2 (Liu et al. 2022): trainable keys/values prepended at every layer,
no reparameterisation by default, dropout on the prefix."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

from ptuning.backbones import Backbone
from ptuning.errors import require
from ptuning.methods import register
from ptuning.methods.base import Method, MethodConfig, PromptOutput
from ptuning.methods.prefix_encoder import PrefixEncoder

#: position-id styles whose real tokens the official code shifted by the prefix length
SHIFTED_POSITIONS = ("absolute", "roberta")


class PrefixInit(str, enum.Enum):
    #: N(0, the backbone's initializer_range), biases zero: transformers' ``_init_weights``,
    #: which initialises the official prefix as a module of the HF model
    backbone = "backbone"
    #: PyTorch's module defaults (Embedding N(0, 1)), as Li & Liang's code builds its prefix
    torch = "torch"


@dataclass
class PTuningV2Config(MethodConfig):
    name: str = "ptuning_v2"
    lr: float = 1.0e-2
    length: int = 16
    #: reparameterisation MLP hidden size (official --prefix_projection with
    #: --prefix_hidden_size); null: no reparameterisation
    hidden_size: int | None = None
    #: dropout on the prefix keys/values; null: the backbone's hidden dropout (official)
    dropout: float | None = None
    #: shift real tokens' absolute positions by the prefix length, as the official code
    #: did through past_key_values (absolute-position families only)
    position_offset: bool = True
    init: PrefixInit = PrefixInit.backbone

    def check(self) -> None:
        require(self.length >= 1, "method.length", self.length, "an integer >= 1")
        require(self.hidden_size is None or self.hidden_size >= 1, "method.hidden_size",
                self.hidden_size, "null (no reparameterisation) or an integer >= 1")
        require(self.dropout is None or 0 <= self.dropout < 1, "method.dropout", self.dropout,
                "null (the backbone's hidden dropout) or 0 <= p < 1")

    def added_positions(self, positions: str) -> int:
        return self.length if self.position_offset and positions in SHIFTED_POSITIONS else 0


@register("ptuning_v2")
class PTuningV2(Method):
    """Deep prompts: ``length`` key/value vectors per layer."""

    config_class = PTuningV2Config
    display_name = "P-Tuning v2"

    def __init__(self, config: PTuningV2Config, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        dropout = backbone.hidden_dropout if config.dropout is None else config.dropout
        std = getattr(backbone.config, "initializer_range", 0.02) if config.init is PrefixInit.backbone else None
        self.prefix = PrefixEncoder(backbone, config.length, config.hidden_size, dropout, std)

    @property
    def shifts_positions(self) -> bool:
        return self.config.position_offset

    def fold_for_storage(self) -> bool:
        folded = self.prefix.transform is not None
        self.prefix.fold()
        return folded

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        return PromptOutput(deep_prompt=self.prefix(batch_size))
