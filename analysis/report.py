"""One markdown report (``report.md``) with every table inline and links to the figures."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis import style
from analysis.collect import KEY, run_counts
from analysis.tables import Table


def _cells(df: pd.DataFrame) -> dict[str, int]:
    """Cells (group x task x backbone x method): with a result, failed only, missing."""
    status = df.groupby(["group", "task", "model", "method"])["status"].agg(set)
    kinds = status.map(lambda s: "completed" if "completed" in s else "failed" if "failed" in s else "missing")
    return {k: int((kinds == k).sum()) for k in ("completed", "failed", "missing")}


def _versions(df: pd.DataFrame, column: str) -> str:
    return ", ".join(sorted({str(v) for v in df[column].dropna()})) or "unknown"


def header_lines(df: pd.DataFrame, sources: Sequence[str]) -> list[str]:
    """Inputs, groups, completed/failed/missing counts, versions, selection, data sources."""
    runs, cells = run_counts(df), _cells(df)
    ran = df[df["status"].isin(["completed", "failed"])].drop_duplicates(KEY)
    protocols = ran.groupby(["selection_rule", "selection_split"]).size()
    data = ran["data_source"].value_counts()
    methods = df.drop_duplicates("method").sort_values("method", key=lambda c: c.map(style.method_order))
    return [
        f"- Inputs: {', '.join(sources)}",
        f"- Presets/groups: {', '.join(f'`{g}`' for g in sorted(df['group'].unique()))}",
        f"- Cells (task x backbone x method): {cells['completed']} completed, {cells['failed']} failed, "
        f"{cells['missing']} missing",
        f"- Runs (cell x seed x configuration): {runs['completed']} completed, {runs['failed']} failed, "
        f"{runs['missing']} missing (a 'running' record counts as missing)",
        f"- Package versions (from the records): python {_versions(ran, 'python')}; torch {_versions(ran, 'torch')}; "
        f"transformers {_versions(ran, 'transformers')}; git commit {_versions(ran, 'git_commit')}",
        "- Checkpoint selection: " + ("; ".join(f"{r} on {s} ({n} runs)" for (r, s), n in protocols.items())
                                      or "unknown"),
        "- Data: " + (", ".join(f"{k} ({v} runs)" for k, v in data.items()) or "unknown")
        + (" — synthetic rows are generated in each task's schema with a learnable rule, not the benchmark"
           if "synthetic" in data else ""),
        "- Methods: " + ", ".join(str(d if isinstance(d, str) else m)
                                  for m, d in zip(methods["method"], methods["method_display"], strict=True)),
    ]


def write_report(df: pd.DataFrame, out_dir: str | Path, tables: Sequence[Table], figures: dict[str, object],
                 sources: Sequence[str]) -> Path:
    """``<out_dir>/report.md``: header, every table inline with links, every figure, failed runs."""
    out = Path(out_dir)
    lines = ["# P-Tuning comparison: results report", "", *header_lines(df, sources)]
    if df.attrs.get("notes"):
        lines += ["", "Collection notes:", "", *[f"- {n}" for n in df.attrs["notes"]]]
    lines += ["", "## Tables", ""]
    for table in tables:
        rel = os.path.relpath(out / "tables" / table.name, out)
        lines += [table.to_markdown(), f"Files: [markdown]({rel}.md) · [LaTeX]({rel}.tex) · [CSV]({rel}.csv)", ""]
    lines += ["## Figures", ""]
    for stem in figures:
        rel = os.path.relpath(out / "figures" / stem, out)
        lines += [f"### {stem.replace('_', ' ')}", "", f"![{stem}]({rel}.png)", "",
                  f"[PDF]({rel}.pdf) · [series drawn (JSON)]({rel}.json)", ""]
    failed = df[df["status"] == "failed"].drop_duplicates(KEY)
    if len(failed):
        lines += ["## Failed runs", ""]
        lines += [f"- `{r.group}` {r.task} / {r.model} / {r.method} / seed {r.seed}: {r.error} ({r.origin})"
                  for r in failed.itertuples()]
        lines.append("")
    lines += ["Tidy data of every run: [results.csv](results.csv).", ""]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
