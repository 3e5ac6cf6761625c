"""Read ``analysis/published.csv`` and look up the sourced published value of a cell."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import style
from analysis.collect import AnalysisError

PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The published-number table (``value`` and ``backbone_params`` as floats)."""
    path = Path(path) if path is not None else PUBLISHED_CSV
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise AnalysisError(f"{path}: cannot read published numbers ({exc})") from exc
    missing = {"task", "metric", "model", "method", "value", "use", "source", "status"} - set(df)
    if missing:
        raise AnalysisError(f"{path}: published numbers lack columns {sorted(missing)}")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["backbone_params"] = pd.to_numeric(df.get("backbone_params"), errors="coerce")
    df["preference"] = pd.to_numeric(df.get("preference", 9), errors="coerce").fillna(9)
    return df


def lookup(
    pub: pd.DataFrame | None, model: str, method: str, task: str, metric: str
) -> dict[str, Any] | None:
    """Best sourced table value for one cell, or None (never a figure approximation).

    A published row with the combined PT label answers for both prompt_tuning and ptuning_v1;
    an exact method match wins over it, then the lowest ``preference``.
    """
    if pub is None or pub.empty:
        return None
    methods = [method] + [c for c, members in style.COMBINED_MEMBERS.items() if method in members]
    hit = pub[
        (pub["use"] == "table")
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
    row = hit.sort_values(["_exact", "preference"], kind="stable").iloc[0]
    out = {k: row[k] for k in row.index if not k.startswith("_")}
    out["combined"] = row["method"] != method
    if isinstance(out["value"], float) and math.isnan(out["value"]):
        return None
    return out


def note(hit: dict[str, Any]) -> str:
    """The footnote that sources a published value."""
    combined = " -- the paper's combined PT row (prompt tuning & P-Tuning v1)" if hit["combined"] else ""
    return (f"Published: {hit['paper']}, {hit['table']} ({hit['method_label']}, {hit['backbone_label']})"
            f"{combined}; setting: {hit['setting']}; status: {hit['status']}; source: {hit['source']}")
