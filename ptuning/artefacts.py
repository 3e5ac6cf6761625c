"""Trained artefacts that describe themselves: a cell's ``prompt.safetensors`` holds the
method + head weights and, in its metadata, everything needed to rebuild the model around
them (method options, backbone config, task, input length), so one call loads it.

The metadata key ``ptuning`` is a JSON object (:data:`FORMAT` 1)::

    {"format": 1,
     "method": {"name": "ptuning_v2", "length": 16, ...},      # every option of the method
     "model": {"name": "bert_large", "source": "hub", "hf_name": ..., ...},
     "backbone": {"model_type": "bert", "hidden_size": 1024, "num_layers": 24, "vocab_size": 30522},
     "task": {"name": "rte", "version": 2, "max_length": null, "template": null,
              "head": "classification", "label_names": ["entailment", "not_entailment"]},
     "max_length": 128,          # the input length the cell trained with
     "head_dropout": null,
     "cell": {"method": ..., "model": ..., "task": ..., "seed": 11, "hash": ...},
     "epoch": 37.0}

The flat keys ``method``, ``model``, ``task``, ``epoch`` and ``stored_form`` are kept beside it
(``stored_form=folded``: the method is stored in its folded form, e.g. a prefix MLP's output).
An artefact written before this format is described from the cell's ``result.json`` beside it
(its composed config, input length and chosen epoch; of the backbone only its family is checked).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors import safe_open

from ptuning.backbones import Backbone, load_backbone
from ptuning.config import CellConfig, ModelConfig, _plain, check_config
from ptuning.errors import ConfigError, omegaconf_message
from ptuning.methods import METHODS, build_method
from ptuning.model import PromptedModel
from ptuning.records import RECORD_FILE, load_record
from ptuning.tasks import Task, get_task

FORMAT = 1
METADATA_KEY = "ptuning"
ARTEFACT_NAME = "prompt.safetensors"
#: model options that say where or how a backbone runs, not which one it is
_MODEL_RUNTIME = ("resources", "params", "display")


class ArtefactError(ConfigError):
    """An artefact cannot be loaded as asked (missing, not self-describing, another backbone)."""


def backbone_facts(backbone: Backbone) -> dict[str, Any]:
    """The shape facts a shared backbone must match to take an artefact."""
    return {"model_type": backbone.family, "hidden_size": backbone.hidden_size,
            "num_layers": backbone.num_layers, "vocab_size": int(backbone.config.vocab_size)}


def describe(method: Any, model: ModelConfig, backbone: Backbone | dict[str, Any], task: Task, max_length: int,
             head_dropout: float | None, cell: dict[str, Any], epoch: float) -> dict[str, Any]:
    """The ``ptuning`` metadata object of a cell's artefact (``backbone``: the loaded backbone,
    or the facts known of it, for an artefact described from its record)."""
    model_options = {k: v for k, v in _plain(dataclasses.asdict(model)).items() if k not in _MODEL_RUNTIME}
    return {
        "format": FORMAT,
        "method": _plain(dataclasses.asdict(method)),
        "model": model_options,
        "backbone": backbone if isinstance(backbone, dict) else backbone_facts(backbone),
        "task": {"name": task.name, "version": task.version, "max_length": task.max_length,
                 "template": task.template, "head": task.head, "label_names": list(task.label_names)},
        "max_length": max_length,
        "head_dropout": head_dropout,
        "cell": cell,
        "epoch": epoch,
    }


def save(model: PromptedModel, path: Path, description: dict[str, Any], folded: bool) -> None:
    """Write ``model``'s method + head weights with their description (``folded``: the method
    is in its stored form, :meth:`Method.fold_for_storage`)."""
    cell = description["cell"]
    model.save_artefact(path, {"method": cell["method"], "model": cell["model"], "task": cell["task"],
                               "epoch": str(description["epoch"]), "stored_form": "folded" if folded else "trained",
                               METADATA_KEY: json.dumps(description, sort_keys=True)})


def write_random(directory: Path, model: ModelConfig, backbone: Backbone, task: Task, method_options: dict[str, Any],
                 max_length: int, seed: int, scale: float) -> Path:
    """An artefact with random method and head weights (N(0, ``scale``), seeded), written as a
    cell writes it into ``directory``: what benchmarks and tests load in place of a trained cell."""
    method = build_method(method_options, backbone)
    prompted = PromptedModel(backbone, method, task.head, max(task.num_labels, 1))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in [*prompted.method.parameters(), *prompted.head.parameters()]:
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    folded = prompted.method.fold_for_storage()
    cell = {"method": method.config.name, "model": model.name, "task": task.name, "seed": seed, "group": "random"}
    save(prompted, directory / ARTEFACT_NAME, describe(method.config, model, backbone, task, max_length, None, cell, 0.0),
         folded)
    return directory


def artefact_path(source: str | Path) -> Path:
    """The artefact file of a cell directory (or the file itself)."""
    path = Path(source)
    if path.is_dir():
        path = path / ARTEFACT_NAME
    if not path.is_file():
        raise ArtefactError(f"{source}: no trained artefact there (expected a cell directory holding "
                            f"{ARTEFACT_NAME}, or the file itself); cells of methods that train the backbone "
                            "(finetune) and cells run with train.save_artefact=false keep none")
    return path


def read_description(source: str | Path) -> dict[str, Any]:
    """The ``ptuning`` metadata of an artefact (a cell directory or the file)."""
    path = artefact_path(source)
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    if METADATA_KEY not in metadata:
        return _described_by_record(path, metadata)
    description = json.loads(metadata[METADATA_KEY])
    if description.get("format") != FORMAT:
        raise ArtefactError(f"{path}: artefact format {description.get('format')!r}; this suite reads format {FORMAT}")
    return description


def _described_by_record(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The description of an artefact written before artefacts described themselves, from the
    cell's ``result.json`` beside it (its composed config, input length and chosen epoch)."""
    record_path = path.parent / RECORD_FILE
    if not record_path.is_file():
        raise ArtefactError(f"{path}: written before artefacts described themselves (metadata keys: "
                            f"{sorted(metadata)}) and no {RECORD_FILE} beside it to describe it; re-run the "
                            "cell with redo=true to rewrite it")
    record = load_record(record_path)
    try:
        config = OmegaConf.merge(OmegaConf.structured(CellConfig), record["config"])
        settings = check_config(config)
    except (OmegaConfBaseException, ConfigError) as err:
        raise ArtefactError(f"{record_path}: its config no longer describes a cell of this suite ({err})") from None
    task = get_task(settings.task.name).configure(settings.task.max_length, settings.task.template, settings.task.head)
    if task.version != record["task"]["version"]:
        raise ArtefactError(f"{path}: trained with task {task.name} version {record['task']['version']}; this "
                            f"suite's {task.name} is version {task.version} (its preprocessing or scoring changed)")
    return describe(settings.method, settings.model, {"model_type": record["model"]["family"]}, task,
                    int(record["data"]["max_length"]),
                    settings.train.head_dropout, {**record["cell"], "group": record["group"]},
                    float(record["selection"]["epoch"]))


