"""The analysis package on records built with the record schema: collection (identity-aware
deduplication, variants, missing and failed cells), tables (pandas; md/LaTeX/CSV), figures,
the report, W&B, published numbers, and the runner -> records -> table contract."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import KeysView
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from matplotlib.container import BarContainer

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures_analysis as fx  # noqa: E402

from analysis import style  # noqa: E402
from analysis.cli import main  # noqa: E402
from analysis.collect import (  # noqa: E402
    COLUMNS,
    AnalysisError,
    ExpectedGrid,
    collect,
    records_to_frame,
    run_counts,
)
from analysis.figures import draw_task_bars, plot_param_efficiency, plot_scale  # noqa: E402
from analysis.published import OFFICIAL, OTHER, PUBLISHED_CSV, differs, load_published, lookup  # noqa: E402
from analysis.tables import Table, comparison_table, cost_table, family_table, not_run_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BL, MINI, TINY = "BERT-large (334M)", "MiniLM-L6 (22.7M)", "tiny BERT (random) (4.40M)"
FT, PT, V2 = "Fine-tuning", "Prompt tuning (Lester)", "P-Tuning v2"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.write_fixture(tmp_path_factory.mktemp("analysis") / "runs")


@pytest.fixture(scope="module")
def df(runs: Path) -> pd.DataFrame:
    return collect([runs])


@pytest.fixture(scope="module")
def pub() -> pd.DataFrame:
    return load_published()


def _frame(records: list[dict]) -> pd.DataFrame:
    return records_to_frame([(f"r{i}", r) for i, r in enumerate(records)])


# ------------------------------------------------------------------ collect


def test_frame_rows_status_and_values(df: pd.DataFrame) -> None:
    assert list(df.columns) == list(COLUMNS)
    # 18 rte/boolq cells x 3 seeds + 7 cb cells x 3 seeds x 2 metrics + 2 NER cells x 3 seeds x 2 splits
    assert (df["status"] == "completed").sum() == 108
    assert (df["status"] == "failed").sum() == 1
    assert (df["status"] == "missing").sum() == 8  # the 'running' record + 7 NER cells never run
    assert run_counts(df) == {"completed": 81, "failed": 1, "missing": 8}

    def value(model: str, method: str, task: str, seed: int, metric: str, split: str) -> float:
        sel = df[(df.model == model) & (df.method == method) & (df.task == task) & (df.seed == seed)
                 & (df.metric == metric) & (df.split == split)]
        assert len(sel) == 1
        return float(sel["value"].iloc[0])

    assert value("bert_large", "ptuning_v2", "rte", 2, "accuracy", "eval") == 80.0
    assert value("bert_large", "ptuning_v2", "cb", 0, "f1_macro", "eval") == 92.0
    assert value("minilm_l6", "ptuning_v2", "conll04", 0, "f1", "test") == 77.5
    failed = df[df.status == "failed"].iloc[0]
    assert (failed.model, failed.method, failed.task, failed.seed) == (*fx.FAILED_CELL, 0)
    assert failed.error == fx.FAILED_ERROR and math.isnan(failed.value) and failed.metric == "accuracy"
    running = df[(df.status == "missing") & (df.model == "tiny_bert") & (df.task == "cb")]
    assert len(running) == 1 and running.seed.iloc[0] == 0 and "running" in running.error.iloc[0]
    never = df[(df.status == "missing") & (df.task == "conll04")]
    assert len(never) == 7 and never.seed.isna().all()
    # names, families and metrics of cells without a record come from the other records
    assert set(never.primary_metric) == {"f1"} and set(never.family) == {"NER"}
    assert set(never.task_display) == {"CoNLL04"}
    assert never[never.model == "bert_large"].backbone_params.iloc[0] == 333_579_264
    row = df[(df.model == "bert_large") & (df.method == "ptuning_v2") & (df.task == "rte") & (df.seed == 1)].iloc[0]
    assert row.params_trainable == 985_090
    assert row.trainable_pct == pytest.approx(985_090 / 333_579_264 * 100)
    assert (row.train_seconds, row.peak_memory_mb, row.task_version, row.family) == (20.0, 1210.0, 1, "SuperGLUE")
    assert row.selection_rule == "best_eval_epoch" and row.torch == "2.13.0" and row.git_commit == "abc123"


def test_explicit_grid_and_groups() -> None:
    recs = [fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, metrics={"accuracy": 60.0}),
            fx.make_record("minilm_l6", "ptuning_v2", "rte", 1, metrics={"accuracy": 62.0}, group="sweep_a"),
            fx.make_record("bert_large", "finetune", "rte", 0, metrics={"accuracy": 70.0}, group="sweep_a")]
    frame = _frame(recs)
    missing = frame[frame.status == "missing"]  # the grid is per group
    assert sorted(zip(missing.group, missing.model, missing.method, strict=True)) == [
        ("sweep_a", "bert_large", "ptuning_v2"), ("sweep_a", "minilm_l6", "finetune")]
    t = family_table(frame, "SuperGLUE")
    assert list(t.text.columns[:3]) == ["Group", "Backbone", "Method"]
    assert t.cell(["default", MINI, V2], "RTE") == ("60.0", False)
    assert t.cell(["sweep_a", MINI, V2], "RTE")[0] == "62.0"
    assert t.cell(["sweep_a", MINI, FT], "RTE")[0] == "-"
    grid = ExpectedGrid(["minilm_l6"], ["ptuning_v2"], ["rte", "boolq"], seeds=[0, 1])
    missing = records_to_frame([("r0", recs[0])], expected=grid).query("status == 'missing'")
    assert sorted(zip(missing.task, missing.seed, strict=True)) == [("boolq", 0), ("boolq", 1), ("rte", 1)]


def test_a_sweep_inside_a_group_is_shown_side_by_side() -> None:
    """Two learning rates of one cell are two configurations, not the newest record."""
    recs = [fx.make_record("minilm_l6", "ptuning_v2", "rte", s, metrics={"accuracy": v}, options={"train.lr": lr})
            for lr, values in ((0.01, (60.0, 62.0)), (0.003, (70.0, 72.0))) for s, v in enumerate(values)]
    t = family_table(_frame(recs), "SuperGLUE")
    assert t.cell([MINI, f"{V2} [train.lr=0.01]"], "RTE") == ("61.0 ± 1.4", False)
    assert t.cell([MINI, f"{V2} [train.lr=0.003]"], "RTE") == ("71.0 ± 1.4", True)
    assert "[variant] = options that differ" in t.caption


def test_seeds_of_different_task_versions_are_not_averaged() -> None:
    recs = [fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, metrics={"accuracy": 60.0}),
            fx.make_record("minilm_l6", "ptuning_v2", "rte", 1, metrics={"accuracy": 62.0}),
            fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, metrics={"accuracy": 90.0}, task_version=2)]
    t = family_table(_frame(recs), "SuperGLUE")
    assert t.cell([MINI, f"{V2} [task version=1]"], "RTE")[0] == "61.0 ± 1.4 (n=2)"
    assert t.cell([MINI, f"{V2} [task version=2]"], "RTE")[0] == "90.0 (n=1)"


def test_names_come_from_the_records() -> None:
    """A task, family and metric the analysis package does not know are shown as recorded."""
    frame = _frame([fx.make_record("minilm_l6", "lora", "sst2", s, metrics={"accuracy": 90.0 + s}) for s in (0, 1)])
    t = family_table(frame, "GLUE")
    assert list(t.text.columns) == ["Backbone", "Method", "SST-2", "Avg"]
    assert t.cell([MINI, "LoRA"], "SST-2")[0] == "90.5 ± 0.7"


def test_synthetic_data_is_labelled_synthetic() -> None:
    frame = _frame([fx.make_record("minilm_l6", "finetune", "rte", 0, metrics={"accuracy": 100.0},
                                   source="synthetic")])
    t = family_table(frame, "SuperGLUE")
    assert list(t.text.columns) == ["Backbone", "Method", "RTE-style (synthetic)", "Avg"]
    assert "Data: synthetic (generated rows" in t.caption


# ------------------------------------------------------------------ tables


def test_superglue_table(df: pd.DataFrame) -> None:
    t = family_table(df, "SuperGLUE")
    assert list(t.text.columns) == ["Backbone", "Method", "BoolQ", "CB", "RTE", "Avg"]
    assert [list(r) for r in t.text[["Backbone", "Method"]].values[:3]] == [[TINY, FT], [TINY, PT], [TINY, V2]]
    assert list(t.text["Backbone"]) == [TINY] * 3 + [MINI] * 3 + [BL] * 3
    c = t.cell
    assert c([BL, V2], "RTE") == ("79.0 ± 1.0", True) and c([BL, FT], "RTE") == ("78.0 ± 1.0", False)
    assert c([BL, FT], "BoolQ") == ("76.0 ± 0.5", True) and c([BL, V2], "CB") == ("94.0 ± 1.0", True)
    assert c([BL, PT], "CB") == ("75.0 ± 3.0", False)
    assert c([BL, V2], "Avg") == ("82.3", True) and c([BL, FT], "Avg") == ("82.0", False)
    assert c([MINI, FT], "RTE") == ("65.0 ± 1.5", True) and c([MINI, FT], "Avg")[0] == "71.7"
    assert c([TINY, FT], "BoolQ")[1] and c([TINY, V2], "BoolQ")[1]  # ties bold both
    # missing '-', failed with a footnote, partial averages starred and never bold
    assert c([TINY, V2], "CB") == ("-", False) and c([TINY, V2], "Avg") == ("58.0*", False)
    assert c([MINI, PT], "CB") == ("failed [1]", False) and c([MINI, PT], "Avg")[0] == "61.0*"
    assert t.footnotes == [f"{MINI} / {PT} / CB failed (seed 0: {fx.FAILED_ERROR})"]
    md = t.to_markdown()
    assert re.search(rf"\| {re.escape(BL)} +\| {V2} +\| +74.0 ± 0.5 \| +\*\*94.0 ± 1.0\*\* \| +\*\*79.0 ± 1.0\*\* "
                     r"\| +\*\*82.3\*\* \|", md)
    assert f"[1] {MINI} / {PT} / CB failed" in md
    tex = t.to_latex()
    assert "\\textbf{79.0 $\\pm$ 1.0}" in tex and "failed [1]" in tex and "\\begin{tabular}{llrrrr}" in tex
    assert "\\toprule" in tex and "\\label{tab:superglue}" in tex
    rows = list(csv.reader(t.to_csv().splitlines()))
    assert rows[0] == list(t.text.columns) and [BL, V2, "74.0 ± 0.5", "94.0 ± 1.0", "79.0 ± 1.0", "82.3"] in rows
    assert rows[-1] == [f"# [1] {MINI} / {PT} / CB failed (seed 0: {fx.FAILED_ERROR})"]


def test_ner_table_reports_the_test_split(df: pd.DataFrame) -> None:
    t = family_table(df, "NER")
    assert list(t.text.columns) == ["Backbone", "Method", "CoNLL04", "Avg"]
    assert t.cell([MINI, FT], "CoNLL04")[0] == "83.0 ± 1.0" and t.cell([MINI, V2], "CoNLL04")[0] == "78.0 ± 0.5"
    assert t.cell([BL, V2], "CoNLL04")[0] == "-"
    assert "CoNLL04: f1 (test split, checkpoint chosen on dev)" in t.caption
    assert family_table(df, "QA") is None


def _footnote(t: Table, text: str) -> str:
    """The footnote a cell's trailing ``[k]`` mark points to."""
    return t.footnotes[int(text.rsplit("[", 1)[1][:-1]) - 1]


