"""Train and evaluate one grid cell (a Hydra app; use -m for a multirun).

    python -m experiments.run method=ptuning_v2 model=minilm_l6 task=rte seed=0
    python -m experiments.run -m +preset=default
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from ptuning.runner import SetupError, apply_cell_overrides, cell_dir, run_cell


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        record = run_cell(cfg)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    cell = record["cell"]
    metric = record.get("primary_metric")
    value = record.get("metrics", {}).get(metric)
    shown = f"{metric}={value:.2f}" if value is not None else f"error={record.get('error')}"
    print(f"[{record['status']}] {cell['task']} {cell['model']} {cell['method']} seed={cell['seed']} "
          f"{shown} -> {cell_dir(apply_cell_overrides(cfg))}")


if __name__ == "__main__":
    main()
