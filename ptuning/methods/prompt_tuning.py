"""Prompt tuning (Lester et al. 2021): L trainable vectors prepended to the input embeddings.

Initialisation, as Lester et al. §3.2 describe it: ``vocab`` = embeddings of tokens drawn from
the 5,000 most common words of the vocabulary; ``class_label`` = the first prompt tokens are
the embeddings of the task's class words (the mean over a word's pieces), the rest drawn as
``vocab``; ``random`` = N(0, std of the embedding table).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ptuning.backbones import Backbone
from ptuning.errors import ConfigError, require
from ptuning.methods import register
from ptuning.methods.base import Method, MethodConfig, PromptOutput, prompt_slots

#: Lester et al. sample the init from T5's 5,000 most common tokens
COMMON_WORDS = 5000


class PromptInit(str, enum.Enum):
    vocab = "vocab"  # embeddings of common vocabulary words (Lester's "sampled vocab")
    class_label = "class_label"  # the task's class words first, then as vocab (Lester's best)
    random = "random"  # N(0, std of the embedding table)


@dataclass
class PromptTuningConfig(MethodConfig):
    name: str = "prompt_tuning"
    lr: float = 1.0e-2
    length: int = 20
    init: PromptInit = PromptInit.vocab

    def check(self) -> None:
        require(self.length >= 1, "method.length", self.length, "an integer >= 1")

    def check_task(self, task: str, label_words: tuple[str, ...] | None) -> None:
        if self.init is PromptInit.class_label and not label_words:
            raise ConfigError(f"method.init='class_label': the classes of task {task} are not words "
                              "(spans, tags or answer choices); allowed for it: vocab, random")

    def added_positions(self, positions: str) -> int:
        return self.length


def common_word_ids(tokenizer: PreTrainedTokenizerBase, count: int = COMMON_WORDS) -> list[int]:
    """The first ``count`` vocabulary ids whose token is a whole ASCII word of two letters or
    more: no special or ``[unusedN]`` token, no single character, no word piece (WordPiece
    ``##x``; byte-level BPE and SentencePiece pieces without the word-start mark ``Ġ``/``▁``).
    BERT's and GPT-2/RoBERTa's vocabularies list words roughly by frequency after their
    reserved blocks, so these stand in for T5's most common tokens."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    marker = next((m for m in ("Ġ", "▁") if any(t.startswith(m) for t in tokens if t)), None)
    ids = []
    for i, token in enumerate(tokens):
        if i in special or not token:
            continue
        if marker is not None:
            if not token.startswith(marker):
                continue
            token = token[len(marker):]
        elif token.startswith("##"):
            continue
        if len(token) >= 2 and token.isascii() and token.isalpha():
            ids.append(i)
            if len(ids) == count:
                break
    return ids


@register("prompt_tuning")
class PromptTuning(Method):
    """The prompt is applied once, as input embeddings (unlike the official baseline's
    double embedding lookup)."""

    config_class = PromptTuningConfig
    display_name = "Prompt tuning (Lester)"

    def __init__(self, config: PromptTuningConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        table = backbone.model.get_input_embeddings().weight.detach()
        if config.init is PromptInit.random:
            init = torch.randn(config.length, table.shape[1]) * table.std()
        else:
            candidates = torch.tensor([i for i in common_word_ids(backbone.tokenizer) if i < table.shape[0]])
            if len(candidates) < config.length:
                raise ConfigError(f"method.init={config.init.value!r}: the vocabulary of model={backbone.name} has "
                                  f"{len(candidates)} whole-word tokens for a prompt of {config.length}; "
                                  "allowed: method.init=random")
            init = table[candidates[torch.randperm(len(candidates))[: config.length]]].clone()
        self.prompt = nn.Parameter(init)

    def use_label_words(self, words: tuple[str, ...], backbone: Backbone) -> None:
        """Lester's class-label init: prompt token k starts as the mean embedding of the pieces
        of class word k (k < L); the other tokens keep their vocab draw."""
        if self.config.init is not PromptInit.class_label:
            return
        table = backbone.model.get_input_embeddings().weight.detach()
        with torch.no_grad():
            for k, word in enumerate(words[: self.config.length]):
                pieces = backbone.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
                self.prompt[k] = table[pieces].mean(0)

    def forward(self, batch_size: int, prompt_anchors: torch.Tensor | None = None) -> PromptOutput:
        prompt = self.prompt.unsqueeze(0).expand(batch_size, -1, -1)
        slots = prompt_slots(None, self.config.length, None, batch_size, prompt.device)
        return PromptOutput(input_prompt=prompt, insert_at=slots)
