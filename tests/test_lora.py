"""LoRA, the layer-injection method: against PEFT's LoRA (an independent implementation)
with identical weights, its identity at initialisation, and what it leaves untouched."""

from __future__ import annotations

import peft
import pytest
import torch
from conftest import TINY_MODELS, method_cfg, model_cfg

from ptuning.backbones import FAMILIES, load_backbone
from ptuning.errors import ConfigError
from ptuning.methods import build_method
from ptuning.methods.lora import QUERY_VALUE
from ptuning.model import PromptedModel


def _inputs(backbone, batch: int = 3, seq: int = 9) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 5000, (batch, seq), generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, 6:] = 0  # padding
    return {"input_ids": ids, "attention_mask": mask}


def _attached(name: str, **options):
    backbone = load_backbone(model_cfg(name))
    method = build_method(method_cfg("lora", **options), backbone)
    backbone.model.requires_grad_(False)
    method.attach(backbone)
    return backbone, method


@pytest.mark.parametrize("name", TINY_MODELS)
def test_matches_peft_lora(name):
    backbone, method = _attached(name, r=4, alpha=8.0)
    torch.manual_seed(3)
    for update in method.updates.values():  # B is zero at init: give both factors values
        torch.nn.init.normal_(update.A, std=0.2)
        torch.nn.init.normal_(update.B, std=0.2)

    reference = load_backbone(model_cfg(name))  # same init seed: the same backbone weights
    family = reference.family
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=QUERY_VALUE[family],
                             fan_in_fan_out=family == "gpt2")
    peft_model = peft.get_peft_model(reference.model, config)
    adapted = 0
    for target in method.targets:
        layer = peft_model.base_model.model.get_submodule(target)
        update = method.updates[target.replace(".", "-")]
        with torch.no_grad():
            layer.lora_A["default"].weight.copy_(update.A)
            layer.lora_B["default"].weight.copy_(update.B)
        adapted += 1
    fused = family in ("gpt2", "deberta", "gpt_neox")  # one q/k/v projection per layer, not q and v
    assert adapted == len(method.targets) == 2 * backbone.num_layers // (2 if fused else 1)

    inputs = _inputs(backbone)
    backbone.model.eval()
    peft_model.eval()
    with torch.no_grad():
        ours = backbone.model(**inputs).last_hidden_state
        theirs = peft_model(**inputs).last_hidden_state
        plain = load_backbone(model_cfg(name)).model.eval()(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-5), (ours - theirs).abs().max()
    assert not torch.allclose(ours[real], plain[real], atol=1e-3)  # the update does act


def test_every_family_has_default_projections():
    assert set(QUERY_VALUE) == set(FAMILIES)


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_llama"])
def test_zero_update_is_the_backbone(name):
    """B starts at zero (as PEFT), so an untrained LoRA leaves the backbone's outputs."""
    backbone, _ = _attached(name)
    inputs = _inputs(backbone)
    with torch.no_grad():
        adapted = backbone.model.eval()(**inputs).last_hidden_state
        plain = load_backbone(model_cfg(name)).model.eval()(**inputs).last_hidden_state
    assert torch.equal(adapted, plain)


def test_backbone_keeps_its_modules_and_stays_frozen():
    plain = load_backbone(model_cfg("tiny_bert"))
    keys = set(plain.model.state_dict())
    backbone = load_backbone(model_cfg("tiny_bert"))
    model = PromptedModel(backbone, build_method(method_cfg("lora"), backbone), "classification", 2)
    assert set(model.backbone.state_dict()) == keys  # hooks, no replaced modules
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.method.parameters())
    counts = model.parameter_counts()
    assert counts["backbone"] == sum(p.numel() for p in plain.model.parameters())
    assert counts["trainable"] == counts["method"] + counts["head"]
    assert set(model.artefact_state()) == (
        {f"method.{k}" for k in model.method.state_dict()} | {f"head.{k}" for k in model.head.state_dict()})
    assert model.method.describe()["kind"] == "injection"


def test_target_modules_are_checked():
    backbone = load_backbone(model_cfg("tiny_bert"))
    with pytest.raises(ConfigError, match=r"method.target_modules=\['qproj'\]: match no module of bert; "
                                          r"its linear layers: .*query"):
        build_method(method_cfg("lora", target_modules=["qproj"]), backbone)
    with pytest.raises(ConfigError, match="match non-linear modules"):
        build_method(method_cfg("lora", target_modules=["attention"]), backbone)
    custom = build_method(method_cfg("lora", target_modules=["attention.output.dense"]), backbone)
    assert custom.targets == [f"encoder.layer.{i}.attention.output.dense" for i in range(backbone.num_layers)]
