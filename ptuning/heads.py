"""Task heads: fresh layers on the backbone's states (always trained).

As in the official P-Tuning v2 code (``model/*.py``), where every head is a module of a
Hugging Face model: linear layers start from transformers' ``_init_weights`` (weights
N(0, initializer_range), biases zero), the classification and token heads apply the
backbone's hidden dropout, the span QA head applies none (``model/question_answering.py``),
fine-tuning RoBERTa uses the ``RobertaClassificationHead`` of
``AutoModelForSequenceClassification`` (the official fine-tuning path), and DeBERTa's
sequence-level heads pool through a trained ``ContextPooler`` (``model/deberta.py``,
used by ``DebertaPrefixForSequenceClassification`` and ``DebertaPrefixForMultipleChoice``).

Every head receives hidden states in the ORIGINAL token coordinates (input prompts
already removed by the model), so labels, QA offsets and pooled positions never need
adjusting for virtual tokens.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from transformers.activations import ACT2FN

from ptuning.backbones import Backbone
from ptuning.errors import ConfigError


def official_linear(backbone: Backbone, fan_in: int, fan_out: int) -> nn.Linear:
    """A linear layer initialised as transformers' ``_init_weights``: N(0, initializer_range), bias 0."""
    layer = nn.Linear(fan_in, fan_out)
    nn.init.normal_(layer.weight, std=getattr(backbone.config, "initializer_range", 0.02))
    nn.init.zeros_(layer.bias)
    return layer


class Head(nn.Module):
    """Maps (batch, T, d) hidden states to logits and, given labels, a loss."""

    #: whether the head's dropout defaults to the backbone's hidden dropout (else none)
    uses_hidden_dropout: ClassVar[bool] = True

    def __init__(self, backbone: Backbone, num_labels: int, dropout: float, trains_backbone: bool = False) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.num_labels = num_labels


