"""Many tasks on one frozen backbone: a prompt table and batches that mix tasks.

A frozen-backbone cell keeps only its prompt (input virtual tokens or per-layer prefix) and
its head, so one copy of the backbone serves every task. :class:`PromptTable` loads any
number of trained artefacts (:mod:`ptuning.artefacts`) onto one backbone; a batch may mix
their tasks. In one forward pass:

- each task's method computes its prompt for its own examples;
- input prompts of different lengths are padded to the longest with masked virtual tokens
  placed after the example's last token, so real tokens keep their positions;
- deep prefixes are stacked along the batch, shorter ones padded with masked positions
  (:attr:`DeepPrompt.mask`), and each example's absolute positions are shifted by its own
  prefix length when its method shifts them;
- the backbone runs once; each task's head reads its own examples' states.

Outputs equal those of running each task alone (tests/test_prompt_table.py). Methods that
change the backbone (LoRA, fine-tuning) cannot share it and are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptuning.artefacts import ArtefactError, Trained, load_trained, model_config, read_description
from ptuning.backbones import Backbone, load_backbone
from ptuning.backbones.deep_prompt import DeepPrompt
from ptuning.methods import MethodKind
from ptuning.model import insert_prompt, shifted_positions
from ptuning.tasks import Encoded, Row
from ptuning.training import FeatureCollator

#: feature keys a backbone row carries (labels and the like stay with the task)
ROW_KEYS = ("input_ids", "attention_mask", "token_type_ids", "prompt_anchors", "mask_position")
#: why verbalizer artefacts and the others do not share a table
_MIXED_HEADS = ("verbalizer-head artefacts run on the backbone loaded with its masked-LM head, whose base "
                "model differs from the plain encoder the others trained on (BERT's masked-LM model has no "
                "pooler); put them in tables of their own")
#: logits of padded token positions (as :func:`ptuning.training.predict` pads them)
PAD_LOGIT = -1e4


@dataclass
class _Span:
    """Where one feature's backbone rows lie in a mixed batch."""

    name: str
    start: int
    stop: int
    choices: int | None  # multiple choice: one row per choice


