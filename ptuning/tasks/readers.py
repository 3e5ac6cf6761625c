"""Readers from the original on-disk formats to canonical rows (the Hugging Face hub schemas).

Canonical rows are exactly what ``super_glue/<config>``, ``conll2003``, ``squad`` and
``squad_v2`` yield, except that NER tags are IOB2 *strings* (``LABEL_NAMES`` gives the id
order). Every reader parses the whole file before returning and raises ``DataFormatError``
naming the file and the line (or record) of the first problem.

ReCoRD convention (matches HF ``super_glue/record``): the passage text is kept verbatim,
``@highlight`` markers included, so that character offsets index it directly; the original
jsonl stores entity spans with an *inclusive* end, which is converted to the Python-slice
(exclusive) end HF uses: ``passage[start:end] == text``. ``entity_spans`` is sorted by start,
``entities`` and ``answers`` are the sorted sets of distinct texts (as HF builds them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DataFormatError",
    "LABEL_NAMES",
    "NER_FORMATS",
    "ROW_KEYS",
    "SUPERGLUE_TASKS",
    "read_conll",
    "read_squad_json",
    "read_superglue_jsonl",
    "to_iob2",
]


class DataFormatError(ValueError):
    """A data file does not match its expected format; the message names file and line/record."""


SUPERGLUE_TASKS = ("boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc")
NER_FORMATS = ("conll2003", "token_tag", "conllx", "generic")

# Class-label order of each task (index = label id in the canonical rows).
LABEL_NAMES: dict[str, list[str]] = {
    "boolq": ["False", "True"],
    "cb": ["entailment", "contradiction", "neutral"],
    "copa": ["choice1", "choice2"],
    "multirc": ["False", "True"],
    "rte": ["entailment", "not_entailment"],
    "wic": ["False", "True"],
    "wsc": ["False", "True"],
    # HF ``conll2003`` ner_tags ClassLabel order.
    "conll2003": ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"],
    # P-tuning v2 ``tasks/ner/datasets/conll2004.py`` order.
    "conll04": ["O", "B-Loc", "B-Peop", "B-Org", "B-Other", "I-Loc", "I-Peop", "I-Org", "I-Other"],
    # P-tuning v2 ``tasks/ner/datasets/ontonotes.py`` order (B-* sorted, I-* sorted, O).
    "ontonotes": [
        f"{p}-{t}"
        for p in ("B", "I")
        for t in (
            "CARDINAL DATE EVENT FAC GPE LANGUAGE LAW LOC MONEY NORP ORDINAL ORG PERCENT "
            "PERSON PRODUCT QUANTITY TIME WORK_OF_ART"
        ).split()
    ]
    + ["O"],
}

_NER_KEYS = frozenset({"id", "tokens", "ner_tags"})
_SQUAD_KEYS = frozenset({"id", "title", "context", "question", "answers"})
# Key set of the canonical row of every task.
ROW_KEYS: dict[str, frozenset[str]] = {
    "boolq": frozenset({"question", "passage", "idx", "label"}),
    "cb": frozenset({"premise", "hypothesis", "idx", "label"}),
    "rte": frozenset({"premise", "hypothesis", "idx", "label"}),
    "wic": frozenset(
        {"word", "sentence1", "sentence2", "start1", "start2", "end1", "end2", "idx", "label"}
    ),
    "wsc": frozenset(
        {"text", "span1_index", "span2_index", "span1_text", "span2_text", "idx", "label"}
    ),
    "copa": frozenset({"premise", "choice1", "choice2", "question", "idx", "label"}),
    "multirc": frozenset({"paragraph", "question", "answer", "idx", "label"}),
    "record": frozenset({"passage", "query", "entities", "entity_spans", "answers", "idx"}),
    "conll2003": _NER_KEYS,
    "conll04": _NER_KEYS,
    "ontonotes": _NER_KEYS,
    "squad": _SQUAD_KEYS,
    "squad_v2": _SQUAD_KEYS,
}

# Fields each flat SuperGLUE jsonl row needs ("target" holds WSC's span fields).
_FLAT_FIELDS: dict[str, tuple[str, ...]] = {
    "boolq": ("question", "passage", "label", "idx"),
    "cb": ("premise", "hypothesis", "label", "idx"),
    "rte": ("premise", "hypothesis", "label", "idx"),
    "wic": ("word", "sentence1", "sentence2", "start1", "start2", "end1", "end2", "label", "idx"),
    "wsc": ("text", "target", "label", "idx"),
    "copa": ("premise", "choice1", "choice2", "question", "label", "idx"),
}
_WSC_TARGET_FIELDS = ("span1_index", "span2_index", "span1_text", "span2_text")


def _open_text(path: str | Path) -> tuple[Path, str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data file not found: {p}")
    return p, p.read_text(encoding="utf-8")


def _task_name(task: str) -> str:
    name = task.lower().replace("-", "_")
    if name not in SUPERGLUE_TASKS:
        raise ValueError(f"unknown SuperGLUE task {task!r} (known: {', '.join(SUPERGLUE_TASKS)})")
    return name


class _Ctx:
    """Location of the record being parsed, used to build error messages."""

    def __init__(self, where: str, task: str, required: tuple[str, ...]) -> None:
        self.where, self.task, self.required = where, task, required

    def error(self, msg: str) -> DataFormatError:
        return DataFormatError(f"{self.where}: {msg}")

    def get(self, obj: Any, key: str, path: str = "") -> Any:
        if not isinstance(obj, Mapping):
            raise self.error(f"expected a JSON object at {path or 'top level'}")
        if key not in obj:
            name = f"{path}.{key}" if path else key
            raise self.error(
                f"missing field '{name}' ({self.task} rows need {', '.join(self.required)})"
            )
        return obj[key]


def _binary_label(ctx: _Ctx, value: Any) -> int:
    """Bool label (BoolQ, WiC, WSC, MultiRC answers) -> 0/1, as HF's ClassLabel False/True."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value in ("False", "True"):
        return int(value == "True")
    raise ctx.error(f"invalid {ctx.task} label {value!r} (valid: true, false, 0, 1)")