def test_comparison_table(df: pd.DataFrame, pub: pd.DataFrame) -> None:
    """Per cell: ours (mean ± std, n), the paper's value, Δ = ours − paper, the official re-run."""
    t = comparison_table(df, "SuperGLUE", pub)
    assert t.name == "superglue_vs_published"
    assert list(t.text.columns) == ["Backbone", "Method", "Task", "Metric", "Settings", "Ours", "n", "Paper",
                                    "Δ (ours − paper)", "Official re-impl."]
    row = [BL, V2, "RTE"]
    assert [t.cell(row, c)[0].split(" [")[0] for c in ("Metric", "Settings", "Ours", "n", "Paper",
                                                         "Δ (ours − paper)", "Official re-impl.")] == [
        "Acc.", "defaults", "79.0 ± 1.0", "3", "78.3", "+0.7", "80.1"]
    paper_note = _footnote(t, t.cell(row, "Paper")[0])
    assert "P-Tuning v2 (Liu et al., ACL 2022" in paper_note and "Table 2 (SuperGLUE dev)" in paper_note
    official_note = _footnote(t, t.cell(row, "Official re-impl.")[0])
    assert official_note.startswith("Official re-implementation: P-Tuning v2 (repo README)")
    assert "github.com/THUDM/P-tuning-v2" in official_note
    assert [t.cell([BL, FT, "BoolQ"], c)[0].split(" [")[0] for c in ("Paper", "Δ (ours − paper)")] == ["77.7", "-1.7"]
    assert t.cell([BL, FT, "CB"], "Δ (ours − paper)")[0] == "-2.6"
    assert t.cell([BL, FT, "RTE"], "Δ (ours − paper)")[0] == "+7.6"  # 78.0 - 70.4
    combined = t.cell([BL, PT, "BoolQ"], "Paper")[0]  # the paper's combined PT row answers for prompt tuning
    assert combined.startswith("67.2 PT [") and "combined PT row" in _footnote(t, combined)
    assert t.cell([BL, PT, "BoolQ"], "Δ (ours − paper)")[0] == "-1.2"
    assert t.cell([BL, V2, "CB"], "Official re-impl.")[0] == ""  # the README has no CB cell
    # Avg over the row's tasks: ours (74 + 94 + 79) / 3, the paper's (75.8 + 94.6 + 78.3) / 3
    assert [t.cell([BL, V2, "Avg"], c)[0] for c in ("Ours", "Paper", "Δ (ours − paper)")] == ["82.3", "82.9", "-0.6"]
    # cells the paper does not report, missing and failed cells stay in the table
    assert [t.cell([TINY, V2, "CB"], c)[0] for c in ("Ours", "n", "Paper", "Δ (ours − paper)")] == ["-", "0", "n/p", ""]
    assert t.cell([MINI, PT, "CB"], "Ours")[0] == "failed [1]" and t.cell([MINI, PT, "CB"], "Paper")[0] == "n/p"
    assert t.footnotes[0] == f"{MINI} / {PT} / CB failed (seed 0: {fx.FAILED_ERROR})"
    md = t.to_markdown()
    assert re.search(r"\| BERT-large \(334M\) +\| P-Tuning v2 +\| RTE +\| Acc\. +\| defaults +\| +79\.0 ± 1\.0 \| +3 \| +78\.3 \[\d+\] "
                     r"\| +\+0\.7 \| +80\.1 \[\d+\] \|", md), md
    assert "paper cells we have not run: table superglue_not_run" in t.caption
    tex = t.to_latex()
    assert "$\\Delta$ (ours $-$ paper)" in tex and "79.0 $\\pm$ 1.0" in tex and "\\begin{tabular}{lllllrrrrr}" in tex
    rows = list(csv.reader(t.to_csv().splitlines()))
    assert rows[0] == list(t.text.columns)
    assert [BL, V2, "RTE", "Acc.", "defaults", "79.0 ± 1.0", "3", t.cell(row, "Paper")[0], "+0.7",
            t.cell(row, "Official re-impl.")[0]] in rows


