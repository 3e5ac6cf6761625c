"""experiments/bench.py: the measurement's structure and per-round ratios (no timing asserts)."""

from __future__ import annotations

import argparse
import json
import random

import pytest

from experiments import bench
from experiments.bench import Settings


def _rows(values: dict[str, list[float]], seed: int = 1) -> list[dict]:
    """Synthetic runs: ``values[method][round]`` as step time, 100x as peak and 10x as train MB,
    listed in a shuffled order (as interleaved rounds produce them)."""
    rows = [{"method": method, "round": index, "position": 0, "step_s": value, "forward_s": value / 2,
             "backward_s": value / 2, "optimizer_s": 0.0, "peak_mb": 100 * value, "built_mb": 1.0,
             "train_mb": 10 * value, "trainable": 7}
            for method, per_round in values.items() for index, value in enumerate(per_round)]
    random.Random(seed).shuffle(rows)
    return rows


def test_ratios_are_computed_per_round_from_that_rounds_numbers():
    values = {"finetune": [1.0, 2.0, 4.0], "ptuning_v2": [0.5, 1.8, 2.0], bench.REFERENCE: [1.0, 2.0, 1.0]}
    rows = _rows(values)
    ratios = bench.per_round_ratios(rows)
    assert ratios["step_x_finetune"]["ptuning_v2"] == pytest.approx([0.5, 0.9, 0.5])
    assert ratios["step_x_peft"]["ptuning_v2"] == pytest.approx([0.5, 0.9, 2.0])
    assert ratios["peak_x_finetune"][bench.REFERENCE] == pytest.approx([1.0, 1.0, 0.25])
    summary = bench.summarize(rows)
    v2 = summary["ptuning_v2"]
    # median of per-round ratios (0.5), not the ratio of medians (1.8 / 2.0 = 0.9)
    assert v2["step_x_finetune"] == pytest.approx({"median": 0.5, "min": 0.5, "max": 0.9, "n": 3})
    assert v2["step_x_peft"] == pytest.approx({"median": 0.9, "min": 0.5, "max": 2.0, "n": 3})
    assert v2["train_x_finetune"]["median"] == pytest.approx(0.5)
    assert v2["step_s"] == pytest.approx(1.8) and v2["peak_mb"] == pytest.approx(180.0)
    assert summary["finetune"]["step_x_finetune"]["median"] == pytest.approx(1.0)
    # a round without the reference is left out of that ratio only
    partial = [r for r in rows if not (r["round"] == 2 and r["method"] == "finetune")]
    assert bench.per_round_ratios(partial)["step_x_finetune"]["ptuning_v2"] == pytest.approx([0.5, 0.9])
    assert bench.per_round_ratios(partial)["step_x_peft"]["ptuning_v2"] == pytest.approx([0.5, 0.9, 2.0])

    table = bench.format_table(summary)
    assert "0.50 [0.50-0.90]" in table and "ptuning_v2" in table
    summaries = {"minilm_l6": summary, "tiny_bert_large_shape": summary}
    lines = bench.target_lines(summaries, {"minilm_l6": rows, "tiny_bert_large_shape": rows})
    assert lines[0].endswith("(target <= 0.60; 2/3 rounds within) MET")
    assert lines[1].endswith("(target <= 0.90; 2/3 rounds within) MET")
    assert "0.50 [0.50-0.90] (target <= 0.45; 0/3 rounds within) NOT MET" in lines[2]
    assert "training-only increment" in lines[2]
    shown = bench.target_lines(summaries, {"minilm_l6": rows, "tiny_bert_large_shape": rows}, bench.DEFAULTS)
    assert shown[2].startswith("P-Tuning v2 peak memory (total peak RSS) / fine-tuning on tiny_bert_large_shape "
                               f"(batch {bench.DEFAULTS['tiny_bert_large_shape'].batch} x length")
    assert bench.target_lines({}, {})[0].endswith("not measured")


def test_round_orders_are_seeded_permutations():
    methods = ["a", "b", "c", "d"]
    orders = bench.round_orders(methods, 4, seed=0)
    assert orders == bench.round_orders(methods, 4, seed=0)
    assert all(sorted(order) == methods for order in orders)
    assert len({tuple(order) for order in orders}) > 1


