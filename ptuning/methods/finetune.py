"""Full fine-tuning: every backbone weight and the head are trained."""

from __future__ import annotations

from dataclasses import dataclass

from ptuning.methods import register
from ptuning.methods.base import Method, MethodConfig, MethodKind


@dataclass
class FinetuneConfig(MethodConfig):
    name: str = "finetune"
    lr: float = 5.0e-5


@register("finetune")
class Finetune(Method):
    """No added parameters; the backbone stays trainable."""

    config_class = FinetuneConfig
    kind = MethodKind.full
    display_name = "Fine-tuning"
