"""Paper-style tables from the tidy frame, built with pandas and written with ``to_markdown``,
``Styler.to_latex`` and ``to_csv``.

* :func:`family_table`: one table per task family; rows = backbone x method (x variant
  when a group holds several configurations of a cell, e.g. a learning-rate sweep), columns
  = tasks (named with their data source) + Avg; cells = mean ± sample std over seeds
  (``pivot_table`` with mean, std, count), best per backbone in bold.
* :func:`comparison_table`: ours beside the papers, one row per cell (backbone x method x
  task): ours (mean ± std, n), the paper's value, Δ = ours − paper, and the official
  repository's re-implementation where it has one; sources in footnotes.
* :func:`not_run_table`: every cell a paper reports for which we have no completed run.
* :func:`cost_table`: trainable parameters (absolute, % of backbone), train time, memory.
* :func:`search_table`: every searched cell: its grid, points completed, the point chosen on
  dev, its dev score and the worst completed point's.

Where a cell's settings come from is marked: ˢ = the best point of a search on dev, ᵒ = an
official run script's settings; unmarked = defaults (the method's or the preset's).

Missing cells print ``-``; failed cells print ``failed`` with a numbered footnote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import published as pubmod
from analysis import search as searchmod
from analysis import style

MISSING, FAILED, NOT_PUBLISHED = "-", "failed", "n/p"
#: a cell's settings source -> its mark in the tables (defaults unmarked)
SETTINGS_MARKS = {"searched": "ˢ", "official script": "ᵒ"}
SETTINGS_NOTE = ("ˢ = settings searched: the grid point best on dev (table search); ᵒ = the official run "
                 "script's settings; unmarked = defaults (the method's or the preset's).")
LABEL_COLUMNS = ("Group", "Backbone", "Method", "Task", "Metric", "Settings", "Paper table", "Why",
                 "Paper values not run", "Grid", "Chosen")
ROW = ["group", "model", "method", "variant_label"]


_LATEX = str.maketrans({"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                        "ˢ": r"\textsuperscript{s}", "ᵒ": r"\textsuperscript{o}", "×": r"$\times$",
                        "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$", "†": r"\textdagger{}"})


def latex_escape(text: str) -> str:
    return str(text).translate(_LATEX)


@dataclass
class Table:
    """Display strings: a ``text`` part (bold where ``bold``) and a ``suffix`` part (published
    value, footnote marks) per cell, a caption and numbered footnotes."""

    name: str
    title: str
    text: pd.DataFrame
    bold: pd.DataFrame
    suffix: pd.DataFrame
    caption: str = ""
    footnotes: list[str] = field(default_factory=list)

    def cell(self, row: list[str], column: str) -> tuple[str, bool]:
        """(full text, bold) of ``column`` in the row whose leading label columns equal ``row``."""
        labels = self.text.columns[: len(row)]
        match = (self.text[labels] == row).all(axis=1)
        if match.sum() != 1:
            raise KeyError(f"no single row {row} in table {self.name}")
        index = match.idxmax()
        return self.text.at[index, column] + self.suffix.at[index, column], bool(self.bold.at[index, column])

    def plain(self) -> pd.DataFrame:
        return self.text + self.suffix

    def _notes(self, mark: str = "") -> list[str]:
        return [f"[{i}] {mark}{note}" for i, note in enumerate(self.footnotes, start=1)]

    def _labels(self) -> int:
        return sum(1 for c in self.text.columns if c in LABEL_COLUMNS)

    def to_markdown(self) -> str:
        shown = (self.text.where(~self.bold, "**" + self.text + "**") + self.suffix).replace(r"\|", r"\\|", regex=True)
        align = ["left"] * self._labels() + ["right"] * (len(shown.columns) - self._labels())
        body = shown.to_markdown(index=False, disable_numparse=True, colalign=align)
        return "\n\n".join(p for p in (f"### {self.title}", self.caption, body, "  \n".join(self._notes())) if p) + "\n"

    def to_latex(self) -> str:
        labels = self._labels()
        cells = self.text.map(latex_escape)
        cells = cells.where(~self.bold, "\\textbf{" + cells + "}") + self.suffix.map(latex_escape)
        cells.columns = [latex_escape(c) for c in cells.columns]
        latex = cells.style.hide(axis="index").to_latex(hrules=True, position="t", position_float="centering",
                                caption=self.title, label=f"tab:{self.name}",
                                column_format="l" * labels + "r" * (len(self.text.columns) - labels))
        notes = [self.caption, *self._notes()]
        return latex.replace("\\end{table}", "\\par\\footnotesize " + " \\\\\n".join(
            latex_escape(n) for n in notes if n) + "\n\\end{table}")

    def to_csv(self) -> str:
        return self.plain().to_csv(index=False) + "".join(f"# {n}\n" for n in self._notes())

    def write(self, out_dir: str | Path) -> list[Path]:
        """``<name>.md``, ``<name>.tex`` and ``<name>.csv`` in ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for ext, render in (("md", self.to_markdown), ("tex", self.to_latex), ("csv", self.to_csv)):
            path = out / f"{self.name}.{ext}"
            path.write_text(render(), encoding="utf-8")
            paths.append(path)
        return paths


