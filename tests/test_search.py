"""Search modes: a searched cell is one cell per grid point (experiments/launch.py), each point
a record with its grid and point (ptuning/runner.py), the best point on dev kept by analysis
(analysis/search.py) and marked in the tables."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import yaml
from conftest import CONF, ROOT, compose_config
from fixtures_analysis import make_record

from analysis.collect import collect, records_to_frame
from analysis.search import point_label, select_points
from analysis.tables import build_tables, search_table
from experiments.launch import group_commands, main, plan_grid
from ptuning.errors import ConfigError, SetupError
from ptuning.records import find_records, load_record

#: a two-method grid on a tiny backbone, small enough to run every point here
TINY_SEARCH = ["model=tiny_bert", "task=rte", "method=finetune,ptuning_v2", "train.max_steps=4",
               "train.batch_size=8", "data.synthetic_train=16", "data.synthetic_eval=16", "train.eval_batch_size=16",
               "++search.grids={finetune:{train:{lr:[1e-4,3e-3]}},ptuning_v2:{train:{lr:[1e-2,1e-1]},"
               "method:{length:[2,4]}}}"]


def _grid(space: str, method: str) -> dict[str, list]:
    """A method's grid as the search space's YAML file lists it (dotted option -> values)."""
    tree = yaml.safe_load((CONF / "search" / f"{space}.yaml").read_text())["grids"][method]
    return {f"{section}.{name}": values for section, options in tree.items() for name, values in options.items()}


def _value(cell, key):
    section, name = key.split(".")
    return getattr(getattr(cell.settings, section), name)


def test_a_searched_cell_is_one_cell_per_grid_point_and_official_cells_are_not_searched():
    cells = plan_grid("ptv2_superglue", ["model=bert_large", "task=rte,cb", "method=finetune,ptuning_v2"])
    by_cell = {}
    for c in cells:
        by_cell.setdefault((c.cell.method, c.cell.task), []).append(c)
    for method, task in [("finetune", "rte"), ("finetune", "cb"), ("ptuning_v2", "cb")]:
        grid = _grid("superglue", method)
        points = {tuple(_value(c, k) for k in grid) for c in by_cell[(method, task)]}
        assert points == set(itertools.product(*grid.values())), (method, task)
        assert all(c.axes == grid for c in by_cell[(method, task)])
    official = by_cell[("ptuning_v2", "rte")]  # run_script/run_rte_bert.sh fixes its settings
    assert len(official) == 1 and official[0].axes == {}
    assert official[0].settings.train.lr == 1e-2 and official[0].settings.train.epochs == 60
    assert official[0].settings.search.settings_from.endswith("run_script/run_rte_bert.sh")


def test_record_sized_tasks_narrow_the_epoch_axis():
    """The space's ReCoRD entry shortens every method's epochs; the other axes stay the space's."""
    cells = plan_grid("ptv2_superglue", ["model=bert_large", "task=record", "method=ptuning_v2"])
    grid = _grid("superglue", "ptuning_v2")
    assert {c.settings.train.epochs for c in cells} == {2}
    assert {c.settings.train.lr for c in cells} == set(grid["train.lr"])
    assert len(cells) == len(grid["train.lr"]) * len(grid["method.length"])


def test_launch_commands_cover_exactly_the_planned_cells():
    """Every multirun is a product (model x methods x tasks x grid options) and together they
    launch each planned cell once."""
    overrides = ["model=bert_large,roberta_large", "task=rte,cb", "method=finetune,ptuning_v2,lora"]
    cells = plan_grid("ptv2_superglue", overrides)
    for launcher in ("slurm", "basic"):
        launched = []
        for command in group_commands("ptv2_superglue", overrides, launcher, cells, "T"):
            options = dict(a.split("=", 1) for a in command[5:])
            axes = {k: v.split(",") for k, v in options.items() if k.startswith(("train.", "method."))}
            for model, method, task, *values in itertools.product(
                    options["model"].split(","), options["method"].split(","), options["task"].split(","),
                    *axes.values()):
                launched.append((model, method, task, tuple(sorted(zip(axes, map(float, values), strict=True)))))
        planned = [(c.cell.model, c.cell.method, c.cell.task,
                    tuple(sorted((k, float(_value(c, k))) for k in c.axes))) for c in cells]
        assert sorted(launched) == sorted(planned), launcher


