"""Build ``analysis/published.csv`` (and ``analysis/PUBLISHED.md``) from the shared reference CSVs.

Re-runnable and deterministic::

    python -m experiments.build_published [REFERENCE_DIR] [--check]

Sources, by ``kind``:

* ``paper``: the P-Tuning v2 paper's Tables 2-4 and the P-Tuning v1 paper's Tables 3-4,
  transcribed cell by cell (``paper_tables_transcribed.csv``, status
  ``TRANSCRIBED_FROM_PAPER_SCREENSHOT*``), the primary source. Paper numbers quoted second-hand
  (``QUOTED_SECONDARY*``) are kept only for cells the transcription lacks.
* ``official re-implementation``: the THUDM/P-tuning-v2 README's own re-runs (not the paper).
* ``other``: other sourced numbers (the GLM README's fine-tuning), again only where the
  transcription has no cell; kept for reference, never shown as a paper value.

Figure-1 bar-chart pixel readings (``APPROX_FROM_IMAGE*``) are retired. Every row that is not
kept is listed, with the reason, in ``PUBLISHED.md``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis import style

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
DEFAULT_OUT = ANALYSIS / "published.csv"
DEFAULT_NOTES = ANALYSIS / "PUBLISHED.md"
TRANSCRIBED = "paper_tables_transcribed.csv"

REQUIRED = ("paper", "table", "task", "metric", "backbone", "method", "value", "source", "status")
OUT_COLUMNS = (
    "kind",
    "ref",
    "paper",
    "table",
    "setting",
    "family",
    "task",
    "metric",
    "model",
    "method",
    "value",
    "preference",
    "backbone_params",
    "not_in_suite",
    "backbone_label",
    "task_label",
    "metric_label",
    "method_label",
    "value_as_printed",
    "status",
    "source",
    "source_file",
    "source_line",
)
PAPER, OFFICIAL, OTHER = "paper", "official re-implementation", "other"
TRANSCRIBED_STATUS = "TRANSCRIBED_FROM_PAPER_SCREENSHOT"
SECONDARY_STATUS = ("QUOTED_SECONDARY", "READ_FROM_SOURCE")
RETIRED_STATUS = "APPROX_FROM_IMAGE"

# Backbone labels (lower-cased, notes in parentheses removed) -> model name. GLM and GPT-2 base
# are not suite models (NOT_IN_SUITE); their rows are kept for the scale figure and the lists.
BACKBONES: dict[str, str] = {
    # Bare "BERT-large" in the P-Tuning v2 paper: its official SuperGLUE scripts load
    # bert-large-cased (ptv2_official_hparams.csv); NER rows are re-mapped below.
    "bert-large": "bert_large",
    "bert-large-cased": "bert_large",
    "bert-large-uncased": "bert_large_uncased",
    "bert-base-cased": "bert_base",
    "roberta-large": "roberta_large",
    "deberta-xlarge": "deberta_xlarge",  # microsoft/deberta-xlarge (750M), conf/model/deberta_xlarge
    "deberta-xxlarge-v2": "deberta_v2_xxlarge",
    "glm-xlarge": "glm_xlarge",
    "glm-xxlarge": "glm_xxlarge",
    "gpt2-base": "gpt2_base",
    "gpt2-medium": "gpt2_medium",
}
# The official NER scripts load bert-large-uncased (ptv2_official_hparams.csv), so the paper's
# Table 3 "BERT-large" NER rows are that model.
NER_BERT_LARGE = "bert_large_uncased"
BACKBONE_SKIPS: dict[str, str] = {
    "not named": "the P-Tuning v2 Table 4 head ablation does not name its backbone (no caption in "
    "the screenshot), so its cells cannot be placed",
    "albert-xxlarge-v2": "P-Tuning v1's few-shot (FewGLUE) backbone, not a suite model",
    "not stated": "the quote does not say which backbone",
}
NOT_IN_SUITE: dict[str, str] = {
    "glm_xlarge": "GLM-xlarge (2B) is not a suite backbone",
    "glm_xxlarge": "GLM-xxlarge (10B) is not a suite backbone",
    "gpt2_base": "GPT-2 base (117M) has no conf/model file",
    "mp_zeroshot": "manual-prompt zero-shot (P-Tuning v1 baseline) is not a suite method",
    "mp_finetune": "manual-prompt fine-tuning (P-Tuning v1 baseline) is not a suite method",
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
    "squad 1.1 dev": "squad",
    "squad 2.0": "squad_v2",
    "squad 2.0 dev": "squad_v2",
    "sst-2": "sst2",
    "conll12": "conll2012",
    "conll05 wsj": "conll2005",
    "conll05 brown": "conll2005_brown",  # CoNLL05's Brown test: the extra test of task conll2005
}
TASK_SKIPS: dict[str, str] = {
    "avg": "the paper's row average (Avg. column) is not a task; tables average per-task values",
    "lama": "LAMA knowledge probing is not a suite task",
}
FAMILIES: dict[str, str] = {
    **dict.fromkeys(("boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc"), "SuperGLUE"),
    **dict.fromkeys(("conll2003", "conll04", "ontonotes"), "NER"),
    **dict.fromkeys(("squad", "squad_v2"), "QA"),
    "sst2": "GLUE",
    **dict.fromkeys(("conll2012", "conll2005", "conll2005_brown"), "SRL"),
}
# Metric labels (lower-cased, notes removed) -> one suite metric per printed number.
METRICS: dict[str, tuple[str, ...]] = {
    "acc": ("accuracy",),
    "micro-f1": ("f1",),
    "f1": ("f1",),
    "em": ("em",),
    "f1a": ("f1a",),
    "macro-f1": ("f1_macro",),
    "acc/f1": ("accuracy", "f1_macro"),  # SuperGLUE CB prints acc/macro-F1
    "f1a/em": ("f1a", "em"),
    "f1/em": ("f1", "em"),
}
# SuperGLUE's CB "F1" is the macro-F1 over its three classes.
TASK_METRICS: dict[tuple[str, str], str] = {("cb", "f1"): "f1_macro"}
METHODS: dict[str, str] = {
    "ft": "finetune",
    "fine-tuning": "finetune",
    "fine-tune": "finetune",
    "pt": style.COMBINED_PT,
    "pt-2": "ptuning_v2",
    "mpt-2": "mpt2",
    "p-tuning": "ptuning_v1",
    "mp zero-shot": "mp_zeroshot",
    "mp fine-tuning": "mp_finetune",
}
SETTING: dict[str, str] = {
    "finetune": "full fine-tuning (backbone tuned)",
    "ptuning_v2": "frozen backbone, deep prompts",
    style.COMBINED_PT: "frozen backbone, shallow prompts (the paper's combined PT row)",
    "ptuning_v1": "P-Tuning v1 with the backbone tuned jointly: NOT our frozen setting",
    "mpt2": "multi-task P-Tuning v2 (frozen backbone, prompts trained on several tasks)",
    "mp_zeroshot": "manual prompt, zero-shot (no training)",
    "mp_finetune": "manual prompt with the backbone fine-tuned",
}
PAPER_IDS = (("P-Tuning v2", "ptv2"), ("P-Tuning v1", "ptv1"))


@dataclass
class Skipped:
    """A reference row that was not kept, with the reason."""

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


def _lookup_prefix(label: str, table: dict[str, str]) -> str | None:
    """The value of the longest key that ``label`` (lower-cased) starts with."""
    key = label.strip().lower()
    hits = [k for k in table if key == k or key.startswith(k + " ") or key.startswith(k + " (")]
    return table[max(hits, key=len)] if hits else None


def _map_backbone(label: str) -> str | None:
    """The model of a backbone label: the whole label, else the checkpoint named in a trailing
    note (``BERT-large (bert-large-uncased)`` -> bert_large_uncased), else the label without it."""
    key = label.strip().lower()
    note = re.search(r"\(([^()]*)\)\s*$", key)
    return BACKBONES.get(key) or (BACKBONES.get(note.group(1).strip()) if note else None) or BACKBONES.get(
        _strip_note(key))


def _parse_count(text: str) -> str:
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMB])\s*", text or "")
    if not m:
        return ""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}[m.group(2)]
    return str(int(round(float(m.group(1)) * scale)))


def kind_of(row: dict[str, str]) -> str | None:
    """``paper``, ``official re-implementation``, ``other``, or None (not a sourced reading)."""
    status, paper = row["status"].strip(), row["paper"].strip()
    if status.startswith(TRANSCRIBED_STATUS):
        return PAPER
    if paper.startswith("P-Tuning v2 (repo README)"):
        return OFFICIAL
    if status.startswith("QUOTED_SECONDARY") and paper.startswith("P-Tuning"):
        return PAPER
    if status.startswith(SECONDARY_STATUS):
        return OTHER
    return None


def ref_of(row: dict[str, str], file: str) -> str:
    """A short id of the source table: ``ptv2-table2``, ``ptv2-table3-ner``, ``ptv1-table4``;
    the file's stem for sources that are not the transcribed paper tables."""
    if file != TRANSCRIBED:
        return Path(file).stem
    paper = next((i for p, i in PAPER_IDS if row["paper"].startswith(p)), "paper")
    number = re.match(r"\s*Table (\d+)", row["table"])
    part = re.match(r"\s*Table \d+ \((NER|QA|SRL)\b", row["table"])
    return f"{paper}-table{number.group(1) if number else '?'}" + (f"-{part.group(1).lower()}" if part else "")


