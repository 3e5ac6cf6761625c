"""Read ``analysis/published.csv`` and look up the paper's (or the official re-implementation's)
value of a cell.

Rows have a ``kind``: ``paper`` (the P-Tuning v2 and v1 papers' tables, transcribed),
``official re-implementation`` (the THUDM/P-tuning-v2 README's re-runs) or ``other`` (kept for
reference, never shown as a paper value). See ``PUBLISHED.md``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import style
from analysis.collect import AnalysisError

PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"
PAPER, OFFICIAL, OTHER = "paper", "official re-implementation", "other"
REQUIRED = {"kind", "ref", "family", "task", "metric", "model", "method", "value", "source", "status"}
#: the paper table whose values the scale figure draws
SCALE_REF = "ptv2-table2"


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The published-number table (``value``, ``backbone_params``, ``preference`` as floats)."""
    path = Path(path) if path is not None else PUBLISHED_CSV
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise AnalysisError(f"{path}: cannot read published numbers ({exc})") from exc
    missing = REQUIRED - set(df)
    if missing:
        raise AnalysisError(f"{path}: published numbers lack columns {sorted(missing)} "
                            "(regenerate with python -m experiments.build_published)")
    for column, default in (("backbone_label", "model"), ("task_label", "task"), ("method_label", "method")):
        if column not in df:
            df[column] = df[default]
    for column in ("not_in_suite", "paper", "table", "setting", "source_file", "source_line"):
        if column not in df:
            df[column] = ""
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["backbone_params"] = pd.to_numeric(df.get("backbone_params"), errors="coerce")
    df["preference"] = pd.to_numeric(df.get("preference", 9), errors="coerce").fillna(9)
    return df


def lookup(pub: pd.DataFrame | None, model: str, method: str, task: str, metric: str,
           kind: str = PAPER) -> dict[str, Any] | None:
    """The value of ``kind`` for one cell, or None.

    A row with the combined PT label answers for both prompt_tuning and ptuning_v1. The lowest
    ``preference`` wins (the P-Tuning v2 paper before the v1 paper), then an exact method
    match: our frozen P-Tuning v1 is compared with the v2 paper's frozen PT row, not with the
    v1 paper's backbone-tuned P-tuning, where the v2 paper has the cell.
    """
    if pub is None or pub.empty:
        return None
    methods = [method] + [c for c, members in style.COMBINED_MEMBERS.items() if method in members]
    hit = pub[
        (pub["kind"] == kind)
        & (pub["model"] == model)
        & (pub["task"] == task)
        & (pub["metric"] == metric)
        & (pub["method"].isin(methods))
        & pub["value"].notna()
        & (pub["source"].str.strip() != "")
    ]
    if hit.empty:
        return None
    hit = hit.assign(_exact=(hit["method"] != method).astype(int))
    row = hit.sort_values(["preference", "_exact"], kind="stable").iloc[0]
    out = {k: row[k] for k in row.index if not k.startswith("_")}
    out["combined"] = row["method"] != method
    if isinstance(out["value"], float) and math.isnan(out["value"]):
        return None
    return out


def differs(hit: dict[str, Any]) -> bool:
    """Whether the published setting is not ours (P-Tuning v1 tunes the backbone jointly)."""
    return "NOT our" in str(hit.get("setting", ""))


def ref_label(ref: str) -> str:
    """``ptv2-table3-ner`` -> ``P-Tuning v2 Table 3 (NER)``; other ids unchanged."""
    m = re.fullmatch(r"ptv(\d)-table(\d+)(?:-(\w+))?", ref)
    if not m:
        return ref
    part = f" ({m.group(3).upper()})" if m.group(3) else ""
    return f"P-Tuning v{m.group(1)} Table {m.group(2)}{part}"


def note(hit: dict[str, Any]) -> str:
    """The footnote that sources a published value."""
    combined = " -- the paper's combined PT row (prompt tuning & P-Tuning v1)" if hit["combined"] else ""
    what = "Paper" if hit["kind"] == PAPER else str(hit["kind"]).capitalize()
    return (f"{what}: {hit['paper']}, {hit['table']} ({hit['method_label']}, {hit['backbone_label']})"
            f"{combined}; setting: {hit['setting']}; status: {hit['status']}; source: {hit['source']}")
