"""Export a trained cell's prompt for other tools: a PEFT adapter, or raw prompt embeddings.

Both read a :class:`ptuning.artefacts.Trained` (``load_trained(cell_dir)``) and write one
directory, whole or not at all (written beside it under a temporary name, then renamed).
Every option combination that another tool would run differently from this suite is refused
with an :class:`ExportError` before anything is written; nothing is exported approximately.

**PEFT adapter** (:func:`export_peft`): ``adapter_config.json`` + ``adapter_model.safetensors``,
loaded by ``peft.PeftModel.from_pretrained(base_model, out_dir)`` (the layouts of peft 0.21,
tested with 0.21.2 and transformers 5.23), plus ``ptuning_export.json`` (the source cell and
how to run the adapter) and ``README.md``.

- ``ptuning_v2`` / ``prefix_tuning`` / ``mpt2`` -> ``PrefixTuningConfig`` without projection:
  the prefix table (L, num_layers * 2 * num_kv_heads * head_dim), a reparameterised prefix
  folded to MLP(E). Our layout is PEFT's: row i viewed as (2 * num_layers, num_kv_heads, head_dim),
  index ``2 * layer + 0`` the layer's keys, ``+ 1`` its values. PEFT passes the prefix as a
  ``past_key_values`` cache, which places the real tokens after it: on BERT, RoBERTa, XLM-R
  (XL) and GPT-2 their position ids start at L, which is our ``method.position_offset=true``
  (the default), so ``position_offset=false`` is refused there. On rotary families (Pythia,
  Llama, Qwen2) the cache likewise moves the real tokens to rotary positions L.. while ours
  keep 0.., and DeBERTa (whose prefix we give a zero relative-position bias) has no cache path
  in PEFT at all: both are refused.
- ``prompt_tuning`` / ``ptuning_v1`` -> ``PromptTuningConfig``: the L virtual-token embeddings
  (P-Tuning v1: its prompt encoder's output). PEFT always places them before the input, so a
  P-Tuning v1 ``method.template`` (tokens inside the input) is refused.
- Heads. A deep prompt on BERT, RoBERTa or XLM-R (XL) keeps Hugging Face's own head:
  classification -> ``SEQ_CLS`` (``AutoModelForSequenceClassification.from_pretrained(backbone,
  num_labels=C)``): BERT's ``bert.pooler`` (the backbone's, carried in the adapter so a
  checkpoint without pooler weights still gives our logits) and ``classifier``; RoBERTa-style
  ``classifier.dense`` = the backbone's pretrained pooler dense (our frozen head pools through
  it: tanh(dense(h[CLS]))) and ``classifier.out_proj`` = our linear; token classification ->
  ``TOKEN_CLS`` (``classifier``). In eval mode these compute exactly our head.
  Everything else is exported as ``FEATURE_EXTRACTION`` (``AutoModel``) plus our head in
  ``head.safetensors`` (:class:`ExportedHead` applies it): input prompts (with PEFT's prompt
  tuning Hugging Face's heads would pool or label the virtual tokens), multiple choice (PEFT
  has no such task type), span QA (PEFT's ``QUESTION_ANS`` drops ``token_type_ids`` for prompt
  methods and Hugging Face does not mask padded positions as our head does), DeBERTa's
  ContextPooler heads and decoders' last-token pooling. PEFT's feature-extraction path drops
  ``token_type_ids`` (with a warning): on a backbone with token-type embeddings pass the
  inputs through :func:`peft_feature_inputs`, which folds them into ``inputs_embeds``. With
  input prompts, PEFT's outputs hold the L virtual positions first; ``ExportedHead`` skips them.

**Prompt embeddings** (:func:`export_embeddings`), for servers that take prompt embeddings:

- ``prompt_embeddings.safetensors``: ``prompt`` (L, hidden_size), the virtual-token input
  embeddings (prompt tuning, P-Tuning v1), or ``prefix`` (num_layers, 2, num_kv_heads, L,
  head_dim), every layer's prefix keys (``[:, 0]``) and values (``[:, 1]``) as the attention
  uses them (prepended to the tokens' keys/values after projection and any rotary embedding;
  never rotated themselves); float32.
- ``prompt_embeddings.json``: ``format`` (``ptuning-prompt-embeddings``), ``format_version``,
  ``kind`` (``input_tokens`` | ``deep_prefix``), ``method`` (every option), ``source`` (the
  cell), ``backbone`` (``hf_name``, family, sizes, position style), ``tensors`` (name -> shape,
  dtype), ``insertion`` (input tokens: where each row goes, ``rule`` ``prefix`` or ``template``
  with the anchors; their attention mask 1 and token type 0), ``positions`` (``shift``: how far
  the real tokens' position ids move), ``attention`` (deep prefix: every token sees all L),
  ``task`` (name, head kind, ``label_names``, the input length it trained with) and ``head``.
- ``head.safetensors``: the task head's weights, described by the JSON's ``head`` block
  (:func:`head_export`; the same file and block as a feature-extraction PEFT export).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from transformers.activations import ACT2FN

from ptuning.artefacts import Trained
from ptuning.backbones import FAMILIES
from ptuning.errors import ConfigError

#: MPT-2 cells keep a P-Tuning v2 prefix (their multi-task stage only started it)
DEEP_METHODS = ("ptuning_v2", "prefix_tuning", "mpt2")
INPUT_METHODS = ("prompt_tuning", "ptuning_v1")
EXPORTABLE_METHODS = (*INPUT_METHODS, *DEEP_METHODS)
#: families whose deep prompt PEFT's prefix tuning reproduces (all with absolute positions,
#: shifted by L as PEFT's cache shifts them): checked against PEFT in tests/test_deep_prompt.py
#: (hidden states: BERT, RoBERTa, XLM-R, XLM-R XL) and tests/test_export.py (logits: BERT,
#: RoBERTa, GPT-2)
PEFT_PREFIX_FAMILIES = ("bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "gpt2")
#: families whose Hugging Face sequence/token classification heads equal ours (frozen backbone)
HF_HEAD_FAMILIES = ("bert", "roberta", "xlm-roberta", "xlm-roberta-xl")
FORMATS = ("peft", "embeddings")

HEAD_FILE = "head.safetensors"
NOTE_FILE = "ptuning_export.json"
EMBEDDINGS_FILE = "prompt_embeddings.safetensors"
EMBEDDINGS_JSON = "prompt_embeddings.json"
EMBEDDINGS_FORMAT = "ptuning-prompt-embeddings"
FORMAT_VERSION = 1


class ExportError(ConfigError):
    """A trained cell cannot be exported as asked (the message names what and why)."""


# --- the head ------------------------------------------------------------------------------


@dataclass
class HeadExport:
    """A task head as a JSON-able description (``spec``) and its weights."""

    spec: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def _tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def head_export(trained: Trained) -> HeadExport:
    """The trained head as a self-contained description and weights: what
    :meth:`ExportedHead.__call__` computes on the real tokens' last hidden states (eval mode:
    no dropout). A sequence head's pooler is included: the backbone's (tanh) or DeBERTa's
    trained ContextPooler."""
    head, backbone, kind = trained.model.head, trained.backbone, trained.task.head
    spec: dict[str, Any] = {"file": HEAD_FILE, "kind": kind, "label_names": list(trained.task.label_names)}
    if kind in ("classification", "multiple_choice"):
        if getattr(head, "dense", None) is not None:  # only for methods that train the backbone
            raise ExportError(f"head: a fine-tuning classification head (dense + tanh) on {backbone.family} "
                              "is not exported; exportable: frozen-backbone prompt methods")
        output = "classifier" if kind == "classification" else "scorer"
        tensors = _tensors(output, getattr(head, output))
        pooling = backbone.traits.pooling
        if head.pooler is not None:  # DeBERTa's trained ContextPooler on the first token
            pooling, pooler = "first", "context_pooler"
            spec["pooler_activation"] = getattr(backbone.config, "pooler_hidden_act", "gelu")
            tensors.update(_tensors("pooler.dense", head.pooler.dense))
            formula = f"{output}({spec['pooler_activation']}(pooler.dense(h[:, 0])))"
        elif pooling == "first" and getattr(backbone.model, "pooler", None) is not None:
            backbone_pooler = backbone.model.pooler
            if not isinstance(getattr(backbone_pooler, "activation", None), nn.Tanh):
                raise ExportError(f"head: the {backbone.family} backbone's pooler "
                                  f"({type(backbone_pooler).__name__}) is not dense + tanh; not exportable")
            pooler = "tanh"
            tensors.update(_tensors("pooler.dense", backbone_pooler.dense))
            formula = f"{output}(tanh(pooler.dense(h[:, 0])))"
        else:
            pooler = None
            formula = (f"{output}(h[:, 0])" if pooling == "first" else
                       f"{output}(h[b, attention_mask[b].sum() - 1])  # the last real token (right padding)")
        if kind == "multiple_choice":
            formula += ".view(-1, num_choices)  # inputs flattened to (batch * num_choices, T)"
        spec.update(pooling=pooling, pooler=pooler, output=output)
    elif kind == "token_classification":
        tensors = _tensors("classifier", head.classifier)
        spec["output"], formula = "classifier", "classifier(h)  # every token"
    elif kind == "span_qa":
        tensors = _tensors("qa_outputs", head.qa_outputs)
        spec["output"] = "qa_outputs"
        formula = "qa_outputs(h) -> (start, end) per token; padded positions set to the dtype's minimum"
    else:
        raise ExportError(f"head {kind!r}: not exportable; exportable heads: classification, "
                          "multiple_choice, token_classification, span_qa")
    spec["formula"] = formula
    return HeadExport(spec, tensors)


def apply_head(spec: dict[str, Any], tensors: dict[str, torch.Tensor], hidden: torch.Tensor,
               attention_mask: torch.Tensor, num_choices: int | None = None) -> torch.Tensor:
    """Logits of a head described by :func:`head_export` on ``hidden`` (batch, T, d), the
    last hidden states of the real tokens in their original order (``attention_mask`` (batch, T))."""

    def linear(name: str, x: torch.Tensor) -> torch.Tensor:
        weight = tensors[f"{name}.weight"]
        return F.linear(x, weight.to(x.dtype), tensors[f"{name}.bias"].to(x.dtype))

    kind = spec["kind"]
    if kind in ("classification", "multiple_choice"):
        if spec["pooling"] == "first":
            pooled = hidden[:, 0]
        else:
            last = attention_mask.long().sum(dim=1).clamp(min=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        if spec["pooler"] == "tanh":
            pooled = torch.tanh(linear("pooler.dense", pooled))
        elif spec["pooler"] == "context_pooler":
            pooled = ACT2FN[spec["pooler_activation"]](linear("pooler.dense", pooled))
        logits = linear(spec["output"], pooled)
        if kind == "multiple_choice":
            if num_choices is None:
                raise ValueError("a multiple-choice head needs num_choices")
            logits = logits.view(-1, num_choices)
        return logits
    if kind == "token_classification":
        return linear("classifier", hidden)
    start, end = linear("qa_outputs", hidden).unbind(dim=-1)
    padded = attention_mask == 0
    start = start.masked_fill(padded, torch.finfo(start.dtype).min)
    end = end.masked_fill(padded, torch.finfo(end.dtype).min)
    return torch.stack([start, end], dim=-1)


@dataclass
class ExportedHead:
    """An exported head read back: ``ExportedHead.load(out_dir)(hidden, attention_mask)``.

    ``skip_positions``: leading output positions that are not real tokens (PEFT's prompt
    tuning puts its L virtual tokens there); they are dropped before the head.
    """

    spec: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    skip_positions: int = 0

    @classmethod
    def load(cls, directory: str | Path) -> ExportedHead:
        """The head of a feature-extraction PEFT export or of an embeddings export."""
        directory = Path(directory)
        notes = [directory / name for name in (NOTE_FILE, EMBEDDINGS_JSON) if (directory / name).is_file()]
        if not notes:
            raise ExportError(f"{directory}: no {NOTE_FILE} or {EMBEDDINGS_JSON} there (not an export)")
        spec = json.loads(notes[0].read_text()).get("head")
        if not spec:
            raise ExportError(f"{directory}: this export keeps its head in the PEFT model (no {HEAD_FILE})")
        with safe_open(str(directory / spec["file"]), "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        return cls(spec, tensors, int(spec.get("skip_positions", 0)))

    def __call__(self, hidden: torch.Tensor, attention_mask: torch.Tensor,
                 num_choices: int | None = None) -> torch.Tensor:
        hidden = hidden[:, self.skip_positions:]
        tensors = {k: v.to(hidden.device) for k, v in self.tensors.items()}
        return apply_head(self.spec, tensors, hidden, attention_mask, num_choices)


def peft_feature_inputs(peft_model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        token_type_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Keyword arguments for a feature-extraction PEFT model that keep ``token_type_ids``.

    PEFT's feature-extraction path drops ``token_type_ids``, so the backbone adds the type-0
    embedding to every token; where a token has another type its embeddings get the
    difference added here (``word + type[t] - type[0]``, then the model adds ``type[0]``)."""
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is None or not bool((token_type_ids != 0).any()):
        return inputs
    base = peft_model.get_base_model()
    inner = getattr(base, base.base_model_prefix, base)  # AutoModel is the inner model itself
    types = getattr(getattr(inner, "embeddings", None), "token_type_embeddings", None)
    if types is None:  # the backbone has no token types: they change nothing
        return inputs
    words = base.get_input_embeddings()(input_ids)
    shift = types(token_type_ids) - types(torch.zeros_like(token_type_ids))
    return {"inputs_embeds": words + shift, "attention_mask": attention_mask}


