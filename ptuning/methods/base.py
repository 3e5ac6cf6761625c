"""The contract every method implements: a typed config and a module.

Two kinds of parameter-efficient methods fit it, as in PEFT: *prompt learning* (vectors
inserted into the input or prepended to every layer's keys and values, returned by
:meth:`Method.forward`) and *layer injection* (modules attached to backbone layers by
:meth:`Method.attach`, e.g. LoRA); full fine-tuning is the third kind. The model freezes the
backbone first (unless the method trains it), then lets the method attach. Whatever the
method registers as its own submodules is its own: it is counted as method parameters and
saved in the artefact, wherever in the backbone it acts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ptuning.backbones import Backbone
from ptuning.backbones.deep_prompt import DeepPrompt


class MethodKind(str, enum.Enum):
    prompt = "prompt"  # prompt learning: input or per-layer prompts
    injection = "injection"  # layer injection: modules attached to backbone layers
    full = "full"  # every backbone weight trains


@dataclass
class MethodConfig:
    """Options shared by all methods; each method subclasses this with its own fields and
    defaults (the only place they are defined)."""

    name: str = ""
    #: the method's default learning rate (``train.lr`` overrides it)
    lr: float = 1e-3

    def check(self) -> None:
        """Raise :class:`ptuning.errors.ConfigError` for values out of range."""

    def check_task(self, task: str, label_words: tuple[str, ...] | None) -> None:
        """Raise :class:`ptuning.errors.ConfigError` if the options do not suit the task
        (``label_words``: the words naming its classes, None if they are not words)."""

    def tunes_backbone(self) -> bool:
        """Whether these options train the backbone too (besides a ``full`` method's kind)."""
        return False

    def added_positions(self, positions: str) -> int:
        """Positions the real tokens are pushed back by, for a backbone whose position ids
        are ``positions`` (absolute | roberta | relative): virtual input tokens, or a deep
        prefix that shifts absolute positions. Inputs are shortened to fit."""
        return 0


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
    """A parameter-efficient (or full) tuning method for a backbone."""

    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    kind: ClassVar[MethodKind] = MethodKind.prompt
    #: the name tables and figures show
    display_name: ClassVar[str] = ""

    def __init__(self, config: MethodConfig, backbone: Backbone) -> None:
        super().__init__()
        self.config = config
        self.positions = backbone.traits.positions

    @property
    def trains_backbone(self) -> bool:
        return self.kind is MethodKind.full or self.config.tunes_backbone()

    def optimizer_groups(self, model: nn.Module, weight_decay: float) -> list[dict] | None:
        """AdamW parameter groups with their own learning rates, where the method trains parts of
        the model at different rates; None: one group at the cell's learning rate."""
        return None

    @property
    def shifts_positions(self) -> bool:
        """Whether a deep prompt shifts the real tokens' absolute position ids."""
        return False

    def added_positions(self) -> int:
        return self.config.added_positions(self.positions)

    def use_label_words(self, words: tuple[str, ...], backbone: Backbone) -> None:
        """Initialise from the task's class words where the options ask for it (the default:
        nothing to do)."""

    def fold_for_storage(self) -> bool:
        """Switch to the form stored after training, where it differs from the trained one
        (a reparameterised prefix keeps only what it computes); True if it changed."""
        return False

    def attach(self, backbone: Backbone) -> None:
        """Attach to the (already frozen) backbone; layer-injection methods hook in here."""

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        """Prompt tensors for a batch. ``prompt_anchors`` (batch, 3): token indices of
        the start of the input, the start of the second segment and the final special token."""
        return PromptOutput()

    @classmethod
    def describe(cls) -> dict[str, object]:
        """The record's ``method`` block."""
        name = cls.config_class().name
        return {"name": name, "display": cls.display_name or name, "kind": cls.kind.value,
                "trains_backbone": cls.kind is MethodKind.full}


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
