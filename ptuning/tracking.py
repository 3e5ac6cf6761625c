"""Weights & Biases: one run per cell, offline when no API key is configured."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

MODES = ("auto", "online", "offline", "disabled")


def resolve_mode(mode: str) -> str:
    """``auto`` becomes ``online`` with an API key (env or ~/.netrc), else ``offline``;
    ``WANDB_MODE`` in the environment wins."""
    if mode not in MODES:
        raise ValueError(f"logger.mode={mode!r}; valid: {', '.join(MODES)}")
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError):
        pass
    return "offline"


class WandbRun:
    """A W&B run for one cell; always finished, even when the cell fails."""

    def __init__(self, logger_cfg: Any, run_dir: Path, name: str, group: str, tags: list[str],
                 config: dict[str, Any], run_id: str | None = None) -> None:
        """``run_id``: continue that run (a resumed cell keeps one W&B run); None: a new id."""
        import wandb

        self._wandb = wandb
        self.mode = resolve_mode(str(getattr(logger_cfg.mode, "value", logger_cfg.mode)))
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=logger_cfg.project, entity=logger_cfg.entity, id=run_id,
            resume="allow", group=group, name=name, tags=tags, config=config, dir=str(run_dir), mode=self.mode,
            reinit="finish_previous", settings=wandb.Settings(init_timeout=90, silent=True),
        )

    def describe(self) -> dict[str, Any]:
        """The record's ``wandb`` field."""
        return {"run_id": self.run.id, "project": self.run.project, "mode": self.mode}

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self, record: dict[str, Any]) -> None:
        """Store the result record in the run summary and close the run (marked preempting
        when the cell was interrupted, so the resumed attempt continues it)."""
        self.run.summary["result"] = record
        for name, value in record.get("metrics", {}).items():
            self.run.summary[f"final/{name}"] = value
        if record["status"] == "running":  # interrupted (preempted, timed out): resumed later
            self.run.mark_preempting()
        self.run.finish(exit_code=0 if record["status"] == "completed" else 1)
