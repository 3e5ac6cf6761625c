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
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402

from analysis import published as pubmod  # noqa: E402
from analysis import style  # noqa: E402
from analysis.tables import display_names, reported  # noqa: E402

DEFAULT_SCALE_TASKS: tuple[str, ...] = ("rte", "boolq", "cb")
PAPER_SUFFIX = " (paper Table 2)"
RC: dict[str, Any] = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "lines.linewidth": 1.6, "lines.markersize": 6,
    "axes.grid": True, "grid.alpha": 0.3, "savefig.dpi": 200, "pdf.fonttype": 42,
}
Series = dict[str, list[tuple[Any, float]]]


def _save(fig: Figure, out_dir: str | Path, stem: str, drawn: dict[str, Any]) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # every legend counts for the tight box (one kept with add_artist is not the axes' legend)
    legends = [*fig.legends, *(c for ax in fig.axes for c in ax.get_children() if isinstance(c, Legend))]
    fig.savefig(out / f"{stem}.png", bbox_inches="tight", bbox_extra_artists=legends)
    fig.savefig(out / f"{stem}.pdf", bbox_inches="tight", bbox_extra_artists=legends,
                metadata={"CreationDate": None})
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


def paper_scale_points(published: pd.DataFrame | None, tasks: Sequence[str]) -> tuple[list[str], pd.DataFrame]:
    """The paper's Table 2 average per method and backbone, and the tasks averaged.

    The tasks are ``tasks`` (our points' tasks) when every one is a Table-2 task, else every
    Table-2 task. A method-backbone point needs all of them (Table 2 has every cell). Columns:
    method, model, backbone (the paper's label), x (parameters), y (average).
    """
    empty = pd.DataFrame(columns=["method", "model", "backbone", "x", "y"])
    if published is None or published.empty:
        return [], empty
    rows = published[(published["kind"] == pubmod.PAPER) & (published["ref"] == pubmod.SCALE_REF)]
    table_tasks = list(rows["task"].unique())  # the paper's column order
    chosen = [t for t in tasks if t] if tasks and set(tasks) <= set(table_tasks) else table_tasks
    used = rows[rows["task"].isin(chosen)]
    points = (used.groupby(["method", "model"])
              .agg(backbone=("backbone_label", "first"), x=("backbone_params", "max"), y=("value", "mean"),
                   k=("task", "nunique"))
              .reset_index())
    points = points[points["k"] == len(chosen)].drop(columns="k").sort_values(["method", "x"])
    return chosen, points


def _short_count(n: float) -> str:
    """``1e10`` -> ``10B``, ``3.35e8`` -> ``335M`` (no trailing zeros)."""
    return re.sub(r"\.0+(?=[KMB]$)|(\.\d*?[1-9])0+(?=[KMB]$)", r"\1", style.format_count(n))


def _label_backbones(ax: Any, paper: pd.DataFrame) -> None:
    """Name the paper's backbones on a top axis, each with a faint vertical line; of two close
    sizes (BERT-large 335M, RoBERTa-large 355M) the smaller is named leftwards, the larger
    rightwards."""
    backbones = paper.drop_duplicates("model").sort_values("x").reset_index(drop=True)
    if backbones.empty:
        return
    xs = list(backbones["x"].astype(float))
    aligns = []
    for i, x in enumerate(xs):
        close_next = i + 1 < len(xs) and xs[i + 1] / x < 1.5
        close_prev = i > 0 and x / xs[i - 1] < 1.5
        aligns.append("right" if close_next else "left" if close_prev else "center")
        ax.axvline(x, color="#999999", linewidth=0.6, linestyle=(0, (1, 3)), zorder=1)
    top = ax.secondary_xaxis("top")
    top.set_xticks(xs, [f"{b}\n{_short_count(x)}" for b, x in zip(backbones["backbone"], xs, strict=True)])
    top.xaxis.set_minor_locator(NullLocator())
    top.tick_params(axis="x", labelsize=7, labelcolor="#555555", color="#999999", length=3)
    for label, ha in zip(top.get_xticklabels(), aligns, strict=True):
        label.set_horizontalalignment(ha)
        label.set_multialignment(ha)


def _paper_task_names(published: pd.DataFrame | None, tasks: Sequence[str]) -> list[str]:
    """The paper's names of tasks (``ReCoRD (F1)`` style labels as transcribed)."""
    labels = {} if published is None else dict(zip(published["task"], published["task_label"], strict=True))
    return [labels.get(t, t) for t in tasks]