class _Notes:
    """Numbered, de-duplicated footnotes."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.items:
            self.items.append(text)
        return f" [{self.items.index(text) + 1}]"


def fmt_mean_std(mean: float, std: float, n: int, show_n: bool = False) -> str:
    """``'71.2 ± 0.5'`` (sample std) for n >= 2, ``'71.2'`` for one seed; ``(n=k)`` on request."""
    text = f"{mean:.1f}" if n < 2 or math.isnan(std) else f"{mean:.1f} ± {std:.1f}"
    return f"{text} (n={n})" if show_n else text


def fmt_published(value: float) -> str:
    return f"{value:.1f}" if abs(round(value, 1) - value) < 1e-9 else f"{value:.2f}"


def reported(df: pd.DataFrame) -> pd.DataFrame:
    """Completed primary-metric values on each run's reported split (NER: test)."""
    split = df["reported_split"].map({"test": "test"}).fillna("eval")
    return df[(df["status"] == "completed") & df["is_primary"] & (df["split"] == split)]


def display_names(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Display names of backbones (with size) and tasks (with data source), from the records."""
    models = df.groupby("model").agg(display=("model_display", "first"), params=("backbone_params", "max"))
    backbone = {m: f"{r.display if isinstance(r.display, str) else m} ({style.format_count(r.params)})"
                for m, r in models.iterrows()}
    tasks = {}
    for task, sub in df.groupby("task"):
        display = sub["task_display"].dropna().iloc[0] if sub["task_display"].notna().any() else task
        sources = sorted(sub["data_source"].dropna().unique())
        tasks[task] = style.task_label(display, sources[0]) if len(sources) == 1 else (
            f"{display} ({', '.join(sources)})" if sources else display)
    methods = df.groupby("method")["method_display"].first()
    return {"backbone": pd.Series(backbone), "task": pd.Series(tasks),
            "method": methods.where(methods.notna(), methods.index.to_series())}


def _row_order(keys: pd.DataFrame) -> pd.DataFrame:
    order = keys.assign(_method=keys["method"].map(style.method_order))
    return order.sort_values(["group", "backbone_params", "model", "_method", "method", "variant_label"],
                             na_position="last").drop(columns="_method")


def _failure(backbone: str, method: str, task: str, failed: pd.DataFrame) -> str:
    reasons = failed.groupby("error")["seed"].apply(lambda s: ", ".join("?" if pd.isna(x) else str(x) for x in s))
    parts = [f"seed{'s' if ', ' in seeds else ''} {seeds}: {error}" for error, seeds in reasons.items()]
    return f"{backbone} / {method} / {task} failed ({'; '.join(parts)})"


def family_table(df: pd.DataFrame, family: str) -> Table | None:
    """The table of one task family (``None`` if the family has no rows)."""
    sub = df[df["family"] == family].copy()
    if sub.empty:
        return None
    sub["variant_label"] = sub["variant_label"].fillna("")
    names = display_names(sub)
    values = reported(sub)
    stats = pd.pivot_table(values, index=ROW, columns="task", values="value",
                           aggfunc=["mean", "std", "count"], dropna=False) if len(values) else pd.DataFrame()
    tasks = sorted(sub["task"].unique(), key=lambda t: names["task"][t])
    keys = _row_order(sub.groupby(ROW, dropna=False)["backbone_params"].max().reset_index())
    multi_group = sub["group"].nunique() > 1
    counts = set(stats["count"].fillna(0).astype(int).stack()) - {0} if not stats.empty else set()
    show_n = len(counts) > 1
    notes = _Notes()
    rows, suffixes, means = [], [], []
    marked = False
    for key in keys.itertuples(index=False):
        index = (key.group, key.model, key.method, key.variant_label)
        method = names["method"][key.method] + (f" [{key.variant_label}]" if key.variant_label else "")
        row = {**({"Group": key.group} if multi_group else {}), "Backbone": names["backbone"][key.model],
               "Method": method}
        suffix = dict.fromkeys(row, "")
        row_means: dict[str, float] = {}
        for task in tasks:
            column = names["task"][task]
            count = stats["count"][task].get(index) if task in stats.get("count", {}) else None
            n = int(count) if count is not None and pd.notna(count) else 0
            failed = _failed(sub, key, task)
            row[column], suffix[column] = MISSING, ""
            if n:
                row[column] = fmt_mean_std(stats["mean"][task][index], stats["std"][task][index], n, show_n)
                row_means[task] = stats["mean"][task][index]
            elif len(failed):
                row[column] = FAILED
            if n:
                mark = _settings_mark(values, key, task)
                suffix[column] += mark
                marked = marked or bool(mark)
            if len(failed):
                suffix[column] += notes.mark(_failure(row["Backbone"], method, column, failed))
        complete = len(row_means) == len(tasks)
        average = sum(row_means.values()) / len(row_means) if row_means else math.nan
        row["Avg"] = MISSING if not row_means else f"{average:.1f}" + ("" if complete else "*")
        suffix["Avg"] = ""
        rows.append(row)
        suffixes.append(suffix)
        means.append({**{names["task"][t]: v for t, v in row_means.items()}, **({"Avg": average} if complete else {})})
    text = pd.DataFrame(rows)
    value = pd.DataFrame(means, columns=text.columns, index=text.index).astype(float).round(1)
    blocks = text["Backbone"] if not multi_group else text["Group"] + "|" + text["Backbone"]
    best = value.groupby(blocks).transform("max")
    enough = value.notna().groupby(blocks).transform("sum") >= 2
    bold = (value == best) & enough & value.notna()
    sources = ", ".join(sorted(sub["data_source"].dropna().unique())) or "unknown"
    caption = (f"Mean ± sample std over seeds{', n = seeds' if show_n else ''}; best per backbone in bold; "
               f"'-' = no result. Metrics: {_metrics(sub, tasks, names)}. Data: {sources}"
               + (" (generated rows that follow each task's schema, not the benchmark)" if "synthetic" in sources else "")
               + "." + (" [variant] = options that differ between configurations of a cell." if (keys["variant_label"] != "").any() else "")
               + (" * Avg over the tasks this row has." if any(r["Avg"].endswith("*") for r in rows) else "")
               + (" " + SETTINGS_NOTE if marked else ""))
    return Table(family.lower(), f"{family} results", text, bold, pd.DataFrame(suffixes, index=text.index),
                 caption, notes.items)


def _cell_rows(frame: pd.DataFrame, key: Any, task: str) -> pd.DataFrame:
    return frame[(frame["task"] == task) & (frame["group"] == key.group) & (frame["model"] == key.model)
                 & (frame["method"] == key.method) & (frame["variant_label"] == key.variant_label)]


def _settings_mark(values: pd.DataFrame, key: Any, task: str) -> str:
    """The mark of where a cell's reported values got their settings (:data:`SETTINGS_MARKS`)."""
    sources = set(_cell_rows(values, key, task)["settings"].dropna())
    return "".join(SETTINGS_MARKS.get(source, "") for source in sorted(sources))


def _settings_text(rows: pd.DataFrame) -> str:
    """``searched: lr=2e-05, epochs=10 (best of 6/6 on dev)``, ``official script`` or ``defaults``."""
    done = rows[rows["status"] == "completed"]
    parts = []
    for source, group in (done if len(done) else rows).groupby("settings", sort=True):
        choices = sorted(group["search_choice"].dropna().unique())
        parts.append(f"{source}: {'; '.join(choices)}" if choices else str(source))
    return "; ".join(parts)


def _failed(sub: pd.DataFrame, key: Any, task: str) -> pd.DataFrame:
    """The failed runs (one per seed) of a row's cell on ``task``."""
    return sub[(sub["status"] == "failed") & (sub["task"] == task) & (sub["group"] == key.group)
               & (sub["model"] == key.model) & (sub["method"] == key.method)
               & (sub["variant_label"] == key.variant_label)].drop_duplicates("seed")


def _metrics(sub: pd.DataFrame, tasks: list[str], names: dict[str, pd.Series]) -> str:
    """``RTE: accuracy (dev); CoNLL04: f1 (test split, checkpoint chosen on dev)``."""
    parts = []
    for t in tasks:
        rows = sub[sub["task"] == t]
        split = "test split, checkpoint chosen on dev" if (rows["reported_split"] == "test").all() else "dev"
        parts.append(f"{names['task'][t]}: {rows['primary_metric'].dropna().iloc[0]} ({split})")
    return "; ".join(parts)


def _delta(ours: float, paper: float) -> str:
    return f"{round(ours - paper, 1) + 0.0:+.1f}"


def comparison_table(df: pd.DataFrame, family: str, published: pd.DataFrame) -> Table | None:
    """Ours beside the papers, one row per cell of one family (``None`` without our rows).

    Columns: ours (mean ± sample std over seeds) and n, the paper's value (the P-Tuning v2
    paper where it has the cell, else the v1 paper), Δ = ours − paper (on the unrounded
    mean), and the official repository's re-implementation. A row per backbone x method
    with two or more tasks adds ``Avg`` when every task has our mean (and the paper's when
    every task has one).
    """
    sub = df[df["family"] == family].copy()
    if sub.empty:
        return None
    sub["variant_label"] = sub["variant_label"].fillna("")
    names = display_names(sub)
    stats = reported(sub).groupby([*ROW, "task"])["value"].agg(["mean", "std", "count"])
    keys = _row_order(sub.groupby(ROW, dropna=False)["backbone_params"].max().reset_index())
    tasks = sorted(sub["task"].unique(), key=lambda t: names["task"][t])
    metric_of = sub.groupby("task")["primary_metric"].first()
    present = set(zip(sub["group"], sub["model"], sub["method"], sub["variant_label"], sub["task"], strict=True))
    multi_group = sub["group"].nunique() > 1
    notes = _Notes()
    rows, suffixes = [], []
    for key in keys.itertuples(index=False):
        method = names["method"][key.method] + (f" [{key.variant_label}]" if key.variant_label else "")
        label = {**({"Group": key.group} if multi_group else {}), "Backbone": names["backbone"][key.model],
                 "Method": method}
        ours_by_task: dict[str, float] = {}
        paper_by_task: dict[str, float] = {}
        for task in tasks:
            if (key.group, key.model, key.method, key.variant_label, task) not in present:
                continue
            metric = metric_of[task]
            row = {**label, "Task": names["task"][task], "Metric": style.METRIC_SHORT.get(metric, metric),
                   "Settings": _settings_text(_cell_rows(sub, key, task))}
            suffix = dict.fromkeys(row, "")
            index = (key.group, key.model, key.method, key.variant_label, task)
            n = int(stats.at[index, "count"]) if index in stats.index else 0
            failed = _failed(sub, key, task)
            row["Ours"] = (fmt_mean_std(stats.at[index, "mean"], stats.at[index, "std"], n) if n
                           else FAILED if len(failed) else MISSING)
            suffix["Ours"] = notes.mark(_failure(label["Backbone"], method, row["Task"], failed)) if len(failed) else ""
            row["n"] = str(n)
            if n:
                ours_by_task[task] = float(stats.at[index, "mean"])
            paper = pubmod.lookup(published, key.model, key.method, task, metric, pubmod.PAPER)
            official = pubmod.lookup(published, key.model, key.method, task, metric, pubmod.OFFICIAL)
            row["Paper"], row["Δ (ours − paper)"], row["Official re-impl."] = NOT_PUBLISHED, "", ""
            suffix.update({"Paper": "", "Δ (ours − paper)": "", "Official re-impl.": ""})
            if paper is not None:
                paper_by_task[task] = float(paper["value"])
                row["Paper"] = (fmt_published(paper["value"]) + (" PT" if paper["combined"] else "")
                                + ("†" if pubmod.differs(paper) else ""))
                suffix["Paper"] = notes.mark(pubmod.note(paper))
                if n:
                    row["Δ (ours − paper)"] = _delta(ours_by_task[task], paper["value"])
            if official is not None:
                row["Official re-impl."] = fmt_published(official["value"])
                suffix["Official re-impl."] = notes.mark(pubmod.note(official))
            rows.append(row)
            suffixes.append(suffix)
        cell_tasks = [t for t in tasks if (key.group, key.model, key.method, key.variant_label, t) in present]
        if len(cell_tasks) >= 2 and len(ours_by_task) == len(cell_tasks):
            ours = sum(ours_by_task.values()) / len(cell_tasks)
            row = {**label, "Task": "Avg", "Metric": "", "Settings": "", "Ours": f"{ours:.1f}", "n": "",
                   "Paper": NOT_PUBLISHED, "Δ (ours − paper)": "", "Official re-impl.": ""}
            if len(paper_by_task) == len(cell_tasks):
                paper_avg = sum(paper_by_task.values()) / len(cell_tasks)
                row["Paper"], row["Δ (ours − paper)"] = f"{paper_avg:.1f}", _delta(ours, paper_avg)
            rows.append(row)
            suffixes.append(dict.fromkeys(row, ""))
    text = pd.DataFrame(rows)
    suffix = pd.DataFrame(suffixes, index=text.index).reindex(columns=text.columns).fillna("")
    sources = ", ".join(sorted(sub["data_source"].dropna().unique())) or "unknown"
    caption = ("Ours = mean ± sample std over n seeds of the primary metric on the reported split "
               f"({_metrics(sub, tasks, names)}); '-' = no result. Paper = the P-Tuning v2 paper's "
               "value (Tables 2-3, transcribed), else the P-Tuning v1 paper's; 'PT' = the paper's "
               "combined prompt tuning & P-Tuning v1 row (frozen backbone); † = the paper's setting is "
               "not ours (P-Tuning v1 tunes the backbone jointly); n/p = the papers report no such cell. "
               "Δ = ours − paper. Official re-impl. = the THUDM/P-tuning-v2 README's re-run (not the "
               "paper). Avg = over this row's tasks, when all have a value. Settings = where the cell's "
               "settings come from: a search (the point best on dev; table search), an official run script, "
               "or defaults. Sources in the footnotes; "
               f"paper cells we have not run: table {family.lower()}_not_run. Data: {sources}"
               + (" (generated rows that follow each task's schema, not the benchmark)" if "synthetic" in sources
                  else "") + ".")
    return Table(f"{family.lower()}_vs_published", f"{family}: ours vs. the papers", text,
                 pd.DataFrame(False, index=text.index, columns=text.columns), suffix, caption, notes.items)


def not_run_table(df: pd.DataFrame, family: str, published: pd.DataFrame) -> Table | None:
    """Every cell of one family the papers report (``kind=paper``) without a completed run of
    ours, one row per paper table x backbone x method (``None`` if there is none).

    A run of prompt_tuning or ptuning_v1 covers the paper's combined PT row. ``Why``: the
    backbone or method is not in the suite, our run failed, or there is no record.
    """
    paper = published[(published["kind"] == pubmod.PAPER) & (published["family"] == family)]
    if paper.empty:
        return None
    done = reported(df)
    done = set(zip(done["model"], done["method"], done["task"], strict=True))
    failed = df[df["status"] == "failed"]
    failed = set(zip(failed["model"], failed["method"], failed["task"], strict=True))

    def members(method: str) -> tuple[str, ...]:
        return style.COMBINED_MEMBERS.get(method, (method,))

    ran = paper.apply(lambda r: any((r["model"], m, r["task"]) in done for m in members(r["method"])), axis=1)
    todo = paper[~ran.astype(bool)].copy()
    if todo.empty:
        return None
    todo["why"] = [r.not_in_suite or ("our run failed" if any((r.model, m, r.task) in failed for m in members(r.method))
                                       else "no record")
                   for r in todo.itertuples()]
    todo["_order"] = todo["method"].map(style.paper_method_order)
    todo = todo.sort_values(["preference", "ref", "backbone_params", "model", "_order", "method"], kind="stable")
    rows = []
    for (ref, model, method, why), cells in todo.groupby(["ref", "model", "method", "why"], sort=False):
        first = cells.iloc[0]
        listed = "; ".join(
            f"{task} " + " / ".join(f"{style.METRIC_SHORT.get(r.metric, r.metric)} {fmt_published(r.value)}"
                                   for r in by_task.itertuples())
            for task, by_task in cells.groupby("task_label", sort=False))
        rows.append({"Paper table": pubmod.ref_label(ref),
                     "Backbone": f"{first['backbone_label']} ({style.format_count(first['backbone_params'])}) "
                                 f"[{model}]",
                     "Method": f"{first['method_label']} [{method}]", "Why": why,
                     "Paper values not run": listed, "Cells": str(len(cells))})
    text = pd.DataFrame(rows)
    caption = (f"{len(todo)} cells the papers report (transcribed tables, kind=paper in "
               "analysis/published.csv) for which no completed run of ours exists, by paper table, backbone "
               "and method [suite model and method names]. A run of prompt tuning or P-Tuning v1 counts for "
               "the paper's combined PT row. Why: not in the suite, our run failed, or no record.")
    return Table(f"{family.lower()}_not_run", f"{family}: paper cells not run", text,
                 pd.DataFrame(False, index=text.index, columns=text.columns),
                 pd.DataFrame("", index=text.index, columns=text.columns), caption)


def cost_table(df: pd.DataFrame) -> Table:
    """Per cell: trainable parameters (absolute, % of backbone), stored parameters, train time,
    peak memory, seeds."""
    runs = df.drop_duplicates([*ROW, "task", "seed", "status"]).copy()
    runs["variant_label"] = runs["variant_label"].fillna("")
    names = display_names(runs)
    notes = _Notes()
    multi_group = runs["group"].nunique() > 1
    rows, suffixes = [], []
    keys = runs.groupby([*ROW, "task"], dropna=False)["backbone_params"].max().reset_index()
    keys = keys.assign(_method=keys["method"].map(style.method_order),
                       _family=keys["task"].map(runs.groupby("task")["family"].first()).map(style.family_order),
                       _task=keys["task"].map(names["task"]))
    keys = keys.sort_values(["group", "backbone_params", "model", "_method", "method", "variant_label",
                             "_family", "_task"], na_position="last")
    for key in keys.itertuples(index=False):
        cell = runs[(runs["group"] == key.group) & (runs["model"] == key.model) & (runs["method"] == key.method)
                    & (runs["variant_label"] == key.variant_label) & (runs["task"] == key.task)]
        done, failed = cell[cell["status"] == "completed"], cell[cell["status"] == "failed"]
        method = names["method"][key.method] + (f" [{key.variant_label}]" if key.variant_label else "")
        row = {**({"Group": key.group} if multi_group else {}), "Backbone": names["backbone"][key.model],
               "Method": method, "Task": names["task"][key.task]}
        with_params = cell.dropna(subset=["params_trainable"])
        row["Trainable params"] = f"{int(with_params['params_trainable'].iloc[0]):,}" if len(with_params) else MISSING
        row["Trainable % of backbone"] = (style.format_pct(with_params["trainable_pct"].iloc[0])
                                          if len(with_params) else MISSING)
        stored = cell["params_stored"].dropna()
        row["Stored params"] = f"{int(stored.iloc[0]):,}" if len(stored) else MISSING
        seconds = done["train_seconds"].dropna()
        row["Train time (s)"] = fmt_mean_std(seconds.mean(), seconds.std(), len(seconds)) if len(seconds) else MISSING
        memory = done["peak_memory_mb"].dropna()
        row["Peak memory (MB)"] = f"{memory.mean():.0f}" if len(memory) else MISSING
        row["Seeds"] = str(len(done)) if len(done) else (FAILED if len(failed) else MISSING)
        rows.append(row)
        suffixes.append({"Seeds": notes.mark(_failure(row["Backbone"], method, row["Task"], failed)) if len(failed) else ""})
    text = pd.DataFrame(rows)
    suffix = pd.DataFrame(suffixes, index=text.index).reindex(columns=text.columns).fillna("")
    caption = ("Trainable = method + head (+ backbone for fine-tuning); % of the backbone's parameters. "
               "Stored = what a trained cell keeps besides the frozen backbone (prefix tuning: the prefix "
               "MLP(E), not the MLP that produced it; '-': a record written before this was counted). "
               "Train time: mean ± std over completed seeds; peak memory: mean.")
    return Table("cost", "Cost per cell", text, pd.DataFrame(False, index=text.index, columns=text.columns),
                 suffix, caption, notes.items)


def search_table(df: pd.DataFrame) -> Table | None:
    """One row per searched cell (``None`` without searches): its grid, the points completed of
    the grid's, the chosen point, its dev score and the worst completed point's."""
    points = pd.DataFrame(df.attrs.get("search") or [], columns=list(searchmod.POINT_COLUMNS))
    if points.empty:
        return None
    names = display_names(df[df["model"].isin(points["model"]) | df["task"].isin(points["task"])])
    multi_group = points["group"].nunique() > 1
    rows = []
    keys = ["group", "model", "method", "task", "search"]
    for key, cell in points.groupby(keys, sort=False):
        group, model, method, task, grid = key
        scored = cell.dropna(subset=["eval_mean"])
        chosen = cell[cell["chosen"]]
        rows.append({**({"Group": group} if multi_group else {}),
                     "Backbone": names["backbone"].get(model, model), "Method": names["method"].get(method, method),
                     "Task": names["task"].get(task, task), "Grid": grid,
                     "Chosen": chosen["point"].iloc[0] if len(chosen) else MISSING,
                     "Points": f"{len(scored)}/{int(cell['points'].iloc[0])}",
                     "Dev, chosen": f"{chosen['eval_mean'].iloc[0]:.1f}" if len(chosen) else MISSING,
                     "Dev, worst point": f"{scored['eval_mean'].min():.1f}" if len(scored) else MISSING,
                     "_order": (group, style.method_order(method), method, model, task)})
    text = pd.DataFrame(rows).sort_values("_order").drop(columns="_order").reset_index(drop=True)
    metric_names = ", ".join(sorted({style.METRIC_SHORT.get(m, m) for m in points["metric"]}))
    caption = ("Every searched cell: the grid's options (values per option: the record's search.axes), the "
               "points completed of the grid's, the point chosen (best mean dev score over its seeds; ties: the "
               f"first in the grid), its dev score and the worst completed point's ({metric_names}). SuperGLUE "
               "reports dev, so there the choice and the report share a split, as in the official search.py.")
    return Table("search", "Searched settings", text, pd.DataFrame(False, index=text.index, columns=text.columns),
                 pd.DataFrame("", index=text.index, columns=text.columns), caption)


def build_tables(df: pd.DataFrame, published: pd.DataFrame | None = None) -> list[Table]:
    """Per family (ours; with published numbers also ours vs. the papers and the paper cells
    not run, for every family either side has), then the search and cost tables."""
    families = set(df["family"].dropna())
    if published is not None:
        families |= set(published.loc[published["kind"] == pubmod.PAPER, "family"])
    tables: list[Table | None] = []
    for family in sorted(families, key=style.family_order):
        tables.append(family_table(df, family))
        if published is not None:
            tables += [comparison_table(df, family, published), not_run_table(df, family, published)]
    tables.append(search_table(df))
    return [*[t for t in tables if t is not None], cost_table(df)]


def write_tables(df: pd.DataFrame, out_dir: str | Path, published: pd.DataFrame | None = None) -> list[Table]:
    """Build :func:`build_tables` and write each as md, tex and csv into ``out_dir``."""
    tables = build_tables(df, published)
    for table in tables:
        table.write(out_dir)
    return tables
