"""Figures (PNG + PDF) from the tidy frame; one fixed colour and marker per method.

Every ``plot_*`` writes ``<stem>.png``, ``<stem>.pdf`` and ``<stem>.json`` (the series drawn,
with error bars) into ``out_dir`` and returns ``{series label: [(x, y), ...]}``. Axes and
legends name each task with its data source ("RTE-style (synthetic)" for generated rows).
Error bars are drawn only where two or more seeds exist.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from analysis import style  # noqa: E402
from analysis.tables import display_names, reported  # noqa: E402

DEFAULT_SCALE_TASKS: tuple[str, ...] = ("rte", "boolq", "cb")
PUBLISHED_SUFFIX = " (published, approx.)"
RC: dict[str, Any] = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "lines.linewidth": 1.6, "lines.markersize": 6,
    "axes.grid": True, "grid.alpha": 0.3, "savefig.dpi": 200, "pdf.fonttype": 42,
}
Series = dict[str, list[tuple[Any, float]]]


def _save(fig: Figure, out_dir: str | Path, stem: str, drawn: dict[str, Any]) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{stem}.png", bbox_inches="tight")
    fig.savefig(out / f"{stem}.pdf", bbox_inches="tight", metadata={"CreationDate": None})
    (out / f"{stem}.json").write_text(json.dumps(drawn, indent=1, default=_json), encoding="utf-8")


def _json(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def cell_means(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and seed count of the reported primary metric per group/model/method/variant/task."""
    values = reported(df).assign(variant_label=lambda d: d["variant_label"].fillna(""))
    return (values.groupby(["group", "model", "method", "variant_label", "task"])
            .agg(mean=("value", "mean"), std=("value", "std"), n=("value", "count"),
                 params=("backbone_params", "max"), pct=("trainable_pct", "mean"), family=("family", "first"))
            .reset_index())


def _method_label(names: dict[str, pd.Series], method: str, variant: str) -> str:
    return names["method"].get(method, method) + (f" [{variant}]" if variant else "")