def test_delta_is_ours_minus_the_paper_on_the_unrounded_mean(pub: pd.DataFrame) -> None:
    recs = [fx.make_record("bert_large", "ptuning_v2", "rte", s, metrics={"accuracy": v})
            for s, v in enumerate((80.0, 81.0, 81.3))]
    t = comparison_table(_frame(recs), "SuperGLUE", pub)
    row = [BL, V2, "RTE"]
    assert t.cell(row, "Ours")[0] == "80.8 ± 0.7" and t.cell(row, "n")[0] == "3"
    assert t.cell(row, "Δ (ours − paper)")[0] == f"{round(80.7667 - 78.3, 1):+.1f}" == "+2.5"
    assert len(t.text) == 1  # one task: no Avg row


def test_paper_cells_not_run_are_listed(df: pd.DataFrame, pub: pd.DataFrame) -> None:
    t = not_run_table(df, "SuperGLUE", pub)
    assert t.name == "superglue_not_run"
    assert list(t.text.columns) == ["Paper table", "Backbone", "Method", "Why", "Paper values not run", "Cells"]
    key = ["P-Tuning v2 Table 2", "BERT-large (335M) [bert_large]", "PT-2 [ptuning_v2]"]
    # we ran RTE, BoolQ and CB: the other five Table-2 tasks are listed with the paper's values
    assert t.cell(key, "Paper values not run")[0] == (
        "COPA Acc. 73.0; MultiRC F1a 70.6; ReCoRD F1 72.8; WiC Acc. 75.1; WSC Acc. 68.3")
    assert t.cell(key, "Cells")[0] == "5" and t.cell(key, "Why")[0] == "no record"
    assert t.cell(["P-Tuning v2 Table 2", "RoBERTa-large (355M) [roberta_large]", "FT [finetune]"], "Cells")[0] == "8"
    glm = ["P-Tuning v2 Table 2", "GLM-xxlarge (10.0B) [glm_xxlarge]", "PT [prompt_tuning+ptuning_v1]"]
    assert t.cell(glm, "Why")[0] == "GLM-xxlarge (10B) is not a suite backbone"
    # v1 Table 4: our BERT-large fine-tuning covers BoolQ, CB (acc and F1) and RTE
    v1 = ["P-Tuning v1 Table 4", "BERT-large-cased (335M) [bert_large]",
          "Fine-tuning (taken from the SuperGLUE paper) [finetune]"]
    assert t.cell(v1, "Paper values not run")[0] == "WiC Acc. 74.9; MultiRC EM 24.7 / F1a 70.5; WSC Acc. 68.3; COPA Acc. 69.0"
    # 96 Table-2 cells + 2 x 72 v1 cells, minus the 9 Table-2 and 4 v1 Table-4 cells we ran
    assert t.caption.startswith("227 cells the papers report")
    assert sum(int(c) for c in t.text["Cells"]) == 227
    # families without a single run of ours are listed too, and a failed run says so
    qa = not_run_table(df, "QA", pub)
    assert qa is not None and sum(int(c) for c in qa.text["Cells"]) == 48
    failed = _frame([fx.make_record("bert_large", "ptuning_v2", "rte", 0, status="failed", error="boom")])
    listed = not_run_table(failed, "SuperGLUE", pub)
    assert listed.cell([*key, "our run failed"], "Paper values not run")[0] == "RTE Acc. 78.3"
    assert listed.cell([*key, "no record"], "Cells")[0] == "7"


