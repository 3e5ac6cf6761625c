"""Exports for other tools: a PEFT adapter loaded by PeftModel.from_pretrained onto the Hugging
Face backbone gives the cell's logits; raw prompt embeddings, used as their sidecar documents
them on a plain transformers model, give them too; what PEFT cannot reproduce is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from conftest import model_cfg
from omegaconf import OmegaConf
from safetensors import safe_open
from transformers import AutoModel, DynamicCache

from experiments.export import main as export_main
from ptuning.artefacts import load_trained, write_random
from ptuning.backbones import load_backbone
from ptuning.config import ModelConfig, ModelSource
from ptuning.export import (
    EMBEDDINGS_FILE,
    EMBEDDINGS_JSON,
    NOTE_FILE,
    ExportedHead,
    ExportError,
    export_embeddings,
    export_peft,
    peft_feature_inputs,
)
from ptuning.tasks import get_task
from ptuning.training import FeatureCollator

peft = pytest.importorskip("peft")

MAX_LENGTH = 40
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "prompt_anchors")


class Cells:
    """Tiny backbones saved as Hugging Face checkpoints, and trained-looking cells on them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backbones: dict[str, Path] = {}

    def backbone_dir(self, model_name: str) -> Path:
        if model_name not in self.backbones:
            backbone = load_backbone(OmegaConf.to_object(model_cfg(model_name)))
            pooler = getattr(backbone.model, "pooler", None)
            if pooler is not None:  # spread the pooled examples apart (the random init maps all near 0)
                torch.nn.init.normal_(pooler.dense.weight, std=0.5, generator=torch.Generator().manual_seed(1))
            directory = self.root / "backbones" / model_name
            backbone.model.save_pretrained(directory)
            backbone.tokenizer.save_pretrained(directory)
            self.backbones[model_name] = directory
        return self.backbones[model_name]

    def cell(self, model_name: str, task_name: str, options: dict, seed: int = 0) -> Path:
        """A cell's artefact as the runner writes it (random, non-initial method and head
        weights) on the saved backbone (``model.hf_name`` a made-up id, ``model.path`` the copy)."""
        model = ModelConfig(name=model_name, source=ModelSource.hub, hf_name=f"ptuning-tests/{model_name}",
                            path=str(self.backbone_dir(model_name)))
        slug = "-".join(f"{k}{v}" for k, v in options.items() if k != "name").replace(" ", "")
        directory = self.root / "cells" / f"{model_name}-{task_name}-{options['name']}-{slug}"
        write_random(directory, model, load_backbone(model), get_task(task_name), options, MAX_LENGTH, seed, scale=0.5)
        return directory


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> Cells:
    return Cells(tmp_path_factory.mktemp("export"))


#: fields cut short in the first row, so that every batch holds padding
SHORTENED = {"rte": ("hypothesis",), "copa": ("choice1",), "conll04": ("tokens", "ner_tags"), "squad": ("question",)}


def _batch(trained, n: int = 4) -> dict[str, torch.Tensor]:
    rows = trained.task.synthetic_rows("validation", n, seed=5)
    for key in SHORTENED[trained.task.name]:
        value = rows[0][key]
        rows[0][key] = value[:3] if isinstance(value, list) else " ".join(value.split()[:2])
    encoded = trained.task.encode(rows, trained.backbone.tokenizer, trained.max_length, train=False)
    batch = FeatureCollator(trained.backbone.tokenizer.pad_token_id)(encoded.features)
    assert (batch["attention_mask"] == 0).any(), "the batch must hold padding"
    return {k: v for k, v in batch.items() if k in MODEL_INPUTS}


def _ours(trained, batch) -> torch.Tensor:
    with torch.no_grad():
        return trained.model(**batch)["logits"]