def plot_scale(df: pd.DataFrame, out_dir: str | Path, tasks: Sequence[str] = DEFAULT_SCALE_TASKS,
               published: pd.DataFrame | None = None, stem: str = "scale_vs_score") -> Series:
    """Backbone parameters (log x) vs. the average primary score over ``tasks``.

    A method-backbone point averages the per-task means (over seeds) of the tasks asked for;
    when no backbone and method have all of them, the tasks every plotted cell has are used
    instead (and named on the axis). The error bar, with two or more seeds, is the std of the
    average, sqrt(sum of per-task variances) / tasks. Published Figure-1 readings of the same
    task set are hollow markers.
    """
    means = cell_means(df)
    names = display_names(df)
    asked = [t for t in tasks if t]
    per_cell = means.groupby(["method", "variant_label", "model"])["task"].apply(set)
    chosen = asked if any(set(asked) <= have for have in per_cell) else sorted(
        set.intersection(*per_cell) if len(per_cell) else set())
    used = means[means["task"].isin(chosen)]
    averages = (used.groupby(["method", "variant_label", "model"])
                .filter(lambda g: set(g["task"]) == set(chosen))
                .groupby(["method", "variant_label", "model"])
                .agg(y=("mean", "mean"), var=("std", lambda s: (s ** 2).sum()), n=("n", "min"),
                     k=("task", "count"), x=("params", "max"))
                .reset_index())
    averages["err"] = [math.sqrt(v) / k if n >= 2 else math.nan for v, n, k in
                       zip(averages["var"], averages["n"], averages["k"], strict=True)]
    series: Series = {}
    errors: dict[str, list[float]] = {}
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(6.5, 4.0))
        ax = fig.add_subplot()
        ordered = averages.sort_values(["method", "variant_label"], key=lambda c: c.map(style.method_order)
                                       if c.name == "method" else c)
        for (method, variant), points in ordered.groupby(["method", "variant_label"], sort=False):
            points = points.sort_values("x")
            label = _method_label(names, method, variant)
            series[label] = list(zip(points["x"].astype(float), points["y"], strict=True))
            errors[label] = [None if math.isnan(e) else float(e) for e in points["err"]]
            look = style.style(method)
            ax.errorbar(points["x"], points["y"], yerr=None if points["err"].isna().all() else points["err"],
                        color=look["color"], marker=look["marker"], linestyle=look["linestyle"], capsize=3,
                        label=label)
        if published is not None and not published.empty:
            want = frozenset(chosen)
            figure_rows = published[(published["use"] == "figure")
                                    & published["task"].map(lambda t: _averaged(t) == want)]
            for method, rows in sorted(figure_rows.groupby("method"), key=lambda kv: style.method_order(kv[0])):
                rows = rows.sort_values("backbone_params")
                label = style.COMBINED_PT_DISPLAY if method == style.COMBINED_PT else names["method"].get(method, method)
                label += PUBLISHED_SUFFIX
                series[label] = list(zip(rows["backbone_params"].astype(float), rows["value"], strict=True))
                look = style.style(method)
                ax.plot(rows["backbone_params"], rows["value"], linestyle="none", marker=look["marker"],
                        markerfacecolor="none", markeredgecolor=look["color"], markeredgewidth=1.5,
                        markersize=8, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("Backbone parameters (log scale)")
        ax.set_ylabel("Average primary metric")
        averaged = textwrap.fill(", ".join(names["task"].get(t, t) for t in chosen) or "none", 70)
        fallback = "" if chosen == asked else f"\n(not every cell has {', '.join(asked)}: the tasks all cells have)"
        ax.set_title(f"Scale vs. score\naverage of {averaged}{fallback}", fontsize=9)
        if series:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        else:
            ax.text(0.5, 0.5, "no completed cells", transform=ax.transAxes, ha="center")
        _save(fig, out_dir, stem, {"tasks": list(chosen), "asked": asked, "series": series, "errors": errors})
    return series


def _averaged(task: str) -> frozenset[str] | None:
    return frozenset(t.strip() for t in task[4:-1].split(",")) if task.startswith("avg(") else None


def plot_param_efficiency(df: pd.DataFrame, out_dir: str | Path, stem: str = "param_efficiency") -> Series:
    """Trainable % of the backbone (log x) vs. primary score; one panel per task family."""
    means = cell_means(df)
    means = means[means["pct"] > 0]
    names = display_names(df)
    families = sorted(means["family"].unique(), key=style.family_order) or ["(none)"]
    series: Series = {}
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(3.4 * len(families), 3.6))
        axes = [fig.add_subplot(1, len(families), i + 1) for i in range(len(families))]
        handles = {}
        for ax, family in zip(axes, families, strict=True):
            sub = means[means["family"] == family]
            for (method, variant), points in sorted(sub.groupby(["method", "variant_label"]),
                                                    key=lambda kv: style.method_order(kv[0][0])):
                label = _method_label(names, method, variant)
                series[f"{family}: {label}"] = list(zip(points["pct"], points["mean"], strict=True))
                look = style.style(method)
                handles[label] = ax.scatter(points["pct"], points["mean"], color=look["color"],
                                            marker=look["marker"], s=36, alpha=0.8)
            ax.set_xscale("log")
            sources = sorted(df.loc[df["family"] == family, "data_source"].dropna().unique())
            ax.set_title(family + (f" ({', '.join(sources)} data)" if sources else ""))
            ax.set_xlabel("Trainable params (% of backbone, log)")
        axes[0].set_ylabel("Primary metric")
        if handles:
            fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(3, len(handles)),
                       frameon=False, bbox_to_anchor=(0.5, -0.12))
        else:
            axes[0].text(0.5, 0.5, "no completed cells", transform=axes[0].transAxes, ha="center")
        fig.tight_layout()
        _save(fig, out_dir, stem, {"series": series})
    return series