def test_published_lookup(pub: pd.DataFrame) -> None:
    hit = lookup(pub, "bert_large", "ptuning_v2", "rte", "accuracy")
    assert hit is not None and hit["value"] == 78.3 and not hit["combined"] and hit["ref"] == "ptv2-table2"
    assert lookup(pub, "bert_large", "ptuning_v2", "rte", "accuracy", OFFICIAL)["value"] == 80.1
    # our frozen P-Tuning v1: the v2 paper's frozen PT row, not the v1 paper's backbone-tuned 77.8
    hit = lookup(pub, "bert_large", "ptuning_v1", "boolq", "accuracy")
    assert hit["value"] == 67.2 and hit["combined"] and not differs(hit)
    hit = lookup(pub, "bert_base", "ptuning_v1", "boolq", "accuracy")  # only the v1 paper has BERT-base
    assert hit["value"] == 73.9 and hit["ref"] == "ptv1-table3" and differs(hit)
    assert lookup(pub, "bert_large", "prefix_tuning", "rte", "accuracy") is None
    assert lookup(pub, "bert_large_uncased", "ptuning_v2", "conll04", "f1")["value"] == 84.5
    # the README names its NER checkpoint: bert-large-uncased, not our cased bert_large
    assert lookup(pub, "bert_large_uncased", "ptuning_v2", "conll04", "f1", OFFICIAL)["value"] == 84.5
    assert lookup(pub, "bert_large", "ptuning_v2", "conll04", "f1", OFFICIAL) is None
    assert lookup(pub, "bert_large", "ptuning_v2", "conll04", "f1") is None
    assert lookup(pub, "roberta_large", "ptuning_v2", "squad", "em")["value"] == 88.5
    assert lookup(pub, "roberta_large", "ptuning_v2", "squad", "em", OFFICIAL)["value"] == 88.1
    assert lookup(pub, "roberta_large", "finetune", "rte", "accuracy")["value"] == 86.6
    assert lookup(pub, "deberta_xlarge", "mpt2", "squad_v2", "f1")["value"] == 90.8
    assert lookup(pub, "gpt2_medium", "finetune", "cb", "f1_macro")["value"] == 73.2
    # the GLM README (kind=other) is never a paper value
    assert lookup(pub, "deberta_v2_xxlarge", "finetune", "rte", "accuracy") is None
    assert lookup(pub, "deberta_v2_xxlarge", "finetune", "rte", "accuracy", OTHER)["value"] == 93.5


def test_cost_table(df: pd.DataFrame) -> None:
    t = cost_table(df)
    row = [BL, V2, "RTE"]
    assert [t.cell(row, c)[0] for c in ("Trainable params", "Trainable % of backbone", "Train time (s)",
                                        "Peak memory (MB)", "Seeds")] == ["985,090", "0.295%", "20.0 ± 10.0", "1210", "3"]
    assert t.cell([BL, PT, "BoolQ"], "Trainable % of backbone")[0] == "0.00675%"
    assert t.cell([MINI, FT, "RTE"], "Trainable % of backbone")[0] == "100%"
    assert t.cell([MINI, PT, "CB"], "Seeds")[0] == "failed [1]" and t.cell([MINI, PT, "CB"], "Train time (s)")[0] == "-"
    assert t.cell([BL, V2, "CoNLL04"], "Trainable params")[0] == "-"
    assert t.cell(row, "Stored params")[0] == "985,090"  # 2 x 24 layers x 20 x 1024 + head
    assert t.cell([MINI, FT, "RTE"], "Stored params")[0] == f"{22_713_216 + 384 * 2 + 2:,}"


# ------------------------------------------------------------------ figures


PAPER_FT, PAPER_PT, PAPER_V2 = (f"{label} (paper Table 2)" for label in (
    "FT (fine-tuning)", "PT (prompt tuning & P-Tuning v1)", "PT-2 (P-Tuning v2)"))


def _table2_averages(tasks: tuple[str, ...]) -> dict[tuple[str, str], float]:
    """(paper method label, backbone label) -> the average of Table 2's ``tasks``, read from
    published.csv with the csv module."""
    with PUBLISHED_CSV.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["ref"] == "ptv2-table2" and r["task"] in tasks]
    by_cell: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        by_cell.setdefault((r["method_label"], r["backbone_label"]), []).append(float(r["value"]))
    assert all(len(v) == len(tasks) for v in by_cell.values())
    return {k: sum(v) / len(v) for k, v in by_cell.items()}


