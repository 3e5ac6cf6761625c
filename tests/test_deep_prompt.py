"""The deep-prompt mechanism against HF PEFT, an empty prefix, padding, every family, and
DeBERTa's patched attention against the official prefix attention written out by hand."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import SCALE_LADDER_MODELS, TINY_MODELS, model_cfg

from ptuning.backbones import load_backbone
from ptuning.backbones.deep_prompt import DeepPrompt

#: families with one (eager, disentangled, patched) attention path
DEBERTA = ("tiny_deberta", "tiny_deberta_v2")


def _inputs(seed: int = 0, batch: int = 3, seq: int = 9):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    return ids, mask


def _random_prompt(backbone, batch: int, length: int, seed: int = 1) -> DeepPrompt:
    g = torch.Generator().manual_seed(seed)
    shape = (backbone.num_layers, 2, 1, backbone.num_kv_heads, length, backbone.head_dim)
    kv = torch.randn(shape, generator=g).expand(-1, -1, batch, -1, -1, -1)
    return DeepPrompt(kv.clone().requires_grad_(True))


def _hidden(backbone, ids, mask, prompt=None, position_ids=None):
    kwargs = backbone.adapter.forward_kwargs(prompt)
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    return backbone.model(input_ids=ids, attention_mask=mask, **kwargs).last_hidden_state


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_roberta", *SCALE_LADDER_MODELS])
def test_matches_peft_prefix_tuning(name):
    """Same prefix tensors through PEFT's cache route and our attention route. PEFT's cache
    counts the prefix as past tokens, so the real tokens' positions (absolute, RoBERTa-style
    or rotary) start after it: ours get the same position ids."""
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    backbone = load_backbone(model_cfg(name))
    backbone.model.eval()
    length = 5
    config = copy.deepcopy(backbone.model.config)  # the reference must not share our config
    ref = AutoModelForSequenceClassification.from_config(config)
    missing, unexpected = ref.base_model.load_state_dict(backbone.model.state_dict(), strict=False)
    assert not missing and all(k.startswith("pooler.") for k in unexpected)
    ref.set_attn_implementation("sdpa")
    assert backbone.model.config._attn_implementation == "deep_prompt_sdpa"
    peft_model = get_peft_model(ref, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=length))
    peft_model.eval()
    ids, mask = _inputs()
    batch = ids.shape[0]
    # PEFT builds its prefix from this table: (L, 2*n*d) viewed as (B, L, 2n, H, hd)
    table = peft_model.prompt_encoder["default"].embedding.weight.detach()
    n, heads, hd = backbone.num_layers, backbone.num_kv_heads, backbone.head_dim
    kv = table.view(1, length, 2 * n, heads, hd).permute(2, 0, 3, 1, 4).reshape(n, 2, 1, heads, length, hd)
    prompt = DeepPrompt(kv.expand(-1, -1, batch, -1, -1, -1))

    captured = {}
    hook = peft_model.base_model.base_model.register_forward_hook(
        lambda m, a, out: captured.update(h=out.last_hidden_state)
    )
    with torch.no_grad():
        peft_model(input_ids=ids, attention_mask=mask)
        ours = _hidden(backbone, ids, mask, prompt, position_ids=_offset_positions(backbone, mask, length))
    hook.remove()
    real = mask.bool()
    assert torch.allclose(ours[real], captured["h"][real], atol=1e-5), (ours - captured["h"]).abs().max()


def _offset_positions(backbone, mask, length):
    """Position ids of the real tokens after ``length`` prefix tokens (RoBERTa: padding-aware)."""
    if backbone.traits.positions == "roberta":
        return (torch.cumsum(mask, 1) + length) * mask + backbone.model.config.pad_token_id
    return torch.arange(mask.shape[1]).expand(mask.shape[0], -1) + length


@pytest.mark.parametrize("name", TINY_MODELS)
def test_empty_prefix_equals_plain_backbone(name):
    backbone = load_backbone(model_cfg(name))
    backbone.model.eval()
    ids, mask = _inputs()
    with torch.no_grad():
        plain = _hidden(backbone, ids, mask)
        empty = _hidden(backbone, ids, mask, _random_prompt(backbone, ids.shape[0], 0))
    assert torch.allclose(plain, empty, atol=1e-6)


@pytest.mark.parametrize("name", TINY_MODELS)
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_prefix_changes_output_and_respects_padding(name, attention):
    if name in DEBERTA and attention == "sdpa":
        pytest.skip("DeBERTa has one (eager, disentangled) attention path")
    backbone = load_backbone(model_cfg(name, attention=attention))
    backbone.model.eval()
    ids, mask = _inputs()
    prompt = _random_prompt(backbone, ids.shape[0], 4)
    with torch.no_grad():
        plain = _hidden(backbone, ids, mask)
        with_prefix = _hidden(backbone, ids, mask, prompt)
        changed_pad = ids.clone()
        changed_pad[mask == 0] = 7
        with_prefix_pad = _hidden(backbone, changed_pad, mask, prompt)
    real = mask.bool()
    assert (plain[real] - with_prefix[real]).abs().max() > 1e-3  # the prefix acts
    assert torch.allclose(with_prefix[real], with_prefix_pad[real], atol=1e-5)  # padding is ignored


@pytest.mark.parametrize("name", TINY_MODELS)
def test_sdpa_and_eager_agree(name):
    if name in DEBERTA:
        pytest.skip("single attention path")
    ids, mask = _inputs()
    outs = []
    for attention in ("sdpa", "eager"):
        backbone = load_backbone(model_cfg(name, attention=attention))
        backbone.model.eval()
        with torch.no_grad():
            outs.append(_hidden(backbone, ids, mask, _random_prompt(backbone, ids.shape[0], 3)))
    real = mask.bool()
    assert torch.allclose(outs[0][real], outs[1][real], atol=1e-5)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_gradient_checkpointing_keeps_prefix_and_gradients(name):
    ids, mask = _inputs()
    results = []
    for checkpointing in (False, True):
        backbone = load_backbone(model_cfg(name, gradient_checkpointing=checkpointing))
        backbone.model.train()
        backbone.model.requires_grad_(False)
        torch.manual_seed(0)
        prompt = _random_prompt(backbone, ids.shape[0], 3)
        torch.manual_seed(0)
        out = _hidden(backbone, ids, mask, prompt)
        (out[mask.bool()] ** 2).mean().backward()
        results.append((out.detach(), prompt.key_values.grad))
    (plain_out, plain_grad), (ckpt_out, ckpt_grad) = results
    real = mask.bool()
    assert ckpt_grad is not None and ckpt_grad.abs().sum() > 0
    assert torch.allclose(plain_out[real], ckpt_out[real], atol=1e-5)
    assert torch.allclose(plain_grad, ckpt_grad, atol=1e-5)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_padded_batch_equals_each_example_alone(name):
    """With a prefix, every example of a padded batch gets the hidden states it gets alone."""
    backbone = load_backbone(model_cfg(name))
    backbone.model.eval()
    ids, mask = _inputs()
    prompt = _random_prompt(backbone, ids.shape[0], 4)
    with torch.no_grad():
        together = _hidden(backbone, ids, mask, prompt)
        for row, length in enumerate(mask.sum(1).tolist()):
            alone_prompt = DeepPrompt(prompt.key_values[:, :, row:row + 1])
            alone = _hidden(backbone, ids[row:row + 1, :length], mask[row:row + 1, :length], alone_prompt)
            assert torch.allclose(together[row, :length], alone[0], atol=1e-5), (name, row)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_every_layer_attends_to_its_prefix(name):
    """Each layer's prefix keys and values get a gradient: every layer attends to its prefix."""
    backbone = load_backbone(model_cfg(name))
    backbone.model.eval()
    backbone.model.requires_grad_(False)
    ids, mask = _inputs()
    prompt = _random_prompt(backbone, ids.shape[0], 3)
    out = _hidden(backbone, ids, mask, prompt)
    (out[mask.bool()] ** 2).mean().backward()
    grad = prompt.key_values.grad
    for layer in range(backbone.num_layers):
        for kind in (0, 1):  # keys and values
            assert grad[layer, kind].abs().sum() > 0, (layer, kind)