# --- what is exported ----------------------------------------------------------------------


def check_exportable(description: dict[str, Any], fmt: str) -> None:
    """:class:`ExportError` unless the artefact ``description`` (its ``ptuning`` metadata) can be
    exported in format ``fmt``: checked from the metadata alone, before a backbone loads."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt}: allowed: {', '.join(FORMATS)}")
    options = description["method"]
    name = options.get("name")
    if name not in EXPORTABLE_METHODS:
        raise ExportError(f"method={name}: not exportable (it changes the backbone or has no prompt to export); "
                          f"exportable methods: {', '.join(EXPORTABLE_METHODS)}")
    if fmt != "peft":
        return
    if name in INPUT_METHODS and options.get("template") is not None:
        raise ExportError(f"method.template={list(options['template'])}: PEFT's prompt tuning places every "
                          "virtual token before the input, this template places them inside it; allowed: "
                          "method.template=null (a prefix), or --format embeddings (any template)")
    if name in DEEP_METHODS:
        reason = _prefix_refusal(description["backbone"]["model_type"], options)
        if reason:
            raise ExportError(f"method={name}: not representable as a PEFT prefix: {reason}. PEFT reproduces deep "
                              f"prompts on model families {', '.join(PEFT_PREFIX_FAMILIES)} with "
                              "method.position_offset=true; --format embeddings exports any deep prompt")


def _prefix_refusal(family: str, options: dict[str, Any]) -> str | None:
    """Why PEFT's prefix tuning would run this deep prompt differently (None: it would not)."""
    if family in ("deberta", "deberta-v2"):
        return (f"model family {family}: PEFT's prefix tuning has no cache path in DeBERTa's attention, and ours "
                "gives the prefix a zero relative-position bias")
    if family in FAMILIES and FAMILIES[family].positions == "relative":
        return (f"model family {family} (rotary positions): PEFT's cache puts the real tokens at positions "
                f"{options['length']}.. after the prefix, ours keeps them at 0.., and the attention to the "
                "prefix depends on it")
    if family not in PEFT_PREFIX_FAMILIES:
        return f"model family {family}: not checked against PEFT's prefix tuning"
    if not options.get("position_offset", True):
        return (f"method.position_offset=false: PEFT passes the prefix as past_key_values, which always shifts the "
                f"real tokens' positions by method.length={options['length']} on {family}; allowed: "
                "method.position_offset=true (the default)")
    return None


