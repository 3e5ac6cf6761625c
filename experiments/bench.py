"""Train-step time and peak memory per method, interleaved rounds, ratios with their spread;
then many tasks on one frozen backbone (memory and inference throughput of a prompt table).

    python -m experiments.bench [--models minilm_l6,tiny_bert_large_shape] [--rounds 5]
        [--batch 16 | --batch minilm_l6=16,tiny_bert_large_shape=4] [--length ...]
        [--steps ...] [--warmup ...] [--methods a,b,...] [--seed 0] [--out bench.json] [--fresh]
        [--table-models minilm_l6] [--table-tasks 1,4,16] [--table-rounds 3] [--table-batch 32]
        [--table-examples 96] [--table-length 128] [--skip-table | --table-only]

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

Tasks on one backbone (:func:`run_table`): N random-weight P-Tuning v2 artefacts (RTE-style
pair classification) written to a temporary directory; memory of one
:class:`~ptuning.prompt_table.PromptTable` holding them versus N ``load_trained`` models each
with its own backbone (each configuration in a process of its own, RSS after loading and one
inference batch); inference examples/s of batches mixing the N tasks
(:meth:`PromptTable.logits`) versus each task's features batched alone through its own model
(as :func:`ptuning.training.predict`), the same examples and batch size both ways, their
batches alternating within a round, the ratio taken within a round.
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
from functools import partial
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
    import ptuning.prompt_table  # noqa: F401  (artefacts, tasks, training: tasks on one backbone)
    from ptuning.backbones import backbone_config

    for model in models:
        with contextlib.redirect_stdout(sys.stderr):  # the MiniLM package prints on import
            config_class = type(backbone_config(load_model_config(model)))
        AutoModel._model_mapping[config_class]  # imports the family's modelling module
        AutoModelForSequenceClassification._model_mapping[config_class]


def run_forked(method: str, model: str, settings: Settings, threads: int) -> dict[str, Any]:
    """:func:`measure` in a child process forked from this one (its own peak RSS); call
    :func:`preload` first so that the child does not spend its time importing (Linux)."""
    return child_caller()(measure, method, model, settings, threads, label=f"{method} on {model}")


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

# --- tasks on one backbone (a prompt table) -----------------------------------------------

TABLE_MODELS = ("minilm_l6",)
TABLE_TASK = "rte"  # RTE-style sentence pairs, a two-class classification head
ONE, SEPARATE = "one_backbone", "separate"  # memory: one PromptTable / one load_trained per task
MIXED, TASK_BY_TASK = "mixed", "task_by_task"  # throughput: mixed batches / each task's batches alone


@dataclass(frozen=True)
class TableSettings:
    """What "tasks on one backbone" is measured with."""

    tasks: tuple[int, ...] = (1, 4, 16)
    #: features per forward, both ways
    batch: int = 32
    #: examples per inference pass, dealt round-robin to the N tasks (task i: examples i, i+N, ...)
    examples: int = 96
    #: tokens per example (every one is cut at exactly this length)
    length: int = 128
    rounds: int = 3


def _pss_mb() -> float | None:
    """The process's proportional set size (Linux): pages shared with other mappings counted
    in proportion, so a file mapped twice (one checkpoint, two backbones) counts once."""
    try:
        with open("/proc/self/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _trim_heap() -> None:
    """Collect garbage and give freed heap memory back to the system (glibc's ``malloc_trim``),
    so that RSS counts live memory, not what the allocator keeps of freed activations."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def table_names(count: int) -> list[str]:
    return [f"{TABLE_TASK}{i:02d}" for i in range(count)]


def write_table_artefacts(directory: str | Path, model: str, count: int, length: int, seed: int = 0) -> list[str]:
    """``count`` P-Tuning v2 artefacts (prefix length :data:`PROMPT_LENGTH`, classification head
    of :data:`TABLE_TASK`) with random weights, as a cell writes them, all for ``model``'s
    backbone; returns them as ``name=directory`` items (the names of :func:`table_names`)."""
    from omegaconf import OmegaConf

    from ptuning.artefacts import write_random
    from ptuning.backbones import load_backbone
    from ptuning.tasks import get_task

    cfg = OmegaConf.to_object(load_model_config(model))
    backbone = load_backbone(cfg)
    task = get_task(TABLE_TASK)
    options = {"name": "ptuning_v2", "length": PROMPT_LENGTH}
    cells = []
    for index, name in enumerate(table_names(count)):
        cell = write_random(Path(directory) / name, cfg, backbone, task, options, length, seed * 1000 + index,
                            scale=0.02)
        cells.append(f"{name}={cell}")
    return cells


def table_rows(count: int, length: int, seed: int) -> list[dict[str, Any]]:
    """``count`` synthetic :data:`TABLE_TASK` rows whose premise (consecutive synthetic premises
    joined) runs past ``length`` tokens, so that every example is cut at exactly ``length``."""
    from ptuning.tasks import get_task

    span = length // 4 + 2  # a synthetic premise has more than 4 tokens
    pool = get_task(TABLE_TASK).synthetic_rows("validation", count + span, seed)
    return [{**pool[j], "idx": j, "premise": " ".join(row["premise"] for row in pool[j:j + span])}
            for j in range(count)]


def table_features(tokenizer: Any, names: Sequence[str], examples: int, length: int) -> dict[str, Any]:
    """Each task's :class:`~ptuning.tasks.Encoded` share of ``examples`` examples dealt
    round-robin (example ``j`` to task ``j mod N``; task ``i``'s rows seeded by ``i``), every
    feature exactly ``length`` tokens."""
    from ptuning.tasks import get_task

    task = get_task(TABLE_TASK)
    encoded = {}
    for index, name in enumerate(names):
        count = len(range(index, examples, len(names)))
        encoded[name] = task.encode(table_rows(count, length, index), tokenizer, length, train=False)
        lengths = {len(feature["input_ids"]) for feature in encoded[name].features}
        if lengths - {length}:
            raise ValueError(f"features of {sorted(lengths)} tokens; expected {length} each")
    return encoded


def mixed_items(encoded: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The ``(task, feature)`` items of every task, dealt round-robin: task 0's first, task 1's
    first, ..., task 0's second, ...; consecutive ``batch``-sized slices mix the tasks."""
    width = max((len(e.features) for e in encoded.values()), default=0)
    return [(name, e.features[j]) for j in range(width) for name, e in encoded.items() if j < len(e.features)]


def table_memory(model: str, cells: Sequence[str], mode: str, settings: TableSettings,
                 threads: int = 2) -> dict[str, Any]:
    """Load ``cells`` (``name=dir`` items) onto one backbone (``mode`` :data:`ONE`: one
    :class:`~ptuning.prompt_table.PromptTable`) or each with its own backbone (:data:`SEPARATE`:
    one :func:`~ptuning.artefacts.load_trained` per cell), then infer one batch of
    ``settings.batch`` examples dealt round-robin (one mixed batch / each model its share), so
    that the weights are touched (a checkpoint's weights may be mapped from its file and read in
    only when used). Memory figures (MB) of this process's RSS: ``base`` before loading,
    ``loaded`` once loaded, ``held`` after the batch (what serving the N tasks keeps resident),
    ``peak`` (loading and the batch's activations); ``pss``/``pss_base``: its proportional set
    size after the batch / before loading (None off Linux)."""
    import torch

    from ptuning.artefacts import load_trained
    from ptuning.prompt_table import PromptTable
    from ptuning.training import FeatureCollator, predict

    torch.set_num_threads(threads)
    _trim_heap()
    reset = _reset_peak_rss()
    base, pss_base = _status_mb("VmRSS") or _max_rss_mb(), _pss_mb()
    if mode == ONE:
        table = PromptTable.load(cells)
        models = {name: entry.model for name, entry in table.entries.items()}
    elif mode == SEPARATE:
        models = {name: load_trained(path).model for name, _, path in (cell.partition("=") for cell in cells)}
    else:
        raise ValueError(f"mode {mode!r}: expected {ONE} or {SEPARATE}")
    _trim_heap()
    loaded = _status_mb("VmRSS") or _max_rss_mb()
    first = next(iter(models.values())).info
    encoded = table_features(first.tokenizer, list(models), settings.batch, settings.length)
    if mode == ONE:
        table.logits(mixed_items(encoded))
    else:
        collator = FeatureCollator(first.tokenizer.pad_token_id)
        for name, net in models.items():
            predict(net, encoded[name], collator, settings.batch)
    peak = (_status_mb("VmHWM") if reset else None) or _max_rss_mb()
    _trim_heap()
    held = _status_mb("VmRSS") or peak
    backbones = len({id(net.info.model) for net in models.values()})
    return {"model": model, "tasks": len(cells), "mode": mode, "backbones": backbones, "base_mb": base,
            "loaded_mb": loaded, "held_mb": held, "peak_mb": peak, "pss_base_mb": pss_base, "pss_mb": _pss_mb()}


def table_orders(tasks: Sequence[int], rounds: int, seed: int) -> list[list[tuple[int, str]]]:
    """Every round's passes: the N in an order shuffled per round (seeded), each with the way
    that starts it (alternating from pass to pass and round to round)."""
    ways = (MIXED, TASK_BY_TASK)
    return [[(n, ways[(index + position) % 2]) for position, n in enumerate(order)]
            for index, order in enumerate(round_orders(list(tasks), rounds, seed))]


def interleave(first: int, second: int) -> list[int]:
    """The order in which to run ``first`` calls of way 0 and ``second`` of way 1 so that both
    progress at the same pace (the way less far through its calls goes next; way 0 on ties):
    both ways then share the same stretch of time, and so the same load of a shared machine."""
    order, done = [], [0, 0]
    while done[0] < first or done[1] < second:
        way = 0 if done[1] >= second or (done[0] < first and done[0] * second <= done[1] * first) else 1
        order.append(way)
        done[way] += 1
    return order


def table_throughput(model: str, cells: Sequence[str], settings: TableSettings, seed: int = 0,
                     threads: int = 2) -> list[dict[str, Any]]:
    """Inference examples/s of ``settings.examples`` examples for N tasks of one loaded table
    (the first N cells), mixed (one :meth:`PromptTable.logits` per ``settings.batch`` items
    dealt round-robin) and task by task (each task's features through its own model in
    ``settings.batch`` batches, as :func:`ptuning.training.predict`). Per round, every N in
    :func:`table_orders`; within it the two ways' forward calls run alternately
    (:func:`interleave`), each timed, after one warm-up call of each. One row per (round, N, way)."""
    import torch

    from ptuning.prompt_table import PromptTable
    from ptuning.tasks import Encoded
    from ptuning.training import FeatureCollator, predict

    torch.set_num_threads(threads)
    table = PromptTable.load(cells[:max(settings.tasks)])
    names = list(table.entries)
    collator = FeatureCollator(table.backbone.tokenizer.pad_token_id)
    size = settings.batch
    calls: dict[tuple[int, str], list[Callable[[], Any]]] = {}
    for n in settings.tasks:
        sub = PromptTable(table.backbone)
        sub.entries = {name: table.entries[name] for name in names[:n]}
        encoded = table_features(table.backbone.tokenizer, names[:n], settings.examples, settings.length)
        items = mixed_items(encoded)
        calls[(n, MIXED)] = [partial(sub.logits, items[start:start + size]) for start in range(0, len(items), size)]
        calls[(n, TASK_BY_TASK)] = [
            partial(predict, sub.entries[name].model, Encoded(part.rows[start:start + size],
                                                              part.features[start:start + size]), collator, size)
            for name, part in encoded.items() for start in range(0, len(part.features), size)]
    for batches in calls.values():
        batches[0]()  # warm-up
    rows = []
    for index, order in enumerate(table_orders(settings.tasks, settings.rounds, seed)):
        for position, (n, starts) in enumerate(order):
            ways = (starts, TASK_BY_TASK if starts == MIXED else MIXED)
            seconds, done = [0.0, 0.0], [0, 0]
            for way in interleave(len(calls[(n, ways[0])]), len(calls[(n, ways[1])])):
                start = time.perf_counter()
                calls[(n, ways[way])][done[way]]()
                seconds[way] += time.perf_counter() - start
                done[way] += 1
            for way, name in enumerate(ways):
                rows.append({"model": model, "tasks": n, "way": name, "round": index, "position": position,
                             "started": way == 0, "examples": settings.examples, "batches": done[way],
                             "seconds": seconds[way], "examples_per_s": settings.examples / seconds[way]})
    return rows


Call = Callable[..., Any]


def call_here(function: Callable[..., Any], *args: Any, label: str | None = None) -> Any:
    """``function(*args)`` in this process (tests)."""
    return function(*args)


def _call_in_child(conn: Any, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    sys.stdout = sys.stderr  # the bench's stdout carries its tables only
    try:
        conn.send(function(*args))
    except BaseException:
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


def child_caller(fresh: bool = False) -> Call:
    """A :data:`Call` running each call in a process of its own: forked from the bench (call
    :func:`preload` first), or with ``fresh`` (or where there is no fork) a new interpreter."""
    method = "spawn" if fresh or "fork" not in multiprocessing.get_all_start_methods() else "fork"

    def call(function: Callable[..., Any], *args: Any, label: str | None = None) -> Any:
        context = multiprocessing.get_context(method)
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_call_in_child, args=(send, function, args))
        process.start()
        send.close()
        try:
            result = receive.recv()
        except EOFError:
            result = {"error": "the process ended without a result"}
        process.join()
        if isinstance(result, dict) and "error" in result:
            sys.exit(f"bench: {label or function.__name__} failed (exit code {process.exitcode}):\n"
                     f"{result['error'][-3000:]}")
        return result

    call.method = method  # type: ignore[attr-defined]
    return call


def run_table(model: str, settings: TableSettings, seed: int = 0, threads: int = 2, call: Call = call_here,
              log: Callable[[str], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Tasks on one backbone: write max(N) artefacts into a temporary directory, then measure
    the memory of every (N, :data:`ONE` / :data:`SEPARATE`) and the throughput of every N, each
    ``call`` a process of its own in the bench (:func:`child_caller`)."""
    import tempfile

    log = log or (lambda text: None)
    with tempfile.TemporaryDirectory(prefix="bench-table-") as directory:
        cells = call(write_table_artefacts, directory, model, max(settings.tasks), settings.length, seed)
        log(f"[{model} table] {len(cells)} artefacts written")
        memory = []
        for n in settings.tasks:
            for mode in (ONE, SEPARATE):
                row = call(table_memory, model, cells[:n], mode, settings, threads)
                memory.append(row)
                log(f"[{model} table] N={n} {mode}: RSS {row['held_mb']:.0f} MB (+{row['held_mb'] - row['base_mb']:.0f} "
                    f"over the process before loading), peak {row['peak_mb']:.0f} MB")
        speed = call(table_throughput, model, cells, settings, seed, threads)
        for row in speed:
            log(f"[{model} table round {row['round'] + 1}] N={row['tasks']} {row['way']}: "
                f"{row['examples_per_s']:.1f} examples/s")
    return {"memory": memory, "speed": speed}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _added(row: dict[str, Any] | None, key: str, base: str) -> float | None:
    return row[key] - row[base] if row and row.get(key) is not None and row.get(base) is not None else None


def summarize_table(memory: Sequence[dict[str, Any]], speed: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per N (ascending). Memory, per configuration (:data:`ONE`, :data:`SEPARATE`):
    ``<mode>_mb`` (RSS held after the batch), ``<mode>_added_mb`` (that minus the RSS before
    loading), ``<mode>_pss_added_mb`` (the PSS increment), ``<mode>_peak_mb``; each
    ``memory_x_<key>`` is one backbone / separate. Throughput: ``mixed_per_s`` and
    ``task_by_task_per_s`` (medians over rounds), ``speed_x`` the :func:`spread` of the per-round
    ratio mixed / task by task, ``<way>_batches`` the forward calls of a pass."""
    counts = sorted({row["tasks"] for row in memory} | {row["tasks"] for row in speed})
    summary = []
    for n in counts:
        entry: dict[str, Any] = {"tasks": n}
        mem = {row["mode"]: row for row in memory if row["tasks"] == n}
        for mode in (ONE, SEPARATE):
            row = mem.get(mode)
            entry[f"{mode}_mb"] = row["held_mb"] if row else None
            entry[f"{mode}_added_mb"] = _added(row, "held_mb", "base_mb")
            entry[f"{mode}_pss_added_mb"] = _added(row, "pss_mb", "pss_base_mb")
            entry[f"{mode}_peak_mb"] = row["peak_mb"] if row else None
        for key in ("mb", "added_mb", "pss_added_mb", "peak_mb"):
            entry[f"memory_x_{key}"] = _ratio(entry[f"{ONE}_{key}"], entry[f"{SEPARATE}_{key}"])
        by_round: dict[int, dict[str, float]] = {}
        for row in speed:
            if row["tasks"] == n:
                by_round.setdefault(row["round"], {})[row["way"]] = row["examples_per_s"]
                entry[f"{row['way']}_batches"] = row["batches"]
        for way in (MIXED, TASK_BY_TASK):
            values = [r[way] for r in by_round.values() if way in r]
            entry[f"{way}_per_s"] = statistics.median(values) if values else None
            entry.setdefault(f"{way}_batches", None)
        ratios = [r[MIXED] / r[TASK_BY_TASK] for _, r in sorted(by_round.items()) if MIXED in r and TASK_BY_TASK in r]
        entry["speed_x"] = spread(ratios) if ratios else None
        summary.append(entry)
    return summary


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(entry: dict[str, Any], key: str, digits: int = 0) -> str:
    return f"{_num(entry[f'{ONE}_{key}'], digits)} / {_num(entry[f'{SEPARATE}_{key}'], digits)}"


def format_table_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The "tasks on one backbone" table: per N, RSS held by one backbone vs N separate models
    (MB, ratio one / separate) and inference examples/s mixed vs task by task (ratio mixed /
    task by task, median [min-max] over rounds)."""
    from tabulate import tabulate

    headers = ["N", "one backbone MB", "separate MB", "x separate", "mixed ex/s", "task-by-task ex/s",
               "x task-by-task", "batches mixed / task-by-task"]
    table = [[str(s["tasks"]), _num(s[f"{ONE}_mb"]), _num(s[f"{SEPARATE}_mb"]), _num(s["memory_x_mb"], 2),
              _num(s[f"{MIXED}_per_s"], 1), _num(s[f"{TASK_BY_TASK}_per_s"], 1), _fmt(s["speed_x"]),
              f"{_num(s[f'{MIXED}_batches'])} / {_num(s[f'{TASK_BY_TASK}_batches'])}"]
             for s in summary]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(headers) - 1))


def format_memory_detail(summary: Sequence[dict[str, Any]]) -> str:
    """Per N, one backbone / separate: the RSS increment over the process before loading, the
    PSS increment and the peak RSS, with the ratios one / separate."""
    from tabulate import tabulate

    headers = ["N", "+RSS MB one / separate", "x separate", "+PSS MB one / separate", "x separate",
               "peak RSS MB one / separate", "x separate"]
    table = [[str(s["tasks"]), _pair(s, "added_mb"), _num(s["memory_x_added_mb"], 2), _pair(s, "pss_added_mb"),
              _num(s["memory_x_pss_added_mb"], 2), _pair(s, "peak_mb"), _num(s["memory_x_peak_mb"], 2)]
             for s in summary]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(headers) - 1))


def describe_table(model: str, settings: TableSettings, threads: int, seed: int, call: Call | None = None,
                   memory: Sequence[dict[str, Any]] = ()) -> str:
    """The settings lines printed above a model's "tasks on one backbone" table."""
    where = {"fork": "a process forked from the bench", "spawn": "a fresh interpreter"}.get(
        getattr(call, "method", ""), "this process")
    per_task = ", ".join(f"N={n}: {-(-settings.examples // n)}" for n in settings.tasks)
    base = ""
    if memory:
        low, high = (f"{value:.0f}" for value in (min(r["base_mb"] for r in memory), max(r["base_mb"] for r in memory)))
        base = f" (holding {low if low == high else f'{low}-{high}'} MB RSS before loading)"
    rounds = f"{settings.rounds} round{'s' if settings.rounds > 1 else ''}"
    return (f"## tasks on one backbone, model={model}: N = {','.join(map(str, settings.tasks))} P-Tuning v2 "
            f"artefacts (prefix length {PROMPT_LENGTH}, {TABLE_TASK} classification head, random weights)\n"
            f"   memory: each configuration once, in {where}{base}, after loading and one inference batch "
            f"of {settings.batch} examples\n"
            f"   throughput: {settings.examples} synthetic {TABLE_TASK} examples of {settings.length} tokens "
            f"per pass (per task: {per_task}), batch {settings.batch}, the two ways' batches alternating, "
            f"{rounds} (seed {seed}), {threads} threads")


TABLE_LEGEND = (
    "one backbone: one PromptTable holding the N artefacts; separate: N load_trained calls, each loading "
    "its own backbone (weights, tokenizer). MB: the process's RSS after loading and one inference batch "
    "(what serving the N tasks keeps resident; libraries included); x separate: one backbone / separate.\n"
    "+RSS: that RSS minus the process's RSS before loading; +PSS: the same for the proportional set size, "
    "which counts a page mapped several times once: the safetensors checkpoint is memory-mapped, so N "
    "backbones loaded from one file share its pages and RSS counts them N times; peak RSS: loading plus "
    "the batch's activations.\n"
    "mixed: one PromptTable.logits call per batch of features dealt round-robin from the N tasks; "
    "task-by-task: each task's features alone through its own model in batches of the same size "
    "(as ptuning.training.predict), so a task's batches hold at most examples/N features; the two ways' "
    "batches alternate, so that both see the same load of a shared machine; x task-by-task: mixed / "
    "task-by-task examples/s within a round, median [min-max] over rounds."
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


def table_settings(args: argparse.Namespace) -> TableSettings:
    """The "tasks on one backbone" settings of the command line (``--table-*``)."""
    try:
        tasks = sorted({int(item) for item in args.table_tasks.split(",") if item.strip()})
    except ValueError:
        raise SystemExit(f"bench: --table-tasks {args.table_tasks!r}: expected a comma list of N, e.g. 1,4,16") from None
    if not tasks or tasks[0] < 1:
        raise SystemExit(f"bench: --table-tasks {args.table_tasks!r}: every N must be >= 1")
    for field, least in (("rounds", 1), ("batch", 1), ("examples", max(tasks)), ("length", 16)):
        value = getattr(args, f"table_{field}")
        if value < least:
            raise SystemExit(f"bench: --table-{field} {value}: expected at least {least}"
                             + (" (an example per task)" if field == "examples" else ""))
    return TableSettings(tuple(tasks), args.table_batch, args.table_examples, args.table_length, args.table_rounds)


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
    parser.add_argument("--methods", default=None, help="comma list (default: every method but mpt2 (P-Tuning v2's module), then PEFT's)")
    parser.add_argument("--out", type=Path, help="also write settings and every run's row as JSON")
    parser.add_argument("--fresh", action="store_true",
                        help="a new interpreter per run instead of a fork of the bench (slower)")
    table = parser.add_argument_group("tasks on one backbone (a prompt table of N P-Tuning v2 artefacts)")
    table.add_argument("--table-models", default=",".join(TABLE_MODELS),
                       help="comma list of conf/model names (default: %(default)s)")
    table.add_argument("--table-tasks", default=",".join(map(str, TableSettings.tasks)),
                       help="comma list of N, the numbers of tasks (default: %(default)s)")
    defaults_table = TableSettings()
    table.add_argument("--table-rounds", type=int, default=defaults_table.rounds,
                       help="throughput rounds (default: %(default)s)")
    table.add_argument("--table-batch", type=int, default=defaults_table.batch,
                       help="features per forward, both ways (default: %(default)s)")
    table.add_argument("--table-examples", type=int, default=defaults_table.examples,
                       help="examples per throughput pass, dealt round-robin to the N tasks (default: %(default)s)")
    table.add_argument("--table-length", type=int, default=defaults_table.length,
                       help="tokens per example (default: %(default)s)")
    part = table.add_mutually_exclusive_group()
    part.add_argument("--skip-table", action="store_true", help="only the step-time and memory bench")
    part.add_argument("--table-only", action="store_true", help="only tasks on one backbone")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    settings = settings_for(models, args)
    if args.worker:
        print(json.dumps(measure(args.worker, models[0], settings[models[0]], args.threads)))
        return
    from ptuning.methods import METHODS

    step_models = [] if args.table_only else models
    table_models = [] if args.skip_table else [m.strip() for m in args.table_models.split(",") if m.strip()]
    chosen_table = table_settings(args)
    # MPT-2 trains P-Tuning v2's module (its multi-task stage is a data schedule): not timed twice
    methods = args.methods.split(",") if args.methods else [*(m for m in METHODS if m != "mpt2"), REFERENCE]
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    runner: Runner = run_worker
    if not args.fresh and "fork" in multiprocessing.get_all_start_methods():
        preload(list(dict.fromkeys(step_models + table_models)))
        runner = run_forked
    all_rows: dict[str, list[dict[str, Any]]] = {}
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    blocks = []
    for model in step_models:
        rows = run_rounds(model, settings[model], methods, args.seed, args.threads, runner, log=log)
        all_rows[model], summaries[model] = rows, summarize(rows)
        orders = round_orders(methods, settings[model].rounds, args.seed)
        blocks.append(f"{describe(model, settings[model], args.threads, args.seed, orders, runner)}\n\n"
                      f"{format_table(summaries[model])}")
    steps_elapsed = time.perf_counter() - started
    tables: dict[str, dict[str, Any]] = {}
    table_blocks = []
    call = child_caller(args.fresh)
    for model in table_models:
        result = run_table(model, chosen_table, args.seed, args.threads, call, log)
        summary = summarize_table(result["memory"], result["speed"])
        tables[model] = {**result, "summary": summary}
        table_blocks.append(f"{describe_table(model, chosen_table, args.threads, args.seed, call, result['memory'])}"
                            f"\n\n{format_table_summary(summary)}\n\nmemory detail (one backbone / separate):\n\n"
                            f"{format_memory_detail(summary)}")
    elapsed = time.perf_counter() - started
    if blocks:
        print("\n\n".join(blocks))
        print(f"\n{LEGEND}\n\n## targets (MET: median over rounds within the target)")
        for line in target_lines(summaries, all_rows, settings):
            print(f"- {line}")
    if table_blocks:
        print(("\n" if blocks else "") + "\n\n".join(table_blocks))
        print(f"\n{TABLE_LEGEND}")
    parts = [f"steps {steps_elapsed / 60:.1f} min"] if blocks else []
    parts += [f"tasks on one backbone {(elapsed - steps_elapsed) / 60:.1f} min"] if table_blocks else []
    print(f"\nbench took {elapsed / 60:.1f} min ({', '.join(parts)})")
    if args.out:
        out: dict[str, Any] = {"settings": {m: asdict(settings[m]) for m in step_models}, "threads": args.threads,
                               "seed": args.seed, "rows": all_rows, "elapsed_s": elapsed}
        if tables:
            out["table"] = {"settings": asdict(chosen_table), "models": tables,
                            "elapsed_s": elapsed - steps_elapsed}
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
