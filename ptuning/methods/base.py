"""The contract every method implements: a typed config and a module."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ptuning.backbones import Backbone
from ptuning.backbones.deep_prompt import DeepPrompt


@dataclass
class MethodConfig:
    """Options shared by all methods; each method subclasses this with its own fields."""

    name: str
    #: the method's default learning rate (``train.lr`` overrides it)
    lr: float | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MethodConfig:
        """Build the config, rejecting unknown keys with the list of valid ones."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(
                f"method={values.get('name')}: unknown option(s) {', '.join(unknown)}; "
                f"valid options: {', '.join(sorted(fields))}"
            )
        return cls(**dict(values))


@dataclass
class PromptOutput:
    """What a method contributes to one forward pass.

    ``input_prompt`` (batch, L, d) is inserted into the input embeddings before the
    original token indices ``insert_at`` (batch, L); ``deep_prompt`` is prepended to
    every attention layer's keys and values.
    """

    input_prompt: torch.Tensor | None = None
    insert_at: torch.Tensor | None = None
    deep_prompt: DeepPrompt | None = None


class Method(nn.Module):
    """A parameter-efficient (or full) tuning method attached to a backbone."""

    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    #: whether the backbone's own weights are trained
    trains_backbone: ClassVar[bool] = False
    #: whether real tokens' absolute positions are shifted by the deep-prompt length
    shifts_positions: bool = False

    def __init__(self, config: MethodConfig, backbone: Backbone) -> None:
        super().__init__()
        self.config = config

    def added_positions(self) -> int:
        """How many positions the real tokens are pushed back by (virtual input tokens, or
        a deep prefix that shifts absolute positions); inputs are shortened to fit."""
        return 0

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        """Prompt tensors for a batch. ``prompt_anchors`` (batch, 3): token indices of
        the start of the input, the start of the second segment and the final special token."""
        return PromptOutput()


def prompt_slots(template: list[int] | None, length: int, anchors: torch.Tensor | None, batch: int,
                 device: torch.device) -> torch.Tensor:
    """Original-token indices before which each of the ``length`` virtual tokens goes.

    ``template`` = None puts every virtual token before the first token (a prefix);
    ``[a, b, c]`` puts a before the input, b before the second segment and c before the
    final special token (P-Tuning v1 templates).
    """
    if template is None:
        return torch.zeros(batch, length, dtype=torch.long, device=device)
    if anchors is None:
        raise ValueError("a prompt template needs the task's prompt_anchors feature")
    counts = torch.tensor(template, device=anchors.device)
    return anchors.repeat_interleave(counts, dim=1)
