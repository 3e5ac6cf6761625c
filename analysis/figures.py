"""Figures (PNG + PDF) from the tidy results DataFrame; one fixed colour/marker per method.

Every ``plot_*`` function writes ``<stem>.png``, ``<stem>.pdf`` and ``<stem>.json`` (the series
drawn, with error bars) into ``out_dir`` and returns ``{series_label: [(x, y), ...]}``.
Plots use the Agg backend and matplotlib's object API (no pyplot global state).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis import catalog  # noqa: E402
from analysis.tables import choose_splits  # noqa: E402

DEFAULT_SCALE_TASKS: tuple[str, ...] = ("rte", "boolq", "cb")
PUBLISHED_SUFFIX = " (published, approx.)"

# Sizes chosen to stay legible when a 6.5-inch-wide figure is printed at column width.
RC: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.6,
    "lines.markersize": 6,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,
}

Series = dict[str, list[tuple[Any, float]]]


def style(method: str) -> dict[str, str]:
    """The fixed colour/marker/linestyle of a method (same in every figure)."""
    return catalog.METHOD_STYLE.get(method, catalog.FALLBACK_STYLE)


def _primary_values(df: pd.DataFrame) -> pd.DataFrame:
    """Completed primary-metric rows on each task's reporting split (as in the tables)."""
    splits = choose_splits(df)
    done = df[(df["status"] == "completed") & df["is_primary"]]
    keep = done["split"] == done["task"].map(lambda t: splits.get(t, "eval"))
    return done[keep].drop_duplicates(["group", "model", "method", "task", "seed"])


def _save(fig: Figure, out_dir: str | Path, stem: str, record: dict[str, Any]) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1, default=_json), encoding="utf-8")
    return paths


def _json(o: Any) -> Any:
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


def _parse_avg_task(task: str) -> frozenset[str] | None:
    if task.startswith("avg(") and task.endswith(")"):
        return frozenset(t.strip() for t in task[4:-1].split(","))
    return None


def plot_scale(
    df: pd.DataFrame,
    out_dir: str | Path,
    tasks: Sequence[str] = DEFAULT_SCALE_TASKS,
    published: pd.DataFrame | None = None,
    stem: str = "scale_vs_score",
) -> Series:
    """Backbone parameters (log x) vs. the average primary score over ``tasks``.

    Per method and backbone, each seed that completed all ``tasks`` gives one average; the
    point is their mean and the error bar their sample std. Published Figure-1 readings for
    the same task set (``use=figure``) are drawn as hollow markers.
    """
    tasks = [t.strip() for t in tasks if t.strip()]
    vals = _primary_values(df[df["task"].isin(tasks)])
    vals = vals[vals["backbone_params"].notna()]
    series: Series = {}
    errors: dict[str, list[float]] = {}
    per_seed = vals.pivot_table(
        index=["method", "model", "group", "seed"], columns="task", values="value", aggfunc="first"
    )
    per_seed = per_seed.reindex(columns=tasks).dropna()
    avg = per_seed.mean(axis=1).rename("avg").reset_index()
    params = vals.groupby("model")["backbone_params"].max()
    methods = sorted(avg["method"].unique(), key=catalog.method_order)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(6.5, 4.0))
        ax = fig.add_subplot()
        for method in methods:
            sub = avg[avg["method"] == method]
            pts = []
            for model, g in sub.groupby("model"):
                y = float(g["avg"].mean())
                err = float(g["avg"].std(ddof=1)) if len(g) >= 2 else 0.0
                pts.append((float(params[model]), y, err))
            pts.sort()
            label = catalog.method_display(method)
            series[label] = [(x, y) for x, y, _ in pts]
            errors[label] = [e for _, _, e in pts]
            st = style(method)
            ax.errorbar(
                [p[0] for p in pts],
                [p[1] for p in pts],
                yerr=[p[2] for p in pts],
                color=st["color"],
                marker=st["marker"],
                linestyle=st["linestyle"],
                capsize=3,
                label=label,
            )
        if published is not None and not published.empty:
            want = frozenset(tasks)
            fig_rows = published[(published["use"] == "figure")]
            fig_rows = fig_rows[fig_rows["task"].map(lambda t: _parse_avg_task(t) == want)]
            for method in sorted(fig_rows["method"].unique(), key=catalog.method_order):
                g = fig_rows[fig_rows["method"] == method].sort_values("backbone_params")
                pts = [
                    (float(x), float(y))
                    for x, y in zip(g["backbone_params"], g["value"], strict=True)
                ]
                label = catalog.method_display(method) + PUBLISHED_SUFFIX
                series[label] = pts
                errors[label] = [0.0] * len(pts)
                st = style(method)
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    linestyle="none",
                    marker=st["marker"],
                    markerfacecolor="none",
                    markeredgecolor=st["color"],
                    markeredgewidth=1.5,
                    markersize=8,
                    label=label,
                )
        ax.set_xscale("log")
        ax.set_xlabel("Backbone parameters (log scale)")
        ax.set_ylabel("Avg. " + "/".join(catalog.task_display(t) for t in tasks) + " (dev)")
        ax.set_title("Scale vs. score")
        if series:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        else:
            ax.text(
                0.5,
                0.5,
                "no backbone completed all of " + ", ".join(tasks),
                transform=ax.transAxes,
                ha="center",
            )
        _save(fig, out_dir, stem, {"tasks": list(tasks), "series": series, "errors": errors})
    return series