def test_per_model_options():
    models = ["minilm_l6", "tiny_bert_large_shape"]
    assert bench.per_model("tiny_bert_large_shape=2,4", models, "batch") == {"minilm_l6": 4, "tiny_bert_large_shape": 2}
    args = argparse.Namespace(batch=None, length="64", steps="minilm_l6=3", warmup=None, rounds=None)
    chosen = bench.settings_for(models, args)
    assert chosen["minilm_l6"] == Settings(batch=16, length=64, steps=3, warmup=1, rounds=5)
    assert chosen["tiny_bert_large_shape"].length == 64
    with pytest.raises(SystemExit):
        bench.per_model("bert=2", models, "batch")
    with pytest.raises(SystemExit):
        bench.per_model("0", models, "steps")


def test_one_round_on_tiny_bert():
    """One in-process round of three methods (1 warm-up + 1 timed step), then the summary."""
    pytest.importorskip("peft")
    methods = ["finetune", "ptuning_v2", bench.REFERENCE]
    settings = Settings(batch=2, length=8, steps=1, warmup=1, rounds=1)
    rows = bench.run_rounds("tiny_bert", settings, methods, seed=0, threads=1, runner=bench.measure)
    assert sorted(r["method"] for r in rows) == sorted(methods)
    assert [r["round"] for r in rows] == [0, 0, 0] and sorted(r["position"] for r in rows) == [0, 1, 2]
    for row in rows:
        assert row["step_s"] > 0 and row["peak_mb"] > 0 and row["train_mb"] >= 0
        assert row["step_s"] == pytest.approx(row["forward_s"] + row["backward_s"] + row["optimizer_s"])
    by = {r["method"]: r for r in rows}
    # PEFT's prefix and head: as many trainable weights as P-Tuning v2's (same L, same backbone)
    assert by["ptuning_v2"]["trainable"] == by[bench.REFERENCE]["trainable"] < by["finetune"]["trainable"]
    summary = bench.summarize(rows)
    v2 = summary["ptuning_v2"]
    assert v2["step_x_finetune"]["median"] == pytest.approx(by["ptuning_v2"]["step_s"] / by["finetune"]["step_s"])
    assert v2["peak_x_finetune"]["n"] == 1


def test_peft_model_wraps_the_suites_backbone():
    """PEFT runs the very weights the suite loaded (random tiny ones here), nothing left on meta."""
    pytest.importorskip("peft")
    from ptuning.backbones import load_backbone

    backbone = load_backbone(bench.load_model_config("tiny_bert"))
    net = bench.peft_prefix_model(backbone)
    inner = net.base_model
    assert getattr(inner, inner.base_model_prefix) is backbone.model
    assert not any(p.is_meta for p in net.parameters())
    assert backbone.model.config._attn_implementation == "sdpa"


def test_worker_subprocess_reports_one_json_row():
    """The command-line worker ``make bench`` starts per run (a fresh process, its own RSS)."""
    row = bench.run_worker("ptuning_v2", "tiny_bert", Settings(batch=2, length=8, steps=1, warmup=0), threads=1)
    assert row["method"] == "ptuning_v2" and row["model"] == "tiny_bert"
    assert {"step_s", "forward_s", "backward_s", "optimizer_s", "peak_mb", "built_mb", "train_mb",
            "trainable"} <= set(row)
    assert row["peak_mb"] >= row["built_mb"] > 0


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork")
def test_forked_run_reports_one_row():
    """The default runner: a child forked from the bench (after :func:`bench.preload`)."""
    bench.preload(["tiny_bert"])
    row = bench.run_forked("ptuning_v2", "tiny_bert", Settings(batch=2, length=8, steps=1, warmup=0), threads=1)
    assert row["method"] == "ptuning_v2" and row["peak_mb"] >= row["built_mb"] > 0
    with pytest.raises(SystemExit, match="no_such_method"):
        bench.run_forked("no_such_method", "tiny_bert", Settings(steps=1, warmup=0), threads=1)


# --- tasks on one backbone ---------------------------------------------------------------------