def _peft_logits(out: Path, backbone_dir: Path, trained, batch) -> torch.Tensor:
    """Logits as another tool gets them: transformers + PEFT, and the exported head file where
    the export has one."""
    note = json.loads((out / NOTE_FILE).read_text())
    auto_class = getattr(transformers, note["base_model_class"])
    extra = {} if auto_class is AutoModel else {"num_labels": note["num_labels"]}
    model = peft.PeftModel.from_pretrained(auto_class.from_pretrained(backbone_dir, **extra), out).eval()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    types = batch.get("token_type_ids") if trained.backbone.traits.token_type_ids else None
    num_choices = ids.shape[1] if ids.dim() == 3 else None
    if num_choices:  # multiple choice: (batch, choices, T) flattened, as the head expects
        ids, mask = ids.flatten(0, 1), mask.flatten(0, 1)
        types = types.flatten(0, 1) if types is not None else None
    with torch.no_grad():
        if note["head"] is None:
            return model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        hidden = model(**peft_feature_inputs(model, ids, mask, types)).last_hidden_state
    return ExportedHead.load(out)(hidden, mask, num_choices)


PEFT_CASES = [
    ("tiny_bert", "rte", {"name": "ptuning_v2", "length": 4}, "SEQ_CLS"),
    ("tiny_bert", "rte", {"name": "prefix_tuning", "length": 3, "hidden_size": 8}, "SEQ_CLS"),
    ("tiny_bert", "rte", {"name": "prompt_tuning", "length": 5, "init": "random"}, "FEATURE_EXTRACTION"),
    ("tiny_bert", "rte", {"name": "ptuning_v1", "length": 3}, "FEATURE_EXTRACTION"),
    ("tiny_roberta", "rte", {"name": "ptuning_v2", "length": 4}, "SEQ_CLS"),
    ("tiny_roberta", "rte", {"name": "prefix_tuning", "length": 3, "hidden_size": 8}, "SEQ_CLS"),
    ("tiny_roberta", "rte", {"name": "prompt_tuning", "length": 5, "init": "random"}, "FEATURE_EXTRACTION"),
    ("tiny_roberta", "rte", {"name": "ptuning_v1", "length": 3, "encoder": "mlp"}, "FEATURE_EXTRACTION"),
    ("tiny_xlm_roberta", "rte", {"name": "ptuning_v2", "length": 4}, "SEQ_CLS"),
    ("tiny_xlm_roberta_xl", "rte", {"name": "ptuning_v2", "length": 4}, "SEQ_CLS"),
    ("tiny_bert", "conll04", {"name": "ptuning_v2", "length": 4}, "TOKEN_CLS"),
    ("tiny_bert", "conll04", {"name": "mpt2", "length": 4}, "TOKEN_CLS"),
    ("tiny_bert", "conll04", {"name": "prompt_tuning", "length": 5, "init": "random"}, "FEATURE_EXTRACTION"),
    # no Hugging Face head: the prefix through PEFT's feature extraction + the head file
    ("tiny_bert", "copa", {"name": "ptuning_v2", "length": 4}, "FEATURE_EXTRACTION"),
    ("tiny_bert", "squad", {"name": "ptuning_v2", "length": 3}, "FEATURE_EXTRACTION"),
    ("tiny_gpt2", "rte", {"name": "ptuning_v2", "length": 4}, "FEATURE_EXTRACTION"),  # last-token pooling
    # input prompts on any family: decoders, rotary positions, DeBERTa's ContextPooler head
    ("tiny_gpt2", "rte", {"name": "prompt_tuning", "length": 5, "init": "random"}, "FEATURE_EXTRACTION"),
    ("tiny_llama", "rte", {"name": "ptuning_v1", "length": 3, "encoder": "mlp"}, "FEATURE_EXTRACTION"),
    ("tiny_deberta_v2", "rte", {"name": "prompt_tuning", "length": 5, "init": "random"}, "FEATURE_EXTRACTION"),
]


@pytest.mark.parametrize(("model_name", "task_name", "options", "task_type"), PEFT_CASES,
                         ids=[f"{m}-{t}-{o['name']}" for m, t, o, _ in PEFT_CASES])