def input_prompt(trained: Trained) -> torch.Tensor:
    """The L virtual-token embeddings (L, hidden_size) of an input-prompt method."""
    method = trained.model.method
    with torch.no_grad():
        table = method.encode() if hasattr(method, "encode") else method.prompt
    return table.detach().cpu().float().contiguous()


def prefix_table(trained: Trained) -> torch.Tensor:
    """A deep prompt's table (L, num_layers * 2 * num_kv_heads * head_dim): row i is prefix
    position i, viewed as (2 * num_layers, num_kv_heads, head_dim) (``2 * layer + 0``: keys,
    ``+ 1``: values), a reparameterised prefix folded to MLP(E)."""
    prefix = trained.model.method.prefix
    with torch.no_grad():
        table = prefix.embedding.weight
        if prefix.transform is not None:
            table = prefix.transform(table)
    return table.detach().cpu().float().contiguous()


def prefix_key_values(trained: Trained) -> torch.Tensor:
    """The deep prompt as (num_layers, 2, num_kv_heads, L, head_dim)."""
    backbone = trained.backbone
    table = prefix_table(trained)
    per_layer = table.view(table.shape[0], backbone.num_layers, 2, backbone.num_kv_heads, backbone.head_dim)
    return per_layer.permute(1, 2, 3, 0, 4).contiguous()


