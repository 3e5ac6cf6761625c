"""Train-step time and peak memory per method, interleaved rounds, ratios with their spread.

    python -m experiments.bench [--models minilm_l6,tiny_bert_large_shape] [--rounds 5]
        [--batch 16 | --batch minilm_l6=16,tiny_bert_large_shape=4] [--length ...]
        [--steps ...] [--warmup ...] [--methods a,b,...] [--seed 0] [--out bench.json] [--fresh]

Per model, the bench runs rounds; in every round each method runs once, in an order shuffled
per round with a fixed seed, each in a process of its own (so its peak memory is its own):
forked from the bench once that has imported the libraries, before any model or torch
computation exists (Linux; this saves ~10 s of imports per run), or with ``--fresh`` a new
interpreter per run. A run builds the backbone, the method and a classification head, then
times ``warmup + steps`` AdamW training steps on one fixed random batch (prompt/prefix length 16) and reports
the median step (forward, backward, optimizer). Every ratio (x ``finetune``, x HF PEFT's prefix
tuning, the independent implementation) is computed per round from that round's two
measurements and reported as median [min-max] over rounds. PEFT's model is built around the
very backbone module the suite loaded, so both sides run identical weights (random ones for
the ``tiny_*`` configs). Memory is the process's resident set size (Linux RSS): ``peak MB`` is
its maximum over the whole run's process (Python, libraries, weights, optimizer state,
activations; ``ru_maxrss``), ``train MB`` the training-only increment (peak RSS during the
steps minus RSS once the model was built: gradients, optimizer state, activations).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

CONF = Path(__file__).resolve().parents[1] / "conf"
REFERENCE = "peft_prefix_tuning"  # HF PEFT's prefix tuning, the independent implementation
BASELINE = "finetune"
PROMPT_LENGTH = 16
DEFAULT_MODELS = ("minilm_l6", "tiny_bert_large_shape")


@dataclass(frozen=True)
class Settings:
    """What one model is benchmarked with."""

    batch: int = 16
    length: int = 128
    steps: int = 10
    warmup: int = 2
    rounds: int = 3


#: per-model defaults, chosen so the default ``make bench`` takes about 10-15 minutes on 2 cores
DEFAULTS: dict[str, Settings] = {
    "minilm_l6": Settings(batch=16, length=128, steps=5, warmup=1, rounds=5),
    # two steps per run (the second one holds optimizer state, gradients and activations at once)
    "tiny_bert_large_shape": Settings(batch=2, length=128, steps=1, warmup=1, rounds=3),
}


@dataclass(frozen=True)
class Target:
    """A goal of the issue: ``metric`` of ``method`` on ``model`` at most ``limit`` (median)."""

    model: str
    method: str
    metric: str
    limit: float
    label: str


TARGETS: tuple[Target, ...] = (
    Target("minilm_l6", "ptuning_v2", "step_x_finetune", 0.60, "P-Tuning v2 step time / fine-tuning"),
    Target("minilm_l6", "ptuning_v2", "step_x_peft", 0.90, "P-Tuning v2 step time / PEFT prefix tuning"),
    Target("tiny_bert_large_shape", "ptuning_v2", "peak_x_finetune", 0.45,
           "P-Tuning v2 peak memory (total peak RSS) / fine-tuning"),
)

#: ratio name -> (measurement, reference method)
RATIOS: dict[str, tuple[str, str]] = {
    "step_x_finetune": ("step_s", BASELINE),
    "step_x_peft": ("step_s", REFERENCE),
    "peak_x_finetune": ("peak_mb", BASELINE),
    "train_x_finetune": ("train_mb", BASELINE),
}

# --- measurement (runs in the worker subprocess) ------------------------------------------


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MB; None off Linux."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _max_rss_mb() -> float:
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def load_model_config(model: str) -> Any:
    """The ``conf/model/<model>.yaml`` config on its schema."""
    from omegaconf import OmegaConf

    from ptuning.config import ModelConfig

    return OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(CONF / "model" / f"{model}.yaml"))


def peft_prefix_model(backbone: Any, num_labels: int = 2, length: int = PROMPT_LENGTH) -> Any:
    """HF PEFT's prefix tuning around ``backbone.model`` itself (the same weights, not a copy).

    The sequence-classification model is built on the meta device, its encoder replaced by the
    suite's loaded backbone module (put back on plain SDPA attention), and only the remaining
    head materialised; so a random ``tiny_*`` backbone needs no checkpoint and PEFT holds no
    second copy of the weights.
    """
    import copy

    import torch
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(backbone.model.config)
    config.num_labels = num_labels
    with torch.device("meta"):
        net = AutoModelForSequenceClassification.from_config(config)
    backbone.model.set_attn_implementation("sdpa")
    setattr(net, net.base_model_prefix, backbone.model)
    net.config._attn_implementation = "sdpa"
    for module in net.modules():
        if any(p.is_meta for p in module.parameters(recurse=False)):
            module.to_empty(device="cpu", recurse=False)
            module.reset_parameters()
    return get_peft_model(net, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=length))


def build_net(method: str, model: str) -> Any:
    """The trained module of ``method`` (a suite method or :data:`REFERENCE`) on ``model``."""
    from ptuning.backbones import load_backbone

    backbone = load_backbone(load_model_config(model))
    if method == REFERENCE:
        return peft_prefix_model(backbone)
    from ptuning.methods import build_method, method_config
    from ptuning.model import PromptedModel

    config = method_config({"name": method})
    if hasattr(config, "length"):
        config.length = PROMPT_LENGTH
    return PromptedModel(backbone, build_method(config, backbone), "classification", 2)


def measure(method: str, model: str, settings: Settings, threads: int = 2) -> dict[str, Any]:
    """Build ``method`` on ``model`` and time ``settings.warmup + settings.steps`` train steps.

    Returns the median step, forward, backward and optimizer seconds over the timed steps and
    the memory figures (MB): ``peak_mb`` (the process's peak RSS), ``built_mb`` (RSS once built),
    ``train_mb`` (peak RSS during the steps minus ``built_mb``).
    """
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_net(method, model)
    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (settings.batch, settings.length))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
              "labels": torch.randint(0, 2, (settings.batch,))}
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    built_mb = _status_mb("VmRSS") or _max_rss_mb()
    reset = _reset_peak_rss()
    forward, backward, update = [], [], []
    for step in range(settings.warmup + settings.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        out = net(**inputs)
        loss = out["loss"] if isinstance(out, dict) else out.loss
        mid = time.perf_counter()
        loss.backward()
        back = time.perf_counter()
        optimizer.step()
        end = time.perf_counter()
        if step >= settings.warmup:
            forward.append(mid - start)
            backward.append(back - mid)
            update.append(end - back)
    peak_mb = _max_rss_mb()
    train_peak = (_status_mb("VmHWM") if reset else None) or peak_mb
    med = statistics.median
    return {
        "method": method, "model": model,
        "step_s": med(f + b + u for f, b, u in zip(forward, backward, update, strict=True)),
        "forward_s": med(forward), "backward_s": med(backward), "optimizer_s": med(update),
        "peak_mb": peak_mb, "built_mb": built_mb, "train_mb": max(train_peak - built_mb, 0.0),
        "trainable": sum(p.numel() for p in params),
    }


# --- orchestration ------------------------------------------------------------------------

Runner = Callable[[str, str, Settings, int], dict[str, Any]]


def run_worker(method: str, model: str, settings: Settings, threads: int) -> dict[str, Any]:
    """:func:`measure` in a fresh subprocess (its own peak RSS)."""
    cmd = [sys.executable, "-m", "experiments.bench", "--worker", method, "--models", model,
           "--batch", str(settings.batch), "--length", str(settings.length),
           "--steps", str(settings.steps), "--warmup", str(settings.warmup), "--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=CONF.parent)
    if out.returncode != 0:
        sys.exit(f"bench: {method} on {model} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def preload(models: Sequence[str]) -> None:
    """Import everything a run needs, model classes included, without building a model or
    running any torch computation (so no thread pool exists yet): forked runs start from here."""
    import peft  # noqa: F401
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401

    import ptuning.methods  # noqa: F401
    import ptuning.model  # noqa: F401
    from ptuning.backbones import backbone_config

    for model in models:
        with contextlib.redirect_stdout(sys.stderr):  # the MiniLM package prints on import
            config_class = type(backbone_config(load_model_config(model)))
        AutoModel._model_mapping[config_class]  # imports the family's modelling module
        AutoModelForSequenceClassification._model_mapping[config_class]


def _forked_run(conn: Any, method: str, model: str, settings: Settings, threads: int) -> None:
    sys.stdout = sys.stderr  # the bench's stdout carries its tables only
    try:
        conn.send(measure(method, model, settings, threads))
    except BaseException:
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


def run_forked(method: str, model: str, settings: Settings, threads: int) -> dict[str, Any]:
    """:func:`measure` in a child process forked from this one (its own peak RSS); call
    :func:`preload` first so that the child does not spend its time importing (Linux)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_forked_run, args=(send, method, model, settings, threads))
    process.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        result = {"error": "the run ended without a result"}
    process.join()
    if "error" in result:
        sys.exit(f"bench: {method} on {model} failed (exit code {process.exitcode}):\n{result['error'][-3000:]}")
    return result