def test_peft_adapter_gives_the_cells_logits(cells, tmp_path, model_name, task_name, options, task_type):
    trained = load_trained(cells.cell(model_name, task_name, options))
    out = export_peft(trained, tmp_path / "adapter")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == task_type
    assert config["peft_type"] == ("PROMPT_TUNING" if options["name"] in ("prompt_tuning", "ptuning_v1")
                                   else "PREFIX_TUNING")
    assert config["base_model_name_or_path"] == f"ptuning-tests/{model_name}"
    assert json.loads((out / NOTE_FILE).read_text())["source"]["cell_dir"] == str(trained.path.parent.resolve())
    batch = _batch(trained)
    ours, theirs = _ours(trained, batch), _peft_logits(out, cells.backbone_dir(model_name), trained, batch)
    if task_name == "squad":  # compare real tokens (both fill padded positions with the minimum)
        real = batch["attention_mask"].bool()
        ours, theirs = ours[real], theirs[real]
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


REFUSED = [
    ("tiny_bert", {"name": "ptuning_v2", "length": 4, "position_offset": False}, "method.position_offset=false"),
    ("tiny_bert", {"name": "ptuning_v1", "length": 3, "template": [1, 2, 0]}, r"method.template=\[1, 2, 0\]"),
    ("tiny_deberta_v2", {"name": "ptuning_v2", "length": 4}, "model family deberta-v2"),
    ("tiny_pythia", {"name": "ptuning_v2", "length": 4}, "rotary positions"),
    ("tiny_bert", {"name": "lora", "r": 2}, "method=lora: not exportable"),
]


@pytest.mark.parametrize(("model_name", "options", "message"), REFUSED,
                         ids=[f"{m}-{o['name']}" for m, o, _ in REFUSED])
