"""experiments/bench.py: the measurement's structure and per-round ratios (no timing asserts)."""

from __future__ import annotations

import argparse
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