def round_orders(methods: Sequence[str], rounds: int, seed: int) -> list[list[str]]:
    """The method order of every round: shuffled per round by a generator seeded with ``seed``."""
    rng = random.Random(seed)
    orders = []
    for _ in range(rounds):
        order = list(methods)
        rng.shuffle(order)
        orders.append(order)
    return orders


def run_rounds(model: str, settings: Settings, methods: Sequence[str], seed: int = 0, threads: int = 2,
               runner: Runner = run_worker, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every method once per round, in :func:`round_orders`; one row per (round, method)."""
    rows = []
    for index, order in enumerate(round_orders(methods, settings.rounds, seed)):
        for position, method in enumerate(order):
            row = {**runner(method, model, settings, threads), "round": index, "position": position}
            rows.append(row)
            if log:
                log(f"[{model} round {index + 1}/{settings.rounds} {position + 1}/{len(order)}] {method}: "
                    f"{row['step_s']:.3f} s/step, peak {row['peak_mb']:.0f} MB, train {row['train_mb']:.0f} MB")
    return rows


def per_round_ratios(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """``{ratio: {method: [value per round]}}``, each value the ratio of one round's two
    measurements (:data:`RATIOS`); rounds lacking the reference method are skipped."""
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_round.setdefault(row["round"], {})[row["method"]] = row
    ratios: dict[str, dict[str, list[float]]] = {name: {} for name in RATIOS}
    for index in sorted(by_round):
        measured = by_round[index]
        for name, (field, reference) in RATIOS.items():
            ref = measured.get(reference)
            if ref is None or not ref[field]:
                continue
            for method, row in measured.items():
                ratios[name].setdefault(method, []).append(row[field] / ref[field])
    return ratios


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method (in first-seen order): medians over rounds of the measurements and the
    :func:`spread` of every per-round ratio."""
    methods = list(dict.fromkeys(row["method"] for row in rows))
    ratios = per_round_ratios(rows)
    summary = {}
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        entry: dict[str, Any] = {
            key: statistics.median(row[key] for row in mine)
            for key in ("step_s", "forward_s", "backward_s", "optimizer_s", "peak_mb", "built_mb", "train_mb")
        }
        entry["trainable"] = mine[0]["trainable"]
        entry["rounds"] = len(mine)
        for name in RATIOS:
            values = ratios[name].get(method)
            entry[name] = spread(values) if values else None
        summary[method] = entry
    return summary


# --- printing -----------------------------------------------------------------------------


def _fmt(ratio: dict[str, float] | None) -> str:
    if ratio is None:
        return "-"
    if ratio["n"] == 1:
        return f"{ratio['median']:.2f}"
    return f"{ratio['median']:.2f} [{ratio['min']:.2f}-{ratio['max']:.2f}]"


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    """The per-model table: medians over rounds, ratios as median [min-max] over rounds."""
    from tabulate import tabulate

    headers = ["method", "step s", "x finetune", "x PEFT", "fwd / bwd / opt s", "peak MB", "x finetune",
               "train MB", "x finetune", "trainable"]
    table = [[method, f"{s['step_s']:.3f}", _fmt(s["step_x_finetune"]), _fmt(s["step_x_peft"]),
              f"{s['forward_s']:.3f} / {s['backward_s']:.3f} / {s['optimizer_s']:.3f}",
              f"{s['peak_mb']:.0f}", _fmt(s["peak_x_finetune"]), f"{s['train_mb']:.0f}",
              _fmt(s["train_x_finetune"]), f"{s['trainable']:,}"]
             for method, s in summary.items()]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(headers) - 1))