def test_prefix_encoder_layout_matches_peft():
    """Our P-Tuning v2 table yields the same per-layer keys/values as PEFT's get_prompt."""
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from ptuning.methods import build_method

    backbone = load_backbone(model_cfg("tiny_bert"))
    method = build_method({"name": "ptuning_v2", "length": 4}, backbone).eval()
    ref = AutoModelForSequenceClassification.from_config(copy.deepcopy(backbone.model.config))
    peft_model = get_peft_model(ref, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4))
    peft_model.eval()
    method.prefix.embedding.weight.data.copy_(peft_model.prompt_encoder["default"].embedding.weight)
    ours = method(batch_size=2).deep_prompt
    cache = peft_model.get_prompt(batch_size=2)
    for layer in range(backbone.num_layers):
        key, value = ours.layer(layer)
        ref_layer = cache.layers[layer]
        assert torch.equal(key, ref_layer.keys) and torch.equal(value, ref_layer.values)


# ---------------------------------------------------------------- DeBERTa (v1) against the official attention


def _official_deberta_attention(attn, hidden, mask, prefix_key, prefix_value, rel_embeddings):
    """The official ``model/deberta.py`` attention with a prefix, one (query i, key j) term at a
    time: content + c2p + p2c among the tokens, content only against the prefix keys (the
    official code adds zeros there), relative distance i - j bucketed into [0, 2 span)."""
    batch, seq, width = hidden.shape
    heads = attn.num_attention_heads
    hd = width // heads
    weight = attn.in_proj.weight.view(heads, 3, hd, width)  # per head: query, key, value rows
    q = torch.einsum("btw,hdw->bhtd", hidden, weight[:, 0]) + attn.q_bias.view(1, heads, 1, hd)
    k = torch.einsum("btw,hdw->bhtd", hidden, weight[:, 1])
    v = torch.einsum("btw,hdw->bhtd", hidden, weight[:, 2]) + attn.v_bias.view(1, heads, 1, hd)
    scale = math.sqrt(hd * 3)  # content, c2p and p2c
    max_rel = attn.max_relative_positions
    span = min(seq, max_rel)
    table = rel_embeddings[max_rel - span: max_rel + span]
    pos_key = (table @ attn.pos_proj.weight.T).view(-1, heads, hd)
    pos_query = (table @ attn.pos_q_proj.weight.T + attn.pos_q_proj.bias).view(-1, heads, hd)
    i, j = torch.arange(seq)[:, None], torch.arange(seq)[None, :]
    bucket = (i - j + span).clamp(0, 2 * span - 1)
    content = torch.einsum("bhid,bhjd->bhij", q, k)
    c2p = torch.einsum("bhid,ijhd->bhij", q, pos_key[bucket])
    p2c = torch.einsum("bhjd,ijhd->bhij", k, pos_query[bucket])
    prefix = torch.einsum("bhid,bhld->bhil", q, prefix_key)
    scores = torch.cat([prefix, content + c2p + p2c], dim=-1) / scale
    visible = torch.cat([mask.new_ones(batch, prefix_key.shape[-2]), mask], dim=-1).bool()
    scores = scores.masked_fill(~visible[:, None, None, :], float("-inf"))
    context = scores.softmax(-1) @ torch.cat([prefix_value, v], dim=-2)
    return context.permute(0, 2, 1, 3).reshape(batch, seq, width)