def pool(backbone: Backbone, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sequence representation: [CLS] (through the backbone's pooler when it has one)
    for encoders, the last real token for decoders."""
    if backbone.traits.pooling == "first":
        first = hidden[:, :1]
        pooler = getattr(backbone.model, "pooler", None)
        return pooler(first) if pooler is not None else first[:, 0]
    last = attention_mask.long().sum(dim=1).clamp(min=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class ContextPooler(nn.Module):
    """DeBERTa's trained pooler (official ``model/deberta.py`` ``ContextPooler``): the first
    token -> dropout (``pooler_dropout``) -> dense -> ``pooler_hidden_act``; the dense layer
    starts as transformers' ``_init_weights`` (N(0, initializer_range), bias 0)."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        config = backbone.config
        size = getattr(config, "pooler_hidden_size", None) or backbone.hidden_size
        self.dropout = nn.Dropout(float(getattr(config, "pooler_dropout", 0.0) or 0.0))
        self.dense = official_linear(backbone, size, size)
        self.activation = ACT2FN[getattr(config, "pooler_hidden_act", "gelu")]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(self.dropout(hidden[:, 0])))


def context_pooler(backbone: Backbone) -> ContextPooler | None:
    """A fresh ContextPooler for families whose official sequence-level heads have one."""
    return ContextPooler(backbone) if backbone.traits.context_pooler else None


class ClassificationHead(Head):
    """Sentence(-pair) classification on the pooled representation; fine-tuning RoBERTa-style
    families (``classification_dense``): [CLS] -> dropout -> dense (new) -> tanh -> dropout ->
    linear, as RobertaClassificationHead;
    DeBERTa: ContextPooler -> dropout -> linear, as the official
    ``DebertaPrefixForSequenceClassification`` (and HF's ``Deberta(V2)ForSequenceClassification``,
    the official fine-tuning path)."""

    def __init__(self, backbone: Backbone, num_labels: int, dropout: float, trains_backbone: bool = False) -> None:
        super().__init__(backbone, num_labels, dropout)
        self.backbone = [backbone]  # a list: not registered as a submodule
        d = backbone.hidden_size
        self.dense = official_linear(backbone, d, d) if trains_backbone and backbone.traits.classification_dense else None
        self.pooler = context_pooler(backbone)
        self.classifier = official_linear(backbone, d, num_labels)

    def forward(self, hidden, attention_mask, labels=None, **_):
        if self.dense is not None:
            pooled = torch.tanh(self.dense(self.dropout(hidden[:, 0])))
        elif self.pooler is not None:
            pooled = self.pooler(hidden)
        else:
            pooled = pool(self.backbone[0], hidden, attention_mask)
        logits = self.classifier(self.dropout(pooled))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return loss, logits


class MultipleChoiceHead(Head):
    """One score per choice; the model flattens (batch, choices, T) before the backbone.
    DeBERTa pools through a ContextPooler, as the official ``DebertaPrefixForMultipleChoice``."""

    def __init__(self, backbone: Backbone, num_labels: int, dropout: float, trains_backbone: bool = False) -> None:
        super().__init__(backbone, num_labels, dropout)
        self.backbone = [backbone]
        self.pooler = context_pooler(backbone)
        self.scorer = official_linear(backbone, backbone.hidden_size, 1)

    def forward(self, hidden, attention_mask, labels=None, num_choices: int = 2, **_):
        pooled = self.pooler(hidden) if self.pooler is not None else pool(self.backbone[0], hidden, attention_mask)
        scores = self.scorer(self.dropout(pooled))
        logits = scores.view(-1, num_choices)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return loss, logits


class TokenClassificationHead(Head):
    """A label per token (NER); positions labelled -100 are ignored."""

    def __init__(self, backbone: Backbone, num_labels: int, dropout: float, trains_backbone: bool = False) -> None:
        super().__init__(backbone, num_labels, dropout)
        self.classifier = official_linear(backbone, backbone.hidden_size, num_labels)

    def forward(self, hidden, attention_mask, labels=None, **_):
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return loss, logits


class SpanQAHead(Head):
    """Start/end logits per token for extractive QA (no dropout, as the official QA models)."""

    uses_hidden_dropout = False

    def __init__(self, backbone: Backbone, num_labels: int, dropout: float, trains_backbone: bool = False) -> None:
        super().__init__(backbone, 2, dropout)
        self.qa_outputs = official_linear(backbone, backbone.hidden_size, 2)

    def forward(self, hidden, attention_mask, start_positions=None, end_positions=None, **_):
        start, end = self.qa_outputs(self.dropout(hidden)).unbind(dim=-1)
        start = start.masked_fill(attention_mask == 0, torch.finfo(start.dtype).min)
        end = end.masked_fill(attention_mask == 0, torch.finfo(end.dtype).min)
        loss = None
        if start_positions is not None and end_positions is not None:
            limit = start.shape[1]
            loss = (
                F.cross_entropy(start, start_positions.clamp(0, limit - 1))
                + F.cross_entropy(end, end_positions.clamp(0, limit - 1))
            ) / 2
        return loss, torch.stack([start, end], dim=-1)


def label_token_ids(tokenizer: Any, words: tuple[str, ...]) -> list[int]:
    """The vocabulary id of each label word, as it follows a space in a pattern;
    :class:`ConfigError` if a word is not one token (the LM head scores single tokens)."""
    ids = []
    for word in words:
        pieces = tokenizer(f" {word}", add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ConfigError(f"task.head=verbalizer: the label word {word!r} is {len(pieces)} tokens for "
                              f"{type(tokenizer).__name__} ({tokenizer.convert_ids_to_tokens(pieces)}); every label "
                              "word must be a single token")
        ids.append(pieces[0])
    return ids


class VerbalizerHead(Head):
    """A verbalizer on the backbone's masked-LM head (P-Tuning v2 Table 4's "verbalizer + LM
    head"): the pretrained LM head's logits at the input's [MASK] for each class's label word.
    It adds no weights: the LM head belongs to the backbone (frozen unless the method trains
    the backbone)."""

    uses_hidden_dropout = False

    def __init__(self, backbone: Backbone, num_labels: int, dropout: float, trains_backbone: bool = False,
                 label_words: tuple[str, ...] = ()) -> None:
        super().__init__(backbone, num_labels, dropout)
        if backbone.lm_head is None:
            raise ValueError("the verbalizer head needs the backbone's masked-LM head: load_backbone(masked_lm=True)")
        if len(label_words) != num_labels:
            raise ValueError(f"{len(label_words)} label words for {num_labels} classes")
        self.lm_head = [backbone.lm_head]  # a list: the backbone's, not registered as the head's
        self.register_buffer("word_ids", torch.tensor(label_token_ids(backbone.tokenizer, label_words)),
                             persistent=False)

    def forward(self, hidden, attention_mask, labels=None, mask_position=None, **_):
        if mask_position is None:
            raise ValueError("the verbalizer head needs each input's mask_position (a cloze-encoded task)")
        at_mask = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask_position]
        logits = self.lm_head[0](self.dropout(at_mask))[:, self.word_ids]
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return loss, logits


HEADS: dict[str, type[Head]] = {
    "classification": ClassificationHead,
    "multiple_choice": MultipleChoiceHead,
    "token_classification": TokenClassificationHead,
    "span_qa": SpanQAHead,
    "verbalizer": VerbalizerHead,
}