def target_lines(summaries: dict[str, dict[str, dict[str, Any]]], rows: dict[str, list[dict[str, Any]]],
                 settings: dict[str, Settings] | None = None, targets: Sequence[Target] = TARGETS) -> list[str]:
    """One line per target: the measured median [min-max], how many rounds meet it, MET / NOT MET
    (by the median)."""
    lines = []
    for target in targets:
        where = target.model
        if settings and target.model in settings:
            where += f" (batch {settings[target.model].batch} x length {settings[target.model].length})"
        entry = summaries.get(target.model, {}).get(target.method)
        ratio = entry.get(target.metric) if entry else None
        if ratio is None:
            lines.append(f"{target.label} on {where} <= {target.limit:.2f}: not measured")
            continue
        values = per_round_ratios(rows[target.model])[target.metric][target.method]
        within = sum(value <= target.limit for value in values)
        verdict = "MET" if ratio["median"] <= target.limit else "NOT MET"
        line = (f"{target.label} on {where}: {_fmt(ratio)} (target <= {target.limit:.2f}; "
                f"{within}/{len(values)} rounds within) {verdict}")
        if target.metric == "peak_x_finetune" and entry.get("train_x_finetune"):
            line += f"; training-only increment (not the target's measure): {_fmt(entry['train_x_finetune'])}"
        lines.append(line)
    return lines


