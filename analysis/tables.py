"""Paper-style tables from the tidy frame, built with pandas and written with ``to_markdown``,
``Styler.to_latex`` and ``to_csv``.

* :func:`family_table`: one table per task family; rows = backbone x method (x variant
  when a group holds several configurations of a cell, e.g. a learning-rate sweep), columns
  = tasks (named with their data source) + Avg; cells = mean ± sample std over seeds
  (``pivot_table`` with mean, std, count), best per backbone in bold; with published numbers
  each cell gets ``(pub X; Δ d)`` and a source footnote.
* :func:`cost_table`: trainable parameters (absolute, % of backbone), train time, memory.

Missing cells print ``-``; failed cells print ``failed`` with a numbered footnote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import published as pubmod
from analysis import style

MISSING, FAILED, NOT_PUBLISHED = "-", "failed", "n/p"
ROW = ["group", "model", "method", "variant_label"]


_LATEX = str.maketrans({"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                        "±": r"$\pm$", "Δ": r"$\Delta$"})


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
        return sum(1 for c in self.text.columns if c in ("Group", "Backbone", "Method", "Task"))

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


def family_table(df: pd.DataFrame, family: str, published: pd.DataFrame | None = None) -> Table | None:
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
    for key in keys.itertuples(index=False):
        index = (key.group, key.model, key.method, key.variant_label)
        method = names["method"][key.method] + (f" [{key.variant_label}]" if key.variant_label else "")
        row = {**({"Group": key.group} if multi_group else {}), "Backbone": names["backbone"][key.model],
               "Method": method}
        suffix = dict.fromkeys(row, "")
        row_means: dict[str, float] = {}
        published_values: dict[str, float] = {}
        for task in tasks:
            column = names["task"][task]
            count = stats["count"][task].get(index) if task in stats.get("count", {}) else None
            n = int(count) if count is not None and pd.notna(count) else 0
            failed = sub[(sub["status"] == "failed") & (sub["task"] == task) & (sub["group"] == key.group)
                         & (sub["model"] == key.model) & (sub["method"] == key.method)
                         & (sub["variant_label"] == key.variant_label)].drop_duplicates("seed")
            row[column], suffix[column] = MISSING, ""
            if n:
                row[column] = fmt_mean_std(stats["mean"][task][index], stats["std"][task][index], n, show_n)
                row_means[task] = stats["mean"][task][index]
            elif len(failed):
                row[column] = FAILED
            if len(failed):
                suffix[column] += notes.mark(_failure(row["Backbone"], method, column, failed))
            if published is not None:
                metric = sub.loc[sub["task"] == task, "primary_metric"].dropna().iloc[0]
                hit = pubmod.lookup(published, key.model, key.method, task, metric)
                if hit is None:
                    suffix[column] += f" ({NOT_PUBLISHED})"
                else:
                    published_values[task] = float(hit["value"])
                    delta = f"; Δ {round(row_means[task] - hit['value'], 1) + 0.0:+.1f}" if task in row_means else ""
                    suffix[column] += (f" (pub{' PT' if hit['combined'] else ''} {fmt_published(hit['value'])}{delta})"
                                       + notes.mark(pubmod.note(hit)))
        complete = len(row_means) == len(tasks)
        average = sum(row_means.values()) / len(row_means) if row_means else math.nan
        row["Avg"] = MISSING if not row_means else f"{average:.1f}" + ("" if complete else "*")
        suffix["Avg"] = ""
        if published is not None:
            if len(published_values) == len(tasks):
                reference = sum(published_values.values()) / len(tasks)
                delta = f"; Δ {round(average - reference, 1) + 0.0:+.1f}" if complete else ""
                suffix["Avg"] = f" (pub {reference:.1f}{delta})"
            else:
                suffix["Avg"] = f" ({NOT_PUBLISHED})"
        rows.append(row)
        suffixes.append(suffix)
        means.append({**{names["task"][t]: v for t, v in row_means.items()}, **({"Avg": average} if complete else {})})
    text = pd.DataFrame(rows)
    value = pd.DataFrame(means, columns=text.columns, index=text.index).astype(float).round(1)
    blocks = text["Backbone"] if not multi_group else text["Group"] + "|" + text["Backbone"]
    best = value.groupby(blocks).transform("max")
    enough = value.notna().groupby(blocks).transform("sum") >= 2
    bold = (value == best) & enough & value.notna()
    metrics = "; ".join(f"{names['task'][t]}: {sub.loc[sub['task'] == t, 'primary_metric'].dropna().iloc[0]} "
                        f"({'test split, checkpoint chosen on dev' if (sub.loc[sub['task'] == t, 'reported_split'] == 'test').all() else 'dev'})"
                        for t in tasks)
    sources = ", ".join(sorted(sub["data_source"].dropna().unique())) or "unknown"
    caption = (f"Mean ± sample std over seeds{', n = seeds' if show_n else ''}; best per backbone in bold; "
               f"'-' = no result. Metrics: {metrics}. Data: {sources}"
               + (" (generated rows that follow each task's schema, not the benchmark)" if "synthetic" in sources else "")
               + "." + (" [variant] = options that differ between configurations of a cell." if (keys["variant_label"] != "").any() else "")
               + (" * Avg over the tasks this row has." if any(r["Avg"].endswith("*") for r in rows) else ""))
    if published is not None:
        caption += (" pub = published value (source in footnotes), Δ = ours - published, n/p = not published; "
                    "'pub PT' = the paper's combined prompt-tuning/P-Tuning v1 row.")
    suffix = "_vs_published" if published is not None else ""
    return Table(f"{family.lower()}{suffix}", f"{family} results" + (" vs. published" if published is not None else ""),
                 text, bold, pd.DataFrame(suffixes, index=text.index), caption, notes.items)


def cost_table(df: pd.DataFrame) -> Table:
    """Per cell: trainable parameters (absolute, % of backbone), train time, peak memory, seeds."""
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
               "Train time: mean ± std over completed seeds; peak memory: mean.")
    return Table("cost", "Cost per cell", text, pd.DataFrame(False, index=text.index, columns=text.columns),
                 suffix, caption, notes.items)


def build_tables(df: pd.DataFrame, published: pd.DataFrame | None = None) -> list[Table]:
    """Per family (ours, then vs. published when given), then the cost table."""
    tables = []
    for family in sorted(df["family"].dropna().unique(), key=style.family_order):
        tables.append(family_table(df, family))
        if published is not None:
            tables.append(family_table(df, family, published))
    return [*[t for t in tables if t is not None], cost_table(df)]


def write_tables(df: pd.DataFrame, out_dir: str | Path, published: pd.DataFrame | None = None) -> list[Table]:
    tables = build_tables(df, published)
    for table in tables:
        table.write(out_dir)
    return tables