def _preference(kind: str, paper: str, status: str) -> int:
    """Lower wins among rows of one kind: v2 paper > v1 paper > quoted paper numbers > other."""
    if kind == PAPER and status.startswith(TRANSCRIBED_STATUS):
        return 1 if paper.startswith("P-Tuning v2") else 2
    return {PAPER: 3, OFFICIAL: 1}.get(kind, 4)


def map_row(row: dict[str, str], where: str) -> tuple[list[dict[str, str]], list[Skipped]]:
    """Map one reference row to zero or more published rows (one per printed number)."""
    status = row["status"].strip()
    if status.startswith(RETIRED_STATUS):
        return [], [Skipped(where, row, "Figure-1 bar-chart pixel reading: retired; the scale figure "
                            "draws the paper's Table 2 values")]
    kind = kind_of(row)
    if kind is None:
        return [], [Skipped(where, row, f"status '{status}' is not a sourced reading")]
    if not row["source"].strip():
        return [], [Skipped(where, row, "no source")]
    task_key = _strip_note(row["task"]).lower()
    task = TASKS.get(task_key) or TASKS.get(row["task"].strip().lower())
    if task is None:
        reason = _lookup_prefix(task_key, TASK_SKIPS)
        return [], [Skipped(where, row, reason or f"task '{row['task']}' is not in the suite")]
    metrics = METRICS.get(_strip_note(row["metric"]).lower())
    if metrics is None:
        return [], [Skipped(where, row, f"metric '{row['metric']}' has no suite metric")]
    metrics = tuple(TASK_METRICS.get((task, m), m) for m in metrics)
    backbone = row["backbone"].strip()
    model = _map_backbone(backbone)
    if model is None:
        reason = _lookup_prefix(_strip_note(backbone).lower(), BACKBONE_SKIPS) or _lookup_prefix(
            backbone.lower(), BACKBONE_SKIPS)
        return [], [Skipped(where, row, f"backbone '{backbone}': {reason or 'has no model name'}")]
    method = METHODS.get(_strip_note(row["method"]).lower())
    if method is None:
        return [], [Skipped(where, row, f"method '{row['method']}' has no suite or paper method name")]
    if "actually loads" in backbone.lower():
        return [], [Skipped(where, row, f"backbone '{backbone}': the source names one backbone and its script "
                            "loads another, so which one produced the number is unknown")]
    file = where.split(":")[0]
    ref = ref_of(row, file)
    if model == "bert_large" and FAMILIES[task] == "NER" and ref.startswith("ptv2-table3"):
        model = NER_BERT_LARGE
    if row["value"].strip() in ("", "-"):
        return [], [Skipped(where, row, "value printed as '-' (not reported)")]
    values = [v.strip() for v in row["value"].split("/")]
    if len(values) != len(metrics):
        return [], [Skipped(where, row, f"{len(values)} values for metrics {metrics}")]
    setting = SETTING[method]
    if row["paper"].startswith("GLM"):
        setting += "; cloze-style FT from the GLM README, not the P-Tuning papers' FT runs"
    if kind == OFFICIAL:
        setting += "; the authors' repository re-implementation, not the paper's numbers"
    if "taken from the superglue paper" in row["method"].lower():
        setting += "; the P-Tuning v1 paper reprints the SuperGLUE paper's FT numbers"
    not_in_suite = "; ".join(NOT_IN_SUITE[k] for k in (model, method) if k in NOT_IN_SUITE)
    out, skipped = [], []
    for metric, value in zip(metrics, values, strict=True):
        try:
            number = float(value)
        except ValueError:
            skipped.append(Skipped(where, row, f"{metric} value printed as '{value}'"))
            continue
        out.append(
            {
                "kind": kind,
                "ref": ref,
                "paper": row["paper"].strip(),
                "table": row["table"].strip(),
                "setting": setting,
                "family": FAMILIES[task],
                "task": task,
                "metric": metric,
                "model": model,
                "method": method,
                "value": repr(number),
                "preference": str(_preference(kind, row["paper"], status)),
                "backbone_params": _parse_count(row.get("backbone_params", "")),
                "not_in_suite": not_in_suite,
                "backbone_label": backbone,
                "task_label": row["task"].strip(),
                "metric_label": row["metric"].strip(),
                "method_label": row["method"].strip(),
                "value_as_printed": row["value"].strip(),
                "status": status,
                "source": row["source"].strip(),
                "source_file": file,
                "source_line": where.split(":")[1],
            }
        )
    return out, skipped


