"""How methods, families and numbers look in tables and figures (presentation only).

Names, families and primary metrics come from the records; this module only decides
colours, markers, row and column order, and number formats. A method it does not know
is drawn in grey after the known ones.
"""

from __future__ import annotations

import math

#: one fixed colour, marker and line per method in every figure (Okabe-Ito, colour-blind
#: safe); the order is the papers' row order
METHOD_STYLE: dict[str, dict[str, str]] = {
    "finetune": {"color": "#000000", "marker": "s", "linestyle": "-"},
    "lora": {"color": "#CC79A7", "marker": "P", "linestyle": "-"},
    "prompt_tuning": {"color": "#E69F00", "marker": "v", "linestyle": "--"},
    "ptuning_v1": {"color": "#56B4E9", "marker": "^", "linestyle": "-."},
    "prefix_tuning": {"color": "#009E73", "marker": "D", "linestyle": ":"},
    "ptuning_v2": {"color": "#D55E00", "marker": "o", "linestyle": "-"},
    "mpt2": {"color": "#0072B2", "marker": "*", "linestyle": "-"},
}
FALLBACK_STYLE = {"color": "#777777", "marker": "x", "linestyle": "-"}

# The P-Tuning v2 paper reports one "PT" row for prompt tuning (Lester et al.) and P-Tuning
# v1 with a frozen backbone; published rows with this label apply to both methods.
COMBINED_PT = "prompt_tuning+ptuning_v1"
COMBINED_PT_DISPLAY = "PT (Prompt tuning & P-Tuning v1, frozen)"
COMBINED_MEMBERS = {COMBINED_PT: ("prompt_tuning", "ptuning_v1")}
METHOD_STYLE[COMBINED_PT] = {**METHOD_STYLE["prompt_tuning"], "linestyle": "none"}
#: the papers' method names (FT, PT, PT-2, MPT-2), for series drawn from their tables
PAPER_METHOD_LABEL = {
    "finetune": "FT (fine-tuning)",
    COMBINED_PT: "PT (prompt tuning & P-Tuning v1)",
    "ptuning_v2": "PT-2 (P-Tuning v2)",
    "mpt2": "MPT-2 (multi-task P-Tuning v2)",
}

#: the papers' order of task families (others follow, by name)
FAMILY_ORDER = ("GLUE", "SuperGLUE", "NER", "QA", "SRL")
METRIC_SHORT = {"accuracy": "Acc.", "f1": "F1", "f1a": "F1a", "f1_macro": "macro-F1", "em": "EM"}


def style(method: str) -> dict[str, str]:
    return METHOD_STYLE.get(method, FALLBACK_STYLE)


def method_order(method: str) -> int:
    return list(METHOD_STYLE).index(method) if method in METHOD_STYLE else len(METHOD_STYLE)


def paper_method_order(method: str) -> int:
    """Row order with the combined PT row where prompt tuning is: FT, PT, PT-2, then others."""
    return method_order(COMBINED_MEMBERS.get(method, (method,))[0])


def family_order(family: str) -> tuple[int, str]:
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), family)


def task_label(display: str, source: str | None) -> str:
    """A task as tables and axes name it: "RTE", or "RTE-style (synthetic)" for generated data."""
    return f"{display}-style (synthetic)" if source == "synthetic" else display


def format_count(n: float | None) -> str:
    """Human parameter count with 3 significant digits: 22713216 -> '22.7M', 1.5e9 -> '1.50B'."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "?"
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
