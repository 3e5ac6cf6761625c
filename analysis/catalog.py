"""Names, display labels, task families and plot styles shared by the analysis package.

Pure data plus small formatting helpers; nothing here imports training code. Records are the
source of truth (``model_info.backbone_params``, ``task.primary_metric``); the tables below are
only fallbacks for cells that have no record (missing) and for stable ordering.
"""

from __future__ import annotations

import math

METHODS: tuple[str, ...] = (
    "finetune",
    "prompt_tuning",
    "ptuning_v1",
    "prefix_tuning",
    "ptuning_v2",
)

METHOD_DISPLAY: dict[str, str] = {
    "finetune": "Fine-tuning",
    "prompt_tuning": "Prompt tuning (Lester)",
    "ptuning_v1": "P-Tuning v1",
    "prefix_tuning": "Prefix tuning (Li & Liang)",
    "ptuning_v2": "P-Tuning v2",
}

# The P-Tuning v2 paper reports one "PT" row for prompt tuning (Lester et al.) and P-Tuning v1
# with a frozen backbone. Published rows carrying that combined label apply to both methods.
COMBINED_PT = "prompt_tuning+ptuning_v1"
COMBINED_PT_DISPLAY = "PT (Prompt tuning & P-Tuning v1, frozen)"
COMBINED_MEMBERS: dict[str, tuple[str, ...]] = {COMBINED_PT: ("prompt_tuning", "ptuning_v1")}

FAMILIES: tuple[str, ...] = ("SuperGLUE", "NER", "QA")

TASK_FAMILY: dict[str, str] = {
    "boolq": "SuperGLUE",
    "cb": "SuperGLUE",
    "copa": "SuperGLUE",
    "multirc": "SuperGLUE",
    "record": "SuperGLUE",
    "rte": "SuperGLUE",
    "wic": "SuperGLUE",
    "wsc": "SuperGLUE",
    "conll2003": "NER",
    "conll04": "NER",
    "ontonotes": "NER",
    "squad": "QA",
    "squad_v2": "QA",
}
TASKS: tuple[str, ...] = tuple(TASK_FAMILY)

TASK_DISPLAY: dict[str, str] = {
    "boolq": "BoolQ",
    "cb": "CB",
    "copa": "COPA",
    "multirc": "MultiRC",
    "record": "ReCoRD",
    "rte": "RTE",
    "wic": "WiC",
    "wsc": "WSC",
    "conll2003": "CoNLL03",
    "conll04": "CoNLL04",
    "ontonotes": "OntoNotes 5.0",
    "squad": "SQuAD 1.1",
    "squad_v2": "SQuAD 2.0",
}

PRIMARY_METRIC: dict[str, str] = {
    "boolq": "accuracy",
    "cb": "accuracy",
    "copa": "accuracy",
    "multirc": "f1a",
    "record": "f1",
    "rte": "accuracy",
    "wic": "accuracy",
    "wsc": "accuracy",
    "conll2003": "f1",
    "conll04": "f1",
    "ontonotes": "f1",
    "squad": "f1",
    "squad_v2": "f1",
}

METRIC_DISPLAY: dict[str, str] = {
    "accuracy": "Acc.",
    "f1": "F1",
    "f1a": "F1a",
    "f1_macro": "macro-F1",
    "em": "EM",
}

# (display name, backbone parameter count) -- fallback only; records win.
MODELS: dict[str, tuple[str, float]] = {
    "tiny_bert": ("tiny-BERT-random", float("nan")),
    "tiny_roberta": ("tiny-RoBERTa-random", float("nan")),
    "tiny_deberta_v2": ("tiny-DeBERTa-v2-random", float("nan")),
    "tiny_gpt2": ("tiny-GPT-2-random", float("nan")),
    "tiny_llama": ("tiny-Llama-random", float("nan")),
    "minilm_l6": ("MiniLM-L6", 22.7e6),
    "bert_base": ("BERT-base", 108e6),
    "bert_large": ("BERT-large", 333e6),
    "bert_large_uncased": ("BERT-large (uncased)", 335e6),
    "roberta_base": ("RoBERTa-base", 125e6),
    "roberta_large": ("RoBERTa-large", 355e6),
    "gpt2_medium": ("GPT-2 medium", 355e6),
    "deberta_v2_xlarge": ("DeBERTa-v2-xlarge", 885e6),
    "deberta_v2_xxlarge": ("DeBERTa-v2-xxlarge", 1.5e9),
    "gpt2_xl": ("GPT-2 XL", 1.5e9),
    "llama2_7b": ("Llama-2-7B", 6.7e9),
    "llama2_13b": ("Llama-2-13B", 13.0e9),
}

# Okabe-Ito colour-blind-safe palette; one fixed colour and marker per method in every figure.
METHOD_STYLE: dict[str, dict[str, str]] = {
    "finetune": {"color": "#000000", "marker": "s", "linestyle": "-"},
    "prompt_tuning": {"color": "#E69F00", "marker": "v", "linestyle": "--"},
    "ptuning_v1": {"color": "#56B4E9", "marker": "^", "linestyle": "-."},
    "prefix_tuning": {"color": "#009E73", "marker": "D", "linestyle": ":"},
    "ptuning_v2": {"color": "#D55E00", "marker": "o", "linestyle": "-"},
    COMBINED_PT: {"color": "#E69F00", "marker": "v", "linestyle": "none"},
}
FALLBACK_STYLE: dict[str, str] = {"color": "#777777", "marker": "x", "linestyle": "-"}


def method_display(method: str) -> str:
    """Display name of a method config name (the name itself when unknown)."""
    if method == COMBINED_PT:
        return COMBINED_PT_DISPLAY
    return METHOD_DISPLAY.get(method, method)


def task_display(task: str) -> str:
    """Display name of a task config name."""
    return TASK_DISPLAY.get(task, task)


def model_display(model: str) -> str:
    """Display name of a model config name."""
    return MODELS.get(model, (model, float("nan")))[0]


def task_family(task: str, record_family: str | None = None) -> str:
    """Paper family of a task (SuperGLUE/NER/QA); unknown tasks keep the record's family."""
    return TASK_FAMILY.get(task, record_family or "Other")


def method_order(method: str) -> int:
    """Sort key placing methods in the paper's row order."""
    return METHODS.index(method) if method in METHODS else len(METHODS)


def task_order(task: str) -> int:
    """Sort key placing tasks in the paper's column order."""
    return TASKS.index(task) if task in TASKS else len(TASKS)


def format_count(n: float | None) -> str:
    """Human parameter count with 3 significant digits: 22713216 -> '22.7M', 1.5e9 -> '1.50B'."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "?"
    n = float(n)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{_sig3(n / div)}{suffix}"
    return f"{int(round(n))}"


def format_pct(p: float | None) -> str:
    """Percentage with 3 significant digits and no exponent: 0.3281 -> '0.328%'."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "?"
    return f"{_sig3(p)}%"


def _sig3(x: float) -> str:
    if x == 0:
        return "0"
    digits = max(0, 2 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{digits}f}"