def _cell(r: dict[str, str]) -> tuple[str, str, str, str]:
    return r["model"], r["task"], r["metric"], r["method"]


def build(reference_dir: str | Path) -> tuple[list[dict[str, str]], list[Skipped], list[str]]:
    """Published rows, skipped rows and skipped files from every ``*.csv`` in ``reference_dir``.

    Rows not transcribed from the papers (quoted, GLM README) are kept only for cells
    (model, task, metric, method) the transcription lacks; the official re-implementation is
    always kept (a separate kind). Rows without a parameter count take their backbone's
    count from the transcription.
    """
    ref = Path(reference_dir)
    if not ref.is_dir():
        raise FileNotFoundError(f"{ref}: reference directory does not exist")
    if not (ref / TRANSCRIBED).is_file():
        raise FileNotFoundError(f"{ref / TRANSCRIBED}: the transcribed paper tables are missing")
    mapped: list[tuple[dict[str, str], dict[str, str], str]] = []
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
                row = {k: (v or "") for k, v in raw.items()}
                got, skip = map_row(row, f"{path.name}:{i}")
                mapped += [(r, row, f"{path.name}:{i}") for r in got]
                skipped.extend(skip)
    transcribed: dict[tuple[str, str, str, str], dict[str, str]] = {}
    for r, _, _ in sorted(mapped, key=lambda m: int(m[0]["preference"])):  # stable: file order
        if r["source_file"] == TRANSCRIBED:
            transcribed.setdefault(_cell(r), r)
    params = {}
    for r in transcribed.values():
        params.setdefault(r["model"], r["backbone_params"])
    rows: list[dict[str, str]] = []
    for r, raw, where in mapped:
        paper_row = transcribed.get(_cell(r))
        if r["kind"] != OFFICIAL and r["source_file"] != TRANSCRIBED and paper_row is not None:
            same = float(paper_row["value"]) == float(r["value"])
            skipped.append(Skipped(where, raw, (
                f"{r['metric']}: covered by the transcribed paper cell ({paper_row['ref']}, "
                f"{TRANSCRIBED}:{paper_row['source_line']}) "
                + ("with the same value" if same else f"which prints {paper_row['value_as_printed']}"))))
            continue
        rows.append({**r, "backbone_params": r["backbone_params"] or params.get(r["model"], "")})
    keys = Counter((r["kind"], r["ref"], r["table"], r["task"], r["metric"], r["model"], r["method"])
                   for r in rows)
    duplicates = [k for k, n in keys.items() if n > 1]
    if duplicates:
        raise ValueError(f"duplicate published rows {duplicates[:3]}")
    return rows, skipped, skipped_files


