"""Checks of the records hf-uniform reads back: one-line errors instead of tracebacks, and file names that
stay inside the record's folder.

* :func:`read_json_record`: a JSON object from a file, with its required keys and their types checked.
* :func:`safe_relative_name`: a file name a record may name (relative, no ``..``, no absolute path).
* ``_check_selection`` / ``_check_run_info``: types and ranges of ``selection.json`` / ``run_info.json``
  (used by :class:`hf_uniform.records.SelectionRecord` and :class:`~hf_uniform.records.RunInfo`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import MissingFileError, UniformError


def _load_json_text(text: str, where: str, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError as err:
        raise UniformError(f"{where} is nested too deeply to be a {what}; pass the {what} written by hf-uniform") from err
    except ValueError as err:  # JSONDecodeError, or a number Python cannot read
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UniformError(f"{where} is not valid JSON ({msg}); pass the {what} written by hf-uniform, or "
                           "write it again (a truncated or hand-edited file)") from err


def read_json_record(path: str | os.PathLike, required: Mapping[str, type | tuple[type, ...]] | Sequence[str] = (),
                     *, what: str = "record") -> dict[str, Any]:
    """A JSON object read from ``path``, with one-line :class:`~hf_uniform.errors.UniformError`s for a missing,
    unreadable, truncated or malformed file and for ``required`` keys that are absent or of the wrong type.

    Use it for every record hf-uniform reads back (study records, run records): a corrupted file then gives
    one line naming the file and the fix, never a raw ``JSONDecodeError`` or ``KeyError``.

    Args:
        path: the JSON file.
        required: key names, or ``{key: type or tuple of types}`` (``bool`` is not accepted for ``int``/``float``).
        what: what the file is, for the messages (e.g. ``"study record"``).

    Raises:
        MissingFileError: no such file.
        UniformError: not JSON, not an object, a required key missing or of the wrong type.

    Example:
        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "arm.json"
        >>> _ = p.write_text('{"arm": "uniform", "loss": 1.5}')
        >>> read_json_record(p, {"arm": str, "loss": float})["loss"]
        1.5
        >>> _ = p.write_text('{"arm": "uniform", "lo')
        >>> read_json_record(p, ["loss"], what="study record")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: .../arm.json is not valid JSON (...); pass the study record written by hf-uniform, or write it again (a truncated or hand-edited file)
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist: pass the {what} file written by hf-uniform")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UniformError(f"cannot read {path} ({err}); pass the {what} written by hf-uniform") from err
    data = _load_json_text(text, str(path), what)
    if not isinstance(data, dict):
        raise UniformError(f"{path} holds {type(data).__name__}, not a {what} object; pass the {what} written "
                           "by hf-uniform")
    types = dict(required) if isinstance(required, Mapping) else {key: object for key in required}
    for key, kind in types.items():
        if key not in data:
            raise UniformError(f"{path} lacks {key!r}: not a complete {what}; write it again (rerun the step "
                               "that wrote it)")
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and int not in kinds:
            kinds = (*kinds, int)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds if k is not int or float not in kinds)
            raise UniformError(f"{path}: {key!r} must be {names}, got {value!r:.60}; write the {what} again")
    return data


def safe_relative_name(value: Any, where: str = "file") -> str:
    """``value`` if it is a plain relative path inside a record's folder: a non-empty string, not absolute,
    without ``..``, ``~``, a backslash, a drive or a NUL. Files a record names are read from its own folder
    only, so a crafted ``selection.json`` cannot make ``push`` upload ``/home/me/.ssh/id_rsa``.

    Example:
        >>> safe_relative_name("subset.jsonl")
        'subset.jsonl'
        >>> safe_relative_name("../private.jsonl", "files.subset")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: files.subset '../private.jsonl' is not a file name inside the selection folder (no absolute path, no '..'); write the record again with hf-uniform select
    """
    bad = (not isinstance(value, str) or not value or value.startswith(("/", "~")) or "\\" in value or "\x00" in value
           or ".." in Path(value).parts or (len(value) > 1 and value[1] == ":") or value in (".",))
    if bad:
        raise UniformError(f"{where} {value!r:.80} is not a file name inside the selection folder (no absolute "
                           "path, no '..'); write the record again with hf-uniform select")
    return value