def model_config(description: dict[str, Any], model_path: str | None = None) -> ModelConfig:
    """The backbone's :class:`ModelConfig` from an artefact's description (``model_path``: a
    local copy of the checkpoint, which wins over the path the cell ran with)."""
    options = dict(description["model"])
    if model_path is not None:
        options["path"] = model_path
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), options))
    except OmegaConfBaseException as err:
        raise ArtefactError(f"artefact model options: model.{omegaconf_message(err)}") from None


def check_backbone(description: dict[str, Any], backbone: Backbone, source: str | Path) -> None:
    """:class:`ArtefactError` unless ``backbone`` has the shape the artefact trained on."""
    wanted, found = description["backbone"], backbone_facts(backbone)
    if any(found.get(k) != v for k, v in wanted.items()) or description["model"]["name"] != backbone.name:
        raise ArtefactError(f"{source}: trained on model={description['model']['name']} {wanted}; the backbone "
                            f"given is model={backbone.name} {found}")


@dataclass
class Trained:
    """A trained cell rebuilt from its artefact, in eval mode."""

    model: PromptedModel
    task: Task
    #: the input length the cell trained with (inputs are cut there)
    max_length: int
    description: dict[str, Any]
    path: Path

    @property
    def backbone(self) -> Backbone:
        return self.model.info


def load_trained(source: str | Path, backbone: Backbone | None = None, model_path: str | None = None) -> Trained:
    """Rebuild a trained cell from its artefact in one call.

    ``source``: the cell directory or its ``prompt.safetensors``. ``backbone``: an already
    loaded backbone to attach to (it must be the one the cell trained on; several artefacts
    can share it); else the backbone is loaded from the description (``model_path``: a local
    copy of its checkpoint).
    """
    path = artefact_path(source)
    description = read_description(path)
    method_options = description["method"]
    if method_options.get("name") not in METHODS:
        raise ArtefactError(f"{path}: method {method_options.get('name')!r} is not one of this suite's: "
                            f"{', '.join(sorted(METHODS))}")
    task_info = description["task"]
    task = get_task(task_info["name"]).configure(task_info["max_length"], task_info["template"],
                                                 "verbalizer" if task_info["head"] == "verbalizer" else None)
    if task.version != task_info["version"]:
        raise ArtefactError(f"{path}: trained with task {task.name} version {task_info['version']}; this suite's "
                            f"{task.name} is version {task.version} (its preprocessing or scoring changed)")
    if backbone is None:
        backbone = load_backbone(model_config(description, model_path), masked_lm=task.head == "verbalizer")
    check_backbone(description, backbone, path)
    if task.head == "verbalizer" and backbone.lm_head is None:
        raise ArtefactError(f"{path}: a verbalizer head scores with the backbone's masked-LM head, and the backbone "
                            "given was loaded without it (load_backbone(..., masked_lm=True))")
    method = build_method(method_options, backbone)
    model = PromptedModel(backbone, method, task.head, max(task.num_labels, 1), description["head_dropout"],
                          label_words=task.verbalizer)
    model.load_artefact(path)
    model.to(next(backbone.model.parameters()).device)
    model.eval()
    return Trained(model, task, int(description["max_length"]), description, path)
