"""Result records for the analysis tests, built with the record schema (ptuning.records).

Values are built so that means and sample stds are exact: seed s of a cell with
``(base, d)`` scores ``base + (s - 1) * d``, so over seeds 0-2 the mean is ``base`` and the
std (ddof=1) is ``d``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ptuning.records import (
    RECORD_FILE,
    Cell,
    Identity,
    Record,
    cell_dir,
    validate_record,
    write_json_atomic,
)

SEEDS = (0, 1, 2)
MODELS: dict[str, dict[str, Any]] = {
    "tiny_bert": {"params": 4_400_000, "hidden": 32, "layers": 2, "family": "bert"},
    "minilm_l6": {"params": 22_713_216, "hidden": 384, "layers": 6, "family": "bert"},
    "bert_large": {"params": 333_579_264, "hidden": 1024, "layers": 24, "family": "bert"},
    "bert_large_uncased": {"params": 335_141_888, "hidden": 1024, "layers": 24, "family": "bert"},
}
METHODS = ("finetune", "prompt_tuning", "ptuning_v2")
SUPERGLUE = ("rte", "boolq", "cb")

# (model, method, task) -> (base, d) for the primary metric.
VALUES: dict[tuple[str, str, str], tuple[float, float]] = {
    ("tiny_bert", "finetune", "rte"): (55.0, 1.0),
    ("tiny_bert", "finetune", "boolq"): (62.0, 0.5),
    ("tiny_bert", "finetune", "cb"): (50.0, 2.0),
    ("tiny_bert", "prompt_tuning", "rte"): (52.0, 1.0),
    ("tiny_bert", "prompt_tuning", "boolq"): (61.0, 0.5),
    ("tiny_bert", "prompt_tuning", "cb"): (45.0, 2.0),
    ("tiny_bert", "ptuning_v2", "rte"): (54.0, 1.0),
    ("tiny_bert", "ptuning_v2", "boolq"): (62.0, 0.5),
    # ("tiny_bert", "ptuning_v2", "cb"): MISSING (only a 'running' record for seed 0)
    ("minilm_l6", "finetune", "rte"): (65.0, 1.5),
    ("minilm_l6", "finetune", "boolq"): (70.0, 1.0),
    ("minilm_l6", "finetune", "cb"): (80.0, 2.0),
    ("minilm_l6", "prompt_tuning", "rte"): (58.0, 1.0),
    ("minilm_l6", "prompt_tuning", "boolq"): (64.0, 1.0),
    # ("minilm_l6", "prompt_tuning", "cb"): FAILED (seed 0, CUDA out of memory)
    ("minilm_l6", "ptuning_v2", "rte"): (63.0, 1.0),
    ("minilm_l6", "ptuning_v2", "boolq"): (68.0, 1.0),
    ("minilm_l6", "ptuning_v2", "cb"): (78.0, 2.0),
    ("bert_large", "finetune", "rte"): (78.0, 1.0),
    ("bert_large", "finetune", "boolq"): (76.0, 0.5),
    ("bert_large", "finetune", "cb"): (92.0, 1.0),
    ("bert_large", "prompt_tuning", "rte"): (60.0, 2.0),
    ("bert_large", "prompt_tuning", "boolq"): (66.0, 1.0),
    ("bert_large", "prompt_tuning", "cb"): (75.0, 3.0),
    ("bert_large", "ptuning_v2", "rte"): (79.0, 1.0),
    ("bert_large", "ptuning_v2", "boolq"): (74.0, 0.5),
    ("bert_large", "ptuning_v2", "cb"): (94.0, 1.0),
}
# NER on minilm only: (eval base, eval d, test base, test d)
NER_VALUES: dict[tuple[str, str], tuple[float, float, float, float]] = {
    ("minilm_l6", "finetune"): (85.0, 1.0, 83.0, 1.0),
    ("minilm_l6", "ptuning_v2"): (80.0, 1.0, 78.0, 0.5),
}
FAILED_CELL = ("minilm_l6", "prompt_tuning", "cb")
FAILED_ERROR = "RuntimeError: CUDA out of memory"  # as the record shows it
MISSING_CELL = ("tiny_bert", "ptuning_v2", "cb")

PRIMARY = {"rte": "accuracy", "boolq": "accuracy", "cb": "accuracy", "conll04": "f1", "sst2": "accuracy"}
TRAIN_SECONDS = {"finetune": 20.0, "prompt_tuning": 5.0, "ptuning_v2": 10.0, "lora": 8.0, "mpt2": 30.0}
MEMORY_MB = {"finetune": 2000.0, "prompt_tuning": 1100.0, "ptuning_v2": 1200.0, "lora": 1300.0, "mpt2": 1200.0}


def method_params(model: str, method: str) -> dict[str, int]:
    """Params block: prompt tuning 20 x hidden, P-Tuning v2 2 x layers x 20 x hidden."""
    m = MODELS[model]
    head = m["hidden"] * 2 + 2
    backbone = m["params"]
    if method == "finetune":
        meth, bb_tr = 0, backbone
    elif method == "prompt_tuning":
        meth, bb_tr = 20 * m["hidden"], 0
    else:
        meth, bb_tr = 2 * m["layers"] * 20 * m["hidden"], 0
    return {
        "total": backbone + meth + head,
        "trainable": meth + head + bb_tr,
        "method": meth,
        "head": head,
        "backbone_trainable": bb_tr,
        "backbone": backbone,
        "stored": backbone + meth + head if method == "finetune" else meth + head,
    }


TASKS = {"rte": ("RTE", "SuperGLUE", "validation"), "boolq": ("BoolQ", "SuperGLUE", "validation"),
         "cb": ("CB", "SuperGLUE", "validation"), "conll04": ("CoNLL04", "NER", "test"),
         "sst2": ("SST-2", "GLUE", "validation")}  # a task the analysis package never heard of
MODEL_DISPLAY = {"tiny_bert": "tiny BERT (random)", "minilm_l6": "MiniLM-L6", "bert_large": "BERT-large",
                 "bert_large_uncased": "BERT-large (uncased)"}
METHOD_DISPLAY = {"finetune": ("Fine-tuning", "full"), "prompt_tuning": ("Prompt tuning (Lester)", "prompt"),
                  "ptuning_v2": ("P-Tuning v2", "prompt"), "lora": ("LoRA", "injection"),
                  "mpt2": ("MPT-2 (multi-task P-Tuning v2)", "prompt")}


def make_record(
    model: str,
    method: str,
    task: str,
    seed: int,
    *,
    status: str = "completed",
    metrics: dict[str, float] | None = None,
    test_metrics: dict[str, float] | None = None,
    error: str | None = None,
    group: str = "default",
    options: dict[str, Any] | None = None,
    task_version: int = 1,
    source: str = "local",
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One result record, built by the schema's owner (ptuning.records); ``search``: a grid
    point's axes and point (its values also enter the identity options)."""
    if search is not None:
        options = {**(options or {}), **search["point"], "search.grid": search["axes"]}
    m = MODELS[model]
    primary = PRIMARY[task]
    display, family, reported = TASKS[task]
    cell = Cell(method, model, task, seed)
    record = Record(
        group=group, cell=cell, identity=Identity.of(cell, options or {}, task_version, f"rows-{task}"),
        config={"method": {"name": method}, "model": {"name": model}, "task": {"name": task}, "seed": seed},
        status=status,
        task={"name": task, "display": display, "family": family, "version": task_version,
              "metrics": [primary], "primary_metric": primary, "reported_split": reported},
        model={"name": model, "display": MODEL_DISPLAY[model], "family": m["family"], "hf_name": f"hf/{model}",
               "backbone_params": m["params"]},
        method={"name": method, "display": METHOD_DISPLAY[method][0], "kind": METHOD_DISPLAY[method][1],
                "trains_backbone": method == "finetune"},
        params=method_params(model, method),
        data={"source": source, "train_examples": 512, "eval_examples": 256,
              "test_examples": 256 if test_metrics else 0, "split_note": None},
        metrics=metrics or {}, test_metrics=test_metrics or {},
        selection={"rule": "best_eval_epoch", "metric": primary, "epoch": 3.0, "step": 120, "split": "validation"},
        cost={"train_seconds": TRAIN_SECONDS[method] * (seed + 1), "eval_seconds": 1.0,
              "peak_memory_mb": MEMORY_MB[method] + 10.0 * seed, "device": "cpu"},
        error={"type": "RuntimeError", "message": error, "traceback": []} if error else None,
        search=search,
        env={"python": "3.11.7", "torch": "2.13.0", "transformers": "5.23.0", "git_commit": "abc123"},
        created=f"2026-11-22T20:00:{seed:02d}+00:00", updated=f"2026-11-22T20:01:{seed:02d}+00:00",
    )
    return validate_record(json.loads(json.dumps(record.to_dict())), "fixture")