def _is_number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_selection(data: Mapping[str, Any]) -> None:
    """Types and ranges of a selection record's fields (one line per problem, the first one raised)."""

    def fail(key: str, want: str) -> None:
        raise UniformError(f"selection record field {key!r} must be {want}, got {data.get(key)!r:.80}; pass the "
                           "selection.json written by `hf-uniform select` (or write it again)")

    for key in ("k", "n"):
        if not _is_int(data.get(key)) or data[key] < 1:
            fail(key, "a whole number >= 1")
    if data["k"] > data["n"]:
        fail("k", f"at most n={data['n']}")
    if data.get("metric") is not None and data["metric"] not in ("cosine", "euclidean"):
        fail("metric", "'cosine' or 'euclidean'")
    for key in ("h", "coverage_radius", "mean_nn_distance"):
        if data.get(key) is not None and (not _is_number(data[key]) or data[key] < 0):
            fail(key, "a finite number >= 0 or null")
    for key in ("seed",):
        if data.get(key) is not None and not _is_int(data[key]):
            fail(key, "a whole number or null")
    for key in ("indices", "start"):
        value = data.get(key)
        if value is not None and not (isinstance(value, list) and all(_is_int(v) and v >= 0 for v in value)):
            fail(key, "a list of row numbers >= 0")
    indices = data.get("indices") or []
    if indices and len(indices) != data["k"]:
        fail("indices", f"a list of k={data['k']} row numbers (it has {len(indices)})")
    if len(set(indices)) != len(indices):
        fail("indices", "a list of distinct row numbers")
    dists = data.get("min_distances")
    if dists is not None and (not isinstance(dists, list) or
                              not all(v is None or (_is_number(v) and v >= 0) for v in dists)):
        fail("min_distances", "a list of numbers >= 0 (or null)")
    for key in ("summary", "input", "input_fingerprint", "input_revision", "command", "schema"):
        if data.get(key) is not None and not isinstance(data[key], str):
            fail(key, "a string")
    for key in ("report", "embedded", "lengths", "heldout", "embedder", "engine", "meaning", "files"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            fail(key, "an object")
    for name, value in (data.get("files") or {}).items():
        safe_relative_name(value, f"files.{name}")
    if data.get("subset_file") is not None:
        safe_relative_name(data["subset_file"], "subset_file")
    heldout = data.get("heldout") or {}
    if heldout.get("file") is not None:
        safe_relative_name(heldout["file"], "heldout.file")
    if heldout.get("indices") is not None and not (isinstance(heldout["indices"], list) and
                                                   all(_is_int(v) and v >= 0 for v in heldout["indices"])):
        fail("heldout", "an object whose indices are row numbers >= 0")


def _check_run_info(data: Mapping[str, Any]) -> None:
    """Types of ``run_info.json``'s fields (every field optional)."""

    def fail(key: str, want: str) -> None:
        raise UniformError(f"run_info field {key!r} must be {want}, got {data.get(key)!r:.80}; pass the "
                           "run_info.json written by the training run (or run it again)")

    for key in ("global_step", "l2sgd_steps", "l2sgd_updated_elements", "train_tokens", "train_rows"):
        if data.get(key) is not None and not (_is_int(data[key]) and data[key] >= 0):
            fail(key, "a whole number >= 0 or null")
    for key in ("train_loss", "train_loss_this_session", "train_cpu_seconds"):
        if data.get(key) is not None and not _is_number(data[key]):
            fail(key, "a finite number or null")
    for key in ("regime", "seconds", "data", "args", "versions"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            fail(key, "an object")
    for key in ("optimizer_chain",):
        if data.get(key) is not None and not (isinstance(data[key], list) and
                                              all(isinstance(v, str) for v in data[key])):
            fail(key, "a list of strings")
    if data.get("optimizer_class") is not None and not isinstance(data["optimizer_class"], str):
        fail("optimizer_class", "a string")