def test_scale_figure_series(df: pd.DataFrame, pub: pd.DataFrame, tmp_path: Path) -> None:
    series = plot_scale(df, tmp_path, ("rte", "boolq", "cb"), pub)
    assert set(series) == {FT, PT, V2, PAPER_FT, PAPER_PT, PAPER_V2}
    # tiny BERT's P-Tuning v2 lacks CB and MiniLM's prompt tuning failed CB: not averaged
    assert [x for x, _ in series[V2]] == [22_713_216, 333_579_264]
    assert [round(y, 3) for _, y in series[V2]] == [69.667, 82.333]
    assert [round(y, 3) for _, y in series[PT]] == [52.667, 67.0]
    side = json.loads((tmp_path / "scale_vs_score.json").read_text())
    # std of an average of independent task means: sqrt(1 + 1 + 4) / 3 and sqrt(1 + 0.25 + 1) / 3
    assert [round(e, 4) for e in side["errors"][V2]] == [round(math.sqrt(6) / 3, 4), 0.5]
    # the paper's Table 2: four backbones per method, averaged over the same three tasks
    paper = side["paper"]
    assert paper["ref"] == "ptv2-table2" and paper["tasks"] == ["rte", "boolq", "cb"] and paper["same_tasks_as_ours"]
    assert set(paper["series"]) == {PAPER_FT, PAPER_PT, PAPER_V2}
    expected = _table2_averages(("rte", "boolq", "cb"))
    for label, method in ((PAPER_FT, "FT"), (PAPER_PT, "PT"), (PAPER_V2, "PT-2")):
        points = paper["series"][label]
        assert [p["backbone"] for p in points] == ["BERT-large", "RoBERTa-large", "GLM-xlarge", "GLM-xxlarge"]
        assert [p["params"] for p in points] == [335e6, 355e6, 2e9, 1e10]
        assert [p["value"] for p in points] == pytest.approx([expected[(method, p["backbone"])] for p in points])
        assert side["series"][label] == [[p["params"], p["value"]] for p in points]
    assert paper["series"][PAPER_V2][0]["value"] == pytest.approx((78.3 + 75.8 + 94.6) / 3)
    assert (tmp_path / "scale_vs_score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "scale_vs_score.pdf").read_bytes()[:5] == b"%PDF-"
    other = plot_scale(df, tmp_path, ("rte",), pub, stem="scale_rte")
    assert other[V2][0] == (4_400_000, 54.0)
    assert [y for _, y in other[PAPER_FT]] == [70.4, 86.6, 90.3, 93.1]  # Table 2's RTE row
    assert set(plot_scale(df, tmp_path, ("rte",), None, stem="scale_ours")) == {FT, PT, V2}


def _rte_conll04(source: str) -> list[dict]:
    return [fx.make_record("minilm_l6", m, t, 0, metrics={fx.PRIMARY[t]: v}, source=source,
                           test_metrics={"f1": v} if t == "conll04" else None)
            for m, values in (("finetune", (90.0, 80.0)), ("ptuning_v2", (70.0, 60.0)))
            for t, v in zip(("rte", "conll04"), values, strict=True)]


def test_scale_figure_draws_our_points_without_the_figure_1_tasks(pub: pd.DataFrame, tmp_path: Path) -> None:
    """Without BoolQ or CB the tasks every cell has are averaged instead; the paper's series,
    which cannot average CoNLL04, averages every Table-2 task (and says so); synthetic tasks
    are never drawn against the paper's SuperGLUE averages."""
    synthetic = _frame(_rte_conll04("synthetic"))
    series = plot_scale(synthetic, tmp_path, published=pub)
    assert series == {FT: [(22_713_216.0, 85.0)], V2: [(22_713_216.0, 65.0)]}
    side = json.loads((tmp_path / "scale_vs_score.json").read_text())
    assert side["tasks"] == ["conll04", "rte"] and side["asked"] == ["rte", "boolq", "cb"]
    assert all(e is None for e in side["errors"][FT])  # one seed: no error bar
    assert side["paper"]["series"] == {}  # synthetic: no shared scale with SuperGLUE dev
    plot_scale(_frame(_rte_conll04("local")), tmp_path, published=pub)
    paper = json.loads((tmp_path / "scale_vs_score.json").read_text())["paper"]
    table2 = ["boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc"]
    assert paper["tasks"] == table2 and not paper["same_tasks_as_ours"]
    assert all(len(points) == 4 for points in paper["series"].values()) and len(paper["series"]) == 3
    ft = _table2_averages(tuple(table2))
    assert [p["value"] for p in paper["series"][PAPER_FT]] == pytest.approx(
        [ft[("FT", b)] for b in ("BERT-large", "RoBERTa-large", "GLM-xlarge", "GLM-xxlarge")])


def test_efficiency_series(df: pd.DataFrame, tmp_path: Path) -> None:
    eff = plot_param_efficiency(df, tmp_path)
    assert set(eff) == {f"SuperGLUE: {m}" for m in (FT, PT, V2)} | {f"NER: {FT}", f"NER: {V2}"}
    assert eff[f"NER: {V2}"] == [(pytest.approx(92_930 / 22_713_216 * 100), 78.0)]
    assert len(eff[f"SuperGLUE: {V2}"]) == 8  # 9 cells minus the missing one
    assert (tmp_path / "param_efficiency.png").stat().st_size > 5000


def test_task_bars(df: pd.DataFrame) -> None:
    fig, series, drawn = draw_task_bars(df, "minilm_l6")
    assert series == {FT: [("BoolQ", 70.0), ("CB", 80.0), ("RTE", 65.0), ("CoNLL04", 83.0)],
                      PT: [("BoolQ", 64.0), ("RTE", 58.0)],
                      V2: [("BoolQ", 68.0), ("CB", 78.0), ("RTE", 63.0), ("CoNLL04", 78.0)]}
    assert drawn["failed"] == [("CB", PT)]
    ax = fig.axes[0]
    ticks = ax.get_xticks()
    bars = [p for p in ax.patches if p.get_height() > 0]
    for tick, label in zip(ticks, drawn["groups"], strict=True):  # the bars of a task centre on its tick
        centres = [b.get_x() + b.get_width() / 2 for b in bars if abs(b.get_x() + b.get_width() / 2 - tick) < 0.45]
        assert centres and sum(centres) / len(centres) == pytest.approx(tick), label
    low, high = ax.get_ylim()
    assert [t.get_text() for t in ax.texts] == ["failed"] and low <= ax.texts[0].get_position()[1] <= high
    legend = {t.get_text(): p.get_facecolor() for t, p in zip(ax.get_legend().get_texts(),
                                                              ax.get_legend().get_patches(), strict=True)}
    from matplotlib.colors import to_rgba

    assert legend == {FT: to_rgba(style.style("finetune")["color"]), PT: to_rgba(style.style("prompt_tuning")["color"]),
                      V2: to_rgba(style.style("ptuning_v2")["color"])}
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(containers) == len(bars) and all(c.errorbar is not None for c in containers)  # 3 seeds each


def test_task_bars_when_every_cell_failed() -> None:
    recs = [fx.make_record("bert_large", m, t, 0, status="failed", error="boom")
            for m in ("finetune", "ptuning_v2") for t in ("rte", "boolq", "cb")]
    fig, series, drawn = draw_task_bars(_frame(recs), "bert_large")
    assert series == {FT: [], V2: []} and len(drawn["failed"]) == 6
    width, height = fig.get_size_inches()
    assert width <= 8 and height <= 4
    ax = fig.axes[0]
    (left, right), (low, high) = ax.get_xlim(), ax.get_ylim()
    assert all(left <= t.get_position()[0] <= right and low <= t.get_position()[1] <= high for t in ax.texts)
    single = draw_task_bars(_frame([fx.make_record("bert_large", "finetune", "rte", 0, metrics={"accuracy": 70.0})]),
                            "bert_large")[0]
    containers = [c for c in single.axes[0].containers if isinstance(c, BarContainer)]
    assert containers and all(c.errorbar is None for c in containers)  # one seed: no zero-length error bar


# ------------------------------------------------------------------ CLI / report


def test_report_command(runs: Path) -> None:
    assert main(["report", "--runs", str(runs)]) == 0
    report = runs / "report"
    text = (report / "report.md").read_text()
    assert "- Presets/groups: `default`" in text
    assert "27 completed, 1 failed, 8 missing" in text and "81 completed, 1 failed, 8 missing" in text
    assert "torch 2.13.0; transformers 5.23.0; git commit abc123" in text
    assert "](tables/superglue_vs_published.tex)" in text and "![scale_vs_score](figures/scale_vs_score.png)" in text
    assert "CUDA out of memory" in text
    assert "### SuperGLUE: ours vs. the papers" in text and "### QA: paper cells not run" in text
    for name in ("superglue", "superglue_vs_published", "superglue_not_run", "ner", "ner_vs_published",
                 "ner_not_run", "qa_not_run", "cost"):
        for ext in ("md", "tex", "csv"):
            assert (report / "tables" / f"{name}.{ext}").stat().st_size > 100
    for stem in ("scale_vs_score", "param_efficiency", "task_bars_bert_large", "task_bars_minilm_l6",
                 "task_bars_tiny_bert"):
        assert (report / "figures" / f"{stem}.png").is_file() and (report / "figures" / f"{stem}.pdf").is_file()
    assert len(pd.read_csv(report / "results.csv")) == 117


def test_cli_tables_out_and_group_filter(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tables", "--runs", str(runs), "--out", str(tmp_path), "--no-published"]) == 0
    assert (tmp_path / "tables" / "superglue.md").is_file()
    assert not (tmp_path / "tables" / "superglue_vs_published.md").exists()
    assert main(["tables", "--runs", str(runs), "--out", str(tmp_path / "x"), "--group", "nope"]) == 2
    assert "no result.json records found in groups nope" in capsys.readouterr().err


def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tables", "--runs", str(tmp_path / "absent")]) == 2
    assert f"{tmp_path / 'absent'}: runs directory does not exist" in capsys.readouterr().err
    bad = tmp_path / "runs" / "default" / "rte" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    assert main(["tables", "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis: error: ") and str(bad) in err and "invalid JSON" in err
    record = fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, metrics={"accuracy": 1.0})
    del record["cell"]["seed"]
    bad.write_text(json.dumps(record))
    with pytest.raises(AnalysisError, match=r"result\.json: malformed .*cell\.seed"):
        collect([tmp_path / "runs"])
    bad.write_text(json.dumps({**fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, metrics={"accuracy": 1.0}),
                               "schema_version": 1}))
    with pytest.raises(AnalysisError, match="schema_version 1; this suite reads version 2"):
        collect([tmp_path / "runs"])
    bad.write_text(json.dumps(fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, status="running")
                              | {"status": "completed"}))
    with pytest.raises(AnalysisError, match="primary metric 'accuracy' not in metrics"):
        collect([tmp_path / "runs"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnalysisError, match="no result.json records found"):
        collect([empty])


def test_analysis_never_imports_the_training_stack() -> None:
    code = ("import sys, analysis.cli, analysis.tables, analysis.figures, analysis.report; "
            "assert not {'torch', 'transformers', 'ptuning.runner'} & set(sys.modules), sorted(sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_python_dash_m_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "analysis", "plots", "--runs", str(tmp_path / "nowhere")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"analysis: error: {tmp_path / 'nowhere'}: runs directory does not exist"


def test_a_cell_run_by_the_runner_shows_in_the_table(tmp_path: Path) -> None:
    """The contract between the runner and analysis: its record is read and its number shown."""
    from hydra import compose, initialize_config_dir

    from ptuning.runner import run_cell

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "method=lora", "model=tiny_bert", "task=rte", "data.source=synthetic", "data.synthetic_train=16",
            "data.synthetic_eval=8", "train.max_steps=1", f"paths.runs_dir={tmp_path}"])
    record = run_cell(cfg).record
    t = family_table(collect([tmp_path]), "SuperGLUE")
    assert t.cell(["tiny BERT (random) (1.01M)", "LoRA"], "RTE-style (synthetic)")[0] == \
        f"{record['metrics']['accuracy']:.1f}"