def _table_rows() -> tuple[list[dict], list[dict]]:
    """Synthetic memory rows (RSS/PSS in MB) and throughput rows (two rounds, N = 1 and 4)."""
    memory = []
    for n, one, separate in ((1, 500.0, 500.0), (4, 510.0, 800.0)):
        for mode, held in ((bench.ONE, one), (bench.SEPARATE, separate)):
            memory.append({"model": "m", "tasks": n, "mode": mode, "backbones": 1 if mode == bench.ONE else n,
                           "base_mb": 400.0, "loaded_mb": held - 50, "held_mb": held, "peak_mb": held + 100,
                           "pss_base_mb": 200.0, "pss_mb": 200.0 + (held - 400.0) / 2})
    speed = []
    for n, per_round in ((1, [(40.0, 40.0), (20.0, 25.0)]), (4, [(40.0, 10.0), (30.0, 20.0)])):
        for index, (mixed, alone) in enumerate(per_round):
            for way, value, batches in ((bench.MIXED, mixed, 4), (bench.TASK_BY_TASK, alone, 4 * n)):
                speed.append({"model": "m", "tasks": n, "way": way, "round": index, "position": 0, "started": True,
                              "examples": 128, "batches": batches, "seconds": 128 / value, "examples_per_s": value})
    random.Random(2).shuffle(speed)
    return memory, speed


def test_table_summary_ratios_and_tables():
    memory, speed = _table_rows()
    one, four = bench.summarize_table(memory, speed)
    assert one["tasks"] == 1 and four["tasks"] == 4
    assert four[f"{bench.ONE}_mb"] == 510.0 and four[f"{bench.SEPARATE}_mb"] == 800.0
    assert four["memory_x_mb"] == pytest.approx(510 / 800)
    assert four["memory_x_added_mb"] == pytest.approx(110 / 400)  # over the RSS before loading
    assert four["memory_x_pss_added_mb"] == pytest.approx(55 / 200)
    assert four["memory_x_peak_mb"] == pytest.approx(610 / 900)
    assert one["memory_x_mb"] == pytest.approx(1.0)
    # examples/s: medians over rounds; the ratio per round, then its median [min-max]
    assert four[f"{bench.MIXED}_per_s"] == pytest.approx(35.0) and four[f"{bench.TASK_BY_TASK}_per_s"] == 15.0
    assert four["speed_x"] == pytest.approx({"median": 2.75, "min": 1.5, "max": 4.0, "n": 2})
    assert one["speed_x"] == pytest.approx({"median": 0.9, "min": 0.8, "max": 1.0, "n": 2})
    assert four[f"{bench.MIXED}_batches"] == 4 and four[f"{bench.TASK_BY_TASK}_batches"] == 16

    table = bench.format_table_summary([one, four])
    lines = table.splitlines()
    assert lines[0].split("|")[1:-1][:4] == [" N   ", "   one backbone MB ", "   separate MB ", "   x separate "]
    assert lines[3].split("|")[1:-1] == [" 4   ", "               510 ", "           800 ", "         0.64 ",
                                         "         35.0 ", "                15.0 ", " 2.75 [1.50-4.00] ",
                                         "                         4 / 16 "]
    detail = bench.format_memory_detail([one, four])
    assert "110 / 400" in detail and "55 / 200" in detail and "610 / 900" in detail and "0.28" in detail
    # a configuration not measured shows as "-", no ratio
    partial = bench.summarize_table([r for r in memory if r["mode"] == bench.ONE], [])
    assert partial[1]["memory_x_mb"] is None and partial[1]["speed_x"] is None
    cells = [cell.strip() for cell in bench.format_table_summary(partial).splitlines()[3].split("|")[1:-1]]
    assert cells == ["4", "510", "-", "-", "-", "-", "-", "- / -"]


def test_table_orders_and_interleaving():
    orders = bench.table_orders((1, 4, 16), 4, seed=0)
    assert orders == bench.table_orders((1, 4, 16), 4, seed=0)
    assert all(sorted(n for n, _ in order) == [1, 4, 16] for order in orders)
    assert {way for order in orders for _, way in order} == {bench.MIXED, bench.TASK_BY_TASK}
    # the two ways progress at the same pace: 4 mixed calls among 16 task-by-task ones
    assert bench.interleave(4, 16) == [0, 1, 1, 1, 1] * 4
    assert bench.interleave(2, 2) == [0, 1, 0, 1]
    assert bench.interleave(3, 0) == [0, 0, 0] and bench.interleave(0, 2) == [1, 1]