def _hf_head(trained: Trained) -> tuple[str, list[str], dict[str, torch.Tensor]] | None:
    """(task_type, modules_to_save, adapter tensors) when a Hugging Face head computes ours
    exactly with a deep prompt; None: feature extraction + head file."""
    backbone, head, kind = trained.backbone, trained.model.head, trained.task.head
    if backbone.family not in HF_HEAD_FAMILIES:
        return None
    if kind == "token_classification":
        return "TOKEN_CLS", ["classifier"], _tensors("base_model.classifier", head.classifier)
    if kind != "classification" or head.dense is not None or head.pooler is not None:
        return None
    pooler = getattr(backbone.model, "pooler", None)
    if pooler is None or not isinstance(getattr(pooler, "activation", None), nn.Tanh):
        return None
    if backbone.family == "bert":  # BertForSequenceClassification: pooler -> dropout -> classifier
        tensors = _tensors("base_model.bert.pooler", pooler)
        tensors.update(_tensors("base_model.classifier", head.classifier))
        return "SEQ_CLS", ["pooler", "classifier"], tensors
    # RoBERTa-style ClassificationHead: dropout -> dense -> tanh -> dropout -> out_proj
    tensors = _tensors("base_model.classifier.dense", pooler.dense)
    tensors.update(_tensors("base_model.classifier.out_proj", head.classifier))
    return "SEQ_CLS", ["classifier"], tensors


