"""The per-layer key/value prefix shared by prefix tuning and P-Tuning v2 (not a method)."""

from __future__ import annotations

import torch
from torch import nn

from ptuning.backbones import Backbone
from ptuning.backbones.deep_prompt import DeepPrompt


class PrefixEncoder(nn.Module):
    """L prefix positions -> keys and values for every layer.

    Without reparameterisation the prefix is a table Embedding(L, 2*n*d_kv)
    (P-Tuning v2). With ``hidden_size`` h it is Embedding(L, d) -> Linear(d, h) ->
    Tanh -> Linear(h, 2*n*d_kv) (Li & Liang's MLP). Dropout acts on the keys/values.
    ``init_std``: every weight N(0, init_std) and biases zero, as transformers'
    ``_init_weights`` initialises the official P-Tuning v2 prefix (a module of the HF model,
    ``model/prefix_encoder.py``); None keeps PyTorch's module defaults (Embedding N(0, 1)).
    """

    def __init__(self, backbone: Backbone, length: int, hidden_size: int | None, dropout: float,
                 init_std: float | None = None) -> None:
        super().__init__()
        self.length = length
        self.layers, self.heads, self.head_dim = backbone.num_layers, backbone.num_kv_heads, backbone.head_dim
        width = 2 * self.layers * self.heads * self.head_dim
        if hidden_size:
            d = backbone.hidden_size
            self.embedding = nn.Embedding(length, d)
            self.transform: nn.Module | None = nn.Sequential(
                nn.Linear(d, hidden_size), nn.Tanh(), nn.Linear(hidden_size, width)
            )
        else:
            self.embedding = nn.Embedding(length, width)
            self.transform = None
        self.dropout = nn.Dropout(dropout)
        if init_std is not None:
            for module in self.modules():
                if isinstance(module, nn.Embedding | nn.Linear):
                    nn.init.normal_(module.weight, std=init_std)
                if isinstance(module, nn.Linear):
                    nn.init.zeros_(module.bias)

    def fold(self) -> None:
        """Replace the reparameterisation by the table it computes, MLP(E) (Li & Liang keep only
        the prefix after training): same keys/values, no MLP to store."""
        if self.transform is None:
            return
        with torch.no_grad():
            table = self.transform(self.embedding.weight)
        self.embedding = nn.Embedding.from_pretrained(table.detach().clone(), freeze=False)
        self.transform = None

    def forward(self, batch_size: int) -> DeepPrompt:
        table = self.embedding.weight
        if self.transform is not None:
            table = self.transform(table)
        # (L, 2n*H*hd) -> (2n, H, L, hd) on the small table, then broadcast over the batch:
        # dropout draws an independent mask per example, as the official code, without an
        # extra batch-sized copy for the permutation.
        per_layer = table.view(self.length, 2 * self.layers, self.heads, self.head_dim).permute(1, 2, 0, 3)
        kv = per_layer.unsqueeze(1).expand(-1, batch_size, -1, -1, -1)
        if self.training and self.dropout.p > 0:
            kv = self.dropout(kv)
        return DeepPrompt(kv.reshape(self.layers, 2, batch_size, self.heads, self.length, self.head_dim))