def plot_scale(df: pd.DataFrame, out_dir: str | Path, tasks: Sequence[str] = DEFAULT_SCALE_TASKS,
               published: pd.DataFrame | None = None, stem: str = "scale_vs_score") -> Series:
    """Backbone parameters (log x) vs. the average primary score over ``tasks``, ours and the
    paper's.

    Ours (filled markers, solid lines): a method-backbone point averages the per-task means
    (over seeds) of the tasks asked for; when no backbone and method have all of them, the
    tasks every plotted cell has are used instead (and named in the title). The error bar,
    with two or more seeds, is the std of the average, sqrt(sum of per-task variances) / tasks.
    The paper's (hollow markers, dotted lines): P-Tuning v2 Table 2 (BERT-large 335M,
    RoBERTa-large 355M, GLM-xlarge 2B, GLM-xxlarge 10B) per method (FT, PT, PT-2), averaged
    over the same tasks when all are Table-2 tasks, else over every Table-2 task (said in the
    title and the JSON side file).
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
    synthetic = bool(len(df)) and set(df["data_source"].dropna()) == {"synthetic"}
    # the paper's SuperGLUE averages and synthetic-task averages share no scale: not drawn together
    paper_tasks, paper = paper_scale_points(None if synthetic else published, chosen)
    series: Series = {}
    errors: dict[str, list[float | None]] = {}
    paper_drawn: dict[str, list[dict[str, Any]]] = {}
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(7.0, 5.2))
        ax = fig.add_subplot()
        ours_handles, paper_handles = [], []
        ordered = averages.sort_values(["method", "variant_label"], key=lambda c: c.map(style.method_order)
                                       if c.name == "method" else c)
        for (method, variant), points in ordered.groupby(["method", "variant_label"], sort=False):
            points = points.sort_values("x")
            label = _method_label(names, method, variant)
            series[label] = list(zip(points["x"].astype(float), points["y"], strict=True))
            errors[label] = [None if math.isnan(e) else float(e) for e in points["err"]]
            look = style.style(method)
            ours_handles.append(ax.errorbar(
                points["x"], points["y"], yerr=None if points["err"].isna().all() else points["err"],
                color=look["color"], marker=look["marker"], linestyle=look["linestyle"], capsize=3,
                label=label, zorder=3))
        for method, points in sorted(paper.groupby("method"), key=lambda kv: style.paper_method_order(kv[0])):
            label = style.PAPER_METHOD_LABEL.get(method, method) + PAPER_SUFFIX
            series[label] = list(zip(points["x"].astype(float), points["y"], strict=True))
            paper_drawn[label] = [{"backbone": r.backbone, "model": r.model, "params": float(r.x), "value": r.y}
                                  for r in points.itertuples()]
            look = style.style(method)
            (line,) = ax.plot(points["x"], points["y"], linestyle=":", linewidth=1.3, color=look["color"],
                              marker=look["marker"], markerfacecolor="none", markeredgecolor=look["color"],
                              markeredgewidth=1.5, markersize=9, label=label.removesuffix(PAPER_SUFFIX), zorder=4)
            paper_handles.append(line)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short_count(v)))
        _label_backbones(ax, paper)
        ax.set_xlabel("Backbone parameters (log scale)")
        ax.set_ylabel("Average primary metric")
        ours_tasks = ", ".join(names["task"].get(t, t) for t in chosen) or "none"
        fallback = "" if chosen == asked else f" (the tasks every cell has; asked: {', '.join(asked)})"
        title = textwrap.fill(f"ours: average of {ours_tasks}{fallback}", 95)
        if paper_handles:
            same = "the same tasks" if paper_tasks == list(chosen) else (
                "all its tasks, " + ", ".join(_paper_task_names(published, paper_tasks)))
            title += "\n" + textwrap.fill(f"paper (P-Tuning v2 Table 2, SuperGLUE dev): average of {same}", 95)
        elif synthetic:
            title += "\npaper (P-Tuning v2 Table 2) not drawn: ours are synthetic tasks, not SuperGLUE"
        title = "Scale vs. score\n" + title
        ax.set_title(title, fontsize=9)
        if ours_handles:
            first = ax.legend(handles=ours_handles, title="Ours: filled, mean ± std over seeds", loc="upper left",
                              bbox_to_anchor=(0.0, -0.14), frameon=False, title_fontsize=8)
            if paper_handles:  # keep it when the paper's legend becomes the axes' legend
                ax.add_artist(first)
        if paper_handles:
            ax.legend(handles=paper_handles, loc="upper right", bbox_to_anchor=(1.0, -0.14), frameon=False,
                      title_fontsize=8, title="Paper, P-Tuning v2 Table 2: hollow, dotted")
        if not series:
            ax.text(0.5, 0.5, "no completed cells", transform=ax.transAxes, ha="center")
        _save(fig, out_dir, stem, {"tasks": list(chosen), "asked": asked, "series": series, "errors": errors,
                                   "paper": {"ref": pubmod.SCALE_REF, "tasks": paper_tasks,
                                             "same_tasks_as_ours": paper_tasks == list(chosen),
                                             "series": paper_drawn}})
    return series


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