def test_table_options():
    namespace = argparse.Namespace(table_tasks="16,1,4,4", table_rounds=2, table_batch=8, table_examples=64,
                                   table_length=64)
    assert bench.table_settings(namespace) == bench.TableSettings((1, 4, 16), 8, 64, 64, 2)
    for field, value in (("table_tasks", "1,x"), ("table_tasks", "0,2"), ("table_examples", 8),
                         ("table_length", 8), ("table_rounds", 0)):
        with pytest.raises(SystemExit):
            bench.table_settings(argparse.Namespace(**{**vars(namespace), field: value}))
    with pytest.raises(SystemExit):
        bench.main(["--skip-table", "--table-only"])


def test_table_features_have_the_fixed_length():
    from ptuning.backbones import minilm_tokenizer

    encoded = bench.table_features(minilm_tokenizer(), ["a", "b", "c"], 7, 24)
    assert [len(e.features) for e in encoded.values()] == [3, 2, 2]  # dealt round-robin
    assert {len(f["input_ids"]) for e in encoded.values() for f in e.features} == {24}
    items = bench.mixed_items(encoded)
    assert [name for name, _ in items] == ["a", "b", "c", "a", "b", "c", "a"]
    assert encoded["a"].rows[0]["premise"] != encoded["b"].rows[0]["premise"]  # each task its own rows


def test_table_measurement_on_tiny_bert():
    """The whole measurement in this process: artefacts, memory both ways, one throughput round."""
    settings = bench.TableSettings(tasks=(1, 2), batch=2, examples=4, length=16, rounds=1)
    result = bench.run_table("tiny_bert", settings, seed=0, threads=1, call=bench.call_here)
    memory, speed = result["memory"], result["speed"]
    assert [(r["tasks"], r["mode"], r["backbones"]) for r in memory] == [
        (1, bench.ONE, 1), (1, bench.SEPARATE, 1), (2, bench.ONE, 1), (2, bench.SEPARATE, 2)]
    for row in memory:
        assert row["model"] == "tiny_bert"
        assert min(row["base_mb"], row["loaded_mb"], row["held_mb"], row["peak_mb"]) > 0
    assert sorted((r["tasks"], r["way"]) for r in speed) == [
        (1, bench.MIXED), (1, bench.TASK_BY_TASK), (2, bench.MIXED), (2, bench.TASK_BY_TASK)]
    for row in speed:
        assert row["round"] == 0 and row["examples"] == 4 and row["seconds"] > 0 and row["examples_per_s"] > 0
    batches = {(r["tasks"], r["way"]): r["batches"] for r in speed}
    assert batches == {(1, bench.MIXED): 2, (1, bench.TASK_BY_TASK): 2, (2, bench.MIXED): 2,
                       (2, bench.TASK_BY_TASK): 2}
    summary = bench.summarize_table(memory, speed)
    assert [s["tasks"] for s in summary] == [1, 2]
    assert all(s["memory_x_mb"] > 0 and s["speed_x"]["n"] == 1 for s in summary)
    text = bench.describe_table("tiny_bert", settings, 1, 0, bench.call_here, memory)
    assert "N = 1,2" in text and "in this process" in text
    assert bench.format_table_summary(summary).count("\n") == 3


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork")
def test_table_only_command_line_writes_its_rows(tmp_path, capsys):
    """``--table-only``: each measurement in a forked process; the table printed, rows in --out."""
    out = tmp_path / "bench.json"
    bench.main(["--table-only", "--table-models", "tiny_bert", "--table-tasks", "1,2", "--table-rounds", "1",
                "--table-batch", "2", "--table-examples", "2", "--table-length", "16", "--threads", "1",
                "--out", str(out)])
    printed = capsys.readouterr().out
    assert "## tasks on one backbone, model=tiny_bert" in printed and "a process forked from the bench" in printed
    assert "x task-by-task" in printed and "step s" not in printed
    written = json.loads(out.read_text())
    assert written["rows"] == {} and written["table"]["settings"]["tasks"] == [1, 2]
    result = written["table"]["models"]["tiny_bert"]
    assert len(result["memory"]) == 4 and len(result["speed"]) == 4 and len(result["summary"]) == 2
    assert all(row["held_mb"] > 0 for row in result["memory"])