def write_record(root: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` where the runner would (its identity's folder) under ``root``."""
    c = record["cell"]
    folder = cell_dir(root, record["group"], Cell(c["method"], c["model"], c["task"], c["seed"]),
                      record["identity"]["variant"])
    return write_json_atomic(folder / RECORD_FILE, record)


def all_records() -> list[dict[str, Any]]:
    """Every fixture record: completed cells, the failed cell and the 'running' one."""
    recs = []
    for (model, method, task), (base, d) in VALUES.items():
        for s in SEEDS:
            v = base + (s - 1) * d
            metrics = {"accuracy": v}
            if task == "cb":
                metrics["f1_macro"] = v - 1.0
            recs.append(make_record(model, method, task, s, metrics=metrics))
    for (model, method), (eb, ed, tb, td) in NER_VALUES.items():
        for s in SEEDS:
            recs.append(
                make_record(
                    model,
                    method,
                    "conll04",
                    s,
                    metrics={"f1": eb + (s - 1) * ed},
                    test_metrics={"f1": tb + (s - 1) * td},
                )
            )
    recs.append(make_record(*FAILED_CELL, 0, status="failed", error="CUDA out of memory"))
    recs.append(make_record(*MISSING_CELL, 0, status="running"))
    return recs


def write_fixture(root: Path) -> Path:
    """Write every fixture record under ``root`` (the RUNS dir) and return it."""
    for rec in all_records():
        write_record(root, rec)
    return root