def test_an_axis_given_as_an_override_is_refused():
    with pytest.raises(SetupError, match=r"train\.lr: given as an override and searched by search\.grids\.finetune"):
        plan_grid("ptv2_superglue", ["model=bert_large", "task=cb", "method=finetune", "train.lr=1e-3"])


def test_a_point_off_the_grid_is_refused_before_anything_loads(tmp_path):
    """A searched preset run without the launcher gives the method's default lr: not a point."""
    from ptuning.runner import prepare

    cfg = compose_config(["preset=ptv2_superglue", "model=tiny_bert", "task=cb", "method=finetune", "logger=none",
                          "data.source=synthetic", f"paths.runs_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"train\.lr=5e-05: allowed: one of the search grid's values"):
        prepare(cfg)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("grid, message", [
    ("{finetune:{train:{lr:[]}}}", "a non-empty list of values"),
    ("{finetune:{train:{lr:[1e-5,1e-5]}}}", "values listed once each"),
    ("{finetune:{paths:{runs_dir:[a,b]}}}", "a grid over options of method, model, train, data, task"),
    ("{finetune:{train:{no_such_option:[1,2]}}}", "no such option"),
])
def test_bad_grids_are_refused_with_the_option_named(grid, message, tmp_path):
    from ptuning.runner import prepare

    cfg = compose_config(["model=tiny_bert", "task=cb", "method=finetune", "data.source=synthetic",
                          f"++search.grids={grid}", f"paths.runs_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=message) as caught:
        prepare(cfg)
    assert "search.grids.finetune" in str(caught.value)


@pytest.mark.parametrize("space", sorted(p.stem for p in (CONF / "search").glob("*.yaml")))
def test_every_search_space_composes_and_plans_its_points(space):
    """Each space's grids (and task entries) name real options of their methods: planning every
    point of every method on a tiny backbone composes and checks each one."""
    tree = yaml.safe_load((CONF / "search" / f"{space}.yaml").read_text()) or {}
    grids, tasks = tree.get("grids", {}), tree.get("tasks", {})
    for task in ["rte", *tasks]:
        methods = ",".join(grids) or "finetune"
        cells = plan_grid("default", [f"search={space}", "model=tiny_bert", f"task={task}", f"method={methods}"])
        for method, grid in grids.items():
            narrowed = {f"{section}.{name}": values for tree in (grid, tasks.get(task, {}).get(method, {}))
                        for section, options in tree.items() for name, values in options.items()}
            expected = 1
            for values in narrowed.values():
                expected *= len(values)
            assert sum(c.cell.method == method for c in cells) == expected, (space, task, method)
        assert grids or all(c.axes == {} for c in cells)


def test_a_task_entry_must_name_a_task_and_a_searched_method(tmp_path):
    from ptuning.runner import prepare

    base = ["model=tiny_bert", "task=cb", "method=finetune", "data.source=synthetic", f"paths.runs_dir={tmp_path}",
            "++search.grids={finetune:{train:{lr:[1e-5,2e-5]}}}"]
    with pytest.raises(ConfigError, match=r"search\.tasks\.recrod=.*allowed: entries for tasks of the registry: .*record"):
        prepare(compose_config([*base, "++search.tasks={recrod:{finetune:{train:{epochs:[2]}}}}"]))
    with pytest.raises(ConfigError, match=r"search\.tasks\.record=.*allowed: a mapping from methods with a grid \(finetune\)"):
        prepare(compose_config([*base, "++search.tasks={record:{lora:{train:{epochs:[2]}}}}"]))


def _point_records(scores: dict[float, list[float]], error: str | None = None):
    """Records of a fine-tuning search over three learning rates: point -> dev accuracy per seed
    (``error``: the points failed with it)."""
    axes = {"train.lr": [1e-5, 2e-5, 3e-5]}
    return [("fixture", make_record("bert_large", "finetune", "rte", seed, metrics={} if error else {"accuracy": value},
                                    status="failed" if error else "completed", error=error,
                                    group="ptv2_superglue", search={"axes": axes, "point": {"train.lr": lr}}))
            for lr, values in scores.items() for seed, value in enumerate(values)]


def test_analysis_keeps_the_point_with_the_best_mean_dev_score():
    """Best mean over seeds (not the best single seed), every seed of that point kept."""
    records = _point_records({1e-5: [70.0, 60.0], 2e-5: [66.0, 67.0], 3e-5: [50.0]})
    kept, points, notes = select_points(records)
    assert [r["search"]["point"] for _, r in kept] == [{"train.lr": 2e-5}] * 2
    assert kept[0][1]["search"]["choice"] == {"points_completed": 3, "points": 3, "chosen_on": "eval accuracy",
                                              "label": "lr=2e-05"}
    assert points.set_index("point")["eval_mean"].to_dict() == {"lr=1e-05": 65.0, "lr=2e-05": 66.5, "lr=3e-05": 50.0}
    assert points["chosen"].tolist() == [False, True, False] and notes == []


def test_ties_go_to_the_first_grid_point_and_missing_points_are_noted():
    kept, _, notes = select_points(_point_records({3e-5: [60.0], 2e-5: [60.0]}))
    assert [r["search"]["point"]["train.lr"] for _, r in kept] == [2e-5]
    assert notes == ["search rte/bert_large/finetune (ptv2_superglue): 2 of 3 grid points completed; "
                     "chosen among those"]


def test_a_search_with_no_completed_point_keeps_its_failures():
    records = _point_records({1e-5: [0.0], 2e-5: [0.0]}, error="nan loss")
    kept, _, notes = select_points(records)
    assert len(kept) == 2 and "no point completed" in notes[0]
    frame = records_to_frame(records)
    assert set(frame["status"]) == {"failed"}


def test_searched_points_run_and_analysis_reports_the_best_one(tmp_path, capsys):
    """Every planned point runs as an ordinary cell; the dry run then finds them completed (the
    plan's identity is the run's); analysis keeps each cell's best dev point and marks it."""
    from ptuning.runner import run_cell

    overrides = [*TINY_SEARCH, f"paths.runs_dir={tmp_path}"]
    cells = plan_grid("default", overrides)
    assert len(cells) == 2 + 4
    for cell in cells:
        outcome = run_cell(compose_config(cell.overrides))
        assert outcome.status == "completed", outcome.record.get("error")
        assert outcome.record["search"]["axes"] == cell.axes
    records = [load_record(p) for p in find_records(tmp_path)]
    best = {}
    for record in records:  # the choice, recomputed from the files (ties: the first point of the grid)
        method, score, axes = record["cell"]["method"], record["metrics"]["accuracy"], record["search"]["axes"]
        rank = list(itertools.product(*axes.values())).index(tuple(record["search"]["point"].values()))
        if method not in best or (score, -rank) > (best[method][0], -best[method][2]):
            best[method] = (score, record["search"]["point"], rank)
    frame = collect([tmp_path])
    primary = frame[(frame["split"] == "eval") & frame["is_primary"]]
    assert set(primary["method"]) == {"finetune", "ptuning_v2"} and len(primary) == 2
    for row in primary.itertuples():
        assert row.value == best[row.method][0] and row.settings == "searched"
        points = 2 if row.method == "finetune" else 4
        assert row.search_choice == f"{point_label(best[row.method][1])} (best of {points}/{points} on dev)"
    table = search_table(frame)
    assert sorted(table.text["Points"]) == ["2/2", "4/4"]
    tables = {t.name: t for t in build_tables(frame)}
    family = tables["superglue"].plain()
    assert family["RTE-style (synthetic)"].str.contains("ˢ").all()
    assert "ˢ = settings searched" in tables["superglue"].caption
    capsys.readouterr()
    assert main(["default", "--dry-run", *overrides]) == 0
    assert "6 cells (6 completed)" in capsys.readouterr().out  # the plan's identities are the runs'


@pytest.mark.slow
def test_a_searched_grid_launches_through_hydra(tmp_path):
    """experiments.launch runs the points as Hydra multiruns (one per method and grid here)."""
    overrides = [*TINY_SEARCH, f"paths.runs_dir={tmp_path}"]
    done = subprocess.run([sys.executable, "-m", "experiments.launch", "default", *overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [load_record(p) for p in find_records(tmp_path)]
    assert sorted(len(r["search"]["axes"]) for r in records) == [1, 1, 2, 2, 2, 2]
    assert done.stdout.count("[launch]") == 2