# ------------------------------------------------------------------ W&B


class FakeSummary:
    """Mimics wandb's lazily loaded summary: dict-like with a raw ``_json_dict``."""

    def __init__(self, data: dict) -> None:
        self._json_dict = data

    def keys(self) -> KeysView[str]:
        return self._json_dict.keys()

    def __getitem__(self, k: str) -> object:
        return self._json_dict[k]


class FakeApi:
    def __init__(self, runs: list) -> None:
        self._runs, self.calls = runs, []

    def runs(self, path: str, filters: dict | None = None) -> list:
        self.calls.append((path, filters))
        return list(self._runs)


def _wb_run(name: str, state: str, summary: object, group: str = "default") -> SimpleNamespace:
    return SimpleNamespace(name=name, id=f"id-{name}", group=group, state=state, tags=[], config={}, summary=summary)


def test_wandb_collector() -> None:
    done = fx.make_record("bert_large", "ptuning_v2", "rte", 0, metrics={"accuracy": 81.5})
    done2 = fx.make_record("bert_large", "ptuning_v2", "rte", 1, metrics={"accuracy": 78.5})
    failed = fx.make_record("bert_large", "finetune", "rte", 0, status="failed", error="boom")
    runs = [_wb_run("a", "finished", {"result": done}),
            _wb_run("b", "finished", FakeSummary({"result": json.dumps(done2), "acc": 1.0})),
            _wb_run("c", "failed", {"result": failed}),
            _wb_run("d", "crashed", {}),
            _wb_run("f", "finished", {"result": {**done, "group": "other"}}, group="other")]
    api = FakeApi(runs)
    frame = collect(wandb_path="ent/proj/default", api=api)
    assert api.calls == [("ent/proj", {"group": "default"})]
    assert frame.attrs["notes"] == ["wandb:ent/proj/id-d (d, state crashed): no result record; counted as missing"]
    v2 = frame[(frame.method == "ptuning_v2") & (frame.status == "completed")]
    assert sorted(v2.value) == [78.5, 81.5] and set(v2.origin) == {"wandb:ent/proj/id-a", "wandb:ent/proj/id-b"}
    assert frame[frame.status == "failed"].error.tolist() == ["RuntimeError: boom"]
    t = family_table(frame, "SuperGLUE")
    assert t.cell([BL, V2], "RTE")[0] == "80.0 ± 2.1" and t.cell([BL, FT], "RTE")[0] == "failed [1]"
    frame2 = collect(wandb_path="ent/proj", api=FakeApi(runs[:1] + runs[-1:]))
    assert set(frame2.group) == {"default", "other"}


