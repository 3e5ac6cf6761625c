"""Prefix tuning (Li & Liang 2021): per-layer key/value prefixes produced by an MLP
reparameterisation of L embeddings.

The same deep prefix as P-Tuning v2 (see ``ptuning_v2.py``) with the reparameterisation on:
Embedding(L, d) -> Linear(d, h) -> Tanh -> Linear(h, 2*n*d). After training the MLP is
folded away: the artefact stores MLP(E), the prefix itself, as Li & Liang keep it; the record
counts both (``params.method`` trained, ``params.stored`` kept).

Every default is Li & Liang's code's (XiangLi1999/PrefixTuning ``gpt2/train_e2e.py``
argument defaults, ``gpt2/train_control.py`` for the module): ``--learning_rate 5e-05``,
``--preseqlen 10``, ``--mid_dim 512``, ``--use_dropout no`` / ``--dropout 0.0`` (no prefix
dropout), modules built with PyTorch's initialisation. Their ``--warmup_steps 100`` is a
training option: ``train.warmup_steps=100``. Their defaults were set for table-to-text
generation with GPT-2 (5 epochs of E2E); the suite's presets that tune for other budgets say so
in ``conf/hparams/method/<preset>/prefix_tuning.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptuning.methods import register
from ptuning.methods.ptuning_v2 import PrefixInit, PTuningV2, PTuningV2Config


@dataclass
class PrefixTuningConfig(PTuningV2Config):
    name: str = "prefix_tuning"
    lr: float = 5.0e-5  # --learning_rate
    length: int = 10  # --preseqlen
    #: MLP hidden size h (--mid_dim); null disables the reparameterisation
    hidden_size: int | None = 512
    #: no dropout on the prefix (--use_dropout no, --dropout 0.0)
    dropout: float | None = 0.0
    #: PyTorch's module defaults (train_control.py builds the prefix without HF's _init_weights)
    init: PrefixInit = PrefixInit.torch


@register("prefix_tuning")
class PrefixTuning(PTuningV2):
    """Deep prompts through the MLP reparameterisation (on by default)."""

    config_class = PrefixTuningConfig
    display_name = "Prefix tuning (Li & Liang)"
