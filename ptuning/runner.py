"""One grid cell: config -> trained, evaluated model -> one result record.

The record is written atomically to ``<runs_dir>/<group>/<task>/<model>/<method>/
seed<S>-<hash>/result.json``, the hash covering every option that changes the
result, so a requeued job lands in the same place and finished cells are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

SCHEMA_VERSION = 1
#: config sections that do not change a cell's result (excluded from its identity)
NON_IDENTITY = ("paths", "logger", "redo", "group", "launcher", "hydra", "cell_overrides")


class SetupError(RuntimeError):
    """Bad input found before training: reported in one line, nothing written."""


def apply_cell_overrides(cfg: DictConfig) -> DictConfig:
    """Apply the config's ``cell_overrides`` rules that match this cell.

    Each rule is ``{when: {method|model|task|seed: value}, set: {dotted.key: value}}``;
    presets use them for per-cell settings (official hyperparameters per task and
    backbone, sample caps per task). Later rules win. Unknown keys are an error.
    """
    rules = cfg.get("cell_overrides") or []
    choices = {"method": cfg.method.name, "model": cfg.model.name, "task": cfg.task.name,
               "seed": cfg.seed}
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, True)
    for index, rule in enumerate(rules):
        unknown = set(rule.get("when", {})) - set(choices)
        if unknown or "set" not in rule:
            raise ValueError(f"cell_overrides[{index}]: a rule is {{when: {{{', '.join(choices)}}}, "
                             f"set: {{key: value}}}}; got {OmegaConf.to_container(rule)}")
        if all(str(choices[k]) == str(v) for k, v in rule.get("when", {}).items()):
            for key, value in rule.set.items():
                if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                    raise ValueError(f"cell_overrides[{index}]: {key} is not an option of this cell")
                OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def cell_identity(cfg: DictConfig) -> tuple[dict[str, Any], str]:
    """The cell (method, model, task, seed) and a hash of every result-relevant option."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    relevant = {k: v for k, v in resolved.items() if k not in NON_IDENTITY}
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:8]
    cell = {"method": cfg.method.name, "model": cfg.model.name, "task": cfg.task.name, "seed": int(cfg.seed)}
    return cell, digest


def cell_dir(cfg: DictConfig) -> Path:
    """Where the cell's result record lives (derived from its identity, not a time)."""
    cell, digest = cell_identity(cfg)
    return (Path(cfg.paths.runs_dir) / str(cfg.group) / cell["task"] / cell["model"] / cell["method"]
            / f"seed{cell['seed']}-{digest}")


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str))
    tmp.replace(path)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "git_commit": _git_commit(),
            "platform": platform.platform()}


class PeakMemory:
    """Peak device memory during a block: CUDA allocator peak, or sampled process RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._stop = device, 0.0, threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            import psutil

            process = psutil.Process()

            def sample() -> None:
                while not self._stop.is_set():
                    self.peak = max(self.peak, process.memory_info().rss / 2**20)
                    self._stop.wait(0.05)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()


def _base_record(cfg: DictConfig) -> dict[str, Any]:
    cell, digest = cell_identity(cfg)
    return {
        "schema_version": SCHEMA_VERSION, "status": "running", "error": None, "group": str(cfg.group),
        "cell": cell, "identity_hash": digest, "config": OmegaConf.to_container(cfg, resolve=True),
        "env": environment(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def existing_result(cfg: DictConfig) -> dict[str, Any] | None:
    """The cell's record if it already completed."""
    path = cell_dir(cfg) / "result.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if record.get("status") == "completed" else None


def run_cell(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate one cell; return (and write) its result record.

    A completed cell is skipped unless ``redo=true``. Bad input raises
    :class:`SetupError` before anything is written; a failure during training
    (diverging loss included) is recorded as ``status: failed``.
    """
    from ptuning.experiment import Experiment

    try:
        cfg = apply_cell_overrides(cfg)
    except ValueError as err:
        raise SetupError(str(err)) from err
    if not cfg.redo:
        done = existing_result(cfg)
        if done is not None:
            print(f"[skip] {cell_dir(cfg)} already completed (redo=true to run it again)")
            return done
    directory = cell_dir(cfg)
    experiment = Experiment.prepare(cfg)  # raises SetupError on bad input; writes nothing
    record = _base_record(cfg)
    record.update(experiment.describe())
    write_json_atomic(directory / "result.json", record)
    tracker = experiment.start_tracking(directory, record)
    try:
        record.update(experiment.train_and_evaluate(directory, tracker))
        record["status"] = "completed"
    except Exception as err:  # a failed cell must not stop the rest of a multirun
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        record.setdefault("metrics", {})
    finally:
        write_json_atomic(directory / "result.json", record)
        if tracker is not None:
            tracker.finish(record)
    return record