def _named_label(ctx: _Ctx, value: Any) -> int:
    names = LABEL_NAMES[ctx.task]
    if value not in names:
        raise ctx.error(f"invalid {ctx.task} label {value!r} (valid: {', '.join(names)})")
    return names.index(value)


def _int_field(ctx: _Ctx, obj: Any, key: str, path: str = "") -> int:
    value = ctx.get(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(f"field '{key}' must be an integer, got {value!r}")
    return value


def _str_field(ctx: _Ctx, obj: Any, key: str, path: str = "") -> str:
    value = ctx.get(obj, key, path)
    if not isinstance(value, str):
        raise ctx.error(f"field '{key}' must be a string, got {value!r}")
    return value


def _flat_row(ctx: _Ctx, row: Any, require_label: bool) -> dict[str, Any]:
    task = ctx.task
    fields = _FLAT_FIELDS[task]
    src = dict(row) if isinstance(row, Mapping) else row
    if task == "wsc":
        target = ctx.get(src, "target")
        for key in _WSC_TARGET_FIELDS:
            ctx.get(target, key, "target")
        src.update(target)
        fields = ("text", *_WSC_TARGET_FIELDS, "label", "idx")
    out: dict[str, Any] = {}
    for key in fields:
        if key == "label":
            continue
        if key in ("idx", "start1", "start2", "end1", "end2", "span1_index", "span2_index"):
            out[key] = _int_field(ctx, src, key)
        else:
            out[key] = _str_field(ctx, src, key)
    if not require_label and "label" not in src:
        out["label"] = -1
    elif task in ("cb", "rte"):
        out["label"] = _named_label(ctx, ctx.get(src, "label"))
    elif task == "copa":
        label = ctx.get(src, "label")
        if isinstance(label, bool) or label not in (0, 1):
            raise ctx.error(f"invalid copa label {label!r} (valid: 0, 1)")
        out["label"] = label
    else:
        out["label"] = _binary_label(ctx, ctx.get(src, "label"))
    return out


def _flat_rows(ctx: _Ctx, row: Any, require_label: bool) -> list[dict[str, Any]]:
    return [_flat_row(ctx, row, require_label)]


def _multirc_rows(ctx: _Ctx, row: Any, require_label: bool) -> list[dict[str, Any]]:
    p_idx = _int_field(ctx, row, "idx")
    passage = ctx.get(row, "passage")
    text = _str_field(ctx, passage, "text", "passage")
    questions = ctx.get(passage, "questions", "passage")
    rows = []
    for qi, question in enumerate(questions):
        qpath = f"passage.questions[{qi}]"
        q_text = _str_field(ctx, question, "question", qpath)
        q_idx = _int_field(ctx, question, "idx", qpath)
        for ai, answer in enumerate(ctx.get(question, "answers", qpath)):
            apath = f"{qpath}.answers[{ai}]"
            if not require_label and "label" not in answer:
                label = -1
            else:
                label = _binary_label(ctx, ctx.get(answer, "label", apath))
            rows.append(
                {
                    "paragraph": text,
                    "question": q_text,
                    "answer": _str_field(ctx, answer, "text", apath),
                    "idx": {
                        "paragraph": p_idx,
                        "question": q_idx,
                        "answer": _int_field(ctx, answer, "idx", apath),
                    },
                    "label": label,
                }
            )
    return rows


def _record_rows(ctx: _Ctx, row: Any, require_label: bool) -> list[dict[str, Any]]:
    p_idx = _int_field(ctx, row, "idx")
    passage = ctx.get(row, "passage")
    text = _str_field(ctx, passage, "text", "passage")
    spans = []
    for ei, ent in enumerate(ctx.get(passage, "entities", "passage")):
        epath = f"passage.entities[{ei}]"
        start = _int_field(ctx, ent, "start", epath)
        end = _int_field(ctx, ent, "end", epath) + 1  # inclusive -> exclusive
        if not 0 <= start < end <= len(text):
            raise ctx.error(f"entity span [{start}, {end - 1}] outside the passage")
        spans.append((start, end, text[start:end]))
    spans.sort(key=lambda s: s[0])
    entity_spans = {
        "text": [s[2] for s in spans],
        "start": [s[0] for s in spans],
        "end": [s[1] for s in spans],
    }
    entities = sorted({s[2] for s in spans})
    rows = []
    for qi, qa in enumerate(ctx.get(row, "qas")):
        qpath = f"qas[{qi}]"
        if not require_label and "answers" not in qa:
            answers: list[str] = []
        else:
            raw = ctx.get(qa, "answers", qpath)
            answers = sorted({_str_field(ctx, a, "text", f"{qpath}.answers") for a in raw})
        rows.append(
            {
                "passage": text,
                "query": _str_field(ctx, qa, "query", qpath),
                "entities": list(entities),
                "entity_spans": {k: list(v) for k, v in entity_spans.items()},
                "answers": answers,
                "idx": {"passage": p_idx, "query": _int_field(ctx, qa, "idx", qpath)},
            }
        )
    return rows


_NESTED_FIELDS = {
    "multirc": ("idx", "passage.text", "passage.questions[].question/idx/answers[].text/idx/label"),
    "record": ("idx", "passage.text", "passage.entities[].start/end", "qas[].query/idx/answers"),
}


def read_superglue_jsonl(
    path: str | Path, task: str, require_label: bool = True
) -> list[dict[str, Any]]:
    """Read an original SuperGLUE ``.jsonl`` file into canonical HF ``super_glue`` rows.

    Labels become class ids in ``LABEL_NAMES[task]`` order; MultiRC is flattened to one row per
    answer option and ReCoRD to one row per query (see the module docstring for spans). With
    ``require_label=False`` (unlabelled test files) a missing label becomes -1 as in HF.
    """
    name = _task_name(task)
    p, text = _open_text(path)
    required = _FLAT_FIELDS.get(name) or _NESTED_FIELDS[name]
    if name == "wsc":
        required = ("text", "label", "idx", *(f"target.{k}" for k in _WSC_TARGET_FIELDS))
    builder: Callable[[_Ctx, Any, bool], list[dict[str, Any]]] = {
        "multirc": _multirc_rows,
        "record": _record_rows,
    }.get(name, _flat_rows)
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        ctx = _Ctx(f"{p}:{lineno}", name, tuple(required))
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ctx.error(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise ctx.error(f"expected a JSON object, got {type(record).__name__}")
        rows.extend(builder(ctx, record, require_label))
    return rows


_TAG_RE = re.compile(r"^(O|([BIESLMU])-(\S+))$")


def to_iob2(tags: list[str]) -> list[str]:
    """Normalise IOB1 / IOB2 / IOBES / BILOU tags to IOB2 (S,U->B; E,L,M->I; stray I->B)."""
    out: list[str] = []
    prev = "O"
    for tag in tags:
        m = _TAG_RE.match(tag)
        if m is None:
            raise ValueError(f"invalid NER tag {tag!r}")
        if tag == "O":
            out.append("O")
        else:
            prefix, etype = m.group(2), m.group(3)
            inside = prefix in "IELM"
            if inside and prev in (f"B-{etype}", f"I-{etype}"):
                out.append(f"I-{etype}")
            else:
                out.append(f"B-{etype}")
        prev = out[-1]
    return out


_CONLL_COLUMNS = {"conll2003": (4, "token POS chunk NER"), "token_tag": (2, "token TAG")}


def read_conll(path: str | Path, fmt: str) -> list[dict[str, Any]]:
    """Read a CoNLL-style NER file into ``{id, tokens, ner_tags}`` rows (IOB2 string tags).

    ``fmt``: ``"conll2003"`` (4 columns ``token POS chunk NER``), ``"token_tag"`` (2 columns,
    CoNLL04) or ``"conllx"``/``"generic"`` (tag in the last column; token in the 2nd column when
    the 1st is an integer word id as in OntoNotes ``.sd.conllx``, else in the 1st). Blank lines
    and ``-DOCSTART-`` lines end sentences; ids are ``"0"``, ``"1"``, ... as in HF. Tags are
    normalised to IOB2 with ``to_iob2``.
    """
    if fmt not in NER_FORMATS:
        raise ValueError(f"unknown CoNLL format {fmt!r} (known: {', '.join(NER_FORMATS)})")
    p, text = _open_text(path)
    rows: list[dict[str, Any]] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if not tokens:
            return
        rows.append({"id": str(len(rows)), "tokens": list(tokens), "ner_tags": to_iob2(tags)})
        tokens.clear()
        tags.clear()

    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            flush()
            continue
        cols = line.split("\t") if fmt in ("conllx", "generic") and "\t" in line else line.split()
        cols = [c.strip() for c in cols]
        if cols[0] == "-DOCSTART-":
            flush()
            continue
        if fmt in _CONLL_COLUMNS:
            n, names = _CONLL_COLUMNS[fmt]
            if len(cols) != n:
                raise DataFormatError(
                    f"{p}:{lineno}: expected {n} columns ({names}), got {len(cols)}"
                )
            token, tag = cols[0], cols[-1]
        else:
            if len(cols) < 2:
                raise DataFormatError(
                    f"{p}:{lineno}: expected at least 2 columns (token ... TAG), got {len(cols)}"
                )
            token = cols[1] if len(cols) >= 3 and cols[0].isdigit() else cols[0]
            tag = cols[-1]
        if _TAG_RE.match(tag) is None:
            raise DataFormatError(
                f"{p}:{lineno}: invalid NER tag {tag!r} (expected O or B-/I-/E-/S-/L-/U-TYPE)"
            )
        tokens.append(token)
        tags.append(tag)
    flush()
    return rows


def read_squad_json(
    path: str | Path, version: str = "1.1", check_offsets: bool = True
) -> list[dict[str, Any]]:
    """Read a SQuAD v1.1 / v2.0 JSON file into HF ``squad`` / ``squad_v2`` rows, one per question.

    ``answers`` is ``{"text": [...], "answer_start": [...]}`` (empty lists for v2.0
    unanswerable questions). With ``check_offsets`` every ``answer_start`` must index its text.
    """
    if version not in ("1.1", "2.0"):
        raise ValueError(f"unknown SQuAD version {version!r} (known: 1.1, 2.0)")
    p, text = _open_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{p}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    required = ("data[].title", "paragraphs[].context", "qas[].id/question/answers")
    top = _Ctx(str(p), "squad", required)
    articles = top.get(data, "data")
    if not isinstance(articles, list):
        raise top.error("field 'data' must be a list of articles")
    rows: list[dict[str, Any]] = []
    for ai, article in enumerate(articles):
        actx = _Ctx(f"{p}: article {ai}", "squad", required)
        title = _str_field(actx, article, "title")
        for pi, para in enumerate(actx.get(article, "paragraphs")):
            pctx = _Ctx(f"{p}: article {ai} ({title}) paragraph {pi}", "squad", required)
            context = _str_field(pctx, para, "context")
            for qi, qa in enumerate(pctx.get(para, "qas")):
                qid = qa.get("id") if isinstance(qa, Mapping) else None
                where = f"question id {qid}" if qid is not None else f"question {qi}"
                qctx = _Ctx(f"{p}: {where}", "squad", required)
                qid = _str_field(qctx, qa, "id")
                question = _str_field(qctx, qa, "question")
                impossible = bool(qa.get("is_impossible", False)) if version == "2.0" else False
                texts: list[str] = []
                starts: list[int] = []
                for ans in qctx.get(qa, "answers"):
                    a_text = _str_field(qctx, ans, "text", "answers[]")
                    a_start = _int_field(qctx, ans, "answer_start", "answers[]")
                    if check_offsets and context[a_start : a_start + len(a_text)] != a_text:
                        found = context[a_start : a_start + len(a_text)]
                        raise qctx.error(
                            f"answer_start {a_start} does not match answer text {a_text!r} "
                            f"(context has {found!r})"
                        )
                    texts.append(a_text)
                    starts.append(a_start)
                if impossible and texts:
                    raise qctx.error("is_impossible is true but answers is not empty")
                if not texts and version == "1.1":
                    raise qctx.error("no answers (every SQuAD v1.1 question has at least one)")
                if not texts and version == "2.0" and not impossible:
                    raise qctx.error("no answers but is_impossible is not true")
                rows.append(
                    {
                        "id": qid,
                        "title": title,
                        "context": context,
                        "question": question,
                        "answers": {"text": texts, "answer_start": starts},
                    }
                )
    return rows
