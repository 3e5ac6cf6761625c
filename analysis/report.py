"""One markdown report (``report.md``) linking the tables and figures, with a short header."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis import catalog
from analysis.collect import cell_status_counts
from analysis.tables import Table


def cell_counts(df: pd.DataFrame) -> dict[str, int]:
    """Cells (group x task x backbone x method): with results, failed only, missing."""
    out = {"completed": 0, "failed": 0, "missing": 0}
    for _, g in df.groupby(["group", "task", "model", "method"]):
        statuses = set(g["status"])
        out[
            "completed"
            if "completed" in statuses
            else "failed"
            if "failed" in statuses
            else "missing"
        ] += 1
    return out


def _versions(df: pd.DataFrame, col: str) -> str:
    vals = sorted({str(v) for v in df[col].dropna()})
    return ", ".join(vals) if vals else "unknown"


def header_lines(df: pd.DataFrame, sources: Sequence[str]) -> list[str]:
    """Report header: inputs, groups, completed/failed/missing counts, package versions."""
    runs = cell_status_counts(df)
    cells = cell_counts(df)
    recs = df[df["status"].isin(["completed", "failed"])]
    groups = ", ".join(f"`{g}`" for g in sorted(df["group"].unique()))
    sel = recs.drop_duplicates(["group", "task", "model", "method", "seed"])
    protocols = sel.groupby(["selection_rule", "selection_split"], dropna=False).size()
    proto = (
        "; ".join(f"{r} on {s} ({n} runs)" for (r, s), n in protocols.items() if not pd.isna(r))
        or "unknown"
    )
    data = sel["data_source"].value_counts()
    methods = sorted(df["method"].unique(), key=catalog.method_order)
    return [
        f"- Inputs: {', '.join(sources)}",
        f"- Presets/groups: {groups}",
        f"- Cells (task x backbone x method): {cells['completed']} completed, "
        f"{cells['failed']} failed, {cells['missing']} missing",
        f"- Runs (cell x seed): {runs['completed']} completed, {runs['failed']} failed, "
        f"{runs['missing']} missing (a 'running' record counts as missing)",
        f"- Package versions (from the records): python {_versions(recs, 'python')}; "
        f"torch {_versions(recs, 'torch')}; transformers {_versions(recs, 'transformers')}; "
        f"git commit {_versions(recs, 'git_commit')}",
        f"- Checkpoint selection: {proto}",
        "- Data: " + (", ".join(f"{k} ({v} runs)" for k, v in data.items()) or "unknown"),
        "- Methods: " + ", ".join(catalog.method_display(m) for m in methods),
    ]


def write_report(
    df: pd.DataFrame,
    out_dir: str | Path,
    tables: Sequence[Table],
    figures: dict[str, object],
    sources: Sequence[str],
) -> Path:
    """Write ``<out_dir>/report.md``: header, every table inline with links, every figure."""
    out = Path(out_dir)
    lines = ["# P-Tuning comparison: results report", ""]
    lines += header_lines(df, sources)
    notes = df.attrs.get("notes") or []
    if notes:
        lines += ["", "Collection notes:", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Tables", ""]
    for t in tables:
        rel = os.path.relpath(out / "tables" / t.name, out)
        lines.append(t.to_markdown())
        lines.append(f"Files: [markdown]({rel}.md) · [LaTeX]({rel}.tex) · [CSV]({rel}.csv)")
        lines.append("")
    lines += ["## Figures", ""]
    for stem in figures:
        rel = os.path.relpath(out / "figures" / stem, out)
        lines.append(f"### {stem.replace('_', ' ')}")
        lines.append("")
        lines.append(f"![{stem}]({rel}.png)")
        lines.append("")
        lines.append(f"[PDF]({rel}.pdf) · [series drawn (JSON)]({rel}.json)")
        lines.append("")
    failed = df[df["status"] == "failed"].drop_duplicates(
        ["group", "task", "model", "method", "seed"]
    )
    if not failed.empty:
        lines += ["## Failed runs", ""]
        for r in failed.itertuples():
            lines.append(
                f"- `{r.group}` {r.task} / {r.model} / {r.method} / seed {r.seed}: "
                f"{r.error} ({r.origin})"
            )
        lines.append("")
    lines += ["Tidy data of every run: [results.csv](results.csv).", ""]
    path = out / "report.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