def plot_task_bars(df: pd.DataFrame, out_dir: str | Path, model: str, stem: str | None = None) -> Series:
    """One backbone: a group of bars per task, methods side by side and centred on the tick,
    std error bars (two or more seeds); failed cells are marked inside the axes."""
    with matplotlib.rc_context(RC):
        fig, series, drawn = draw_task_bars(df, model)
        _save(fig, out_dir, stem or f"task_bars_{model}", drawn)
    return series


def draw_task_bars(df: pd.DataFrame, model: str) -> tuple[Figure, Series, dict[str, Any]]:
    """The figure of :func:`plot_task_bars`, its series and what the JSON side file records."""
    sub = df[df["model"] == model]
    names = display_names(df)
    means = cell_means(sub)
    runs = sub[sub["status"].isin(["completed", "failed"])].assign(
        variant_label=lambda d: d["variant_label"].fillna(""))
    tasks = sorted(runs["task"].unique(), key=lambda t: (style.family_order(str(runs.loc[runs["task"] == t, "family"].iloc[0])), names["task"][t]))
    methods = sorted({(m, v) for m, v in zip(runs["method"], runs["variant_label"], strict=True)},
                     key=lambda mv: (style.method_order(mv[0]), mv))
    series: Series = {_method_label(names, m, v): [] for m, v in methods}
    failed: list[tuple[str, str]] = []
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(max(4.0, 1.1 * len(tasks) + 2.5), 3.8))
        ax = fig.add_subplot()
        ax.set_ylim(0, 105)
        width = 0.8 / max(1, len(methods))
        for t, task in enumerate(tasks):
            present = [(m, v) for m, v in methods if ((runs["task"] == task) & (runs["method"] == m)
                                                      & (runs["variant_label"] == v)).any()]
            for i, (method, variant) in enumerate(present):
                x = t + (i - (len(present) - 1) / 2) * width
                look = style.style(method)
                hit = means[(means["task"] == task) & (means["method"] == method) & (means["variant_label"] == variant)]
                if len(hit):
                    row = hit.iloc[0]
                    ax.bar(x, row["mean"], width=width, color=look["color"], edgecolor="black", linewidth=0.5,
                           yerr=row["std"] if row["n"] >= 2 else None, capsize=2)
                    series[_method_label(names, method, variant)].append((names["task"][task], float(row["mean"])))
                else:
                    ax.text(x, 2, "failed", rotation=90, ha="center", va="bottom", fontsize=7, color=look["color"])
                    failed.append((names["task"][task], _method_label(names, method, variant)))
        ax.set_xticks(range(len(tasks)), [names["task"][t].replace(" (", "\n(") for t in tasks])
        ax.set_xlim(-0.5, max(len(tasks), 1) - 0.5)
        ax.set_ylabel("Primary metric")
        ax.set_title(names["backbone"].get(model, model))
        if not tasks:
            ax.text(0.5, 0.5, "no completed or failed cells", transform=ax.transAxes, ha="center")
        handles = [Patch(facecolor=style.style(m)["color"], edgecolor="black", label=_method_label(names, m, v))
                   for m, v in methods]
        if handles:
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(3, len(handles)),
                      frameon=False)
        fig.tight_layout()
    return fig, series, {"series": series, "groups": [names["task"][t] for t in tasks], "failed": failed}


def write_figures(df: pd.DataFrame, out_dir: str | Path, scale_tasks: Sequence[str] = DEFAULT_SCALE_TASKS,
                  published: pd.DataFrame | None = None) -> dict[str, Series]:
    """The scale figure, the parameter-efficiency figure and task bars per backbone."""
    out = {"scale_vs_score": plot_scale(df, out_dir, scale_tasks, published),
           "param_efficiency": plot_param_efficiency(df, out_dir)}
    order = df.groupby("model")["backbone_params"].max().sort_values(na_position="last")
    for model in order.index:
        out[f"task_bars_{model}"] = plot_task_bars(df, out_dir, model)
    return out
