"""Build ``analysis/published.csv`` (and ``analysis/PUBLISHED.md``) from the shared reference CSVs.

Re-runnable and deterministic::

    python -m experiments.build_published [--reference DIR] [--check]

Only rows with a source are kept: status ``READ_FROM_SOURCE*`` or ``QUOTED_SECONDARY*`` go to
the tables (``use=table``); ``APPROX_FROM_IMAGE*`` rows go only to the scale figure
(``use=figure``) and never into a table. Rows that cannot be mapped onto the suite's model,
method, task and metric names are skipped and listed, with the reason, in ``PUBLISHED.md``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis import style

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
DEFAULT_OUT = ANALYSIS / "published.csv"
DEFAULT_NOTES = ANALYSIS / "PUBLISHED.md"

REQUIRED = ("paper", "table", "task", "metric", "backbone", "method", "value", "source", "status")
OUT_COLUMNS = (
    "paper",
    "table",
    "setting",
    "task",
    "metric",
    "model",
    "method",
    "value",
    "use",
    "preference",
    "backbone_params",
    "backbone_label",
    "task_label",
    "metric_label",
    "method_label",
    "value_as_printed",
    "status",
    "source",
    "source_file",
)
ALLOWED_STATUS_PREFIXES = ("READ_FROM_SOURCE", "QUOTED_SECONDARY", "APPROX_FROM_IMAGE")

# Backbone labels (lower-cased) -> model config; None = known but not in the suite (skip).
BACKBONES: dict[str, str | None] = {
    "bert-large (bert-large-cased)": "bert_large",
    "bert-large (bert-large-uncased)": "bert_large_uncased",
    # The P-Tuning v2 paper's "BERT-large" SuperGLUE rows: its official SuperGLUE scripts load
    # bert-large-cased (ptv2_official_hparams.csv), so the bare label maps to bert_large.
    "bert-large": "bert_large",
    "roberta-large": "roberta_large",
    "roberta-large (roberta-large)": "roberta_large",
    "deberta-xxlarge-v2": "deberta_v2_xxlarge",
    "gpt2-medium": "gpt2_medium",
}
TASKS: dict[str, str] = {
    "boolq": "boolq",
    "cb": "cb",
    "copa": "copa",
    "multirc": "multirc",
    "record": "record",
    "rte": "rte",
    "wic": "wic",
    "wsc": "wsc",
    "conll03": "conll2003",
    "conll2003": "conll2003",
    "conll04": "conll04",
    "ontonotes 5.0": "ontonotes",
    "ontonotes": "ontonotes",
    "squad 1.1": "squad",
    "squad 2.0": "squad_v2",
    "avg(rte,boolq,cb)": "avg(rte,boolq,cb)",
}
# Metric labels (lower-cased, parenthetical notes removed) -> one metric per printed number.
METRICS: dict[str, tuple[str, ...]] = {
    "acc": ("accuracy",),
    "micro-f1": ("f1",),
    "f1": ("f1",),
    "em": ("em",),
    "macro-f1": ("f1_macro",),
    "acc/f1": ("accuracy", "f1_macro"),  # SuperGLUE CB prints acc/macro-F1
    "f1a/em": ("f1a", "em"),
    "f1/em": ("f1", "em"),
}
METHODS: dict[str, str] = {
    "ft": "finetune",
    "pt-2": "ptuning_v2",
    "pt": style.COMBINED_PT,
    "p-tuning": "ptuning_v1",
}
SETTING: dict[str, str] = {
    "finetune": "full fine-tuning (backbone tuned)",
    "ptuning_v2": "frozen backbone, deep prompts",
    style.COMBINED_PT: "frozen backbone, shallow prompts (the paper's combined PT row)",
    "ptuning_v1": "P-Tuning v1 with the backbone tuned / few-shot: NOT our frozen setting",
}


@dataclass
class Skipped:
    """A reference row that was not mapped, with the reason."""

    where: str
    row: dict[str, str]
    reason: str


def default_reference_dir() -> Path:
    """``$PTUNING_REFERENCE_DIR``, else ``$PTUNING_DATA_DIR/../reference``, else ``../shared``."""
    if os.environ.get("PTUNING_REFERENCE_DIR"):
        return Path(os.environ["PTUNING_REFERENCE_DIR"])
    if os.environ.get("PTUNING_DATA_DIR"):
        return Path(os.environ["PTUNING_DATA_DIR"]).parent / "reference"
    return ANALYSIS.parent.parent / "shared" / "reference"


def _strip_note(text: str) -> str:
    return re.sub(r"\s*\(.*\)\s*$", "", text.strip()).strip()


def _map_backbone(label: str) -> str | None:
    key = label.strip().lower()
    if key in BACKBONES:
        return BACKBONES[key]
    return BACKBONES.get(_strip_note(key))


def _map_method(label: str) -> str | None:
    return METHODS.get(_strip_note(label).lower())


def _parse_count(text: str) -> str:
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMB])\s*", text or "")
    if not m:
        return ""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}[m.group(2)]
    return str(int(round(float(m.group(1)) * scale)))


def _preference(paper: str) -> int:
    """Lower wins when several sources give the same cell: paper > repo README > other."""
    if paper.startswith("P-Tuning v2 (arXiv") or paper.startswith("P-Tuning v2 (early"):
        return 1
    if paper.startswith("P-Tuning v2 (repo README)"):
        return 2
    if paper.startswith("P-Tuning v1"):
        return 3
    return 4


def map_row(row: dict[str, str], where: str) -> tuple[list[dict[str, str]], list[Skipped]]:
    """Map one reference row to zero or more published rows (one per printed number)."""
    status = row["status"].strip()
    if not status.startswith(ALLOWED_STATUS_PREFIXES):
        return [], [Skipped(where, row, f"status '{status}' is not a sourced reading")]
    if not row["source"].strip():
        return [], [Skipped(where, row, "no source")]
    use = "figure" if status.startswith("APPROX_FROM_IMAGE") else "table"
    task = TASKS.get(row["task"].strip().lower())
    if task is None:
        return [], [Skipped(where, row, f"task '{row['task']}' is not in the suite")]
    metrics = METRICS.get(_strip_note(row["metric"]).lower())
    if metrics is None:
        return [], [Skipped(where, row, f"metric '{row['metric']}' has no suite metric")]
    method = _map_method(row["method"])
    if method is None:
        return [], [Skipped(where, row, f"method '{row['method']}' has no suite method")]
    if use == "figure":
        model = ""  # Figure-1 x-axis groups (GLM sizes) are not suite models: x = parameters
        params = _parse_count(row.get("backbone_params", ""))
        if not params:
            return [], [Skipped(where, row, "figure row without a parameter count")]
    else:
        mapped = _map_backbone(row["backbone"])
        if mapped is None:
            return [], [Skipped(where, row, f"backbone '{row['backbone']}' has no model config")]
        model = mapped
        params = _parse_count(row.get("backbone_params", ""))
    if row["value"].strip() in ("", "-"):
        return [], [Skipped(where, row, "value printed as '-' (not reported)")]
    values = [v.strip() for v in row["value"].split("/")]
    if len(values) != len(metrics):
        return [], [Skipped(where, row, f"{len(values)} values for metrics {metrics}")]
    out, skipped = [], []
    setting = SETTING[method]
    if row["paper"].startswith("GLM"):
        setting += "; cloze-style FT from the GLM README, not the P-Tuning papers' FT runs"
    if "NOT the paper numbers" in status:
        setting += "; authors' repo re-implementation, not the paper's numbers"
    if use == "figure":
        setting += "; approximate reading of a bar chart (figure only, never a table value)"
    for metric, value in zip(metrics, values, strict=True):
        try:
            number = float(value)
        except ValueError:
            skipped.append(Skipped(where, row, f"{metric} value printed as '{value}'"))
            continue
        out.append(
            {
                "paper": row["paper"].strip(),
                "table": row["table"].strip(),
                "setting": setting,
                "task": task,
                "metric": metric,
                "model": model,
                "method": method,
                "value": repr(number),
                "use": use,
                "preference": str(_preference(row["paper"])),
                "backbone_params": params,
                "backbone_label": row["backbone"].strip(),
                "task_label": row["task"].strip(),
                "metric_label": row["metric"].strip(),
                "method_label": row["method"].strip(),
                "value_as_printed": row["value"].strip(),
                "status": status,
                "source": row["source"].strip(),
                "source_file": where.split(":")[0],
            }
        )
    return out, skipped


def build(reference_dir: str | Path) -> tuple[list[dict[str, str]], list[Skipped], list[str]]:
    """Published rows, skipped rows and skipped files from every ``*.csv`` in ``reference_dir``."""
    ref = Path(reference_dir)
    if not ref.is_dir():
        raise FileNotFoundError(f"{ref}: reference directory does not exist")
    rows: list[dict[str, str]] = []
    skipped: list[Skipped] = []
    skipped_files: list[str] = []
    for path in sorted(ref.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            if not set(REQUIRED) <= set(header):
                skipped_files.append(
                    f"{path.name}: not a published-number table (no "
                    f"{', '.join(c for c in REQUIRED if c not in header)} column)"
                )
                continue
            for i, raw in enumerate(reader, start=2):
                got, skip = map_row({k: (v or "") for k, v in raw.items()}, f"{path.name}:{i}")
                rows.extend(got)
                skipped.extend(skip)
    keys = set()
    for r in rows:
        key = (
            r["paper"],
            r["table"],
            r["task"],
            r["metric"],
            r["model"],
            r["backbone_params"],
            r["method"],
        )
        if key in keys:
            raise ValueError(f"duplicate published row {key}")
        keys.add(key)
    return rows, skipped, skipped_files


def render_csv(rows: Sequence[dict[str, str]]) -> str:
    """The CSV text of ``published.csv`` (stable order and formatting)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(OUT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def render_notes(
    rows: Sequence[dict[str, str]], skipped: Sequence[Skipped], skipped_files: Sequence[str]
) -> str:
    """Markdown with the mapping decisions and every skipped row/file and why."""
    n_table = sum(r["use"] == "table" for r in rows)
    lines = [
        "# Published numbers (`analysis/published.csv`)",
        "",
        "Generated by `python -m experiments.build_published` from `../shared/reference/*.csv`;",
        "do not edit by hand. Every row keeps its `source` and `status`.",
        "",
        f"Kept {len(rows)} rows: {n_table} for tables (`use=table`: READ_FROM_SOURCE* or",
        f"QUOTED_SECONDARY*), {len(rows) - n_table} for the scale figure only (`use=figure`:",
        "APPROX_FROM_IMAGE, bar-chart readings, never shown as table values).",
        "",
        "## Mapping decisions",
        "",
        "- Backbones: `BERT-large (bert-large-cased)` -> bert_large, `BERT-large",
        "  (bert-large-uncased)` -> bert_large_uncased, bare `BERT-large` (P-Tuning v2 paper",
        "  SuperGLUE rows) -> bert_large because the official SuperGLUE scripts load",
        "  bert-large-cased; `RoBERTa-large` -> roberta_large; `DeBERTa-XXLarge-v2` ->",
        "  deberta_v2_xxlarge. Figure-1 x-axis groups (330M/2B/10B GLM sizes) map to no model:",
        "  the figure places them by parameter count.",
        "- Methods: `FT` -> finetune, `PT-2` -> ptuning_v2, `PT (Lester et al. & P-tuning...)`",
        f"  -> `{style.COMBINED_PT}` (one published value shown against both prompt_tuning",
        "  and ptuning_v1 rows, marked as the combined PT row), `P-tuning` -> ptuning_v1 (v1",
        "  rows are backbone-tuned or few-shot; the `setting` column says so).",
        "- Metrics: acc -> accuracy, micro-F1 -> f1, EM/F1 -> em/f1, macro-F1 -> f1_macro;",
        "  two printed numbers (`acc/F1` for CB, `F1a/EM`, `F1/EM`) give two rows.",
        "- Tasks: CoNLL03 -> conll2003, OntoNotes 5.0 -> ontonotes, SQuAD 1.1 -> squad,",
        "  SQuAD 2.0 -> squad_v2, SuperGLUE names lower-cased.",
        "- `preference`: when several sources give one cell, the tables show the lowest",
        "  (1 = P-Tuning v2 paper, 2 = its repo README, 3 = P-Tuning v1, 4 = other, e.g. GLM).",
        "",
        "## Skipped files",
        "",
    ]
    lines += [f"- {f}" for f in skipped_files] or ["- none"]
    lines += [
        "",
        "## Skipped rows",
        "",
        "| where | task | metric | backbone | method | value | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in skipped:
        cells = [
            s.where,
            s.row.get("task", ""),
            s.row.get("metric", ""),
            s.row.get("backbone", ""),
            s.row.get("method", ""),
            s.row.get("value", ""),
            s.reason,
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write (or ``--check``) published.csv and PUBLISHED.md."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.build_published", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "reference_dir",
        nargs="?",
        type=Path,
        default=None,
        help="reference CSV folder (default: $PTUNING_REFERENCE_DIR, "
        "$PTUNING_DATA_DIR/../reference, or <repo>/../shared/reference)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--notes", type=Path, default=DEFAULT_NOTES)
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed files differ from a fresh build",
    )
    args = parser.parse_args(argv)
    ref = args.reference_dir or default_reference_dir()
    try:
        rows, skipped, skipped_files = build(ref)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"build_published: error: {exc}", file=sys.stderr)
        return 2
    text, notes = render_csv(rows), render_notes(rows, skipped, skipped_files)
    if args.check:
        stale = [
            p
            for p, t in ((args.out, text), (args.notes, notes))
            if not p.is_file() or p.read_text(encoding="utf-8") != t
        ]
        for p in stale:
            print(f"build_published: {p} is out of date; rerun without --check", file=sys.stderr)
        return 1 if stale else 0
    args.out.write_text(text, encoding="utf-8")
    args.notes.write_text(notes, encoding="utf-8")
    print(f"wrote {args.out} ({len(rows)} rows; {len(skipped)} rows skipped, see {args.notes})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
