"""Every method: parameter counts against closed forms, what trains and what stays frozen,
option validation, P-Tuning v1 templates and the small artefact."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from conftest import CONF, SCALE_LADDER_MODELS, TINY_MODELS, method_cfg, model_cfg
from omegaconf import OmegaConf
from safetensors import safe_open

from ptuning.backbones import FAMILIES, load_backbone
from ptuning.errors import ConfigError
from ptuning.methods import METHODS, build_method, method_config
from ptuning.methods.prompt_tuning import common_word_ids
from ptuning.model import PromptedModel, insert_prompt
from ptuning.tasks import get_task
from ptuning.tasks.synthetic import synthetic_rows
from ptuning.training import FeatureCollator

METHOD_NAMES = sorted(METHODS)
PEFT_METHODS = [m for m in METHOD_NAMES if m != "finetune"]
NUM_LABELS = 3
#: options that make each method small for the tests
SMALL = {"finetune": {}, "lora": {"r": 2}, "prefix_tuning": {"length": 4, "hidden_size": 24}}


def _dims(model_name: str) -> tuple[int, int, int]:
    """(d, n layers, key/value width n_kv_heads * head_dim) read from the yaml, not the code."""
    tiny = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{model_name}.yaml").tiny_config)
    d = tiny.get("hidden_size") or tiny["n_embd"]
    layers = tiny.get("num_hidden_layers") or tiny["n_layer"]
    heads = tiny.get("num_attention_heads") or tiny["n_head"]
    kv_heads = tiny.get("num_key_value_heads") or heads
    return d, layers, kv_heads * (d // heads)


def _small(method: str) -> dict:
    return SMALL.get(method, {"length": 4})


def test_tiny_llama_has_grouped_query_attention():
    d, n, dkv = _dims("tiny_llama")
    assert (d, n, dkv) == (32, 2, 16)  # 2 kv heads of 8 dims, not 4
    backbone = load_backbone(model_cfg("tiny_llama"))
    layer = backbone.model.layers[0].self_attn
    assert layer.k_proj.out_features == dkv and layer.q_proj.out_features == d


def _features(backbone, task: str = "cb", n: int = 5, max_length: int = 64) -> list[dict]:
    return get_task(task).encode(synthetic_rows(task, "train", n), backbone.tokenizer, max_length,
                                 train=True).features


def _batch(backbone, task: str = "cb", n: int = 5, max_length: int = 64) -> dict[str, torch.Tensor]:
    return FeatureCollator(backbone.tokenizer.pad_token_id)(_features(backbone, task, n, max_length))


def _model(model_name: str, method: str, head: str = "classification", num_labels: int = NUM_LABELS,
           seed: int = 0, **options) -> PromptedModel:
    backbone = load_backbone(model_cfg(model_name))
    torch.manual_seed(seed)
    return PromptedModel(backbone, build_method(method_cfg(method, **options), backbone), head,
                         num_labels)


# ---------------------------------------------------------------- parameter counts

#: (input, output) widths of the projections LoRA adapts by default, per family, in terms of
#: (d, d_kv): query and value (GPT-2: the fused q/k/v projection)
LORA_SHAPES = {"tiny_bert": lambda d, kv: [(d, d), (d, d)], "tiny_roberta": lambda d, kv: [(d, d), (d, d)],
               "tiny_deberta": lambda d, kv: [(d, 3 * d)],
               "tiny_deberta_v2": lambda d, kv: [(d, d), (d, d)], "tiny_gpt2": lambda d, kv: [(d, 3 * d)],
               "tiny_llama": lambda d, kv: [(d, d), (d, kv)],
               "tiny_xlm_roberta": lambda d, kv: [(d, d), (d, d)],
               "tiny_xlm_roberta_xl": lambda d, kv: [(d, d), (d, d)],
               "tiny_pythia": lambda d, kv: [(d, 3 * d)]}


def _closed_form(method: str, model_name: str, options: dict) -> int:
    d, n, dkv = _dims(model_name)
    cfg = dataclasses.asdict(method_config(method_cfg(method, **options)))
    length = cfg.get("length")
    if method == "finetune":
        return 0
    if method == "lora":  # r * (in + out) per adapted projection per layer
        return n * sum(cfg["r"] * (i + o) for i, o in LORA_SHAPES[model_name](d, dkv))
    if method == "prompt_tuning":
        return length * d
    if method in ("prefix_tuning", "ptuning_v2") and cfg["hidden_size"]:
        h = cfg["hidden_size"]
        return length * d + d * h + h + h * 2 * n * dkv + 2 * n * dkv
    if method in ("prefix_tuning", "ptuning_v2"):
        return length * 2 * n * dkv
    h = cfg["hidden_size"] or d
    mlp = d * h + h + h * d + d
    if cfg["encoder"] == "lstm":
        return length * d + 16 * (d // 2) * (d + d // 2 + 2) + mlp
    return length * d + mlp


CASES = [
    ("finetune", {}),
    ("prompt_tuning", {}),
    ("prompt_tuning", {"length": 7}),
    ("ptuning_v1", {}),
    ("ptuning_v1", {"length": 5, "encoder": "mlp"}),
    ("ptuning_v1", {"length": 6, "hidden_size": 12}),
    ("ptuning_v1", {"length": 6, "hidden_size": 12, "encoder": "mlp"}),
    ("prefix_tuning", {}),
    ("prefix_tuning", {"length": 3, "hidden_size": 24}),
    ("ptuning_v2", {}),
    ("ptuning_v2", {"length": 5}),
    ("ptuning_v2", {"length": 5, "hidden_size": 24}),  # the reparameterised variant
    ("lora", {}),
    ("lora", {"r": 3}),
]


@pytest.mark.parametrize("model_name", TINY_MODELS)
@pytest.mark.parametrize(("method", "options"), CASES, ids=lambda v: str(v) if v else "")
def test_parameter_counts_match_closed_form(model_name, method, options):
    model = _model(model_name, method, **options)
    counts = model.parameter_counts()
    d = _dims(model_name)[0]
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert counts["method"] == _closed_form(method, model_name, options)
    roberta_style = ("tiny_roberta", "tiny_xlm_roberta", "tiny_xlm_roberta_xl")  # RobertaClassificationHead
    roberta_head = d * d + d if method == "finetune" and model_name in roberta_style else 0  # dense + tanh
    deberta_pooler = d * d + d if model_name in ("tiny_deberta", "tiny_deberta_v2") else 0  # ContextPooler
    assert counts["head"] == d * NUM_LABELS + NUM_LABELS + roberta_head + deberta_pooler
    assert counts["backbone"] == backbone
    assert counts["total"] == backbone + counts["method"] + counts["head"]
    if method == "finetune":
        assert counts["backbone_trainable"] == backbone
        assert counts["trainable"] == backbone + counts["head"]
    else:
        assert counts["backbone_trainable"] == 0
        assert counts["trainable"] == counts["method"] + counts["head"]


def test_closed_form_numbers_tiny_llama():
    """The closed forms spelled out once: d=32, n=2, d_kv=2*8=16 (GQA), default lengths."""
    expected = {
        "prompt_tuning": 20 * 32,
        "ptuning_v1": 8 * 32 + 16 * 16 * (32 + 16 + 2) + (32 * 32 + 32 + 32 * 32 + 32),
        "prefix_tuning": 10 * 32 + 32 * 512 + 512 + 512 * 2 * 2 * 16 + 2 * 2 * 16,  # Li & Liang: L=10
        "ptuning_v2": 16 * 2 * 2 * 16,
        "lora": 2 * (8 * (32 + 32) + 8 * (32 + 16)),  # r=8: q (32->32) and v (32->16) per layer
        "finetune": 0,
    }
    for method, value in expected.items():
        assert _model("tiny_llama", method).parameter_counts()["method"] == value, method


# ---------------------------------------------------------------- what trains

def _train(model: PromptedModel, batch: dict[str, torch.Tensor], steps: int = 3):
    """``steps`` AdamW steps (lr 1e-2, no decay) on the trainable parameters; returns the
    absolute gradients summed over the steps (LoRA's A gets none while B is still zero)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    model.train()
    grads: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = model(**batch)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                grads[n] = grads.get(n, 0) + p.grad.detach().abs()
        optimizer.step()
    return grads


@pytest.mark.parametrize("model_name", ["tiny_bert", "tiny_llama", *SCALE_LADDER_MODELS])
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_only_method_and_head_train(model_name, method):
    model = _model(model_name, method, **_small(method))
    batch = _batch(model.info)
    assert (batch["attention_mask"] == 0).any()  # padding in the batch
    frozen = method != "finetune"
    if frozen:
        assert all(not p.requires_grad for p in model.backbone.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = _train(model, batch)

    for name, p in model.method.named_parameters():
        full = f"method.{name}"
        assert full in grads and grads[full].abs().sum() > 0, full
        assert not torch.equal(p.detach(), before[full]), f"{full} did not change"
    for name in ("prompt", "embedding.weight", "prefix.embedding.weight"):
        if f"method.{name}" in grads:  # every virtual token gets a gradient
            assert (grads[f"method.{name}"].abs().sum(-1) > 0).all(), name
    for name, p in model.head.named_parameters():
        assert grads[f"head.{name}"].abs().sum() > 0
        assert not torch.equal(p.detach(), before[f"head.{name}"]), f"head.{name} did not change"
    for name, p in model.backbone.named_parameters():
        full = f"backbone.{name}"
        if frozen:
            assert p.grad is None, full
            assert torch.equal(p.detach(), before[full]), f"{full} changed"
        elif name.startswith("pooler.") and FAMILIES[model.backbone.config.model_type].classification_dense:
            assert p.grad is None, full  # RobertaClassificationHead reads the first token, not the pooler
        else:
            assert not torch.equal(p.detach(), before[full]), f"{full} did not change"
    if method == "finetune":
        assert model.parameter_counts()["method"] == 0


@pytest.mark.parametrize("model_name", SCALE_LADDER_MODELS)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_padded_batch_gives_each_example_its_own_logits(model_name, method):
    """Padding changes nothing: every row of a padded batch gets the logits it gets alone
    (prompts, prefix positions and last-token pooling all skip the padding)."""
    model = _model(model_name, method, **_small(method)).eval()
    features = _features(model.info)
    collate = FeatureCollator(model.info.tokenizer.pad_token_id)
    batch = {k: v for k, v in collate(features).items() if k != "labels"}
    assert (batch["attention_mask"] == 0).any()  # padding in the batch
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for parameter in model.head.parameters():  # logits of order 1, not 0.01
            parameter.normal_(generator=generator)
        at_init = model(**batch)["logits"]
        for parameter in model.method.parameters():  # off the init (LoRA's B starts at zero)
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
        together = model(**batch)["logits"]
        alone = torch.cat([model(**{k: v for k, v in collate([f]).items() if k != "labels"})["logits"]
                           for f in features])
    assert torch.allclose(together, alone, atol=1e-5), (together - alone).abs().max()
    if method != "finetune":  # the method's parameters act on the logits
        assert (together - at_init).abs().max() > 1e-3


# ---------------------------------------------------------------- option validation

@pytest.mark.parametrize("method", METHOD_NAMES)
def test_unknown_option_names_it_and_lists_valid(method):
    backbone = load_backbone(model_cfg("tiny_bert"))
    with pytest.raises(ConfigError) as err:
        build_method(method_cfg(method, lenght=3), backbone)
    message = str(err.value)
    assert message.startswith(f"method={method}: method.lenght: not an option; options: ")
    valid = message.split("options:")[1]
    fields = [f.name for f in dataclasses.fields(METHODS[method].config_class)]
    assert sorted(o.strip() for o in valid.split(",")) == sorted(fields)


def test_unknown_method_lists_valid_ones():
    backbone = load_backbone(model_cfg("tiny_bert"))
    with pytest.raises(ConfigError, match="method='lorax': unknown method") as err:
        build_method({"name": "lorax"}, backbone)
    listed = str(err.value).split("valid methods:")[1]
    assert sorted(m.strip() for m in listed.split(",")) == sorted(METHODS)


@pytest.mark.parametrize(
    ("method", "options", "pattern"),
    [
        ("prompt_tuning", {"init": "zeros"}, "method.init: Invalid value 'zeros', expected one of [vocab, class_label, random]"),
        ("prompt_tuning", {"length": 0}, "method.length=0: allowed: an integer >= 1"),
        ("prompt_tuning", {"length": "x"}, "method.length: Value 'x' of type 'str' could not be converted to Integer"),
        ("ptuning_v1", {"encoder": "gru"}, "method.encoder: Invalid value 'gru', expected one of [lstm, mlp, lstm_full]"),
        ("ptuning_v2", {"length": 0}, "method.length=0: allowed: an integer >= 1"),
        ("ptuning_v2", {"dropout": 1.5}, "method.dropout=1.5: allowed: null (the backbone's hidden dropout) or 0 <= p < 1"),
        ("prefix_tuning", {"length": -2}, "method.length=-2: allowed: an integer >= 1"),
        ("lora", {"r": 0}, "method.r=0: allowed: an integer >= 1"),
        ("lora", {"target_modules": []}, "method.target_modules=[]: allowed: null (query and value projections) or a non-empty list"),
    ],
)
def test_bad_option_values(method, options, pattern):
    backbone = load_backbone(model_cfg("tiny_bert"))
    with pytest.raises(ConfigError) as err:
        build_method(method_cfg(method, **options), backbone)
    assert str(err.value).endswith(pattern)


# ---------------------------------------------------------------- P-Tuning v1 templates

def test_template_places_tokens_at_segment_anchors():
    backbone = load_backbone(model_cfg("tiny_bert"))
    tok = backbone.tokenizer
    method = build_method(method_cfg("ptuning_v1", length=4, template=[1, 2, 1]), backbone)
    rows = synthetic_rows("rte", "validation", 3)
    features = get_task("rte").encode(rows, tok, 128, train=False).features
    batch = FeatureCollator(tok.pad_token_id)(features)
    out = method(len(rows), batch["prompt_anchors"])
    assert out.input_prompt.shape == (3, 4, backbone.hidden_size)

    ids = batch["input_ids"]
    seq = ids.shape[1]
    marker = torch.arange(4, dtype=torch.float).add(1).neg()  # prompt j -> value -(j+1)
    embeds = ids.unsqueeze(-1).float()
    new, mask, types, index = insert_prompt(embeds, batch["attention_mask"], batch["token_type_ids"],
                                            marker.view(1, 4, 1).expand(3, -1, -1),
                                            out.insert_at)
    for b, feature in enumerate(features):
        tokens = feature["input_ids"]
        seps = [i for i, t in enumerate(tokens) if t == tok.sep_token_id]
        second = feature["token_type_ids"].index(1)
        assert tokens[0] == tok.cls_token_id and len(seps) == 2 and second == seps[0] + 1
        # before the input (after [CLS]), twice before segment B, before the final [SEP]
        assert out.insert_at[b].tolist() == [1, second, second, seps[1]]
        expected = ([tokens[0], -1.0] + tokens[1:second] + [-2.0, -3.0] + tokens[second:seps[1]]
                    + [-4.0, tok.sep_token_id] + [tok.pad_token_id] * (seq - len(tokens)))
        assert new[b, :, 0].tolist() == expected
        assert index[b, : len(tokens)].tolist() == (
            [0] + [t + 1 for t in range(1, second)] + [t + 3 for t in range(second, seps[1])]
            + [seps[1] + 4]
        )
        assert mask[b].sum() == len(tokens) + 4
        assert types[b, index[b, second]] == 1 and types[b, 1] == 0


@pytest.mark.parametrize("template", [[1, 1, 1], [4, 0, 1], [2, 2], [5, -1, 0]])
def test_bad_template_raises(template):
    backbone = load_backbone(model_cfg("tiny_bert"))
    with pytest.raises(ConfigError, match=r"method\.template=.*summing to method\.length=4"):
        build_method(method_cfg("ptuning_v1", length=4, template=template), backbone)


def test_template_without_anchors_raises():
    backbone = load_backbone(model_cfg("tiny_bert"))
    method = build_method(method_cfg("ptuning_v1", length=2, template=[1, 0, 1]), backbone)
    with pytest.raises(ValueError, match="prompt_anchors"):
        method(2, None)


# ---------------------------------------------------------------- the small artefact

@pytest.mark.parametrize("method", PEFT_METHODS)
def test_artefact_round_trip(method, tmp_path):
    options = _small(method)
    trained = _model("tiny_bert", method, seed=0, **options)
    batch = _batch(trained.info)
    _train(trained, batch, steps=2)
    path = tmp_path / "prompt.safetensors"
    trained.save_artefact(path, {"method": method})

    fresh = _model("tiny_bert", method, seed=123, **options)
    for (name, a), b in zip(trained.backbone.state_dict().items(),
                            fresh.backbone.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # same backbone weights (same init seed)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    trained.eval()
    fresh.eval()
    with torch.no_grad():
        want = trained(**inputs)["logits"]
        assert not torch.allclose(fresh(**inputs)["logits"], want)
        fresh.load_artefact(path)
        assert torch.equal(fresh(**inputs)["logits"], want)

    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        assert f.metadata() == {"method": method}
    assert keys == ({f"method.{k}" for k in trained.method.state_dict()}
                    | {f"head.{k}" for k in trained.head.state_dict()})
    backbone_keys = set(trained.backbone.state_dict())
    assert all(k.startswith(("method.", "head.")) for k in keys)
    assert not {k.split(".", 1)[1] for k in keys} & backbone_keys
    numel = trained.parameter_counts()["method"] + trained.parameter_counts()["head"]
    size = path.stat().st_size
    assert 4 * numel <= size <= 4 * numel + 200 * len(keys) + 200
    assert size < trained.parameter_counts()["backbone"] * 4 / 50


def test_artefact_rejects_mismatched_method(tmp_path):
    v2 = _model("tiny_bert", "ptuning_v2", num_labels=2, length=4)
    path = tmp_path / "a.safetensors"
    v2.save_artefact(path)
    other = _model("tiny_bert", "ptuning_v2", num_labels=2, length=5)
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.load_artefact(path)


# ---------------------------------------------------------------- prompt tuning initialisation


def test_vocab_init_draws_common_whole_words():
    """Not BERT's ids below 5000 (994 [unused] tokens, 997 single characters, 233 word pieces
    among them): 5000 whole words of 2+ letters, in vocabulary order."""
    backbone = load_backbone(model_cfg("tiny_bert"))
    tokenizer = backbone.tokenizer
    ids = common_word_ids(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert len(ids) == 5000 and tokens[:4] == ["the", "of", "and", "in"]
    assert all(re.fullmatch(r"[A-Za-z]{2,}", t) for t in tokens)
    assert ids == sorted(ids) and not set(ids) & set(tokenizer.all_special_ids)
    torch.manual_seed(0)
    method = build_method(method_cfg("prompt_tuning", length=6), backbone)
    table = backbone.model.get_input_embeddings().weight
    drawn = [int((table == row).all(-1).nonzero()[0]) for row in method.prompt.detach()]
    assert set(drawn) <= set(ids) and len(set(drawn)) == 6


def test_vocab_init_on_a_byte_level_vocabulary():
    """GPT-2/RoBERTa vocabularies: only word-start tokens (``Ġword``) are words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    corpus = ["the cat sat on the mat , said the man at 10 am .", "cats and dogs ran to the park ."] * 20
    raw.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<pad>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokens = tokenizer.convert_ids_to_tokens(common_word_ids(tokenizer, count=1000))
    vocab = tokenizer.get_vocab()
    expected = sorted((i for t, i in vocab.items() if re.fullmatch(r"Ġ[A-Za-z]{2,}", t)))
    assert tokens == tokenizer.convert_ids_to_tokens(expected) and "Ġcat" in tokens and "cat" not in tokens


def test_class_label_init_starts_from_the_class_words():
    """Lester et al.: prompt token k = mean embedding of class word k's pieces, the rest as vocab."""
    backbone = load_backbone(model_cfg("tiny_bert"))
    words = get_task("rte").label_words
    assert words == ("entailment", "not entailment")
    method = build_method(method_cfg("prompt_tuning", length=5, init="class_label"), backbone, words)
    table = backbone.model.get_input_embeddings().weight.detach()
    for k, word in enumerate(words):
        pieces = backbone.tokenizer(word, add_special_tokens=False)["input_ids"]
        assert torch.allclose(method.prompt[k], table[pieces].mean(0))
    assert len(backbone.tokenizer(words[1], add_special_tokens=False)["input_ids"]) > 1  # a mean
    common = set(common_word_ids(backbone.tokenizer))
    for row in method.prompt[2:].detach():
        assert int((table == row).all(-1).nonzero()[0]) in common


@pytest.mark.parametrize("task", ["copa", "conll2003", "squad"])
def test_class_label_init_needs_class_words(task):
    config = method_config(method_cfg("prompt_tuning", init="class_label"))
    with pytest.raises(ConfigError, match=f"method.init='class_label': the classes of task {task} are not words"):
        config.check_task(task, get_task(task).label_words)


# ---------------------------------------------------------------- folding the reparameterisation


@pytest.mark.parametrize("model_name", ["tiny_bert", "tiny_llama"])
def test_prefix_tuning_stores_the_prefix_not_the_mlp(model_name, tmp_path):
    """Li & Liang keep MLP(E) after training: same outputs, L x 2n x d_kv numbers, and an
    artefact that a freshly built (unfolded) model loads."""
    _, n, dkv = _dims(model_name)
    trained = _model(model_name, "prefix_tuning", seed=0, length=4, hidden_size=24)
    batch = _batch(trained.info)
    _train(trained, batch, steps=2)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    trained.eval()
    with torch.no_grad():
        before = trained(**inputs)["logits"]
        assert trained.method.fold_for_storage() and not trained.method.fold_for_storage()
        after = trained(**inputs)["logits"]
    assert torch.allclose(before, after, atol=1e-6)
    assert trained.parameter_counts()["method"] == 4 * 2 * n * dkv
    path = tmp_path / "prompt.safetensors"
    trained.save_artefact(path, {"stored_form": "folded"})
    fresh = _model(model_name, "prefix_tuning", seed=1, length=4, hidden_size=24)
    fresh.eval()
    fresh.load_artefact(path)
    with torch.no_grad():
        assert torch.allclose(fresh(**inputs)["logits"], before, atol=1e-6)


def test_prefix_tuning_defaults_are_li_and_liang_s():
    """XiangLi1999/PrefixTuning gpt2/train_e2e.py: --learning_rate 5e-05, --preseqlen 10,
    --mid_dim 512, --use_dropout no (dropout 0.0); PyTorch init (train_control.py)."""
    config = method_config(method_cfg("prefix_tuning"))
    assert (config.lr, config.length, config.hidden_size, config.dropout, config.init.value) == (
        5e-5, 10, 512, 0.0, "torch")
    model = _model("tiny_bert", "prefix_tuning")
    assert model.method.prefix.dropout.p == 0.0  # not the backbone's hidden dropout
