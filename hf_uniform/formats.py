"""Parsing input files into rows exactly as stored: JSON Lines, whole-file JSON (rows or columns), CSV.

The bytes are hashed while they are read (:func:`_read_bytes`), so :func:`hf_uniform.io.read_source` reads a
file once. Every error is one line naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import UniformError

_BOM = b"\xef\xbb\xbf"
# a number that may overflow a float (1e400, 400 digits): such lines are parsed again, keeping the number's text
_MAYBE_HUGE = re.compile(rb"[eE]\+?\d{3}|\d{300}")
_RAW_TOKEN = "\x00hf-uniform-number-{}\x00"


class RawFloat(float):
    """A JSON number too large for a float (``1e400``): its value is ``inf`` for computing, and its source
    text is written back unchanged (rows out are rows in; ``Infinity`` would not even be valid JSON).

    Example:
        >>> x = RawFloat.from_text("1e400")
        >>> x == float("inf"), repr(x), dumps_row({"a": x, "b": [x, 1.5]})
        (True, '1e400', '{"a": 1e400, "b": [1e400, 1.5]}')
    """

    text: str

    @classmethod
    def from_text(cls, text: str) -> float:
        """``float(text)``; a ``RawFloat`` keeping ``text`` when that is not finite."""
        value = float(text)
        if math.isfinite(value):
            return value
        out = cls(value)
        out.text = text
        return out

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def _has_raw(obj: Any) -> bool:
    if isinstance(obj, RawFloat):
        return True
    if isinstance(obj, dict):
        return any(_has_raw(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_raw(v) for v in obj)
    return False


def dumps_row(row: Any, **kwargs: Any) -> str:
    """``json.dumps(row, ensure_ascii=False, default=str)``, writing every :class:`RawFloat` as its source text.

    Example:
        >>> dumps_row({"q": "é", "n": 1})
        '{"q": "é", "n": 1}'
    """
    kwargs = {"ensure_ascii": False, "default": str, **kwargs}
    if not _has_raw(row):
        return json.dumps(row, **kwargs)
    texts: list[str] = []

    def swap(obj: Any) -> Any:
        if isinstance(obj, RawFloat):
            texts.append(obj.text)
            return _RAW_TOKEN.format(len(texts) - 1)
        if isinstance(obj, dict):
            return {k: swap(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [swap(v) for v in obj]
        return obj

    out = json.dumps(swap(row), **kwargs)
    for i, text in enumerate(texts):
        out = out.replace(json.dumps(_RAW_TOKEN.format(i)), text)
    return out


def _loads(text: str | bytes, raw: bytes, path: Path, where: str) -> tuple[Any, bool]:
    """``json.loads`` with one-line errors for what it raises besides ``JSONDecodeError``, and whether the text
    may hold a number too large for a float (kept as :class:`RawFloat`)."""
    try:
        if _MAYBE_HUGE.search(raw):
            return json.loads(text, parse_float=RawFloat.from_text), True
        return json.loads(text), False
    except json.JSONDecodeError:
        raise
    except RecursionError as err:
        raise UniformError(f"{path}: {where} is nested too deeply to read; flatten the record (at most a few "
                           "hundred levels of lists and objects)") from err
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise UniformError(f"{path}: {where} holds a number Python cannot read ({str(err).splitlines()[0]}); "
                           "store it as a string") from err


def _read_bytes(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their BLAKE2b hash, computed chunk by chunk while reading (one pass)."""
    h = hashlib.blake2b(digest_size=16)
    chunks = []
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 22)
                if not chunk:
                    break
                h.update(chunk)
                chunks.append(chunk)
    except IsADirectoryError as err:
        raise UniformError(f"{path} is a folder but not one written by save_to_disk (no dataset_info.json)") from err
    except OSError as err:
        raise UniformError(f"cannot read {path}: {err.strerror or err}") from err
    return b"".join(chunks), h.hexdigest()