@pytest.mark.parametrize("max_relative_positions", [-1, 3])  # -1: 512 as deberta-xlarge; 3: clamped
def test_deberta_prefix_matches_official_attention(max_relative_positions):
    # initializer_range 0.2: at 0.02 the c2p/p2c terms of a random tiny model are too small to test
    options = {"tiny_config": {"max_relative_positions": max_relative_positions, "initializer_range": 0.2}}
    ours = load_backbone(model_cfg("tiny_deberta", **options))
    reference = load_backbone(model_cfg("tiny_deberta", **options))  # same init seed, same weights
    for backbone in (ours, reference):  # q_bias/v_bias start at zero: give them values
        g = torch.Generator().manual_seed(5)
        for name, parameter in backbone.model.named_parameters():
            if name.endswith(("q_bias", "v_bias")):
                parameter.data.normal_(generator=g)
    ids, mask = _inputs()
    prompt = _random_prompt(ours, ids.shape[0], 4)
    layers = [layer.attention.self for layer in reference.model.encoder.layer]
    for index, attn in enumerate(layers):  # replace every attention by the hand-written one
        def forward(hidden_states, attention_mask, output_attentions=False, query_states=None,
                    relative_pos=None, rel_embeddings=None, attn=attn, index=index):
            key, value = prompt.layer(index)
            return _official_deberta_attention(attn, hidden_states, mask, key, value, rel_embeddings), None
        attn.forward = forward
    ours.model.eval()
    reference.model.eval()
    with torch.no_grad():
        got = _hidden(ours, ids, mask, prompt)
        want = _hidden(reference, ids, mask)
        plain = _hidden(ours, ids, mask)
    real = mask.bool()
    assert torch.allclose(got[real], want[real], atol=1e-5), (got - want)[real].abs().max()
    assert (got[real] - plain[real]).abs().max() > 1e-3


def test_deberta_runs_its_patched_eager_attention_only():
    """(Its prefix gets a gradient at every layer: test_every_layer_attends_to_its_prefix.)"""
    backbone = load_backbone(model_cfg("tiny_deberta"))
    assert backbone.model.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="supports only attention=eager"):
        type(backbone.adapter)(backbone.model, "sdpa")