def describe(model: str, settings: Settings, threads: int, seed: int, orders: list[list[str]],
             runner: Runner | None = None) -> str:
    """The settings line printed above a model's table."""
    short = {"prompt_tuning": "pt", "ptuning_v1": "v1", "prefix_tuning": "prefix", "ptuning_v2": "v2",
             "lora": "lora", "finetune": "ft", REFERENCE: "peft"}
    order_text = "; ".join(",".join(short.get(m, m) for m in order) for order in orders)
    return (f"## model={model}: batch {settings.batch}, length {settings.length}, {settings.steps} timed steps "
            f"(+{settings.warmup} warm-up) per run, {settings.rounds} rounds, {threads} threads, "
            f"prompt/prefix length {PROMPT_LENGTH}, one random batch, AdamW\n"
            f"   method order per round (seed {seed}): {order_text}; each run in "
            f"{'a fresh interpreter' if runner is run_worker else 'a process forked from the bench'}")


LEGEND = (
    "step s: median over rounds of each run's median step (forward + backward + AdamW step); "
    "x finetune / x PEFT: per-round ratio to the same round's finetune / PEFT prefix tuning, "
    "median [min-max] over rounds.\n"
    "peak MB: the run's process's peak RSS (ru_maxrss: Python, libraries, weights, optimizer state, "
    "activations; a forked run does not count library pages it never touches, ~70 MB less than "
    "--fresh); train MB: training-only increment, peak RSS during the steps minus RSS once "
    "the model was built (gradients, optimizer state, activations; the frozen weights are excluded)."
)

