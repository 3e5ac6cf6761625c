"""Train and evaluate grid cells (a Hydra app; ``-m`` runs a grid).

    python -m experiments.run method=ptuning_v2 model=minilm_l6 task=rte seed=0
    python -m experiments.run -m preset=default
    python -m experiments.run preset=ptv2_superglue method=ptuning_v2 model=bert_large task=wic --cfg job

Exit codes: 0 every cell completed (or was already complete); 1 a cell failed (its record
says why); 2 bad input (a wrong option, a missing file), reported in one line per cell
before anything is written. In a grid, a cell that cannot start ends that cell only: the
grid goes on and the summary at the end lists it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

import ptuning.config  # noqa: F401  (registers the config schemas)
from ptuning.distributed import current_world
from ptuning.errors import SetupError, omegaconf_message
from ptuning.runner import run_cell

OUTCOME_FILE = "outcome.json"


def _launched_as(cfg: DictConfig) -> str:
    choices = HydraConfig.get().runtime.choices
    seed = cfg.seed if cfg.seed is not None else cfg.base_seed + cfg.seed_index  # unchecked: a label
    return f"{choices.get('task')}/{choices.get('model')}/{choices.get('method')}/seed{seed}"


def _write_outcome(status: str, cell: str, message: str, directory: str | None = None) -> None:
    folder = Path(HydraConfig.get().runtime.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OUTCOME_FILE).write_text(json.dumps({"status": status, "cell": cell, "message": message,
                                                   "directory": directory}))


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """One cell; under ``-m`` one job of the grid."""
    grid = HydraConfig.get().mode == RunMode.MULTIRUN
    cell = _launched_as(cfg)
    try:
        outcome = run_cell(cfg)
    except SetupError as err:
        print(f"error: {cell}: {err}" if grid else f"error: {err}", file=sys.stderr)
        if not grid:
            sys.exit(2)
        _write_outcome("not started", cell, str(err))
        return
    except Exception as err:  # a bug before the cell could be placed: keep the traceback
        if not grid:
            raise
        traceback.print_exc()
        _write_outcome("crashed", cell, f"{type(err).__name__}: {err}")
        return
    if not current_world().main:  # one cell on several processes: rank 0 reports it
        return
    print(outcome.line())
    if outcome.error is not None:
        print("".join(traceback.format_exception(outcome.error)), file=sys.stderr)
    if grid:
        error = outcome.record.get("error") or {}
        _write_outcome(outcome.status, cell, f"{error.get('type')}: {error.get('message')}" if error else "",
                       str(outcome.directory))
    elif outcome.status == "failed":
        sys.exit(1)


class SweepSummary(Callback):
    """At the end of a grid: counts per outcome, the cells that could not start or failed,
    and the exit code (2 if a cell could not start, else 1 if one failed)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        paths = sorted(sweep.glob(f"*/{OUTCOME_FILE}"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
        outcomes = [json.loads(p.read_text()) for p in paths]
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        print(f"[grid] {len(outcomes)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        bad = [o for o in outcomes if o["status"] in ("not started", "failed", "crashed")]
        for outcome in bad:
            print(f"  {outcome['status']}: {outcome['cell']}: {outcome['message']}", file=sys.stderr)
        if any(o["status"] == "not started" for o in bad):
            raise SystemExit(2)
        if bad:
            raise SystemExit(1)


def one_line(err: Exception) -> str:
    """A Hydra composition error as one line naming the option, the value and what is allowed."""
    if isinstance(err, MissingConfigException):
        first = str(err).splitlines()[0].split(": ", 1)[-1]
        group = (err.missing_cfg_file or "").rsplit("/", 1)[0]
        options = getattr(err, "options", None) or []
        return f"{first}; options for {group}: {', '.join(options)}" if options else first
    cause = err.__cause__ or err.__context__
    if isinstance(cause, OmegaConfBaseException):
        where = re.match(r"In '([^']+)'", str(err))  # the config file that holds the bad value
        return (f"in {where.group(1)}: " if where else "") + omegaconf_message(cause)
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def cli() -> None:
    """``python -m experiments.run``: Hydra errors become one line and exit code 2."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra re-raises; we report
    try:
        main()
    except (ConfigCompositionException, OverrideParseException) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