def render_csv(rows: Sequence[dict[str, str]]) -> str:
    """The CSV text of ``published.csv`` (stable order and formatting)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(OUT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _md(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def render_notes(
    rows: Sequence[dict[str, str]], skipped: Sequence[Skipped], skipped_files: Sequence[str]
) -> str:
    """Markdown with the sources, mapping decisions and every skipped row/file and why."""
    kinds = Counter(r["kind"] for r in rows)
    kept = Counter((r["source_file"], r["ref"], r["table"]) for r in rows)
    dropped = Counter(s.where.split(":")[0] for s in skipped)
    quoted = sum(r["kind"] == PAPER and r["source_file"] != TRANSCRIBED for r in rows)
    lines = [
        "# Published numbers (`analysis/published.csv`)",
        "",
        "Generated by `python -m experiments.build_published` from `../shared/reference/*.csv`;",
        "do not edit by hand. Every row keeps its `source`, `status`, `source_file` and",
        "`source_line` (the reference CSV row it came from).",
        "",
        f"Kept {len(rows)} rows: {kinds[PAPER]} `kind=paper`, {kinds[OFFICIAL]} `kind=official",
        f"re-implementation`, {kinds[OTHER]} `kind=other`; skipped {len(skipped)} rows (listed below).",
        "",
        "## Sources",
        "",
        "- `kind=paper`: the P-Tuning v2 paper's Tables 2-3 and the P-Tuning v1 paper's Tables 3-4,",
        f"  every cell transcribed from the paper images (`{TRANSCRIBED}`, status",
        "  TRANSCRIBED_FROM_PAPER_SCREENSHOT): the primary source. Numbers quoted from the papers",
        "  in GitHub issues (QUOTED_SECONDARY) are kept only for cells the transcription lacks",
        f"  ({quoted} kept; the covered ones are listed below with the transcribed cell).",
        "- `kind=official re-implementation`: the THUDM/P-tuning-v2 README's released results (the",
        "  authors' re-runs on an RTX 3090, not the paper's numbers); tables show them in their own",
        "  column.",
        "- `kind=other`: the GLM README's cloze-style fine-tuning numbers, kept only for cells the",
        "  papers do not report (extra metrics, DeBERTa-XXLarge-v2); never shown as a paper value.",
        "- Figure-1 bar-chart pixel readings (`ptv2_fig1_barchart_approx.csv`, APPROX_FROM_IMAGE)",
        "  are retired: the scale figure draws the paper's Table 2 values.",
        "",
        "| source file | ref | table | rows kept |",
        "|---|---|---|---|",
        *[_md([f, ref, t, n]) for (f, ref, t), n in kept.items()],
        "",
        "Rows skipped per file: " + ", ".join(f"{f} {n}" for f, n in sorted(dropped.items())) + ".",
        "",
        "## Mapping decisions",
        "",
        "- Backbones: bare `BERT-large` -> bert_large (the official SuperGLUE scripts load",
        "  bert-large-cased; QA and SRL have no official BERT script and take the suite's cased",
        "  default: run_conll12_bert.sh loads roberta-large),",
        f"  except the P-Tuning v2 Table 3 NER rows -> {NER_BERT_LARGE} (the official NER scripts",
        "  load bert-large-uncased); `BERT-large-cased` -> bert_large, `BERT-base-cased` ->",
        "  bert_base, `RoBERTa-large` -> roberta_large, `DeBERTa-xlarge` (750M) -> deberta_xlarge,",
        "  `DeBERTa-XXLarge-v2` -> deberta_v2_xxlarge, `GPT2-medium` -> gpt2_medium.",
        "- Backbones that are not suite models keep their rows (the scale figure and the lists of",
        "  paper cells we have not run need them), named glm_xlarge (2B), glm_xxlarge (10B) and",
        "  gpt2_base (117M); `not_in_suite` says why. `backbone_params` is the paper's #Size",
        "  (official re-implementation rows take their backbone's size from the paper).",
        "- Methods: `FT` / `Fine-tuning` -> finetune, `PT-2` -> ptuning_v2, `PT` (Lester et al. &",
        f"  P-tuning, frozen) -> `{style.COMBINED_PT}` (one value shown against both prompt_tuning",
        "  and ptuning_v1, marked as the combined PT row), `MPT-2` -> mpt2 (multi-task P-Tuning v2,",
        "  not a suite method), P-Tuning v1's `P-tuning` -> ptuning_v1 (its backbone is tuned",
        "  jointly: the `setting` column says so), `MP zero-shot` -> mp_zeroshot, `MP fine-tuning`",
        "  -> mp_finetune (manual-prompt baselines, not suite methods).",
        "- Tasks: SRL's `CoNLL05 WSJ` -> conll2005 (its test), `CoNLL05 Brown` -> conll2005_brown",
        "  (the Brown test of the same runs, reported as a task of its own), `CoNLL12` -> conll2012.",
        "- Metrics: acc -> accuracy, F1 -> f1 except CB's F1 -> f1_macro (SuperGLUE's CB F1 is",
        "  macro-F1), F1a -> f1a, EM -> em; two printed numbers (`acc/F1`, `F1a/EM`, `F1/EM`) give",
        "  two rows.",
        "- Tasks: CoNLL03 -> conll2003, OntoNotes 5.0 -> ontonotes, SQuAD 1.1 (dev) -> squad,",
        "  SQuAD 2.0 (dev) -> squad_v2, SuperGLUE names lower-cased; `family` is the suite's",
        "  task family.",
        "- `preference`: when several rows of one kind give a cell, the lowest wins (1 = P-Tuning",
        "  v2 paper, 2 = P-Tuning v1 paper, 3 = quoted paper numbers, 4 = other).",
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
    lines += [
        _md([s.where, s.row.get("task", ""), s.row.get("metric", ""), s.row.get("backbone", ""),
             s.row.get("method", ""), s.row.get("value", ""), s.reason])
        for s in skipped
    ]
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
