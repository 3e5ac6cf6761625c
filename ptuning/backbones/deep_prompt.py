"""One deep-prompt mechanism for every backbone family.

Deep prompts (prefix tuning, P-Tuning v2) prepend trainable key/value vectors to the
keys and values of every self-attention layer. Under transformers 5.x neither
``past_key_values`` tuples nor a cache work for every family and both break with
gradient checkpointing (see DESIGN.md section 4). This module instead registers an
attention function that concatenates the per-layer prefix before the backbone's own
attention kernel (SDPA or the model's eager function). The prefix reaches every
layer as a forward keyword argument, so gradient checkpointing recomputes each layer
with the same prefix.

DeBERTa (v1) and DeBERTa-v2 do not route attention through ``AttentionInterface``;
their ``DisentangledSelfAttention`` is patched here (zero relative-position bias for the
prefix, as in the official P-Tuning v2 code ``model/deberta.py`` and ``model/debertaV2.py``),
so the methods never see the difference.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

PREFIX_KWARG = "deep_prompt"
ATTENTION_BACKENDS = ("sdpa", "eager")
#: families whose self-attention is patched (eager only: they compute attention themselves)
PATCHED_FAMILIES = ("deberta", "deberta-v2")


@dataclass
class DeepPrompt:
    """Per-layer prefix keys and values.

    ``key_values`` has shape (num_layers, 2, batch, num_kv_heads, length, head_dim).
    ``mask`` (batch, length), when given, says which prefix positions each example sees
    (a batch mixing tasks pads shorter prefixes); None: every example sees all of them.
    """

    key_values: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.key_values.shape[-2]

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(key, value) of one layer, each (batch, num_kv_heads, length, head_dim)."""
        return self.key_values[index, 0], self.key_values[index, 1]

    def visible(self, query_len: int) -> torch.Tensor:
        """(batch, 1, query_len, length) bool: which prefix columns each query sees."""
        batch = self.key_values.shape[2]
        if self.mask is None:
            return torch.ones(batch, 1, query_len, self.length, dtype=torch.bool, device=self.key_values.device)
        return self.mask.bool()[:, None, None, :].expand(-1, 1, query_len, -1)


def _extend_mask(
    mask: torch.Tensor | None, prompt: DeepPrompt, query: torch.Tensor, key_len: int, causal: bool
) -> torch.Tensor | None:
    """Prepend the prefix's key columns (visible unless the prompt masks them) to a 4D
    attention mask."""
    batch, q_len = query.shape[0], query.shape[-2]
    if mask is None:
        if not causal and prompt.mask is None:
            return None
        visible = torch.ones(q_len, key_len, dtype=torch.bool, device=query.device)
        if causal:
            visible = visible.tril(key_len - q_len)
        mask = visible[None, None].expand(batch, 1, q_len, key_len)
    if prompt.mask is None:  # every query sees the whole prefix: the mask's own shape, no per-example rows
        prefix = torch.full((*mask.shape[:-1], prompt.length), True if mask.dtype == torch.bool else 0,
                            dtype=mask.dtype, device=mask.device)
        return torch.cat([prefix, mask], dim=-1)
    if mask.shape[0] != batch:  # a mask broadcast over the batch
        mask = mask.expand(batch, *mask.shape[1:])
    prefix = prompt.visible(mask.shape[-2]).to(mask.device).expand(-1, mask.shape[1], -1, -1)  # rows may broadcast
    if mask.dtype != torch.bool:
        prefix = torch.zeros_like(prefix, dtype=mask.dtype).masked_fill(~prefix, torch.finfo(mask.dtype).min)
    return torch.cat([prefix, mask], dim=-1)


def _model_eager_attention(module: nn.Module) -> Callable:
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise NotImplementedError(
            f"{type(module).__name__} has no eager_attention_forward; use attention=sdpa"
        )
    return eager


def _make_attention(backend: str) -> Callable:
    def attention(module, query, key, value, attention_mask, **kwargs):
        prompt: DeepPrompt | None = kwargs.pop(PREFIX_KWARG, None)
        if prompt is not None and prompt.length > 0:
            prefix_key, prefix_value = prompt.layer(module.layer_idx)
            key_len = key.shape[-2]
            key = torch.cat([prefix_key.to(key.dtype), key], dim=-2)
            value = torch.cat([prefix_value.to(value.dtype), value], dim=-2)
            attention_mask = _extend_mask(
                attention_mask, prompt, query, key_len, getattr(module, "is_causal", False)
            )
        base = ALL_ATTENTION_FUNCTIONS["sdpa"] if backend == "sdpa" else _model_eager_attention(module)
        return base(module, query, key, value, attention_mask, **kwargs)

    attention.__name__ = f"deep_prompt_{backend}_attention"
    return attention


