"""LoRA (Hu et al. 2021): a trainable low-rank update added to chosen projections of the
frozen backbone, ``W x + (alpha / r) * B A dropout(x)``.

Layer injection: :meth:`Lora.attach` adds each update to its projection's output with a
forward hook, so the backbone's modules and state dict stay as loaded and the A/B matrices
belong to the method (artefact, parameter counts). B starts at zero and A as PEFT's
``kaiming_uniform_(a=sqrt(5))``, so training starts from the backbone's own outputs.

Defaults: r = 8, alpha = 16, lr 4e-4 on the query and value projections, as the LoRA
authors' RoBERTa-large GLUE scripts (microsoft/LoRA ``examples/NLU/roberta_large_sst2.sh``);
dropout 0, PEFT's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ptuning.backbones import Backbone
from ptuning.errors import ConfigError, require
from ptuning.methods import register
from ptuning.methods.base import Method, MethodConfig, MethodKind

#: query and value projections per backbone family (PEFT's LoRA defaults)
QUERY_VALUE = {"bert": ["query", "value"], "roberta": ["query", "value"],
               "xlm-roberta": ["query", "value"],
               "xlm-roberta-xl": ["query", "value"],  # PEFT has no default: as its XLM-R one
               "deberta": ["in_proj"],  # v1 fuses q/k/v in one projection (PEFT's default too)
               "deberta-v2": ["query_proj", "value_proj"], "gpt2": ["c_attn"],
               "gpt_neox": ["query_key_value"],  # fused q/k/v, as GPT-2 (PEFT's default too)
               "llama": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"]}


@dataclass
class LoraConfig(MethodConfig):
    name: str = "lora"
    lr: float = 4.0e-4
    #: rank of the update
    r: int = 8
    #: the update is scaled by alpha / r
    alpha: float = 16.0
    #: dropout on the update's input
    dropout: float = 0.0
    #: projections to adapt, as module-name suffixes (e.g. ``attention.self.query``);
    #: null: the family's query and value projections
    target_modules: list[str] | None = None

    def check(self) -> None:
        require(self.r >= 1, "method.r", self.r, "an integer >= 1")
        require(self.alpha > 0, "method.alpha", self.alpha, "a number > 0")
        require(0 <= self.dropout < 1, "method.dropout", self.dropout, "0 <= p < 1")
        require(self.target_modules is None or len(self.target_modules) > 0, "method.target_modules",
                self.target_modules, "null (query and value projections) or a non-empty list")


class LowRankUpdate(nn.Module):
    """``(alpha / r) * B A dropout(x)`` for one projection of ``in_features -> out_features``."""

    def __init__(self, in_features: int, out_features: int, config: LoraConfig) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(config.r, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, config.r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = config.alpha / config.r
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.dropout(x) @ self.A.T.to(x.dtype)) @ self.B.T.to(x.dtype) * self.scale


def _features(module: nn.Module) -> tuple[int, int] | None:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):  # GPT-2 stores the weight as (in, out)
        return module.weight.shape[0], module.weight.shape[1]
    return None


@register("lora")
class Lora(Method):
    """Low-rank updates of the target projections; nothing enters the input."""

    config_class = LoraConfig
    kind = MethodKind.injection
    display_name = "LoRA"

    def __init__(self, config: LoraConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        family = backbone.family
        targets = list(config.target_modules or QUERY_VALUE.get(family, []))
        if not targets:
            raise ConfigError(f"method.target_modules=null: no default projections for family {family!r} "
                              f"(defaults exist for {', '.join(QUERY_VALUE)}); list module names")
        matched = {name: module for name, module in backbone.model.named_modules()
                   if any(name == t or name.endswith(f".{t}") for t in targets)}
        layers = {name: _features(module) for name, module in matched.items()}
        if not matched or any(f is None for f in layers.values()):
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in backbone.model.named_modules() if _features(m)})
            raise ConfigError(f"method.target_modules={targets}: "
                              + ("match no module" if not matched else
                                 f"match non-linear modules {[n for n, f in layers.items() if f is None][:3]}")
                              + f" of {family}; its linear layers: {', '.join(linear)}")
        self.targets = sorted(matched)
        self.updates = nn.ModuleDict({name.replace(".", "-"): LowRankUpdate(*layers[name], config)
                                      for name in self.targets})
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []

    def attach(self, backbone: Backbone) -> None:
        modules = dict(backbone.model.named_modules())
        for name in self.targets:
            update = self.updates[name.replace(".", "-")]
            self._hooks.append(modules[name].register_forward_hook(
                lambda _module, args, output, update=update: output + update(args[0])))