def _base_model_name(trained: Trained) -> str | None:
    model = trained.description["model"]
    return model.get("hf_name") or model.get("path")


def _source(trained: Trained) -> dict[str, Any]:
    return {"cell_dir": str(trained.path.parent.resolve()), "artefact": str(trained.path.resolve()),
            "cell": trained.description["cell"], "epoch": trained.description["epoch"]}


def _task(trained: Trained) -> dict[str, Any]:
    task = trained.description["task"]
    return {"name": task["name"], "head": task["head"], "label_names": task["label_names"],
            "max_length": trained.max_length}


@dataclass
class PeftExport:
    """What :func:`export_peft` writes (planned before anything is written)."""

    config: Any  # a peft PromptLearningConfig
    tensors: dict[str, torch.Tensor]
    head: HeadExport | None
    note: dict[str, Any]


def plan_peft(trained: Trained, base_model_name: str | None = None) -> PeftExport:
    """The PEFT adapter of ``trained``; :class:`ExportError` if PEFT cannot reproduce it."""
    check_exportable(trained.description, "peft")
    options = trained.description["method"]
    name, backbone = options["name"], trained.backbone
    try:
        from peft import PrefixTuningConfig, PromptTuningConfig
    except ImportError:
        raise ExportError("--format peft needs the peft package (pip install peft); "
                          "--format embeddings does not") from None
    base_name = base_model_name or _base_model_name(trained)
    common = {"num_layers": backbone.num_layers, "num_transformer_submodules": 1, "inference_mode": True,
              "base_model_name_or_path": base_name}
    head: HeadExport | None = None
    if name in DEEP_METHODS:
        hf_head = _hf_head(trained)
        if hf_head is None:
            task_type, modules, tensors = "FEATURE_EXTRACTION", None, {}
            head = head_export(trained)
        else:
            task_type, modules, tensors = hf_head
        token_dim = backbone.num_kv_heads * backbone.head_dim
        config = PrefixTuningConfig(task_type=task_type, num_virtual_tokens=options["length"], token_dim=token_dim,
                                    num_attention_heads=backbone.num_kv_heads, encoder_hidden_size=token_dim,
                                    prefix_projection=False, modules_to_save=modules, **common)
        tensors["prompt_embeddings"] = prefix_table(trained)
    else:
        head = head_export(trained)
        task_type = "FEATURE_EXTRACTION"
        prompt = input_prompt(trained)
        config = PromptTuningConfig(task_type=task_type, num_virtual_tokens=options["length"],
                                    token_dim=prompt.shape[1], num_attention_heads=backbone.config.num_attention_heads,
                                    prompt_tuning_init="RANDOM", **common)
        tensors = {"prompt_embeddings": prompt}
    if head is not None:
        head.spec["skip_positions"] = options["length"] if name in INPUT_METHODS else 0
    auto_class = {"SEQ_CLS": "AutoModelForSequenceClassification", "TOKEN_CLS": "AutoModelForTokenClassification",
                  "FEATURE_EXTRACTION": "AutoModel"}[task_type]
    note = {"format": "ptuning-peft-export", "format_version": FORMAT_VERSION, "source": _source(trained),
            "method": options, "task": _task(trained), "task_type": task_type, "base_model_class": auto_class,
            "base_model_name_or_path": base_name, "backbone_family": backbone.family,
            "num_labels": len(trained.task.label_names) or None,
            "token_type_ids": _token_type_note(trained, task_type), "head": head.spec if head else None}
    return PeftExport(config, tensors, head, note)