def plot_param_efficiency(
    df: pd.DataFrame, out_dir: str | Path, stem: str = "param_efficiency"
) -> Series:
    """Trainable % of the backbone (log x) vs. primary score; one panel per task family.

    One point per backbone x method x task (mean over seeds); series ``"<family>: <method>"``.
    """
    vals = _primary_values(df)
    vals = vals[vals["trainable_pct"].notna() & (vals["trainable_pct"] > 0)]
    families = [f for f in catalog.FAMILIES if (vals["family"] == f).any()]
    families += sorted(set(vals["family"]) - set(catalog.FAMILIES))
    series: Series = {}
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(3.4 * max(1, len(families)), 3.6))
        axes = [
            fig.add_subplot(1, max(1, len(families)), i + 1) for i in range(max(1, len(families)))
        ]
        handles: dict[str, Any] = {}
        for ax, fam in zip(axes, families, strict=False):
            sub = vals[vals["family"] == fam]
            agg = sub.groupby(["method", "model", "task"], as_index=False).agg(
                x=("trainable_pct", "mean"), y=("value", "mean")
            )
            for method in sorted(agg["method"].unique(), key=catalog.method_order):
                g = agg[agg["method"] == method].sort_values(["x", "y"])
                label = catalog.method_display(method)
                series[f"{fam}: {label}"] = [
                    (float(x), float(y)) for x, y in zip(g["x"], g["y"], strict=True)
                ]
                st = style(method)
                handles[label] = ax.scatter(
                    g["x"], g["y"], color=st["color"], marker=st["marker"], label=label, s=36
                )
            ax.set_xscale("log")
            ax.set_title(fam)
            ax.set_xlabel("Trainable params (% of backbone, log)")
        axes[0].set_ylabel("Primary metric")
        if handles:
            fig.legend(
                list(handles.values()),
                list(handles),
                loc="lower center",
                ncol=min(5, len(handles)),
                frameon=False,
                bbox_to_anchor=(0.5, -0.08),
            )
        else:
            axes[0].text(0.5, 0.5, "no completed cells", transform=axes[0].transAxes, ha="center")
        fig.tight_layout()
        _save(fig, out_dir, stem, {"series": series})
    return series


