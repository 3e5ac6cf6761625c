"""Tokenisation shared by the task families."""

from __future__ import annotations

from typing import Any

from transformers import BatchEncoding, PreTrainedTokenizerBase


def prompt_anchors(encoding: BatchEncoding, index: int) -> list[int]:
    """[start of input, start of second segment, final special token] token indices.

    P-Tuning v1 templates place virtual tokens before these positions. Without a second
    segment the middle anchor equals the last one; without a final special token the
    last anchor is the end of the real tokens.
    """
    ids = encoding.sequence_ids(index)
    real = [i for i, s in enumerate(ids) if s is not None]
    length = sum(encoding["attention_mask"][index])
    first = real[0] if real else 0
    end = real[-1] + 1 if real else length
    final = end if end < length else length
    second = next((i for i, s in enumerate(ids) if s == 1), final)
    return [first, second, final]


def encode_texts(tokenizer: PreTrainedTokenizerBase, first: list[str], second: list[str] | None,
                 max_length: int) -> list[dict[str, Any]]:
    """Features for (pairs of) texts, truncated to ``max_length`` tokens, unpadded."""
    enc = tokenizer(first, second, truncation=True, max_length=max_length)
    features = []
    for i in range(len(first)):
        feature = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                   "prompt_anchors": prompt_anchors(enc, i)}
        if "token_type_ids" in enc:
            feature["token_type_ids"] = enc["token_type_ids"][i]
        features.append(feature)
    return features
