"""Behaviours pinned against the official P-Tuning v2 code (THUDM/P-tuning-v2 with
transformers 4.11.3): initialisation, where --hidden_dropout_prob acts, the heads (DeBERTa's
ContextPooler included), ReCoRD's ranking and the NER input length."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import method_cfg, model_cfg
from transformers.models.deberta.modeling_deberta import ContextPooler as HFContextPooler
from transformers.models.roberta.modeling_roberta import RobertaClassificationHead

from ptuning.backbones import load_backbone
from ptuning.errors import ConfigError
from ptuning.heads import ContextPooler
from ptuning.methods import build_method
from ptuning.model import PromptedModel
from ptuning.tasks import Encoded, get_task


def _model(name: str, method: str, head: str = "classification", num_labels: int = 3, model=None, **options):
    backbone = load_backbone(model_cfg(name, **(model or {})))
    torch.manual_seed(0)
    return PromptedModel(backbone, build_method(method_cfg(method, **options), backbone), head, num_labels)


@pytest.mark.parametrize("model_name", ["tiny_bert", "tiny_deberta"])
@pytest.mark.parametrize("range_", [0.02, 0.5])
def test_heads_start_from_transformers_init_weights(model_name, range_):
    """Official heads are modules of the HF model: N(0, initializer_range) weights, zero biases
    (DeBERTa's ContextPooler dense layer included)."""
    for head in ("classification", "multiple_choice", "token_classification", "span_qa"):
        model = _model(model_name, "ptuning_v2", head, 7, model={"tiny_config": {"initializer_range": range_}},
                       length=4)
        for name, parameter in model.head.named_parameters():
            if name.endswith("bias"):
                assert torch.equal(parameter, torch.zeros_like(parameter)), (head, name)
            else:
                assert parameter.std().item() == pytest.approx(range_, rel=0.35), (head, name)


def test_ptuning_v2_prefix_starts_at_initializer_range_and_prefix_tuning_at_torch_defaults():
    v2 = _model("tiny_bert", "ptuning_v2", length=16).method.prefix  # 16 x 2*2*32 = 2048 values
    assert v2.embedding.weight.std().item() == pytest.approx(0.02, rel=0.1)
    projected = _model("tiny_bert", "ptuning_v2", length=16, hidden_size=64).method.prefix
    assert projected.embedding.weight.std().item() == pytest.approx(0.02, rel=0.2)
    for layer in (projected.transform[0], projected.transform[2]):
        assert layer.weight.std().item() == pytest.approx(0.02, rel=0.2) and not layer.bias.any()
    li_liang = _model("tiny_bert", "prefix_tuning", length=16, hidden_size=64).method.prefix
    assert li_liang.embedding.weight.std().item() == pytest.approx(1.0, rel=0.2)  # nn.Embedding: N(0, 1)
    torch_init = _model("tiny_bert", "ptuning_v2", length=16, init="torch").method.prefix
    assert torch_init.embedding.weight.std().item() == pytest.approx(1.0, rel=0.1)


def test_model_dropout_acts_on_backbone_prefix_and_head_as_hidden_dropout_prob():
    """run_conll04_bert.sh's --hidden_dropout_prob 0.2 goes into the backbone config (model/utils.py)."""
    v2 = _model("tiny_bert", "ptuning_v2", "token_classification", model={"dropout": 0.2}, length=4)
    assert v2.backbone.config.hidden_dropout_prob == 0.2
    assert v2.backbone.encoder.layer[0].output.dropout.p == 0.2
    assert v2.method.prefix.dropout.p == 0.2 and v2.head.dropout.p == 0.2
    plain = _model("tiny_bert", "ptuning_v2", "token_classification", length=4)
    assert plain.backbone.config.hidden_dropout_prob == 0.1 and plain.head.dropout.p == 0.1
    assert _model("tiny_gpt2", "lora", model={"dropout": 0.3}).backbone.config.resid_pdrop == 0.3
    with pytest.raises(ConfigError, match="model.dropout=0.2: family llama has no hidden dropout"):
        load_backbone(model_cfg("tiny_llama", dropout=0.2))


def test_span_qa_head_has_no_dropout():
    """model/question_answering.py: qa_outputs on the sequence output, no dropout."""
    head = _model("tiny_bert", "ptuning_v2", "span_qa", 2, model={"dropout": 0.2}, length=4).head
    assert head.dropout.p == 0.0
    assert _model("tiny_bert", "finetune", "span_qa", 2).head.dropout.p == 0.0


def test_roberta_fine_tuning_uses_roberta_classification_head():
    """Fine-tuning goes through AutoModelForSequenceClassification: RobertaClassificationHead
    ([CLS] -> dropout -> dense -> tanh -> dropout -> out_proj); prompt methods use the pooler."""
    model = _model("tiny_roberta", "finetune", num_labels=3).eval()
    config = model.backbone.config
    config.num_labels = 3
    reference = RobertaClassificationHead(config).eval()
    with torch.no_grad():
        reference.dense.weight.copy_(model.head.dense.weight)
        reference.dense.bias.copy_(model.head.dense.bias)
        reference.out_proj.weight.copy_(model.head.classifier.weight)
        reference.out_proj.bias.copy_(model.head.classifier.bias)
        hidden = torch.randn(4, 6, config.hidden_size)
        _, logits = model.head(hidden, torch.ones(4, 6, dtype=torch.long))
        assert torch.allclose(logits, reference(hidden), atol=1e-6)
    assert _model("tiny_roberta", "ptuning_v2", length=4).head.dense is None
    assert _model("tiny_bert", "finetune").head.dense is None  # BertForSequenceClassification: pooler


HEAD_KINDS = ("classification", "multiple_choice", "token_classification", "span_qa")


@pytest.mark.parametrize("name", ["tiny_deberta", "tiny_deberta_v2"])
@pytest.mark.parametrize("method", ["ptuning_v2", "finetune"])
def test_deberta_sequence_heads_pool_through_a_trained_context_pooler(name, method):
    """model/deberta.py ContextPooler in DebertaPrefixForSequenceClassification and
    DebertaPrefixForMultipleChoice (and HF's Deberta(V2)ForSequenceClassification, the official
    fine-tuning path): [CLS] -> dropout(pooler_dropout) -> dense -> gelu -> dropout(hidden) ->
    classifier. The pooler is new, trained and counted with the head; token and span heads have none."""
    for head in HEAD_KINDS:
        model = _model(name, method, head, 3, **({"length": 4} if method == "ptuning_v2" else {}))
        pooler = getattr(model.head, "pooler", None)
        d = model.info.hidden_size
        if head in ("token_classification", "span_qa"):
            assert pooler is None and not any(isinstance(m, ContextPooler) for m in model.head.modules())
            continue
        assert isinstance(pooler, ContextPooler)
        assert pooler.dense.weight.shape == (d, d) and pooler.dropout.p == 0.0  # pooler_dropout default
        assert all(p.requires_grad for p in pooler.parameters())
        assert not pooler.dense.bias.any()
        out = model.head.classifier if head == "classification" else model.head.scorer
        assert model.parameter_counts()["head"] == d * d + d + out.weight.numel() + out.bias.numel()
        assert set(model.artefact_state()) >= {"head.pooler.dense.weight", "head.pooler.dense.bias"}

    model = _model(name, "ptuning_v2", num_labels=3, length=4).eval()
    config = model.backbone.config
    reference = HFContextPooler(config).eval()
    with torch.no_grad():
        reference.dense.weight.copy_(model.head.pooler.dense.weight.normal_())
        reference.dense.bias.copy_(model.head.pooler.dense.bias.normal_())
        hidden = torch.randn(4, 6, config.hidden_size)
        _, logits = model.head(hidden, torch.ones(4, 6, dtype=torch.long))
        assert torch.allclose(logits, model.head.classifier(reference(hidden)), atol=1e-6)
    assert _model("tiny_bert", "ptuning_v2", length=4).head.pooler is None
    assert _model("tiny_roberta", "finetune").head.pooler is None


@pytest.mark.parametrize("name", ["tiny_deberta", "tiny_deberta_v2"])
@pytest.mark.parametrize("head", HEAD_KINDS)
def test_every_head_trains_on_deberta_with_ptuning_v2(name, head):
    """A forward/backward of each head kind on a DeBERTa backbone with a deep prompt: the loss is
    finite, the prefix and every head weight get gradients, the backbone none."""
    model = _model(name, "ptuning_v2", head, 3, length=4).train()
    g = torch.Generator().manual_seed(0)
    shape = (6, 3, 7) if head == "multiple_choice" else (3, 7)
    ids = torch.randint(1000, 2000, shape, generator=g)
    mask = torch.ones_like(ids)
    mask[..., 1, 5:] = 0  # padding
    labels = {"classification": {"labels": torch.tensor([0, 2, 1])},
              "multiple_choice": {"labels": torch.tensor([0, 2, 1, 0, 1, 2])},
              "token_classification": {"labels": torch.randint(0, 3, (3, 7), generator=g).masked_fill(mask == 0, -100)},
              "span_qa": {"start_positions": torch.tensor([1, 2, 0]), "end_positions": torch.tensor([3, 4, 0])}}
    out = model(input_ids=ids, attention_mask=mask, **labels[head])
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.method.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    assert all(p.grad is None for p in model.backbone.parameters())


def test_record_ranks_candidates_by_the_class_1_logit_ties_to_the_greater_entity():
    """tasks/superglue/dataset.py reocrd_compute_metrics: sorted((prob[1], entity), reverse=True)[0]."""
    task = get_task("record")
    rows = [{"answers": ["Anna"]}, {"answers": ["Carl"]}]
    owners = [(0, "Anna"), (0, "Zed"), (1, "Bob"), (1, "Carl")]
    # query 0: Zed wins on logit1 - logit0, Anna on logit1; query 1: a tie on logit1 goes to Carl
    logits = np.array([[5.0, 3.0], [-5.0, 2.0], [0.0, 1.0], [0.0, 1.0]])
    scores = task.score(logits, Encoded(rows, [{}] * 4, {"owners": owners}))
    assert scores == {"em": pytest.approx(100.0), "f1": pytest.approx(100.0)}  # margin + first-wins: 0


def test_ner_inputs_are_cut_at_the_tokenizer_maximum():
    """tasks/ner/dataset.py tokenizes with truncation=True and no max_length: 512 for BERT."""
    task = get_task("conll2003")
    assert task.max_length == 512
    words = ["word"] * 600
    encoded = task.encode([{"id": "0", "tokens": words, "ner_tags": ["O"] * 600}],
                          load_backbone(model_cfg("tiny_bert")).tokenizer, task.max_length, train=True)
    assert len(encoded.features[0]["input_ids"]) == 512
