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


def encode_cloze(tokenizer: PreTrainedTokenizerBase, texts: list[str], patterns: list[str],
                 max_length: int) -> list[dict[str, Any]]:
    """Features of cloze inputs: each text (shortened from its end to fit) followed by its
    pattern, in which ``{mask}`` stands for the tokenizer's mask token; one sequence with the
    tokenizer's special tokens. ``mask_position`` is the mask token's index; the prompt anchors
    are the text's start, the pattern's start and the final special token."""
    mask = tokenizer.mask_token
    if mask is None:
        raise ValueError(f"{type(tokenizer).__name__} has no mask token: a cloze pattern needs a masked-LM tokenizer")
    probe = tokenizer("a", add_special_tokens=False)["input_ids"]
    framed = tokenizer("a")["input_ids"]  # the special tokens around one sequence
    lead = next(i for i in range(len(framed)) if framed[i:i + len(probe)] == probe)
    before, after = framed[:lead], framed[lead + len(probe):]
    specials = len(before) + len(after)
    texts_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    patterns_ids = tokenizer([p.format(mask=mask) for p in patterns], add_special_tokens=False)["input_ids"]
    features = []
    for text_ids, pattern_ids in zip(texts_ids, patterns_ids, strict=True):
        budget = max_length - specials - len(pattern_ids)
        if budget < 1:
            raise ValueError(f"max_length={max_length}: the cloze pattern alone takes {len(pattern_ids)} tokens")
        text = text_ids[:budget]
        ids = before + text + pattern_ids + after
        start = len(before)
        feature = {"input_ids": ids, "attention_mask": [1] * len(ids),
                   "mask_position": ids.index(tokenizer.mask_token_id),
                   "prompt_anchors": [start, start + len(text), start + len(text) + len(pattern_ids)]}
        if "token_type_ids" in tokenizer.model_input_names:
            feature["token_type_ids"] = [0] * len(ids)
        features.append(feature)
    return features