def _decode(line: bytes, path: Path, lineno: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UniformError(f"{path}: line {lineno} is not UTF-8 text ({err.reason}); convert the file to UTF-8") from err


def _parse_jsonl(data: bytes, path: Path, raw_rows: set[int] | None = None) -> list[dict]:
    """Rows of JSON Lines; positions of rows holding a :class:`RawFloat` are added to ``raw_rows``."""
    rows = []
    for lineno, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        text = _decode(line, path, lineno)
        try:
            rec, maybe_raw = _loads(text, line, path, f"line {lineno}")
        except json.JSONDecodeError as err:
            raise UniformError(f"{path}: line {lineno} is not valid JSON ({err.msg}); fix or remove it") from err
        if not isinstance(rec, dict):
            raise UniformError(f"{path}: line {lineno} is not a JSON object; each line must be {{...}}")
        if maybe_raw and raw_rows is not None and _has_raw(rec):
            raw_rows.add(len(rows))
        rows.append(rec)
    return rows


def _rows_from_json_document(doc: Any, path: Path) -> list[dict]:
    """Rows of a whole-file JSON document: a list of objects, columns (dict of equal-length lists), or
    an object with one list of row objects (e.g. ``{"data": [...]}``)."""
    if isinstance(doc, list):
        bad = next((i for i, r in enumerate(doc) if not isinstance(r, dict)), None)
        if bad is not None:
            raise UniformError(f"{path}: item {bad} of the top-level list is not a JSON object; each row must be {{...}}")
        return doc
    if isinstance(doc, dict) and doc:
        values = list(doc.values())
        if all(isinstance(v, list) for v in values):
            lists_of_rows = [k for k, v in doc.items() if v and all(isinstance(r, dict) for r in v)]
            if len(doc) == 1 and lists_of_rows:
                return values[0]
            lengths = {len(v) for v in values}
            if len(lengths) != 1:
                raise UniformError(f"{path}: columns have different lengths {sorted(lengths)}; every column of "
                                   "a columnar JSON file must have one value per row")
            keys = list(doc)
            return [dict(zip(keys, cells, strict=True)) for cells in zip(*values, strict=True)]
    raise UniformError(f"{path}: JSON is neither rows (JSON Lines or a list of objects) nor columns (an object "
                       "of equal-length lists); convert it to JSON Lines")


def _parse_json(data: bytes, path: Path, suffix: str, raw_rows: set[int] | None = None) -> tuple[list[dict], str]:
    """Rows and the layout (``"jsonl"`` or ``"json"``) of a .json/.jsonl file; a BOM is accepted. Positions of
    rows holding a :class:`RawFloat` are added to ``raw_rows``."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    head = data.lstrip()[:1]
    one_line = len([line for line in data.split(b"\n") if line.strip()]) == 1
    if head == b"[":
        kind = "json"
    elif head == b"{" and one_line and suffix == ".json":
        kind = "json"  # one document: `json.dump(dict_of_lists)` is columns, `json.dump(row)` one row
    elif head == b"{":
        first = data.lstrip().split(b"\n", 1)[0]
        try:
            json.loads(first)
            kind = "jsonl"
        except (ValueError, RecursionError):  # decoding, nesting, a huge number: parsed again below
            kind = "json" if suffix == ".json" or not first.rstrip().endswith(b"}") else "jsonl"
    else:
        kind = "jsonl"
    if kind == "jsonl":
        return _parse_jsonl(data, path, raw_rows), kind
    try:
        doc, maybe_raw = _loads(data.decode("utf-8"), data, path, "the document")
    except UnicodeDecodeError as err:
        raise UniformError(f"{path}: not UTF-8 text ({err.reason}); convert it to UTF-8") from err
    except json.JSONDecodeError as err:
        raise UniformError(f"{path}: line {err.lineno} is not valid JSON ({err.msg}); fix it") from err
    if one_line and isinstance(doc, dict) and not (doc and all(isinstance(v, list) for v in doc.values())):
        rows = [doc]  # a single row written as one JSON object
    else:
        rows = _rows_from_json_document(doc, path)
    if maybe_raw and raw_rows is not None:
        raw_rows.update(i for i, row in enumerate(rows) if _has_raw(row))
    return rows, kind


def _parse_csv(data: bytes, path: Path) -> tuple[list[dict], list[str]]:
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UniformError(f"{path}: not UTF-8 text ({err.reason}); convert it to UTF-8") from err
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise UniformError(f"{path} has no header row: the first line must name the columns")
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            raise UniformError(f"{path}: column names {dupes} appear more than once in the header; rename them")
        rows = []
        for rec in reader:
            if not rec:
                continue
            if len(rec) != len(header):
                raise UniformError(f"{path}: line {reader.line_num} has {len(rec)} fields but the header has "
                                   f"{len(header)}; fix the quoting or the row")
            rows.append(dict(zip(header, rec, strict=True)))
    except csv.Error as err:
        raise UniformError(f"{path}: line {reader.line_num} is not valid CSV ({err}); fix it") from err
    return rows, header


def _union_columns(rows: Sequence[Mapping]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            if k not in seen:
                seen[k] = None
    return list(seen)
