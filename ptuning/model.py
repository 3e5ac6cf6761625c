"""Backbone + method + head as one module for the Hugging Face Trainer."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ptuning.backbones import Backbone
from ptuning.backbones.deep_prompt import DeepPrompt
from ptuning.heads import HEADS, VerbalizerHead
from ptuning.methods import Method


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN or infinite (the run has diverged)."""


def insert_prompt(
    embeds: torch.Tensor,
    mask: torch.Tensor,
    token_types: torch.Tensor | None,
    prompt: torch.Tensor,
    insert_at: torch.Tensor,
    prompt_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Insert virtual tokens before the original indices ``insert_at`` (batch, L).

    ``prompt_mask`` (batch, L): which virtual tokens are real (None: all); a batch mixing
    tasks pads shorter prompts with masked ones inserted at the end (``insert_at`` = T).
    Returns the lengthened embeddings, mask and token types, and ``token_index``
    (batch, T): the new position of every original token, used to map outputs back.
    """
    batch, length = insert_at.shape
    seq = embeds.shape[1]
    insert_at, order = insert_at.sort(dim=1, stable=True)
    prompt = prompt.gather(1, order.unsqueeze(-1).expand(-1, -1, prompt.shape[-1]))
    positions = torch.arange(seq, device=embeds.device).expand(batch, -1).contiguous()
    token_index = positions + torch.searchsorted(insert_at, positions, right=True)
    prompt_index = insert_at + torch.arange(length, device=embeds.device)
    source = torch.empty(batch, seq + length, dtype=torch.long, device=embeds.device)
    source.scatter_(1, token_index, positions)
    source.scatter_(1, prompt_index, torch.arange(seq, seq + length, device=embeds.device).expand(batch, -1))
    combined = torch.cat([embeds, prompt.to(embeds.dtype)], dim=1)
    new_embeds = combined.gather(1, source.unsqueeze(-1).expand(-1, -1, embeds.shape[-1]))
    prompt_visible = mask.new_ones(batch, length) if prompt_mask is None else prompt_mask.gather(1, order).to(mask.dtype)
    new_mask = torch.cat([mask, prompt_visible], dim=1).gather(1, source)
    new_types = None
    if token_types is not None:
        new_types = torch.cat([token_types, token_types.new_zeros(batch, length)], 1).gather(1, source)
    return new_embeds, new_mask, new_types, token_index


def shifted_positions(backbone: Backbone, mask: torch.Tensor, shift: torch.Tensor) -> torch.Tensor | None:
    """Position ids of tokens pushed back by ``shift`` (batch,) positions, as the official code's
    ``past_key_values`` prefix did (None for families whose positions are relative)."""
    style = backbone.traits.positions
    if style == "absolute":
        return torch.arange(mask.shape[1], device=mask.device).expand(mask.shape[0], -1) + shift[:, None]
    if style == "roberta":
        pad = backbone.model.config.pad_token_id or 0
        return (torch.cumsum(mask, dim=1) + shift[:, None]) * mask + pad
    return None


class PromptedModel(nn.Module):
    """Runs a backbone with a method's prompts (or injected layers) and a task head.

    The backbone is frozen first (unless the method trains it), then the method attaches.
    Outputs (logits, token states) are in the original token coordinates whatever
    the method inserts, so data collation and metrics are method-agnostic.
    """

    #: read by ``Trainer`` when a resumed checkpoint lacks keys (a checkpoint keeps only the
    #: trainable state, :mod:`ptuning.checkpoints`); None: nothing is tied, just warn
    _keys_to_ignore_on_save: list[str] | None = None

    def __init__(self, backbone: Backbone, method: Method, head: str, num_labels: int,
                 head_dropout: float | None = None, label_words: tuple[str, ...] | None = None) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
        self.info = backbone
        self.backbone = backbone.model
        self.method = method
        head_class = HEADS[head]
        if head_dropout is None:  # the backbone's hidden dropout where the official head applies one
            head_dropout = backbone.hidden_dropout if head_class.uses_hidden_dropout else 0.0
        extra = {"label_words": tuple(label_words or ())} if head_class is VerbalizerHead else {}
        self.head = head_class(backbone, num_labels, head_dropout, method.trains_backbone, **extra)
        #: the backbone's masked-LM head (the verbalizer's), a part of the backbone
        self.lm_head = backbone.lm_head
        self.backbone.requires_grad_(method.trains_backbone)
        if self.lm_head is not None:
            self.lm_head.requires_grad_(method.trains_backbone)
        method.attach(backbone)

    def _position_ids(self, mask: torch.Tensor, prompt: DeepPrompt | None) -> torch.Tensor | None:
        if prompt is None or not self.method.shifts_positions:
            return None
        return shifted_positions(self.info, mask, torch.full_like(mask[:, 0], prompt.length))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        prompt_anchors: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        mask_position: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        num_choices = None
        if input_ids.dim() == 3:  # multiple choice: (batch, choices, T)
            num_choices = input_ids.shape[1]
            input_ids, attention_mask = input_ids.flatten(0, 1), attention_mask.flatten(0, 1)
            token_type_ids = token_type_ids.flatten(0, 1) if token_type_ids is not None else None
            prompt_anchors = prompt_anchors.flatten(0, 1) if prompt_anchors is not None else None
        batch = input_ids.shape[0]
        embeds = self.backbone.get_input_embeddings()(input_ids)
        prompts = self.method(batch, prompt_anchors)
        mask, types, token_index = attention_mask, token_type_ids, None
        if prompts.input_prompt is not None:
            embeds, mask, types, token_index = insert_prompt(
                embeds, attention_mask, token_type_ids, prompts.input_prompt, prompts.insert_at
            )
        inputs = {"inputs_embeds": embeds, "attention_mask": mask}
        inputs.update(self.info.adapter.forward_kwargs(prompts.deep_prompt))
        if types is not None and self.info.traits.token_type_ids:
            inputs["token_type_ids"] = types
        position_ids = self._position_ids(mask, prompts.deep_prompt)
        if position_ids is not None:
            inputs["position_ids"] = position_ids
        hidden = self.backbone(**inputs).last_hidden_state
        if token_index is not None:
            hidden = hidden.gather(1, token_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        loss, logits = self.head(
            hidden, attention_mask, labels=labels, start_positions=start_positions,
            end_positions=end_positions, num_choices=num_choices, mask_position=mask_position,
        )
        if loss is not None and self.training and not torch.isfinite(loss):
            raise NonFiniteLossError(f"training loss is {loss.item()}")
        return {"loss": loss, "logits": logits}

    # --- parameter accounting and the small artefact ---------------------------------------

    def parameter_counts(self) -> dict[str, int]:
        """Total, trainable, method, head and backbone parameter counts, by ownership: a
        parameter the method registered is the method's wherever in the backbone it acts."""
        owned = {id(p) for p in self.method.parameters()} | {id(p) for p in self.head.parameters()}
        every = list(self.parameters())  # shared (tied) weights once
        backbone = [p for p in every if id(p) not in owned]  # with its masked-LM head when loaded
        return {
            "total": sum(p.numel() for p in every),
            "trainable": sum(p.numel() for p in every if p.requires_grad),
            "method": sum(p.numel() for p in self.method.parameters()),
            "head": sum(p.numel() for p in self.head.parameters()),
            "backbone_trainable": sum(p.numel() for p in backbone if p.requires_grad),
            "backbone": sum(p.numel() for p in backbone),
        }

    def artefact_state(self) -> dict[str, torch.Tensor]:
        """The trained method + head weights (everything the frozen backbone does not own)."""
        state = {f"method.{k}": v for k, v in self.method.state_dict().items()}
        state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def save_artefact(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        """Save the prompt/prefix + head as safetensors (loadable onto the frozen backbone)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(self.artefact_state(), str(tmp), metadata=metadata or {})
        tmp.replace(path)

    def load_artefact(self, path: Path) -> None:
        """Load weights saved by :meth:`save_artefact`; every key must match. An artefact
        stored folded (metadata ``stored_form=folded``) folds this model's method first."""
        with safe_open(str(path), "pt") as handle:
            if (handle.metadata() or {}).get("stored_form") == "folded":
                self.method.fold_for_storage()
            state = {key: handle.get_tensor(key) for key in handle.keys()}
        method = {k[len("method."):]: v for k, v in state.items() if k.startswith("method.")}
        head = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
        self.method.load_state_dict(method, strict=True)
        self.head.load_state_dict(head, strict=True)
