"""Prompt tuning (Lester et al. 2021): L trainable vectors prepended to the input embeddings."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import nn

from ptuning.backbones import Backbone
from ptuning.errors import require
from ptuning.methods import register
from ptuning.methods.base import Method, MethodConfig, PromptOutput, prompt_slots


class PromptInit(str, enum.Enum):
    vocab = "vocab"  # embeddings of random vocabulary tokens (Lester's best)
    random = "random"  # N(0, std of the embedding table)


@dataclass
class PromptTuningConfig(MethodConfig):
    name: str = "prompt_tuning"
    lr: float = 1.0e-2
    length: int = 20
    init: PromptInit = PromptInit.vocab

    def check(self) -> None:
        require(self.length >= 1, "method.length", self.length, "an integer >= 1")

    def added_positions(self, positions: str) -> int:
        return self.length


@register("prompt_tuning")
class PromptTuning(Method):
    """The prompt is applied once, as input embeddings (unlike the official baseline's
    double embedding lookup)."""

    config_class = PromptTuningConfig
    display_name = "Prompt tuning (Lester)"

    def __init__(self, config: PromptTuningConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        table = backbone.model.get_input_embeddings().weight.detach()
        if config.init is PromptInit.vocab:
            special = set(backbone.tokenizer.all_special_ids)
            candidates = torch.tensor([i for i in range(min(table.shape[0], 5000)) if i not in special])
            ids = candidates[torch.randperm(len(candidates))[: config.length]]
            init = table[ids].clone()
        else:
            init = torch.randn(config.length, table.shape[1]) * table.std()
        self.prompt = nn.Parameter(init)

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        prompt = self.prompt.unsqueeze(0).expand(batch_size, -1, -1)
        slots = prompt_slots(None, self.config.length, None, batch_size, prompt.device)
        return PromptOutput(input_prompt=prompt, insert_at=slots)