# --- command line -------------------------------------------------------------------------


def _settings_text(settings: Settings) -> str:
    return ", ".join(f"{key} {value}" for key, value in asdict(settings).items())


def per_model(value: str | None, models: Sequence[str], name: str) -> dict[str, int]:
    """Parse ``N`` (every model) and/or ``MODEL=N`` items (which win) of a comma list."""
    every: dict[str, int] = {}
    named: dict[str, int] = {}
    for item in value.split(",") if value else []:
        key, sep, number = item.strip().rpartition("=")
        if not number.isdigit() or int(number) < (0 if name == "warmup" else 1):
            raise SystemExit(f"bench: --{name} {value!r}: expected N or MODEL=N items")
        if not sep:
            every = dict.fromkeys(models, int(number))
        elif key not in models:
            raise SystemExit(f"bench: --{name}: {key!r} is not among --models {','.join(models)}")
        else:
            named[key] = int(number)
    return {**every, **named}


def settings_for(models: Sequence[str], args: argparse.Namespace) -> dict[str, Settings]:
    """Each model's :data:`DEFAULTS` with the command line's overrides applied."""
    chosen = {model: DEFAULTS.get(model, Settings()) for model in models}
    for field in ("batch", "length", "steps", "warmup", "rounds"):
        for model, number in per_model(getattr(args, field), models, field).items():
            chosen[model] = replace(chosen[model], **{field: number})
    return chosen


def main(argv: Sequence[str] | None = None) -> None:
    defaults = "; ".join(f"{m}: {_settings_text(s)}" for m, s in DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"per-model defaults: {defaults}; any other model: {_settings_text(Settings())}")
    parser.add_argument("--models", "--model", default=",".join(DEFAULT_MODELS),
                        help="comma list of conf/model names (default: %(default)s)")
    for field in ("batch", "length", "steps", "warmup", "rounds"):
        parser.add_argument(f"--{field}", help="N for every model or MODEL=N,... (default: per model)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round method order")
    parser.add_argument("--methods", default=None, help="comma list (default: every method, then PEFT's)")
    parser.add_argument("--out", type=Path, help="also write settings and every run's row as JSON")
    parser.add_argument("--fresh", action="store_true",
                        help="a new interpreter per run instead of a fork of the bench (slower)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    settings = settings_for(models, args)
    if args.worker:
        print(json.dumps(measure(args.worker, models[0], settings[models[0]], args.threads)))
        return
    from ptuning.methods import METHODS

    methods = args.methods.split(",") if args.methods else [*METHODS, REFERENCE]
    started = time.perf_counter()
    runner: Runner = run_worker
    if not args.fresh and "fork" in multiprocessing.get_all_start_methods():
        preload(models)
        runner = run_forked
    all_rows: dict[str, list[dict[str, Any]]] = {}
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    blocks = []
    for model in models:
        rows = run_rounds(model, settings[model], methods, args.seed, args.threads, runner,
                          log=lambda text: print(text, file=sys.stderr, flush=True))
        all_rows[model], summaries[model] = rows, summarize(rows)
        orders = round_orders(methods, settings[model].rounds, args.seed)
        blocks.append(f"{describe(model, settings[model], args.threads, args.seed, orders, runner)}\n\n"
                      f"{format_table(summaries[model])}")
    elapsed = time.perf_counter() - started
    print("\n\n".join(blocks))
    print(f"\n{LEGEND}\n\n## targets (MET: median over rounds within the target)")
    for line in target_lines(summaries, all_rows, settings):
        print(f"- {line}")
    print(f"\nbench took {elapsed / 60:.1f} min")
    if args.out:
        args.out.write_text(json.dumps({"settings": {m: asdict(s) for m, s in settings.items()},
                                        "threads": args.threads, "seed": args.seed, "rows": all_rows,
                                        "elapsed_s": elapsed}, indent=1))


if __name__ == "__main__":
    main()