def _token_type_note(trained: Trained, task_type: str) -> str:
    if not trained.backbone.traits.token_type_ids:
        return "the backbone takes none"
    if task_type == "FEATURE_EXTRACTION":
        return ("PEFT's feature-extraction path drops token_type_ids: pass the inputs through "
                "ptuning.export.peft_feature_inputs (token types folded into inputs_embeds)")
    return "passed as usual"


def _readme(note: dict[str, Any]) -> str:
    source, task = note["source"], note["task"]
    cls = note["base_model_class"]
    labels = f", num_labels={note['num_labels']}" if cls != "AutoModel" and note["num_labels"] else ""
    lines = [
        f"# PEFT adapter exported from a ptuning-suite cell ({note['method']['name']}, {task['name']})",
        "",
        f"Source cell: `{source['cell_dir']}` (artefact `{source['artefact']}`, epoch {source['epoch']}).",
        f"Backbone: `{note['base_model_name_or_path']}` ({note['backbone_family']}); task type "
        f"{note['task_type']}; labels: {task['label_names']}; inputs cut at {task['max_length']} tokens.",
        "",
        "```python",
        f"from transformers import {cls}",
        "from peft import PeftModel",
        f"base = {cls}.from_pretrained(BACKBONE_DIR{labels})",
        "model = PeftModel.from_pretrained(base, ADAPTER_DIR).eval()",
    ]
    if note["head"]:
        lines += [
            "from ptuning.export import ExportedHead, peft_feature_inputs",
            "head = ExportedHead.load(ADAPTER_DIR)",
            "hidden = model(**peft_feature_inputs(model, input_ids, attention_mask, token_type_ids)).last_hidden_state",
            "logits = head(hidden, attention_mask)  # the cell's logits",
            "```",
            "",
            f"The task head is not a Hugging Face head here: `{HEAD_FILE}` holds it and `{NOTE_FILE}` "
            f"describes it (`head.formula`, on the real tokens' last hidden states; the first "
            f"{note['head']['skip_positions']} output positions are virtual tokens and are skipped).",
        ]
    else:
        lines += ["logits = model(input_ids=..., attention_mask=..., token_type_ids=...).logits  # the cell's logits",
                  "```"]
    lines += ["", f"Token type ids: {note['token_type_ids']}.", ""]
    return "\n".join(lines)


