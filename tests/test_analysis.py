"""Golden tests for the analysis package on result records written by the tests themselves."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections.abc import KeysView
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures_analysis as fx  # noqa: E402

from analysis import build_published, catalog  # noqa: E402
from analysis.cli import main  # noqa: E402
from analysis.collect import (  # noqa: E402
    COLUMNS,
    AnalysisError,
    ExpectedGrid,
    cell_status_counts,
    collect,
    records_to_frame,
)
from analysis.figures import plot_param_efficiency, plot_scale, plot_task_bars  # noqa: E402
from analysis.published import PUBLISHED_CSV, load_published, lookup  # noqa: E402
from analysis.tables import cost_table, family_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BL = "BERT-large (334M)"
MINI = "MiniLM-L6 (22.7M)"
TINY = "tiny-BERT-random (4.40M)"
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


@pytest.fixture(scope="module")
def report(runs: Path) -> Path:
    assert main(["report", "--runs", str(runs)]) == 0
    return runs / "report"


# ------------------------------------------------------------------ collect


def test_frame_rows_status_and_values(df: pd.DataFrame) -> None:
    assert list(df.columns) == list(COLUMNS)
    # 18 rte/boolq cells x 3 seeds x 1 metric + 7 cb cells x 3 seeds x 2 metrics
    # + 2 NER cells x 3 seeds x (eval + test) = 108 completed rows
    assert (df["status"] == "completed").sum() == 108
    assert (df["status"] == "failed").sum() == 1
    # the 'running' record + 7 NER cells of the grid with no record
    assert (df["status"] == "missing").sum() == 8
    assert len(df) == 117
    assert cell_status_counts(df) == {"completed": 81, "failed": 1, "missing": 8}

    def value(model: str, method: str, task: str, seed: int, metric: str, split: str) -> float:
        sel = df[
            (df.model == model)
            & (df.method == method)
            & (df.task == task)
            & (df.seed == seed)
            & (df.metric == metric)
            & (df.split == split)
        ]
        assert len(sel) == 1
        return float(sel["value"].iloc[0])

    assert value("bert_large", "ptuning_v2", "rte", 2, "accuracy", "eval") == 80.0
    assert value("bert_large", "ptuning_v2", "cb", 0, "f1_macro", "eval") == 92.0
    assert value("minilm_l6", "ptuning_v2", "conll04", 0, "f1", "test") == 77.5
    assert value("minilm_l6", "ptuning_v2", "conll04", 0, "f1", "eval") == 79.0

    failed = df[df.status == "failed"].iloc[0]
    assert (failed.model, failed.method, failed.task, failed.seed) == (*fx.FAILED_CELL, 0)
    assert failed.error == fx.FAILED_ERROR and math.isnan(failed.value)
    assert failed.metric == "accuracy"

    running = df[(df.status == "missing") & (df.model == "tiny_bert") & (df.task == "cb")]
    assert len(running) == 1 and running.seed.iloc[0] == 0
    assert "running" in running.error.iloc[0]
    ner_missing = df[(df.status == "missing") & (df.task == "conll04")]
    assert len(ner_missing) == 7 and ner_missing.seed.isna().all()
    assert set(ner_missing.primary_metric) == {"f1"} and set(ner_missing.family) == {"NER"}
    assert ner_missing[ner_missing.model == "bert_large"].backbone_params.iloc[0] == 333_579_264

    row = df[
        (df.model == "bert_large")
        & (df.method == "ptuning_v2")
        & (df.task == "rte")
        & (df.seed == 1)
    ].iloc[0]
    assert row.params_trainable == 985_090
    assert row.trainable_pct == pytest.approx(985_090 / 333_579_264 * 100)
    assert row.train_seconds == 20.0 and row.peak_memory_mb == 1210.0
    assert row.task_version == 1 and row.family == "SuperGLUE"
    assert row.selection_rule == "best_eval_epoch" and row.selection_split == "validation"
    assert row.torch == "2.13.0" and row.git_commit == "abc123"


def test_explicit_grid_and_groups(tmp_path: Path) -> None:
    recs = [
        fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, metrics={"accuracy": 60.0}),
        fx.make_record(
            "minilm_l6", "ptuning_v2", "rte", 1, metrics={"accuracy": 62.0}, group="sweep_a"
        ),
        fx.make_record(
            "bert_large", "finetune", "rte", 0, metrics={"accuracy": 70.0}, group="sweep_a"
        ),
    ]
    frame = records_to_frame([(f"r{i}", r) for i, r in enumerate(recs)])
    # grid is per group: 'default' has 1 cell, 'sweep_a' 2 models x 2 methods x 1 task
    missing = frame[frame.status == "missing"]
    assert sorted(zip(missing.group, missing.model, missing.method, strict=True)) == [
        ("sweep_a", "bert_large", "ptuning_v2"),
        ("sweep_a", "minilm_l6", "finetune"),
    ]
    t = family_table(frame, "SuperGLUE")
    assert t is not None and t.header[:3] == ["Group", "Backbone", "Method"]
    assert t.cell(["default", MINI, V2], "RTE").plain() == "60.0"
    assert t.cell(["sweep_a", MINI, V2], "RTE").plain() == "62.0"
    assert t.cell(["sweep_a", MINI, FT], "RTE").plain() == "-"
    grid = ExpectedGrid(["minilm_l6"], ["ptuning_v2"], ["rte", "boolq"], seeds=[0, 1])
    frame = records_to_frame([("r0", recs[0])], expected=grid)
    missing = frame[frame.status == "missing"]
    assert sorted(zip(missing.task, missing.seed, strict=True)) == [
        ("boolq", 0),
        ("boolq", 1),
        ("rte", 1),
    ]


def test_seeds_differ_shows_n(tmp_path: Path) -> None:
    recs = [
        fx.make_record("minilm_l6", "ptuning_v2", "rte", s, metrics={"accuracy": v})
        for s, v in ((0, 60.0), (1, 62.0))
    ]
    recs.append(fx.make_record("minilm_l6", "finetune", "rte", 0, metrics={"accuracy": 70.0}))
    t = family_table(records_to_frame([(str(i), r) for i, r in enumerate(recs)]), "SuperGLUE")
    assert t is not None
    assert t.cell([MINI, V2], "RTE").plain() == "61.0 ± 1.4 (n=2)"
    assert t.cell([MINI, FT], "RTE").plain() == "70.0 (n=1)"


# ------------------------------------------------------------------ tables


def test_superglue_table(df: pd.DataFrame) -> None:
    t = family_table(df, "SuperGLUE")
    assert t is not None
    assert t.header == ["Backbone", "Method", "BoolQ", "CB", "RTE", "Avg"]
    assert [[c.value for c in r[:2]] for r in t.rows][:3] == [[TINY, FT], [TINY, PT], [TINY, V2]]
    assert [r[0].value for r in t.rows] == [TINY] * 3 + [MINI] * 3 + [BL] * 3
    c = t.cell
    assert c([BL, V2], "RTE").plain() == "79.0 ± 1.0" and c([BL, V2], "RTE").bold
    assert c([BL, FT], "RTE").plain() == "78.0 ± 1.0" and not c([BL, FT], "RTE").bold
    assert c([BL, FT], "BoolQ").plain() == "76.0 ± 0.5" and c([BL, FT], "BoolQ").bold
    assert c([BL, V2], "CB").plain() == "94.0 ± 1.0" and c([BL, V2], "CB").bold
    assert c([BL, PT], "CB").plain() == "75.0 ± 3.0"
    assert c([BL, V2], "Avg").plain() == "82.3" and c([BL, V2], "Avg").bold
    assert c([BL, FT], "Avg").plain() == "82.0" and not c([BL, FT], "Avg").bold
    assert c([MINI, FT], "RTE").plain() == "65.0 ± 1.5" and c([MINI, FT], "RTE").bold
    assert c([MINI, FT], "Avg").plain() == "71.7"
    # ties bold both
    assert c([TINY, FT], "BoolQ").bold and c([TINY, V2], "BoolQ").bold
    # missing -> '-', failed -> 'failed' + footnote, partial averages starred and never bold
    assert c([TINY, V2], "CB").plain() == "-"
    assert c([TINY, V2], "Avg").plain() == "58.0*" and not c([TINY, V2], "Avg").bold
    assert c([MINI, PT], "CB").plain() == "failed [1]"
    assert c([MINI, PT], "Avg").plain() == "61.0*"
    assert t.footnotes == [
        "MiniLM-L6 / Prompt tuning (Lester) / CB failed (seed 0: CUDA out of memory)"
    ]
    md = t.to_markdown()
    assert f"| {BL} | {V2} | 74.0 ± 0.5 | **94.0 ± 1.0** | **79.0 ± 1.0** | **82.3** |" in md
    assert "[1] MiniLM-L6 / Prompt tuning (Lester) / CB failed (seed 0: CUDA out of memory)" in md
    tex = t.to_latex()
    assert "\\textbf{79.0 $\\pm$ 1.0}" in tex and "failed\\textsuperscript{1}" in tex
    assert "\\begin{tabular}{llrrrr}" in tex
    rows = list(csv.reader(t.to_csv().splitlines()))
    assert rows[0] == t.header
    assert [BL, V2, "74.0 ± 0.5", "94.0 ± 1.0", "79.0 ± 1.0", "82.3"] in rows


def test_ner_table_uses_test_split(df: pd.DataFrame) -> None:
    t = family_table(df, "NER")
    assert t is not None and t.header == ["Backbone", "Method", "CoNLL04", "Avg"]
    assert t.cell([MINI, FT], "CoNLL04").plain() == "83.0 ± 1.0"
    assert t.cell([MINI, V2], "CoNLL04").plain() == "78.0 ± 0.5"
    assert t.cell([BL, V2], "CoNLL04").plain() == "-"
    assert "CoNLL04: f1 (test split" in t.caption
    assert family_table(df, "QA") is None


def test_table_vs_published(df: pd.DataFrame, pub: pd.DataFrame) -> None:
    t = family_table(df, "SuperGLUE", pub)
    assert t is not None and t.name == "superglue_vs_published"
    c = t.cell
    rte = c([BL, V2], "RTE")
    assert rte.value == "79.0 ± 1.0" and rte.bold
    assert rte.extra == "pub 80.1; Δ -1.1"
    note = t.footnotes[rte.extra_notes[0] - 1]
    assert "P-Tuning v2 (repo README)" in note and "github.com/THUDM/P-tuning-v2" in note
    assert c([BL, FT], "BoolQ").extra == "pub 77.7; Δ -1.7"
    assert c([BL, FT], "CB").extra == "pub 94.6; Δ -2.6"
    assert c([BL, V2], "BoolQ").extra == "pub 74.3; Δ -0.3"
    pt = c([BL, PT], "BoolQ")  # the paper's combined PT row answers for prompt tuning
    assert pt.extra == "pub PT 67.2; Δ -1.2"
    assert "combined PT row" in t.footnotes[pt.extra_notes[0] - 1]
    assert c([BL, V2], "CB").extra == "n/p"
    assert c([MINI, V2], "RTE").plain() == "63.0 ± 1.0 (n/p)"
    assert c([TINY, V2], "CB").plain() == "- (n/p)"
    assert c([BL, V2], "Avg").plain() == "82.3 (n/p)"  # no published CB -> no published avg
    assert c([MINI, PT], "CB").plain() == "failed [1] (n/p)"
    assert "**79.0 ± 1.0** (pub 80.1; Δ -1.1)" in t.to_markdown()
    assert "(pub 80.1; $\\Delta$ -1.1)" in t.to_latex()


def test_published_lookup_never_uses_figure_rows(pub: pd.DataFrame) -> None:
    hit = lookup(pub, "bert_large", "ptuning_v2", "rte", "accuracy")
    assert hit is not None and hit["value"] == 80.1 and not hit["combined"]
    assert lookup(pub, "bert_large", "ptuning_v1", "boolq", "accuracy")["value"] == 67.2
    assert lookup(pub, "bert_large", "prefix_tuning", "rte", "accuracy") is None
    assert lookup(pub, "bert_large_uncased", "ptuning_v2", "conll04", "f1")["value"] == 84.5
    assert lookup(pub, "roberta_large", "ptuning_v2", "squad", "em")["value"] == 88.1
    # GLM README FT numbers are kept with their setting (preference after the v2 sources)
    assert lookup(pub, "roberta_large", "finetune", "rte", "accuracy")["value"] == 86.6
    assert (pub.loc[pub.use == "figure", "model"] == "").all()


def test_cost_table(df: pd.DataFrame) -> None:
    t = cost_table(df)
    row = [BL, V2, "RTE"]
    assert t.cell(row, "Trainable params").plain() == "985,090"
    assert t.cell(row, "Trainable % of backbone").plain() == "0.295%"
    assert t.cell(row, "Train time (s)").plain() == "20.0 ± 10.0"
    assert t.cell(row, "Peak memory (MB)").plain() == "1210"
    assert t.cell(row, "Seeds").plain() == "3"
    assert t.cell([BL, PT, "BoolQ"], "Trainable % of backbone").plain() == "0.00675%"
    assert t.cell([MINI, FT, "RTE"], "Trainable % of backbone").plain() == "100%"
    assert t.cell([MINI, PT, "CB"], "Seeds").plain() == "failed [1]"
    assert t.cell([MINI, PT, "CB"], "Train time (s)").plain() == "-"
    assert t.cell([BL, V2, "CoNLL04"], "Trainable params").plain() == "-"


# ------------------------------------------------------------------ figures


def test_scale_figure_series(df: pd.DataFrame, pub: pd.DataFrame, tmp_path: Path) -> None:
    series = plot_scale(df, tmp_path, ("rte", "boolq", "cb"), pub)
    assert set(series) == {
        FT,
        PT,
        V2,
        f"{FT} (published, approx.)",
        f"{V2} (published, approx.)",
        f"{catalog.COMBINED_PT_DISPLAY} (published, approx.)",
    }
    # tiny_bert P-Tuning v2 lacks CB and is left out; MiniLM prompt tuning CB failed
    assert [x for x, _ in series[V2]] == [22_713_216, 333_579_264]
    assert [round(y, 3) for _, y in series[V2]] == [69.667, 82.333]
    assert [round(y, 3) for _, y in series[PT]] == [52.667, 67.0]
    assert series[f"{V2} (published, approx.)"] == [(3.3e8, 90.6), (2e9, 90.9), (1e10, 92.4)]
    side = json.loads((tmp_path / "scale_vs_score.json").read_text())
    assert [round(e, 4) for e in side["errors"][V2]] == [1.3333, 0.8333]
    assert (tmp_path / "scale_vs_score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "scale_vs_score.pdf").read_bytes()[:5] == b"%PDF-"
    # another task set has no published Figure-1 points
    other = plot_scale(df, tmp_path, ("rte",), pub, stem="scale_rte")
    assert set(other) == {FT, PT, V2} and other[V2][0] == (4_400_000, 54.0)


def test_efficiency_and_bar_series(df: pd.DataFrame, tmp_path: Path) -> None:
    eff = plot_param_efficiency(df, tmp_path)
    assert set(eff) == {f"SuperGLUE: {m}" for m in (FT, PT, V2)} | {f"NER: {FT}", f"NER: {V2}"}
    assert eff[f"NER: {V2}"] == [(pytest.approx(92_930 / 22_713_216 * 100), 78.0)]
    assert len(eff[f"SuperGLUE: {V2}"]) == 8  # 9 cells minus the missing one
    bars = plot_task_bars(df, tmp_path, models=["minilm_l6"], tasks=["rte", "cb"])
    assert bars == {
        FT: [("CB", 80.0), ("RTE", 65.0)],
        PT: [("RTE", 58.0)],
        V2: [("CB", 78.0), ("RTE", 63.0)],
    }
    for stem in ("param_efficiency", "task_bars"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 5000
        assert (tmp_path / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"


# ------------------------------------------------------------------ CLI / report


def test_report_command(report: Path, runs: Path) -> None:
    text = (report / "report.md").read_text()
    assert "- Presets/groups: `default`" in text
    assert "27 completed, 1 failed, 8 missing" in text
    assert "81 completed, 1 failed, 8 missing" in text
    assert "torch 2.13.0; transformers 5.23.0; git commit abc123" in text
    assert "](tables/superglue_vs_published.tex)" in text
    assert "![scale_vs_score](figures/scale_vs_score.png)" in text
    assert "CUDA out of memory" in text
    for name in ("superglue", "superglue_vs_published", "ner", "ner_vs_published", "cost"):
        for ext in ("md", "tex", "csv"):
            assert (report / "tables" / f"{name}.{ext}").stat().st_size > 100
    for stem in (
        "scale_vs_score",
        "param_efficiency",
        "task_bars_bert_large",
        "task_bars_minilm_l6",
        "task_bars_tiny_bert",
    ):
        assert (report / "figures" / f"{stem}.png").is_file()
        assert (report / "figures" / f"{stem}.pdf").is_file()
    side = json.loads((report / "figures" / "scale_vs_score.json").read_text())
    assert side["tasks"] == ["rte", "boolq", "cb"]
    assert [round(p[1], 3) for p in side["series"][FT]] == [55.667, 71.667, 82.0]
    tidy = pd.read_csv(report / "results.csv")
    assert len(tidy) == 117


def test_cli_tables_out_and_group_filter(runs: Path, tmp_path: Path) -> None:
    assert main(["tables", "--runs", str(runs), "--out", str(tmp_path), "--no-published"]) == 0
    assert (tmp_path / "tables" / "superglue.md").is_file()
    assert not (tmp_path / "tables" / "superglue_vs_published.md").exists()
    assert (
        main(["tables", "--runs", str(runs), "--out", str(tmp_path / "x"), "--group", "nope"]) == 2
    )


def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tables", "--runs", str(tmp_path / "absent")]) == 2
    assert f"{tmp_path / 'absent'}: runs directory does not exist" in capsys.readouterr().err
    bad = tmp_path / "runs" / "default" / "rte" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    assert main(["tables", "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis: error: ") and str(bad) in err and "invalid JSON" in err
    rec = fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, metrics={"accuracy": 1.0})
    del rec["cell"]["seed"]
    bad.write_text(json.dumps(rec))
    with pytest.raises(AnalysisError, match=r"result\.json: malformed .*cell\.seed"):
        collect([tmp_path / "runs"])
    rec = fx.make_record("minilm_l6", "ptuning_v2", "rte", 0, metrics={"f1": 1.0})
    bad.write_text(json.dumps(rec))
    with pytest.raises(AnalysisError, match="primary metric 'accuracy' not in metrics"):
        collect([tmp_path / "runs"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnalysisError, match="no result.json records found"):
        collect([empty])


def test_python_dash_m_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "plots", "--runs", str(tmp_path / "nowhere")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"analysis: error: {tmp_path / 'nowhere'}: runs directory does not exist"
    )


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
        self._runs = runs
        self.calls: list[tuple] = []

    def runs(self, path: str, filters: dict | None = None) -> list:
        self.calls.append((path, filters))
        return list(self._runs)


def _wb_run(
    name: str,
    state: str,
    summary: object,
    config: dict | None = None,
    tags: tuple = (),
    group: str = "default",
) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        id=f"id-{name}",
        group=group,
        state=state,
        tags=list(tags),
        config=config or {},
        summary=summary,
    )


def test_wandb_collector() -> None:
    done = fx.make_record("bert_large", "ptuning_v2", "rte", 0, metrics={"accuracy": 81.5})
    done2 = fx.make_record("bert_large", "ptuning_v2", "rte", 1, metrics={"accuracy": 78.5})
    runs = [
        _wb_run("a", "finished", {"result": done}, config=done["config"]),
        _wb_run("b", "finished", FakeSummary({"result": json.dumps(done2), "acc": 1.0})),
        _wb_run(
            "c",
            "crashed",
            {},
            config={
                "method": {"value": {"name": "finetune"}},
                "model": "bert_large",
                "task": {"name": "rte"},
                "seed": 0,
            },
        ),
        _wb_run(
            "d", "running", {}, config={"seed": 2}, tags=("prompt_tuning", "bert_large", "rte")
        ),
        _wb_run("e", "failed", {}, config={"foo": 1}),
        _wb_run("f", "finished", {"result": done}, group="other"),
    ]
    api = FakeApi(runs)
    frame = collect(wandb_path="ent/proj/default", api=api)
    assert api.calls == [("ent/proj", {"group": "default"})]
    assert frame.attrs["notes"] == [
        "wandb:ent/proj/id-e (e): no result record and no cell in config; skipped"
    ]
    v2 = frame[(frame.method == "ptuning_v2") & (frame.status == "completed")]
    assert sorted(v2.value) == [78.5, 81.5] and set(v2.origin) == {
        "wandb:ent/proj/id-a",
        "wandb:ent/proj/id-b",
    }
    crashed = frame[frame.status == "failed"].iloc[0]
    assert (crashed.method, crashed.seed) == ("finetune", 0)
    assert crashed.error == "W&B run state 'crashed' without a result record"
    running = frame[(frame.method == "prompt_tuning")]
    assert list(running.status) == ["missing"] and running.seed.iloc[0] == 2
    t = family_table(frame, "SuperGLUE")
    assert t is not None and t.cell([BL, V2], "RTE").plain() == "80.0 ± 2.1"
    assert t.cell([BL, FT], "RTE").plain() == "failed [1]"
    # no group: api called without filters; the 'other' group run is kept too
    api2 = FakeApi(runs[:1] + runs[-1:])
    frame2 = collect(wandb_path="ent/proj", api=api2)
    assert api2.calls == [("ent/proj", None)]
    assert set(frame2.group) == {"default"}  # run f's record says group 'default'


def test_local_and_wandb_duplicates_are_merged(runs: Path) -> None:
    rec = fx.make_record("bert_large", "ptuning_v2", "rte", 0, metrics={"accuracy": 78.0})
    frame = collect(
        [runs], wandb_path="e/p", api=FakeApi([_wb_run("a", "finished", {"result": rec})])
    )
    sel = frame[
        (frame.model == "bert_large") & (frame.method == "ptuning_v2") & (frame.task == "rte")
    ]
    assert len(sel) == 3
    assert any(
        "duplicate record for default/rte/bert_large/ptuning_v2/0" in n
        for n in frame.attrs["notes"]
    )


# ------------------------------------------------------------------ published numbers

ALLOWED = ("READ_FROM_SOURCE", "QUOTED_SECONDARY", "APPROX_FROM_IMAGE")


def test_published_csv_rows_are_sourced() -> None:
    with PUBLISHED_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 47
    for r in rows:
        assert r["source"].strip(), r
        assert r["status"].startswith(ALLOWED), r
        assert r["use"] in ("table", "figure")
        assert (r["use"] == "figure") == r["status"].startswith("APPROX_FROM_IMAGE"), r
        assert r["method"] in (*catalog.METHODS, catalog.COMBINED_PT)
        if r["use"] == "table":
            assert r["model"] in catalog.MODELS and r["task"] in catalog.TASKS
    keys = [
        (
            r["paper"],
            r["table"],
            r["task"],
            r["metric"],
            r["model"],
            r["backbone_params"],
            r["method"],
        )
        for r in rows
    ]
    assert len(keys) == len(set(keys))
    rte = [
        r
        for r in rows
        if (r["model"], r["method"], r["task"]) == ("bert_large", "ptuning_v2", "rte")
    ]
    assert [r["value"] for r in rows if r in rte] == ["80.1"]
    assert sum(r["use"] == "figure" for r in rows) == 9


def _reference_dir() -> Path | None:
    if os.environ.get("PTUNING_REFERENCE_DIR"):
        return Path(os.environ["PTUNING_REFERENCE_DIR"])
    if os.environ.get("PTUNING_DATA_DIR"):
        return Path(os.environ["PTUNING_DATA_DIR"]).parent / "reference"
    for cand in (REPO.parent / "shared" / "reference", Path("/work/shared/reference")):
        if cand.is_dir():
            return cand
    return None


def test_published_csv_is_reproduced_by_builder(tmp_path: Path) -> None:
    ref = _reference_dir()
    if ref is None or not ref.is_dir():
        pytest.skip("shared reference dir absent (set PTUNING_REFERENCE_DIR)")
    rows, skipped, skipped_files = build_published.build(ref)
    assert build_published.render_csv(rows) == PUBLISHED_CSV.read_text(encoding="utf-8")
    notes = build_published.render_notes(rows, skipped, skipped_files)
    assert notes == (REPO / "analysis" / "PUBLISHED.md").read_text(encoding="utf-8")
    assert any("albert-xxlarge-v2" in s.reason for s in skipped)
    assert any("SRL" in s.reason for s in skipped)
    out = tmp_path / "p.csv"
    assert (
        build_published.main([str(ref), "--out", str(out), "--notes", str(tmp_path / "n.md")]) == 0
    )
    assert out.read_text() == PUBLISHED_CSV.read_text()
    assert build_published.main([str(ref), "--check"]) == 0