class PromptTable:
    """Trained prompts and heads of several tasks on one frozen backbone."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self.entries: dict[str, Trained] = {}

    @classmethod
    def load(cls, sources: Iterable[str | Path], model_path: str | None = None) -> PromptTable:
        """A table of the artefacts ``sources`` (cell directories or files), each named by its
        task (``name=path`` names it explicitly); the backbone is the first artefact's."""
        pairs = [_named(source) for source in sources]
        if not pairs:
            raise ArtefactError("no artefacts given: name at least one cell directory")
        descriptions = [read_description(path) for _, path in pairs]
        verbalizers = {d["task"]["head"] == "verbalizer" for d in descriptions}
        if len(verbalizers) > 1:
            raise ArtefactError(_MIXED_HEADS)
        masked_lm = verbalizers.pop()
        backbone = load_backbone(model_config(descriptions[0], model_path), masked_lm=masked_lm)
        table = cls(backbone)
        for name, path in pairs:
            table.add(path, name)
        return table

    def add(self, source: str | Path, name: str | None = None) -> str:
        """Load one artefact onto the shared backbone under ``name`` (default: its task)."""
        trained = load_trained(source, backbone=self.backbone)
        if self.backbone.lm_head is not None and trained.task.head != "verbalizer":
            raise ArtefactError(f"{source}: {_MIXED_HEADS}")
        method = trained.model.method
        if method.kind is not MethodKind.prompt:
            raise ArtefactError(f"{source}: method {method.config.name} ({method.kind.value}) changes the backbone "
                                "itself and cannot share it with other tasks; a prompt table takes prompt methods "
                                "(prompt_tuning, ptuning_v1, prefix_tuning, ptuning_v2)")
        name = name or trained.task.name
        if name in self.entries:
            raise ArtefactError(f"{source}: a task named {name!r} is already in the table "
                                f"({self.entries[name].path}); name it differently (name=path)")
        self.entries[name] = trained
        return name

    def _entry(self, name: str) -> Trained:
        if name not in self.entries:
            raise ArtefactError(f"task {name!r} is not in the prompt table; loaded: {', '.join(self.entries) or 'none'}")
        return self.entries[name]

    # --- one mixed forward -----------------------------------------------------------------

    @torch.no_grad()
    def logits(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[np.ndarray]:
        """Logits of each ``(task name, feature)`` item, computed in one mixed batch: per
        feature (classes), (choices) or (T, classes) for token-level heads."""
        rows, spans = [], []
        for name, feature in items:
            self._entry(name)
            ids = feature["input_ids"]
            choices = len(ids) if ids and isinstance(ids[0], list) else None
            for c in range(choices or 1):
                rows.append({k: feature[k][c] if choices else feature[k] for k in ROW_KEYS if k in feature})
            spans.append(_Span(name, len(rows) - (choices or 1), len(rows), choices))
        if any(set(row) - {"mask_position"} != set(rows[0]) - {"mask_position"} for row in rows):
            raise ValueError("features of one batch must carry the same keys (one tokenizer encodes them all)")
        if any("mask_position" in row for row in rows):  # cloze inputs (verbalizer heads); others never read it
            rows = [{**row, "mask_position": row.get("mask_position", 0)} for row in rows]
        device = next(self.backbone.model.parameters()).device
        batch = {k: v.to(device) for k, v in FeatureCollator(self.backbone.tokenizer.pad_token_id)(rows).items()}
        owners = {name: torch.tensor([r for s in spans if s.name == name for r in range(s.start, s.stop)],
                                     device=device) for name in dict.fromkeys(s.name for s in spans)}
        hidden = self._hidden(batch, owners)
        out: list[np.ndarray] = [np.empty(0)] * len(spans)
        for name, row_index in owners.items():
            members = [i for i, span in enumerate(spans) if span.name == name]
            counts = {spans[i].choices for i in members}
            if len(counts) > 1:
                raise ValueError(f"task {name}: features with different numbers of choices {sorted(counts)}")
            positions = batch["mask_position"][row_index] if "mask_position" in batch else None
            _, logits = self.entries[name].model.head(hidden[row_index], batch["attention_mask"][row_index],
                                                      num_choices=counts.pop(), mask_position=positions)
            for i, value in zip(members, logits.float().cpu().numpy(), strict=True):
                out[i] = value[:len(items[i][1]["input_ids"])] if value.ndim == 2 else value  # a token axis: own length
        return out

    def _hidden(self, batch: dict[str, torch.Tensor], owners: dict[str, torch.Tensor]) -> torch.Tensor:
        """The backbone's last hidden states (original token coordinates) for a mixed batch
        whose rows ``owners[name]`` belong to task ``name``."""
        info, model = self.backbone, self.backbone.model
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        size, length = input_ids.shape
        anchors = batch.get("prompt_anchors")
        prompts = {name: self.entries[name].model.method(len(rows), anchors[rows] if anchors is not None else None)
                   for name, rows in owners.items()}
        embeds = model.get_input_embeddings()(input_ids)
        mask, types, token_index = attention_mask, batch.get("token_type_ids"), None

        inputs = {n: p for n, p in prompts.items() if p.input_prompt is not None}
        if inputs:
            width = max(p.input_prompt.shape[1] for p in inputs.values())
            prompt = embeds.new_zeros(size, width, embeds.shape[-1])
            insert_at = torch.full((size, width), length, dtype=torch.long, device=embeds.device)
            visible = torch.zeros(size, width, dtype=torch.bool, device=embeds.device)
            for name, output in inputs.items():
                rows, count = owners[name], output.input_prompt.shape[1]
                prompt[rows, :count] = output.input_prompt.to(embeds.dtype)
                insert_at[rows, :count] = output.insert_at
                visible[rows, :count] = True
            embeds, mask, types, token_index = insert_prompt(embeds, attention_mask, types, prompt, insert_at, visible)

        deep = {n: p.deep_prompt for n, p in prompts.items() if p.deep_prompt is not None and p.deep_prompt.length}
        shift = torch.zeros(size, dtype=torch.long, device=embeds.device)
        combined = None
        if deep:
            first = next(iter(deep.values())).key_values
            width = max(p.length for p in deep.values())
            key_values = first.new_zeros(*first.shape[:2], size, first.shape[3], width, first.shape[5])
            visible = torch.zeros(size, width, dtype=torch.bool, device=embeds.device)
            for name, prefix in deep.items():
                rows = owners[name]
                key_values[:, :, rows, :, :prefix.length] = prefix.key_values
                visible[rows, :prefix.length] = True
                if self.entries[name].model.method.shifts_positions:
                    shift[rows] = prefix.length
            combined = DeepPrompt(key_values, visible)
        inputs_kwargs: dict[str, Any] = {"inputs_embeds": embeds, "attention_mask": mask,
                                         **info.adapter.forward_kwargs(combined)}
        if types is not None and info.traits.token_type_ids:
            inputs_kwargs["token_type_ids"] = types
        positions = shifted_positions(info, mask, shift)
        if positions is not None:  # masked padding may run past the table; it is never read
            limit = getattr(model.config, "max_position_embeddings", None) or model.config.n_positions
            inputs_kwargs["position_ids"] = positions.clamp(max=limit - 1)
        hidden = model(**inputs_kwargs).last_hidden_state
        if token_index is not None:
            hidden = hidden.gather(1, token_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return hidden

    # --- predictions in each task's label space ---------------------------------------------

    def predict(self, examples: Sequence[tuple[str, Row]], batch_size: int = 32,
                progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
                where: Callable[[int], str] | None = None) -> list[Any]:
        """A prediction per ``(task name, row)`` example, in input order; batches mix the
        tasks. Rows follow the task's canonical schema without the label (``where(i)`` names
        example ``i`` in errors, e.g. ``file:line``)."""
        where = where or (lambda i: f"example {i}")
        by_task: dict[str, list[int]] = {}
        for i, (name, _) in enumerate(examples):
            self._entry(name)
            by_task.setdefault(name, []).append(i)
        encoded: dict[str, Encoded] = {}
        for name, indices in by_task.items():
            entry = self.entries[name]
            rows = [entry.task.unlabelled(examples[i][1], where(i)) for i in indices]
            encoded[name] = entry.task.encode(rows, self.backbone.tokenizer, entry.max_length, train=False)
        # features of all tasks interleaved in proportion, so that every batch mixes them
        order = sorted(((f / len(e.features), name, f) for name, e in encoded.items() for f in range(len(e.features))),
                       key=lambda item: item[0])
        logits: dict[str, list[np.ndarray | None]] = {n: [None] * len(e.features) for n, e in encoded.items()}
        starts = range(0, len(order), batch_size)
        for start in progress(starts) if progress else starts:
            chunk = order[start:start + batch_size]
            values = self.logits([(name, encoded[name].features[f]) for _, name, f in chunk])
            for (_, name, f), value in zip(chunk, values, strict=True):
                logits[name][f] = value
        predictions: list[Any] = [None] * len(examples)
        for name, indices in by_task.items():
            task_logits = _stack([v for v in logits[name] if v is not None])
            for i, prediction in zip(indices, self.entries[name].task.predict(task_logits, encoded[name]), strict=True):
                predictions[i] = prediction
        return predictions


def _stack(values: list[np.ndarray]) -> np.ndarray:
    """Per-feature logits as one array, token axes padded with :data:`PAD_LOGIT`."""
    if not values:
        return np.empty((0, 0))
    if values[0].ndim < 2:
        return np.stack(values)
    width = max(v.shape[0] for v in values)
    return np.stack([np.pad(v, [(0, width - v.shape[0])] + [(0, 0)] * (v.ndim - 1), constant_values=PAD_LOGIT)
                     for v in values])


def _named(source: str | Path) -> tuple[str | None, Path]:
    """``name=path`` -> (name, path); a bare path -> (None, path)."""
    text = str(source)
    name, sep, path = text.partition("=")
    if sep and not Path(text).exists():
        return name, Path(path)
    return None, Path(text)