def implementation_name(backend: str) -> str:
    """Name under which the prefix-aware variant of ``backend`` is registered."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; valid: {', '.join(ATTENTION_BACKENDS)}")
    return f"deep_prompt_{backend}"


AttentionInterface.register(implementation_name("sdpa"), _make_attention("sdpa"))
AttentionInterface.register(implementation_name("eager"), _make_attention("eager"))
AttentionMaskInterface.register(implementation_name("sdpa"), sdpa_mask)
AttentionMaskInterface.register(implementation_name("eager"), eager_mask)


# --- DeBERTa and DeBERTa-v2: patched disentangled attention ----------------------------------


class _PrefixSlot:
    """Holds the deep prompt of the current forward for patched (kwarg-less) families.

    The slot keeps its prompt until the next forward so that gradient checkpointing,
    which recomputes a layer during backward, sees the same prefix.
    """

    def __init__(self) -> None:
        self.prompt: DeepPrompt | None = None


def _deberta_v2_attention_forward(
    self,
    hidden_states,
    attention_mask,
    output_attentions=False,
    query_states=None,
    relative_pos=None,
    rel_embeddings=None,
):
    """DeBERTa-v2 ``DisentangledSelfAttention.forward`` with the layer's prefix prepended
    (official ``model/debertaV2.py``): zero relative-position bias for the prefix columns."""
    prompt = self._deep_prompt_slot.prompt
    if prompt is None or prompt.length == 0:
        return self._forward_without_prefix(
            hidden_states, attention_mask, output_attentions, query_states, relative_pos, rel_embeddings
        )
    from transformers.models.deberta_v2.modeling_deberta_v2 import scaled_size_sqrt

    heads = self.num_attention_heads
    if query_states is None:
        query_states = hidden_states
    query = self.transpose_for_scores(self.query_proj(query_states), heads)
    key = self.transpose_for_scores(self.key_proj(hidden_states), heads)
    value = self.transpose_for_scores(self.value_proj(hidden_states), heads)
    prefix_key, prefix_value = prompt.layer(self._deep_prompt_layer)
    batch, _, length, head_dim = prefix_key.shape
    prefix_key = prefix_key.reshape(batch * heads, length, head_dim).to(key.dtype)
    prefix_value = prefix_value.reshape(batch * heads, length, head_dim).to(value.dtype)

    scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
    scale = scaled_size_sqrt(query, scale_factor).to(dtype=query.dtype)
    scores = torch.bmm(query, key.transpose(-1, -2) / scale)
    if self.relative_attention:
        rel = self.disentangled_attention_bias(
            query, key, relative_pos, self.pos_dropout(rel_embeddings), scale_factor
        )
        scores = scores + rel
    prefix_scores = torch.bmm(query, prefix_key.transpose(-1, -2) / scale)
    scores = torch.cat([prefix_scores, scores], dim=-1)
    scores = scores.view(-1, heads, scores.size(-2), scores.size(-1))

    mask = attention_mask.bool()
    mask = torch.cat([prompt.visible(mask.shape[-2]).to(mask.device).expand(*mask.shape[:-1], -1), mask], dim=-1)
    scores = scores.masked_fill(~mask, torch.finfo(query.dtype).min)
    probs = self.dropout(nn.functional.softmax(scores, dim=-1))
    context = torch.bmm(probs.view(-1, probs.size(-2), probs.size(-1)), torch.cat([prefix_value, value], 1))
    context = context.view(-1, heads, context.size(-2), context.size(-1)).permute(0, 2, 1, 3).contiguous()
    context = context.view(*context.size()[:-2], -1)
    return (context, probs if output_attentions else None)


def _deberta_v1_attention_forward(
    self,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor,
    output_attentions: bool = False,
    query_states: torch.Tensor | None = None,
    relative_pos: torch.Tensor | None = None,
    rel_embeddings: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DeBERTa (v1) ``DisentangledSelfAttention.forward`` with the layer's prefix prepended.

    As the official ``model/deberta.py`` (P-Tuning v2), which passes the prefix as
    ``past_key_value``: the prefix keys/values are concatenated before the tokens' keys/values
    (per head; ``q_bias``/``v_bias`` apply to the tokens' projections only); every query's
    content score against the prefix keys is the usual scaled dot product; the disentangled
    terms (c2p: token queries x relative-position keys, p2c: token keys x relative-position
    queries) are computed among the real tokens only, with relative positions counted from
    the first real token (the prefix takes none), and the prefix columns get a zero
    relative-position bias (the official code adds ``torch.zeros`` there). Every real query
    sees the whole prefix and padded keys stay masked; a padded query row is not zeroed as the
    official ``XSoftmax`` does (no real token reads it).
    """
    prompt = self._deep_prompt_slot.prompt
    if prompt is None or prompt.length == 0:
        return self._forward_without_prefix(
            hidden_states, attention_mask, output_attentions, query_states, relative_pos, rel_embeddings
        )
    if query_states is not None:  # DebertaModel's z_steps decoding only (never with z_steps=0)
        raise NotImplementedError("deep prompts with DeBERTa query_states (z_steps > 1) are not supported")
    from transformers.models.deberta.modeling_deberta import scaled_size_sqrt

    query, key, value = self.transpose_for_scores(self.in_proj(hidden_states)).chunk(3, dim=-1)
    query = query + self.transpose_for_scores(self.q_bias[None, None, :])
    value = value + self.transpose_for_scores(self.v_bias[None, None, :])
    prefix_key, prefix_value = prompt.layer(self._deep_prompt_layer)  # (batch, heads, L, head_dim)

    scale_factor = 1 + len(self.pos_att_type)
    query = query / scaled_size_sqrt(query, scale_factor).to(dtype=query.dtype)
    scores = torch.matmul(query, key.transpose(-1, -2))
    if self.relative_attention and rel_embeddings is not None and relative_pos is not None:
        rel = self.disentangled_att_bias(query, key, relative_pos, self.pos_dropout(rel_embeddings), scale_factor)
        scores = scores + rel  # among the real tokens only
    prefix_scores = torch.matmul(query, prefix_key.to(query.dtype).transpose(-1, -2))
    scores = torch.cat([prefix_scores, scores], dim=-1)  # zero positional bias for the prefix
    if self.head_logits_proj is not None:  # talking heads act on the prefix columns too
        scores = self.head_logits_proj(scores.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    mask = attention_mask.bool()
    mask = torch.cat([prompt.visible(mask.shape[-2]).to(mask.device).expand(*mask.shape[:-1], -1), mask], dim=-1)
    scores = scores.masked_fill(~mask, torch.finfo(query.dtype).min)
    probs = self.dropout(nn.functional.softmax(scores, dim=-1))
    if self.head_weights_proj is not None:
        probs = self.head_weights_proj(probs.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    context = torch.matmul(probs, torch.cat([prefix_value.to(value.dtype), value], dim=-2))
    context = context.permute(0, 2, 1, 3).contiguous()
    context = context.view(*context.shape[:-2], -1)
    return (context, probs if output_attentions else None)


def _patch_disentangled(model: nn.Module, attention_class: type, forward: Callable) -> _PrefixSlot:
    """Route every ``attention_class`` layer of ``model`` through ``forward`` and one slot."""
    slot = _PrefixSlot()
    layers = [m for m in model.modules() if isinstance(m, attention_class)]
    for index, attention in enumerate(layers):
        attention._deep_prompt_slot = slot
        attention._deep_prompt_layer = index
        if not hasattr(attention, "_forward_without_prefix"):
            attention._forward_without_prefix = attention.forward
        attention.forward = types.MethodType(forward, attention)
    return slot


def _patch(model: nn.Module, family: str) -> _PrefixSlot:
    """Patch the disentangled attention of a DeBERTa (``deberta``) or DeBERTa-v2 backbone."""
    from transformers.models.deberta import modeling_deberta
    from transformers.models.deberta_v2 import modeling_deberta_v2

    if family == "deberta":
        return _patch_disentangled(model, modeling_deberta.DisentangledSelfAttention, _deberta_v1_attention_forward)
    return _patch_disentangled(model, modeling_deberta_v2.DisentangledSelfAttention, _deberta_v2_attention_forward)


# --- public entry points -------------------------------------------------------------------


class DeepPromptAdapter:
    """Makes a backbone accept a :class:`DeepPrompt` in its forward call.

    ``adapter.forward_kwargs(prompt)`` returns the keyword arguments to pass to the
    backbone's forward; for patched families it stores the prompt in the layers' slot
    and returns nothing.
    """

    def __init__(self, model: nn.Module, attention: str) -> None:
        self.family = model.config.model_type
        self._slot: _PrefixSlot | None = None
        if self.family in PATCHED_FAMILIES:
            if attention != "eager":
                raise ValueError(
                    f"model family {self.family} supports only attention=eager (got {attention!r})"
                )
            self._slot = _patch(model, self.family)
        else:
            model.set_attn_implementation(implementation_name(attention))

    def forward_kwargs(self, prompt: DeepPrompt | None) -> dict:
        """Keyword arguments that deliver ``prompt`` to every attention layer."""
        if self._slot is not None:
            self._slot.prompt = prompt
            return {}
        return {PREFIX_KWARG: prompt} if prompt is not None else {}