# --- writing ---------------------------------------------------------------------------------


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` if an export may be written there (absent, or an empty directory)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"--out {out_dir}: already exists and is not an empty directory; remove it or "
                          "choose another --out")
    return out_dir


def write_directory(out_dir: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write`` on a temporary directory beside ``out_dir`` and rename it to ``out_dir``
    (which must not exist, or be empty): the export appears whole or not at all."""
    out_dir = check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        write(staging)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def export_peft(trained: Trained, out_dir: str | Path, base_model_name: str | None = None) -> Path:
    """Write ``trained`` as a PEFT adapter directory (module docstring); returns ``out_dir``.
    ``base_model_name``: the adapter's ``base_model_name_or_path`` (default: the cell's
    ``model.hf_name``, else its ``model.path``)."""
    plan = plan_peft(trained, base_model_name)

    def write(directory: Path) -> None:
        plan.config.save_pretrained(str(directory))
        save_file(plan.tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
        if plan.head is not None:
            save_file(plan.head.tensors, str(directory / HEAD_FILE), metadata={"format": "pt"})
        (directory / NOTE_FILE).write_text(json.dumps(plan.note, indent=2, sort_keys=True) + "\n")
        (directory / "README.md").write_text(_readme(plan.note))

    return write_directory(out_dir, write)


@dataclass
class EmbeddingsExport:
    """What :func:`export_embeddings` writes (planned before anything is written)."""

    tensors: dict[str, torch.Tensor]
    sidecar: dict[str, Any]
    head: HeadExport


def plan_embeddings(trained: Trained) -> EmbeddingsExport:
    """The tensors, JSON sidecar and head of an embeddings export (module docstring)."""
    check_exportable(trained.description, "embeddings")
    options = trained.description["method"]
    name, backbone = options["name"], trained.backbone
    length, positions = options["length"], backbone.traits.positions
    pad = backbone.config.pad_token_id
    sidecar: dict[str, Any] = {"format": EMBEDDINGS_FORMAT, "format_version": FORMAT_VERSION,
                               "source": _source(trained), "method": options}
    if name in DEEP_METHODS:
        tensors = {"prefix": prefix_key_values(trained)}
        shift = length if options.get("position_offset", True) and positions in ("absolute", "roberta") else 0
        sidecar.update(
            kind="deep_prefix",
            attention=("prefix[layer, 0] (keys) and prefix[layer, 1] (values), (num_kv_heads, L, head_dim) each, "
                       "are prepended to layer `layer`'s self-attention keys and values (as used: after the "
                       "projections and any rotary embedding, never rotated themselves); every token attends to "
                       "all L"
                       + ("; DeBERTa: a zero relative-position bias for the prefix columns"
                          if backbone.family in ("deberta", "deberta-v2") else "")),
            positions={"shift": shift, "rule": (
                "none: the real tokens keep their position ids" if not shift else
                f"absolute position ids start at {shift} (token i: i + {shift})" if positions == "absolute" else
                f"RoBERTa-style: token i (right padding) gets {pad} + 1 + i + {shift}; padding keeps {pad}")})
    else:
        tensors = {"prompt": input_prompt(trained)}
        template = options.get("template")
        insertion = {"rule": "prefix", "template": None,
                     "where": "all L rows, in order, before the first token (special tokens included)"}
        if template is not None:
            insertion = {"rule": "template", "template": list(template), "where": (
                "rows [0, a) before the first non-special token, [a, a+b) before the first token of the second "
                "segment (the final special token when there is none), [a+b, L) before the final special token "
                "(the end of the real tokens when there is none), for template [a, b, c]")}
        insertion.update(attention_mask=1, token_type_id=0)
        sidecar.update(kind="input_tokens", insertion=insertion, positions={"shift": 0, "rule": (
            "the virtual tokens are input embeddings like the real ones: position ids count the lengthened "
            "sequence")})
    sidecar["tensors"] = {key: {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
                          for key, value in tensors.items()}
    sidecar["backbone"] = {"hf_name": _base_model_name(trained), "name": backbone.name, "model_type": backbone.family,
                           "hidden_size": backbone.hidden_size, "num_layers": backbone.num_layers,
                           "num_kv_heads": backbone.num_kv_heads, "head_dim": backbone.head_dim,
                           "positions": positions, "pad_token_id": pad}
    sidecar["task"] = _task(trained)
    head = head_export(trained)
    sidecar["head"] = head.spec
    return EmbeddingsExport(tensors, sidecar, head)


def export_embeddings(trained: Trained, out_dir: str | Path) -> Path:
    """Write ``trained``'s prompt as raw embeddings + JSON sidecar + head file (module
    docstring); returns ``out_dir``."""
    plan = plan_embeddings(trained)

    def write(directory: Path) -> None:
        save_file(plan.tensors, str(directory / EMBEDDINGS_FILE), metadata={"format": "pt"})
        save_file(plan.head.tensors, str(directory / HEAD_FILE), metadata={"format": "pt"})
        (directory / EMBEDDINGS_JSON).write_text(json.dumps(plan.sidecar, indent=2, sort_keys=True) + "\n")

    return write_directory(out_dir, write)


def export(trained: Trained, out_dir: str | Path, fmt: str = "peft") -> Path:
    """Export in format ``fmt`` (``peft`` | ``embeddings``)."""
    check_exportable(trained.description, fmt)
    return export_peft(trained, out_dir) if fmt == "peft" else export_embeddings(trained, out_dir)
