"""Export a trained cell's prompt for other tools: a PEFT adapter or raw prompt embeddings.

    python -m experiments.export runs/mini/rte/minilm_l6/ptuning_v2/seed0-ab12cd34
    python -m experiments.export CELL_DIR --format embeddings --out exported/rte [--model-path DIR]

``--format peft`` (default) writes an adapter that ``peft.PeftModel.from_pretrained`` loads onto
the Hugging Face backbone; ``--format embeddings`` writes the prompt (virtual-token embeddings or
per-layer prefix keys/values), a JSON sidecar and the head's weights (formats:
``ptuning/export.py``). ``--out`` defaults to ``CELL_DIR/export-<format>``; it must not exist
(or be empty). ``--model-path``: a local copy of the backbone's checkpoint.

Exit codes: 0 written; 2 bad input (no artefact, a fine-tuned cell, an option the format cannot
represent), one line on stderr and nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ptuning.artefacts import artefact_path, load_trained, read_description
from ptuning.errors import SetupError
from ptuning.export import FORMATS, check_exportable, check_out_dir, export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("cell", type=Path, help="a trained cell's directory (or its prompt.safetensors)")
    parser.add_argument("--format", choices=FORMATS, default="peft", dest="fmt")
    parser.add_argument("--out", type=Path, help="the directory to write (default: CELL_DIR/export-<format>)")
    parser.add_argument("--model-path", help="a local copy of the backbone's checkpoint")
    args = parser.parse_args(argv)
    try:
        path = artefact_path(args.cell)
        check_exportable(read_description(path), args.fmt)  # before the backbone loads
        out = check_out_dir(args.out or path.parent / f"export-{args.fmt}")
        written = export(load_trained(path, model_path=args.model_path), out, args.fmt)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.fmt} export of {path.parent} -> {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