def test_peft_refuses_what_it_cannot_reproduce(cells, tmp_path, model_name, options, message):
    trained = load_trained(cells.cell(model_name, "rte", options))
    with pytest.raises(ExportError, match=message):
        export_peft(trained, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists() and not list(tmp_path.iterdir())


def test_embeddings_of_an_unshifted_prefix_run_on_plain_transformers(cells, tmp_path):
    """The deep prefix PEFT cannot take (no position shift), used as its sidecar says: each
    layer's keys/values in a cache, position ids per its rule."""
    trained = load_trained(cells.cell("tiny_bert", "rte", {"name": "ptuning_v2", "length": 4,
                                                           "position_offset": False}))
    out = export_embeddings(trained, tmp_path / "embeddings")
    sidecar = json.loads((out / EMBEDDINGS_JSON).read_text())
    backbone = trained.backbone
    shape = [backbone.num_layers, 2, backbone.num_kv_heads, 4, backbone.head_dim]
    assert sidecar["kind"] == "deep_prefix" and sidecar["tensors"]["prefix"] == {"shape": shape, "dtype": "float32"}
    assert sidecar["positions"]["shift"] == 0 and sidecar["task"]["label_names"] == ["entailment", "not_entailment"]
    with safe_open(str(out / EMBEDDINGS_FILE), "pt") as handle:
        prefix = handle.get_tensor("prefix")
    batch = _batch(trained)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    model = AutoModel.from_pretrained(cells.backbone_dir("tiny_bert")).eval()
    cache = DynamicCache(tuple((layer[0].expand(len(ids), -1, -1, -1), layer[1].expand(len(ids), -1, -1, -1))
                               for layer in prefix.unsqueeze(2)))
    positions = torch.arange(ids.shape[1]).expand(len(ids), -1) + sidecar["positions"]["shift"]
    with torch.no_grad():
        hidden = model(input_ids=ids, token_type_ids=batch["token_type_ids"], position_ids=positions,
                       attention_mask=torch.cat([torch.ones(len(ids), 4, dtype=mask.dtype), mask], 1),
                       past_key_values=cache).last_hidden_state
    assert torch.allclose(ExportedHead.load(out)(hidden, mask), _ours(trained, batch), atol=1e-5)


def test_embeddings_of_a_templated_prompt_run_on_plain_transformers(cells, tmp_path):
    """P-Tuning v1 virtual tokens placed inside the input (PEFT cannot), inserted by hand as the
    sidecar's insertion rule says, on a plain transformers model."""
    trained = load_trained(cells.cell("tiny_bert", "rte", {"name": "ptuning_v1", "length": 4, "template": [1, 2, 1]}))
    out = export_embeddings(trained, tmp_path / "embeddings")
    sidecar = json.loads((out / EMBEDDINGS_JSON).read_text())
    assert sidecar["kind"] == "input_tokens" and sidecar["insertion"]["template"] == [1, 2, 1]
    with safe_open(str(out / EMBEDDINGS_FILE), "pt") as handle:
        prompt = handle.get_tensor("prompt")
    batch = _batch(trained)
    model = AutoModel.from_pretrained(cells.backbone_dir("tiny_bert")).eval()
    words = model.get_input_embeddings()
    embeds, masks, types, real = [], [], [], []
    for ids, mask, type_ids, anchors in zip(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                            batch["prompt_anchors"], strict=True):
        slots = [int(a) for a, count in zip(anchors, sidecar["insertion"]["template"], strict=True)
                 for _ in range(count)]
        rows, row_mask, row_types, row_real = [], [], [], []
        for index in range(len(ids) + 1):
            for k in (k for k, slot in enumerate(slots) if slot == index):
                rows.append(prompt[k]), row_mask.append(1), row_types.append(0), row_real.append(False)
            if index < len(ids):
                rows.append(words(ids[index])), row_mask.append(int(mask[index]))
                row_types.append(int(type_ids[index])), row_real.append(True)
        embeds.append(torch.stack(rows)), masks.append(row_mask), types.append(row_types), real.append(row_real)
    with torch.no_grad():
        hidden = model(inputs_embeds=torch.stack(embeds), attention_mask=torch.tensor(masks),
                       token_type_ids=torch.tensor(types)).last_hidden_state
    hidden = hidden[torch.tensor(real)].view(len(embeds), batch["input_ids"].shape[1], -1)
    logits = ExportedHead.load(out)(hidden, batch["attention_mask"])
    assert torch.allclose(logits, _ours(trained, batch), atol=1e-5)


def test_cli_writes_an_export(cells, capsys):
    cell = cells.cell("tiny_roberta", "rte", {"name": "ptuning_v2", "length": 2}, seed=3)
    assert export_main([str(cell), "--format", "embeddings"]) == 0
    assert sorted(p.name for p in (cell / "export-embeddings").iterdir()) == [
        "head.safetensors", EMBEDDINGS_JSON, EMBEDDINGS_FILE]
    assert export_main([str(cell)]) == 0
    assert (cell / "export-peft" / "adapter_model.safetensors").is_file()
    assert export_main([str(cell)]) == 2  # the default --out is taken now
    assert "already exists" in capsys.readouterr().err


def test_cli_bad_input_exits_2_and_writes_nothing(cells, tmp_path, capsys):
    finetuned = tmp_path / "finetuned_cell"  # a fine-tuned cell keeps no artefact
    finetuned.mkdir()
    (finetuned / "result.json").write_text("{}")
    templated = cells.cell("tiny_bert", "rte", {"name": "ptuning_v1", "length": 3, "template": [0, 3, 0]})
    before = sorted(p.name for p in templated.iterdir())
    out = tmp_path / "exports" / "adapter"
    capsys.readouterr()
    for argv in ([str(finetuned), "--out", str(out)], [str(tmp_path / "missing"), "--out", str(out)],
                 [str(templated), "--out", str(out)]):
        assert export_main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
    assert "method.template=[0, 3, 0]" in err and "--format embeddings" in err
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))
    assert sorted(p.name for p in templated.iterdir()) == before
    assert sorted(p.name for p in finetuned.iterdir()) == ["result.json"]
