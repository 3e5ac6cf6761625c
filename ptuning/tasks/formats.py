"""Readers of the original on-disk formats (jsonl records, GLUE tsv, CoNLL columns, SQuAD JSON).

They know formats, not tasks: a task passes its row parser (SuperGLUE jsonl, GLUE tsv) or its column
layout (CoNLL) and gets canonical rows, the schema of the task's Hugging Face hub dataset.
Every reader parses the whole file before returning and raises
:class:`~ptuning.errors.DataFormatError` naming the file and the line (or record) of the
first problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ptuning.errors import DataFormatError, DataUnavailableError

Row = dict[str, Any]


def read_text(path: str | Path) -> tuple[Path, str]:
    p = Path(path)
    if not p.is_file():
        raise DataUnavailableError(f"data file not found: {p}")
    return p, p.read_text(encoding="utf-8")


class Where:
    """Location of the record being parsed and the fields it needs, for error messages."""

    def __init__(self, where: str, what: str, required: Sequence[str]) -> None:
        self.where, self.what, self.required = where, what, tuple(required)

    def error(self, msg: str) -> DataFormatError:
        return DataFormatError(f"{self.where}: {msg}")

    def get(self, obj: Any, key: str, path: str = "") -> Any:
        if not isinstance(obj, Mapping):
            raise self.error(f"expected a JSON object at {path or 'top level'}")
        if key not in obj:
            name = f"{path}.{key}" if path else key
            raise self.error(f"missing field '{name}' ({self.what} rows need {', '.join(self.required)})")
        return obj[key]

    def int_field(self, obj: Any, key: str, path: str = "") -> int:
        value = self.get(obj, key, path)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"field '{key}' must be an integer, got {value!r}")
        return value

    def str_field(self, obj: Any, key: str, path: str = "") -> str:
        value = self.get(obj, key, path)
        if not isinstance(value, str):
            raise self.error(f"field '{key}' must be a string, got {value!r}")
        return value

    def binary_label(self, value: Any) -> int:
        """A bool label (true/false, 0/1, "True"/"False") as 0/1, like HF's ClassLabel."""
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int) and value in (0, 1):
            return value
        if isinstance(value, str) and value in ("False", "True"):
            return int(value == "True")
        raise self.error(f"invalid {self.what} label {value!r} (valid: true, false, 0, 1)")

    def named_label(self, value: Any, names: Sequence[str]) -> int:
        if value not in names:
            raise self.error(f"invalid {self.what} label {value!r} (valid: {', '.join(names)})")
        return list(names).index(value)

    def index_label(self, value: Any, count: int) -> int:
        if isinstance(value, bool) or value not in range(count):
            raise self.error(f"invalid {self.what} label {value!r} (valid: {', '.join(map(str, range(count)))})")
        return value


