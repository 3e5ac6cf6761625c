"""Predict with trained prompts: any number of tasks on one frozen backbone, batches mixing them.

    python -m experiments.predict --artefact runs/mini/rte/minilm_l6/ptuning_v2/seed0-ab12cd34 \\
        --artefact runs/mini/conll04/minilm_l6/ptuning_v2/seed0-0f1e2d3c \\
        --input examples.jsonl --output predictions.jsonl

Each ``--artefact`` is a cell directory (or its ``prompt.safetensors``), named by its task, or
``NAME=DIR`` to name it (two cells of one task). Every line of ``--input`` is one example in
its task's row schema (the hub dataset's columns, without the label) plus ``"task"``: the name
of the artefact that predicts it (``--task NAME`` for a file of one task). Every line of
``--output`` is ``{"line": N, "task": ..., "prediction": ...}`` in the input's order, the
prediction in the task's label space: a label name (classification, COPA's ``choice1`` /
``choice2``), a tag per word (NER), an answer text (QA; "" for no answer), an entity (ReCoRD).

Exit codes: 0 done; 2 bad input (a missing artefact, an unknown task, a malformed line:
named by file and line), nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ptuning.errors import DataFormatError, SetupError
from ptuning.prompt_table import PromptTable


def read_examples(path: Path, task: str | None) -> list[tuple[int, str, dict[str, Any]]]:
    """``(line number, task name, row)`` per non-empty line of a JSON-lines file."""
    examples = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataFormatError(f"--input {path}: cannot read it ({err.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{path}:{number}: not JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataFormatError(f"{path}:{number}: an example must be a JSON object, got {type(row).__name__}")
        name = row.pop("task", None) if task is None else task
        if name is None:
            raise DataFormatError(f"{path}:{number}: no \"task\" field (or give --task for a file of one task)")
        examples.append((number, str(name), row))
    return examples


def predict_file(table: PromptTable, source: Path, target: Path, task: str | None = None, batch_size: int = 32,
                 progress: bool = True) -> int:
    """Predict every example of ``source`` into ``target`` (written whole, or not at all);
    returns the number of predictions."""
    examples = read_examples(source, task)
    if not examples:
        raise DataFormatError(f"--input {source}: no examples in it")
    lines = [line for line, _, _ in examples]
    names = [name for _, name, _ in examples]
    predictions = table.predict([(name, row) for _, name, row in examples], batch_size=batch_size,
                                progress=(lambda it: tqdm(it, desc="batches", unit="batch")) if progress else None,
                                where=lambda i: f"{source}:{lines[i]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.", delete=False) as handle:
        for line, name, prediction in zip(lines, names, predictions, strict=True):
            handle.write(json.dumps({"line": line, "task": name, "prediction": prediction}) + "\n")
    Path(handle.name).replace(target)
    return len(predictions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--artefact", action="append", required=True, metavar="[NAME=]DIR",
                        help="a trained cell's directory (repeat for more tasks)")
    parser.add_argument("--input", required=True, type=Path, help="JSON-lines examples")
    parser.add_argument("--output", required=True, type=Path, help="JSON-lines predictions")
    parser.add_argument("--task", help="the artefact name predicting every example (a file of one task)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model-path", help="a local copy of the backbone's checkpoint")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size={args.batch_size}: allowed: an integer >= 1")
    try:
        table = PromptTable.load(args.artefact, args.model_path)
        table.backbone.model.to(args.device)
        for entry in table.entries.values():
            entry.model.to(args.device)
        count = predict_file(table, args.input, args.output, args.task, args.batch_size, not args.no_progress)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{count} predictions ({', '.join(table.entries)}) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