def test_the_same_run_from_two_sources_is_kept_once(runs: Path) -> None:
    rec = fx.make_record("bert_large", "ptuning_v2", "rte", 0, metrics={"accuracy": 78.0})
    frame = collect([runs], wandb_path="e/p", api=FakeApi([_wb_run("a", "finished", {"result": rec})]))
    sel = frame[(frame.model == "bert_large") & (frame.method == "ptuning_v2") & (frame.task == "rte")]
    assert len(sel) == 3
    variant = rec["identity"]["variant"]
    assert any(f"duplicate record for default/rte/bert_large/ptuning_v2/0/{variant}" in n for n in frame.attrs["notes"])


# ------------------------------------------------------------------ published numbers


def test_published_csv_rows_are_sourced() -> None:
    from experiments import build_published
    from ptuning.tasks import TASKS

    extra_tests = {f"{name}_{test}" for name, cls in TASKS.items() for test in cls.extra_tests}
    with PUBLISHED_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and "use" not in rows[0]  # no figure-only rows any more
    for r in rows:
        assert r["source"].strip() and r["status"].startswith(
            ("TRANSCRIBED_FROM_PAPER_SCREENSHOT", "READ_FROM_SOURCE", "QUOTED_SECONDARY")), r
        assert r["kind"] in ("paper", "official re-implementation", "other"), r
        assert (r["kind"] == "official re-implementation") == r["paper"].startswith("P-Tuning v2 (repo README)"), r
        assert r["source_file"] != "ptv2_fig1_barchart_approx.csv" and "Figure 1" not in r["table"], r
        assert (REPO / "conf" / "task" / f"{r['task']}.yaml").exists() or r["task"] in extra_tests, r
        assert r["backbone_params"].isdigit() or r["kind"] == "other", r  # the GLM README gives no DeBERTa size
        outside = {k for k in (r["model"], r["method"]) if k in build_published.NOT_IN_SUITE}
        assert r["not_in_suite"] == "; ".join(build_published.NOT_IN_SUITE[k] for k in (r["model"], r["method"])
                                              if k in outside), r
        assert r["model"] in build_published.NOT_IN_SUITE or (REPO / "conf" / "model" / f"{r['model']}.yaml").exists(), r
        assert r["method"] in build_published.NOT_IN_SUITE or r["method"] in style.METHOD_STYLE, r
    keys = [(r["kind"], r["ref"], r["task"], r["metric"], r["model"], r["method"]) for r in rows]
    assert len(keys) == len(set(keys))