def read_jsonl(path: str | Path, what: str, required: Sequence[str],
               parse: Callable[[Where, dict[str, Any]], list[Row]]) -> list[Row]:
    """Rows of a ``.jsonl`` file, each JSON object turned into rows by ``parse``."""
    p, text = read_text(path)
    rows: list[Row] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = Where(f"{p}:{lineno}", what, required)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise where.error(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise where.error(f"expected a JSON object, got {type(record).__name__}")
        rows.extend(parse(where, record))
    return rows


_TAG_RE = re.compile(r"^(O|([BIESLMU])-(\S+))$")
_IOB_RE = re.compile(r"^(O|[BI]-\S+)$")
#: the official P-Tuning v2 layouts (tags kept as written): separator, column count (0: at
#: least 3), column names
_OFFICIAL = {"conll2003": (" ", 4, "token POS chunk NER"), "token_tag": (" ", 2, "token TAG"),
             "sd_conllx": ("\t", 0, "ID WORD ... TAG")}
NER_FORMATS = tuple(_OFFICIAL)


def to_iob2(tags: list[str]) -> list[str]:
    """Normalise IOB1 / IOB2 / IOBES / BILOU tags to IOB2 (S,U->B; E,L,M->I; stray I->B), for
    data whose scheme is documented as one of these (the readers keep tags as written)."""
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


def _official_columns(where: str, line: str, fmt: str) -> tuple[str, str]:
    """(token, tag) of a line in an official layout, or the error naming ``where``."""
    sep, n, names = _OFFICIAL[fmt]
    if sep == " ":
        if "\t" in line:
            raise DataFormatError(f"{where}: tab in the line; the columns ({names}) are separated by "
                                  "single spaces")
        cols = line.split(" ")
        if "" in cols:
            raise DataFormatError(f"{where}: empty column (two spaces in a row, or a space at the start "
                                  "or end of the line)")
        if len(cols) != n:
            raise DataFormatError(f"{where}: expected {n} columns ({names}), got {len(cols)}")
        return cols[0], cols[-1]
    cols = line.split(sep)
    if len(cols) < 3:
        raise DataFormatError(f"{where}: expected tab-separated CoNLL-X columns ({names}), got {len(cols)}")
    if not cols[1]:
        raise DataFormatError(f"{where}: empty word (2nd column)")
    return cols[1], cols[-1].rstrip()


def read_conll(path: str | Path, fmt: str, labels: Sequence[str] | None = None) -> list[Row]:
    """Read a CoNLL-style NER file into ``{id, tokens, ner_tags}`` rows (ids ``"0"``, ``"1"``, ...).

    Official layouts, read as THUDM/P-tuning-v2 ``tasks/ner/datasets/*.py`` read them, tags as
    written: ``"conll2003"`` (``conll2003.py``: ``token POS chunk NER``, single spaces),
    ``"token_tag"`` (``conll2004.py``: ``token TAG``, one space) and ``"sd_conllx"``
    (``ontonotes.py``: tab-separated CoNLL-X columns, word in the 2nd, tag in the last).
    Sentences end at empty lines and at lines starting with ``-DOCSTART-``; a line of only
    whitespace is an error, as the official loaders cannot read it. Unlike them, a last
    sentence with no empty line after it is kept (``conll2004.py`` and ``ontonotes.py`` drop
    it) and no empty sentence ends the file (``conll2003.py`` yields one).

    With ``labels``, every tag must be one of them. Errors name file and line.
    """
    if fmt not in NER_FORMATS:
        raise ValueError(f"unknown CoNLL format {fmt!r} (known: {', '.join(NER_FORMATS)})")
    p, text = read_text(path)
    rows: list[Row] = []
    tokens: list[str] = []
    tags: list[str] = []
    linenos: list[int] = []

    def flush() -> None:
        if not tokens:
            return
        if labels is not None:
            for tag, lineno in zip(tags, linenos, strict=True):
                if tag not in labels:
                    raise DataFormatError(f"{p}:{lineno}: tag {tag!r} is not in the label set "
                                          f"({', '.join(labels)})")
        rows.append({"id": str(len(rows)), "tokens": list(tokens), "ner_tags": list(tags)})
        tokens.clear()
        tags.clear()
        linenos.clear()

    for lineno, line in enumerate(text.split("\n"), start=1):  # read_text made newlines "\n"
        if not line or line.startswith("-DOCSTART-"):
            flush()
            continue
        where = f"{p}:{lineno}"
        if not line.strip():
            raise DataFormatError(f"{where}: line of only whitespace (sentences end at empty lines)")
        token, tag = _official_columns(where, line, fmt)
        if _IOB_RE.match(tag) is None:
            raise DataFormatError(f"{where}: invalid NER tag {tag!r} (the {fmt} layout has O, "
                                  "B-TYPE and I-TYPE tags)")
        tokens.append(token)
        tags.append(tag)
        linenos.append(lineno)
    flush()
    return rows


def read_squad_json(path: str | Path, version: str = "1.1", check_offsets: bool = True) -> list[Row]:
    """Read a SQuAD v1.1 / v2.0 JSON file into HF ``squad`` / ``squad_v2`` rows, one per question.

    ``answers`` is ``{"text": [...], "answer_start": [...]}`` (empty lists for v2.0
    unanswerable questions). With ``check_offsets`` every ``answer_start`` must index its text.
    """
    if version not in ("1.1", "2.0"):
        raise ValueError(f"unknown SQuAD version {version!r} (known: 1.1, 2.0)")
    p, text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{p}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    required = ("data[].title", "paragraphs[].context", "qas[].id/question/answers")
    top = Where(str(p), "squad", required)
    articles = top.get(data, "data")
    if not isinstance(articles, list):
        raise top.error("field 'data' must be a list of articles")
    rows: list[Row] = []
    for ai, article in enumerate(articles):
        actx = Where(f"{p}: article {ai}", "squad", required)
        title = actx.str_field(article, "title")
        for pi, para in enumerate(actx.get(article, "paragraphs")):
            pctx = Where(f"{p}: article {ai} ({title}) paragraph {pi}", "squad", required)
            context = pctx.str_field(para, "context")
            for qi, qa in enumerate(pctx.get(para, "qas")):
                qid = qa.get("id") if isinstance(qa, Mapping) else None
                where = f"question id {qid}" if qid is not None else f"question {qi}"
                qctx = Where(f"{p}: {where}", "squad", required)
                qid = qctx.str_field(qa, "id")
                question = qctx.str_field(qa, "question")
                impossible = bool(qa.get("is_impossible", False)) if version == "2.0" else False
                texts: list[str] = []
                starts: list[int] = []
                for ans in qctx.get(qa, "answers"):
                    a_text = qctx.str_field(ans, "text", "answers[]")
                    a_start = qctx.int_field(ans, "answer_start", "answers[]")
                    if check_offsets and context[a_start: a_start + len(a_text)] != a_text:
                        found = context[a_start: a_start + len(a_text)]
                        raise qctx.error(f"answer_start {a_start} does not match answer text {a_text!r} "
                                         f"(context has {found!r})")
                    texts.append(a_text)
                    starts.append(a_start)
                if impossible and texts:
                    raise qctx.error("is_impossible is true but answers is not empty")
                if not texts and version == "1.1":
                    raise qctx.error("no answers (every SQuAD v1.1 question has at least one)")
                if not texts and version == "2.0" and not impossible:
                    raise qctx.error("no answers but is_impossible is not true")
                rows.append({"id": qid, "title": title, "context": context, "question": question,
                             "answers": {"text": texts, "answer_start": starts}})
    return rows


def read_tsv(path: str | Path, what: str, required: Sequence[str],
             parse: Callable[[Where, dict[str, str], int], list[Row]]) -> list[Row]:
    """Rows of a tab-separated file whose first line names the columns (the GLUE ``.tsv``
    files: ``sentence<TAB>label`` for SST-2). Each data line becomes a ``{column: text}``
    record, turned into rows by ``parse(where, record, index)``; ``index`` is the 0-based
    number of the data line (empty lines are skipped and not counted), GLUE's ``idx``.

    Fields are split at every tab with no quoting (a quote character is text, as the GLUE
    files are written) and kept as written, surrounding spaces included. A leading byte-order
    mark is ignored. Errors name file and line: a header that lacks a ``required`` column or
    repeats one, a line with more or fewer fields than the header, whatever ``parse`` rejects.
    """
    p, text = read_text(path)  # universal newlines: "\r\n" is "\n" here
    lines = text.removeprefix("\ufeff").split("\n")
    columns = lines[0].split("\t")
    header = Where(f"{p}:1", what, required)
    if not lines[0].strip():
        raise header.error(f"no header line; the first line names the tab-separated columns "
                           f"({', '.join(required)})")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise header.error(f"column {repeated[0]!r} named twice in the header")
    for column in required:
        if column not in columns:
            raise header.error(f"missing column '{column}' ({what} rows need {', '.join(required)}; "
                               f"the header has {', '.join(map(repr, columns))})")
    rows: list[Row] = []
    index = 0
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        where = Where(f"{p}:{lineno}", what, required)
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise where.error(f"expected {len(columns)} tab-separated fields ({', '.join(columns)}), "
                              f"got {len(fields)}")
        rows.extend(parse(where, dict(zip(columns, fields, strict=True)), index))
        index += 1
    return rows


#: the separator between the words and the tags of a line of the official SRL files
SRL_SEPARATOR = "|||"


def read_srl(path: str | Path, labels: Sequence[str]) -> list[Row]:
    """Read an SRL file in the official P-Tuning v2 format into ``{id, index, tokens, tags}``
    rows (ids ``"0"``, ``"1"``, ...; ``index`` an int), one row per predicate.

    Each line is ``INDEX WORD ... ||| TAG ...`` (THUDM/P-tuning-v2
    ``tasks/srl/datasets/conll2005.py`` and ``conll2012.py``): the predicate's 0-based word
    index, the sentence's words and one BIO tag per word, split at whitespace and at ``|||``
    as the official loaders split them. Lines of only whitespace are skipped (``conll2012.py``
    skips them; ``conll2005.py`` cannot read them). Where the official loaders fail or misread
    silently, this raises :class:`DataFormatError` naming file and line: no ``|||`` or more
    than one, an index that is not a word position, a tag count that differs from the word
    count, a tag outside ``labels``.
    """
    p, text = read_text(path)
    known = set(labels)
    rows: list[Row] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        fields = line.split()
        parts = " ".join(fields[1:]).split(SRL_SEPARATOR)
        if len(parts) != 2:
            raise DataFormatError(f"{where}: {len(parts) - 1 or 'no'} '{SRL_SEPARATOR}' separators; a line is "
                                  f"'INDEX WORD ... {SRL_SEPARATOR} TAG ...' with exactly one")
        head, tokens, tags = fields[0], parts[0].split(), parts[1].split()
        if not tokens:
            raise DataFormatError(f"{where}: no words before '{SRL_SEPARATOR}' (a line is "
                                  f"'INDEX WORD ... {SRL_SEPARATOR} TAG ...', INDEX first)")
        if not re.fullmatch(r"\d+", head) or int(head) >= len(tokens):
            raise DataFormatError(f"{where}: predicate index {head!r} is not a word position "
                                  f"0..{len(tokens) - 1} of the {len(tokens)} words")
        if len(tags) != len(tokens):
            raise DataFormatError(f"{where}: {len(tokens)} words but {len(tags)} tags "
                                  f"(one tag per word after '{SRL_SEPARATOR}')")
        unknown = [tag for tag in tags if tag not in known]
        if unknown:
            raise DataFormatError(f"{where}: tag {unknown[0]!r} is not in the label set "
                                  f"({len(labels)} tags: {', '.join(labels)})")
        rows.append({"id": str(len(rows)), "index": int(head), "tokens": tokens, "tags": tags})
    return rows