def plot_task_bars(
    df: pd.DataFrame,
    out_dir: str | Path,
    stem: str = "task_bars",
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
) -> Series:
    """Grouped bars: one group per (backbone,) task, methods side by side, std error bars.

    Series map the method label to ``[(group_label, mean), ...]``; failed cells get a
    ``failed`` mark and no bar, missing cells are left empty.
    """
    sel = df
    if models:
        sel = sel[sel["model"].isin(models)]
    if tasks:
        sel = sel[sel["task"].isin(tasks)]
    if methods:
        sel = sel[sel["method"].isin(methods)]
    vals = _primary_values(sel)
    agg = vals.groupby(["model", "task", "method"]).agg(
        mean=("value", "mean"), std=("value", "std")
    )
    failed = set(
        map(
            tuple,
            sel.loc[sel["status"] == "failed", ["model", "task", "method"]]
            .drop_duplicates()
            .itertuples(index=False),
        )
    )
    params = sel.groupby("model")["backbone_params"].max().to_dict()
    shown = sel[sel["status"].isin(["completed", "failed"])]
    group_keys = sorted(
        {(m, t) for m, t in shown[["model", "task"]].drop_duplicates().itertuples(index=False)},
        key=lambda k: (_inf(params.get(k[0])), k[0], catalog.task_order(k[1])),
    )
    multi_model = len({k[0] for k in group_keys}) > 1
    labels = [
        catalog.task_display(t) + (f"\n{catalog.model_display(m)}" if multi_model else "")
        for m, t in group_keys
    ]
    meths = sorted(set(shown["method"]), key=catalog.method_order)
    width = 0.8 / max(1, len(meths))
    series: Series = {}
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(max(4.0, 0.9 * len(group_keys) * max(1, len(meths)) * 0.35 + 2), 3.8))
        ax = fig.add_subplot()
        for i, method in enumerate(meths):
            st = style(method)
            label = catalog.method_display(method)
            xs, ys, es, pts = [], [], [], []
            for gi, (model, task) in enumerate(group_keys):
                x = gi - 0.4 + width * (i + 0.5)
                if (model, task, method) in agg.index:
                    r = agg.loc[(model, task, method)]
                    xs.append(x)
                    ys.append(float(r["mean"]))
                    es.append(0.0 if pd.isna(r["std"]) else float(r["std"]))
                    pts.append((labels[gi], float(r["mean"])))
                elif (model, task, method) in failed:
                    ax.text(
                        x,
                        1,
                        "failed",
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        color=st["color"],
                    )
            series[label] = pts
            ax.bar(
                xs,
                ys,
                width=width,
                yerr=es,
                color=st["color"],
                edgecolor="black",
                linewidth=0.5,
                capsize=2,
                label=label,
            )
        ax.set_xticks(range(len(group_keys)))
        ax.set_xticklabels(labels)
        ax.set_ylabel("Primary metric")
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.18 if multi_model else -0.1),
            ncol=min(3, max(1, len(meths))),
            frameon=False,
        )
        fig.tight_layout()
        _save(fig, out_dir, stem, {"series": series, "groups": labels})
    return series


def _inf(v: float | None) -> float:
    return math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else v


def write_figures(
    df: pd.DataFrame,
    out_dir: str | Path,
    scale_tasks: Sequence[str] = DEFAULT_SCALE_TASKS,
    published: pd.DataFrame | None = None,
) -> dict[str, Series]:
    """All standard figures: scale, parameter efficiency, and task bars per backbone."""
    out: dict[str, Series] = {
        "scale_vs_score": plot_scale(df, out_dir, scale_tasks, published),
        "param_efficiency": plot_param_efficiency(df, out_dir),
    }
    for model in sorted(
        df["model"].unique(),
        key=lambda m: (_inf(df.loc[df["model"] == m, "backbone_params"].max()), m),
    ):
        out[f"task_bars_{model}"] = plot_task_bars(
            df, out_dir, stem=f"task_bars_{model}", models=[model]
        )
    return out