def _reference_dir() -> Path | None:
    for candidate in (os.environ.get("PTUNING_REFERENCE_DIR"), REPO.parent / "shared" / "reference"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def test_published_csv_is_reproduced_by_builder(tmp_path: Path) -> None:
    from experiments import build_published

    ref = _reference_dir()
    if ref is None:
        pytest.skip("shared reference dir absent (set PTUNING_REFERENCE_DIR)")
    rows, skipped, skipped_files = build_published.build(ref)
    assert build_published.render_csv(rows) == PUBLISHED_CSV.read_text(encoding="utf-8")
    assert build_published.render_notes(rows, skipped, skipped_files) == (
        REPO / "analysis" / "PUBLISHED.md").read_text(encoding="utf-8")
    assert any("albert-xxlarge-v2" in s.reason for s in skipped)
    assert build_published.main([str(ref), "--check"]) == 0


def _transcribed_rows(ref: Path) -> list[dict[str, str]]:
    with (ref / "paper_tables_transcribed.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_builder_maps_every_transcribed_table() -> None:
    """Rows per paper table: published.csv has every transcribed cell of the tables the suite
    can run, the rest is listed as skipped; spot values read independently from the CSV."""
    from experiments import build_published

    ref = _reference_dir()
    if ref is None:
        pytest.skip("shared reference dir absent (set PTUNING_REFERENCE_DIR)")
    source = _transcribed_rows(ref)
    assert len(source) == 384
    rows, skipped, _ = build_published.build(ref)
    with PUBLISHED_CSV.open(newline="") as fh:
        committed = list(csv.DictReader(fh))
    per_table: dict[tuple[str, str], int] = {}
    for r in source:
        per_table[(r["paper"], r["table"])] = per_table.get((r["paper"], r["table"]), 0) + 1
    for (paper, table), n in per_table.items():
        kept = [r for r in committed if r["source_file"] == "paper_tables_transcribed.csv"
                and (r["paper"], r["table"]) == (paper, table)]
        dropped = [s for s in skipped if s.where.startswith("paper_tables_transcribed.csv:")
                   and (s.row["paper"], s.row["table"]) == (paper, table)]
        assert len(kept) + len(dropped) == n, table
        averages = sum(r["task"] == "Avg" for r in source if (r["paper"], r["table"]) == (paper, table))
        if table.startswith("Table 4 (head"):
            assert not kept and all(s.reason for s in dropped), table  # unnamed backbone
        else:
            assert len(kept) == n - averages, table  # every cell but the paper's row averages
        assert all(s.reason for s in dropped)
    assert sum(r["source_file"] == "paper_tables_transcribed.csv" for r in committed) == 96 + 36 + 48 + 36 + 72 + 72

    def source_value(table: str, task: str, metric: str, backbone: str, method: str) -> str:
        hit = [r["value"] for r in source if r["table"].startswith(table) and r["task"] == task
               and r["metric"] == metric and r["backbone"] == backbone and r["method"] == method]
        assert len(hit) == 1, (table, task, backbone, method)
        return hit[0]

    def built(ref_id: str, task: str, metric: str, model: str, method: str) -> dict[str, str]:
        hit = [r for r in committed if (r["ref"], r["task"], r["metric"], r["model"], r["method"])
               == (ref_id, task, metric, model, method)]
        assert len(hit) == 1, (ref_id, task, model, method)
        return hit[0]

    spots = [
        (("Table 2", "RTE", "acc", "BERT-large", "PT-2"), ("ptv2-table2", "rte", "accuracy", "bert_large", "ptuning_v2")),
        (("Table 2", "WSC", "acc", "GLM-xxlarge", "PT"), ("ptv2-table2", "wsc", "accuracy", "glm_xxlarge",
                                                           style.COMBINED_PT)),
        (("Table 2", "ReCoRD", "f1", "RoBERTa-large", "FT"), ("ptv2-table2", "record", "f1", "roberta_large", "finetune")),
        (("Table 3 (NER", "CoNLL04", "f1", "BERT-large", "PT-2"), ("ptv2-table3-ner", "conll04", "f1",
                                                                   "bert_large_uncased", "ptuning_v2")),
        (("Table 3 (QA)", "SQuAD 2.0 dev", "em", "DeBERTa-xlarge", "MPT-2"), ("ptv2-table3-qa", "squad_v2", "em",
                                                                             "deberta_xlarge", "mpt2")),
        (("Table 3 (SRL", "CoNLL05 Brown", "f1", "RoBERTa-large", "PT"), ("ptv2-table3-srl", "conll2005_brown", "f1",
                                                                          "roberta_large", style.COMBINED_PT)),
        (("Table 3 (SRL", "CoNLL12", "f1", "BERT-large", "MPT-2"), ("ptv2-table3-srl", "conll2012", "f1",
                                                                    "bert_large", "mpt2")),
        (("Table 4 (fully", "CB", "f1", "GPT2-medium", "P-tuning"), ("ptv1-table4", "cb", "f1_macro", "gpt2_medium",
                                                                     "ptuning_v1")),
        (("Table 3 (fully", "MultiRC", "em", "GPT2-base", "MP zero-shot"), ("ptv1-table3", "multirc", "em",
                                                                            "gpt2_base", "mp_zeroshot")),
    ]
    for where, key in spots:
        row = built(*key)
        assert float(row["value"]) == float(source_value(*where)) and row["kind"] == "paper", key
    assert [built("ptv2-table2", "rte", "accuracy", m, "finetune")["backbone_params"] for m in
            ("bert_large", "roberta_large", "glm_xlarge", "glm_xxlarge")] == ["335000000", "355000000",
                                                                               "2000000000", "10000000000"]
    # the official re-implementation is its own kind; Figure-1 pixel readings are retired
    official = [r for r in committed if r["kind"] == "official re-implementation"]
    assert len(official) == 22 and {r["source_file"] for r in official} == {
        "ptv2_repo_readme_bert_large.csv", "ptv2_repo_readme_roberta_large.csv"}
    retired = [s for s in skipped if s.where.startswith("ptv2_fig1_barchart_approx.csv")]
    assert len(retired) == 9 and all("retired" in s.reason for s in retired)
    assert not any(r["source_file"] == "ptv2_fig1_barchart_approx.csv" for r in rows)
    # quoted paper numbers the transcription covers are dropped, naming the covering cell
    quoted = [s for s in skipped if s.where.startswith("ptv2_paper_numbers_quoted_in_issues.csv")]
    assert len(quoted) == 3 and all("covered by the transcribed paper cell (ptv2-table2" in s.reason for s in quoted)
    # the README's "BERT-large" CoNLL12 number comes from a script that loads roberta-large
    ambiguous = [s for s in skipped if s.where == "ptv2_repo_readme_bert_large.csv:9"]
    assert len(ambiguous) == 1 and "loads another" in ambiguous[0].reason
    notes = (REPO / "analysis" / "PUBLISHED.md").read_text(encoding="utf-8")
    assert "| ptv2_fig1_barchart_approx.csv:2 |" in notes and "APPROX_FROM_IMAGE" in notes


def test_an_old_published_csv_is_refused(tmp_path: Path) -> None:
    """A published.csv of the Figure-1 era (``use`` column, no ``kind``) says how to rebuild it."""
    old = tmp_path / "published.csv"
    old.write_text("paper,table,task,metric,model,method,value,use,source,status\n"
                   "P,T,rte,accuracy,bert_large,finetune,70.0,table,s,READ_FROM_SOURCE\n")
    with pytest.raises(AnalysisError, match=r"lack columns \['family', 'kind', 'ref'\].*build_published"):
        load_published(old)


def test_mpt2_sits_beside_pt2_with_the_papers_values(pub: pd.DataFrame) -> None:
    """Table 3's MPT-2 column: our MPT-2 cells get the paper's MPT-2 value (CoNLL04, BERT-large
    uncased: 86.6; P-Tuning v2 84.5, from the transcribed Table 3)."""
    records = [fx.make_record("bert_large_uncased", method, "conll04", seed, test_metrics={"f1": base + seed},
                              metrics={"f1": base}, group="ptv2_ner")
               for method, base in (("ptuning_v2", 83.0), ("mpt2", 85.0)) for seed in (0, 1)]
    t = comparison_table(_frame(records), "NER", pub)
    backbone = "BERT-large (uncased) (335M)"
    mpt2 = [backbone, "MPT-2 (multi-task P-Tuning v2)", "CoNLL04"]
    assert [t.cell(mpt2, c)[0].split(" [")[0] for c in ("Ours", "n", "Paper", "Δ (ours − paper)")] == [
        "85.5 ± 0.7", "2", "86.6", "-1.1"]
    assert t.cell([backbone, V2, "CoNLL04"], "Paper")[0].split(" [")[0] == "84.5"
    methods = [row[1] for row in t.text.itertuples(index=False)]
    assert methods.index(V2) < methods.index("MPT-2 (multi-task P-Tuning v2)")  # the paper's column order
