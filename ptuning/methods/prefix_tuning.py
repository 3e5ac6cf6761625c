"""Prefix tuning (Li & Liang 2021): per-layer key/value prefixes produced by an MLP
reparameterisation of L embeddings.

The same deep prefix as P-Tuning v2 (see ``ptuning_v2.py``) with the reparameterisation on:
Embedding(L, d) -> Linear(d, h) -> Tanh -> Linear(h, 2*n*d), h = 512.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptuning.methods import register
from ptuning.methods.ptuning_v2 import PrefixInit, PTuningV2, PTuningV2Config


@dataclass
class PrefixTuningConfig(PTuningV2Config):
    name: str = "prefix_tuning"
    lr: float = 3.0e-3
    length: int = 16
    #: MLP hidden size h (official --prefix_hidden_size default 512); null disables the
    #: reparameterisation
    hidden_size: int | None = 512
    #: Li & Liang's code builds the prefix with PyTorch's defaults (gpt2/train_control.py)
    init: PrefixInit = PrefixInit.torch


@register("prefix_tuning")
class PrefixTuning(PTuningV2):
    """Deep prompts through the MLP reparameterisation (on by default)."""

    config_class = PrefixTuningConfig
    display_name = "Prefix tuning (Li & Liang)"
