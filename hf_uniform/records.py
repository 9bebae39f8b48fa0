"""Typed records of what hf-uniform writes: ``selection.json``, a selection's provenance, ``run_info.json``.

Every reader (the Hub push, the training data loader, the study) goes through these classes instead of
reading the JSON with ``.get()`` fallbacks; every writer builds one and calls ``to_json``. Reading accepts
each shape earlier versions wrote: ``selection.json`` of schema 2 (``hf-uniform select``, with or without
``--ray``), the schema-less first version (``versions`` / ``timings`` at the top level), and the record
``{"input": ..., **Selection.to_dict()}`` that training writes for a subset chosen by ``filter_uniform``.
Keys this version does not name are kept in ``extra`` and written back, so ``from_dict(d).to_dict() == d``
for every record of the current schema.

Example:
    >>> rec = SelectionRecord(k=2, n=5, metric="cosine", h=0.5, indices=[3, 1], input="pool.jsonl", seed=0)
    >>> SelectionRecord.from_dict(rec.to_dict()) == rec
    True
    >>> rec.provenance.input, rec.to_dict()["schema"]
    ('pool.jsonl', 'hf-uniform/selection/2')
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MissingFileError, UniformError
from .record_checks import (  # noqa: F401 - read_json_record and safe_relative_name are public here too
    _check_run_info,
    _check_selection,
    read_json_record,
    safe_relative_name,
)

SELECTION_SCHEMA = "hf-uniform/selection/2"
SELECTION_FILE = "selection.json"
RUN_INFO_FILE = "run_info.json"

# What the numbers in selection.json mean (written into the file itself).
MEANING = {
    "k": "rows in the subset",
    "n": "rows in the pool the subset was chosen from (after any rows left out, see engine.dropped_rows)",
    "h": "smallest distance between two rows of the subset (min pairwise distance); higher is better: "
         "the subset is more spread out. The greedy max-min selection maximises it",
    "coverage_radius": "largest distance from any pool row to its nearest subset row; lower is better: "
                       "every pool row has a close representative",
    "mean_nn_distance": "mean distance from each subset row to its nearest other subset row; higher means "
                        "fewer near-duplicates",
    "metric": "cosine: 1 - cos(angle) in [0, 2]; euclidean: straight-line distance",
}


def _read_json(source: str | os.PathLike | Mapping[str, Any], what: str, default_name: str) -> dict[str, Any]:
    """A JSON object from a mapping, a file, or a folder holding ``default_name``."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        path = path / default_name
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist: pass the {what} file or the folder that holds it")
    return read_json_record(path, what=what)


def _split(data: Mapping[str, Any], cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` divided into the dataclass's named fields and the rest."""
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


@dataclass
class Provenance:
    """Where a selection came from: the input as given and its content hash, the command, seed and start
    rows, the embedder configuration and the package versions.

    Attributes:
        input: the input as given (a file, a folder or a Hub dataset id).
        fingerprint: content hash of the input rows (``hfu-<blake2b>`` of the file bytes, or the ``datasets``
            fingerprint); ``None`` in records written before it was recorded.
        revision: the commit id of a Hub dataset input (``selection.json``'s ``input_revision``); ``None`` for
            a local input.
        command: the ``hf-uniform select`` command that reproduces the selection.
        seed: seed of the random start row (and of the baselines and the held-out split).
        start: the start row(s) of the greedy selection.
        embedder: the embedder configuration (``{"embedding_column": ...}`` for stored vectors).
        versions: versions of the packages that produced it.

    Example:
        >>> p = Provenance(input="d.jsonl", seed=0, versions={"hf-uniform": "0.1.0"})
        >>> Provenance.from_dict(p.to_dict()) == p
        True
    """

    input: str | None = None
    fingerprint: str | None = None
    revision: str | None = None
    command: str | None = None
    seed: int | None = None
    start: list[int] | None = None
    embedder: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``extra`` keys at the top level).

        Example:
            >>> Provenance(input="x").to_dict()["input"]
            'x'
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Read :meth:`to_dict`'s output (unknown keys go to ``extra``).

        Example:
            >>> Provenance.from_dict({"input": "x", "note": 1}).extra
            {'note': 1}
        """
        known, extra = _split(data, cls)
        return cls(**known, extra=extra)


# selection.json's keys in the order they are written (what a reader needs first, engine internals last)
_SELECTION_ORDER = ("schema", "summary", "k", "n", "metric", "h", "coverage_radius", "mean_nn_distance", "meaning",
                    "report", "embedded", "lengths", "heldout", "input", "input_fingerprint", "input_revision",
                    "command", "seed", "start", "embedder", "files", "subset_file", "indices", "min_distances",
                    "engine")


@dataclass
class SelectionRecord:
    """The ``selection.json`` of a selection (see the README's *selection.json* table for every field).

    ``extra`` keeps keys this version does not name (``--ray`` writes ``backend``, ``shards``,
    ``k_per_shard``, ``cluster``, ``coverage_radius_over``, ``timings``); they are written back after
    ``report``.

    ``input_revision`` is the commit id (40 hex digits) of a Hub dataset input, the one its rows were read at
    (``hf-uniform select USER/NAME [--revision REV]``); it is ``None`` for a local input, and then, like an
    absent ``input_fingerprint``, not written.

    Example:
        >>> rec = SelectionRecord.from_dict({"input": "p.jsonl", "metric": "cosine", "n": 4, "k": 2, "h": 0.3,
        ...                                  "coverage_radius": 0.9, "indices": [2, 0], "engine": {"method": "lazy"}})
        >>> rec.k, rec.indices, rec.schema
        (2, [2, 0], 'hf-uniform/selection/2')
    """

    k: int
    n: int
    metric: str | None = None
    h: float | None = None
    coverage_radius: float | None = None
    mean_nn_distance: float | None = None
    indices: list[int] = field(default_factory=list)
    min_distances: list[float | None] = field(default_factory=list)
    summary: str | None = None
    report: dict[str, Any] | None = None
    embedded: dict[str, Any] | None = None
    lengths: dict[str, Any] | None = None
    heldout: dict[str, Any] | None = None
    input: str | None = None
    input_fingerprint: str | None = None
    input_revision: str | None = None
    command: str | None = None
    seed: int | None = None
    start: list[int] | None = None
    embedder: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    subset_file: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    meaning: dict[str, str] = field(default_factory=lambda: dict(MEANING))
    schema: str = SELECTION_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------ views

    @property
    def provenance(self) -> Provenance:
        """The input, its content hash, the command, seed, start rows, embedder and versions.

        Example:
            >>> SelectionRecord(k=1, n=1, metric="cosine", command="hf-uniform select d.jsonl -k 1").provenance.command
            'hf-uniform select d.jsonl -k 1'
        """
        embedder = self.embedder
        if embedder is None and self.embedded:
            embedder = {k: v for k, v in self.embedded.items() if k not in ("layout", "joined_by", "dropped_empty_rows")}
        return Provenance(input=self.input, fingerprint=self.input_fingerprint, revision=self.input_revision,
                          command=self.command,
                          seed=self.seed, start=self.start, embedder=embedder,
                          versions=dict(self.engine.get("versions") or {}))

    def stats(self, name: str = "subset") -> dict[str, Any]:
        """``{k, h, coverage_radius, mean_nn_distance}`` of one reported set (``subset``, ``random``, ``mixed``,
        ``full``); for ``subset`` without a report, the record's own values; ``{}`` when not reported.

        Example:
            >>> SelectionRecord(k=2, n=4, metric="cosine", h=0.5, coverage_radius=1.0).stats()["h"]
            0.5
        """
        row = (self.report or {}).get(name)
        if row:
            return dict(row)
        if name == "subset":
            return {"k": self.k, "h": self.h, "coverage_radius": self.coverage_radius,
                    "mean_nn_distance": self.mean_nn_distance}
        return {}

    def file(self, name: str, folder: str | os.PathLike | None = None) -> Path | None:
        """The path of a file this run wrote (``subset``, ``random``, ``mixed``, ``heldout``, ``coverage_plot``),
        under ``folder`` when given; ``None`` when the record names none.

        The name must be a plain relative name (:func:`safe_relative_name`) and, under ``folder``, must stay
        inside it once symlinks are resolved: a record never points at a file outside its folder.

        Raises:
            UniformError: the record names an absolute path, a ``..`` path, or a link out of ``folder``.

        Example:
            >>> SelectionRecord(k=1, n=1, metric="cosine", files={"subset": "subset.jsonl"}).file("subset", "out")
            PosixPath('out/subset.jsonl')
        """
        value = self.files.get(name) or (self.subset_file if name == "subset" else None)
        if not value:
            return None
        safe_relative_name(value, f"files.{name}")
        if folder is None:
            return Path(value)
        path = Path(folder) / value
        root = os.path.realpath(folder)
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            raise UniformError(f"files.{name} {value!r} in {folder} links to {real}, outside the selection folder; "
                               "replace the link by the file itself")
        return path

    # ------------------------------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``selection.json`` (current schema; ``extra`` keys after ``report``).

        Example:
            >>> list(SelectionRecord(k=1, n=2, metric="cosine").to_dict())[:4]
            ['schema', 'summary', 'k', 'n']
            >>> hub = SelectionRecord(k=1, n=2, input="user/data", input_revision="0f" * 20).to_dict()
            >>> hub["input_revision"], "input_revision" in SelectionRecord(k=1, n=2, input="d.jsonl").to_dict()
            ('0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f', False)
        """
        out: dict[str, Any] = {}
        for key in _SELECTION_ORDER:
            out[key] = getattr(self, key)
            if key == "report":
                out.update(self.extra)
        for key in ("input_fingerprint", "input_revision"):  # records without them stay as they were
            if out[key] is None:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SelectionRecord:
        """Read any ``selection.json`` written so far (schema 2, the schema-less first version, or training's
        ``{"input": ..., **Selection.to_dict()}``).

        Raises:
            UniformError: ``k`` or ``n`` is missing (not a selection record), or a field has the wrong type or
                range (``metric`` not cosine/euclidean, ``h`` not a number >= 0, ``indices`` not k distinct row
                numbers, a ``files`` entry that is absolute or leaves the folder, ...). ``metric`` may be
                absent (hand-made records); writers always set it.

        Example:
            >>> old = {"input": "p.jsonl", "metric": "cosine", "n": 3, "k": 1, "h": None, "indices": [0],
            ...        "engine": {"method": "plain"}, "versions": {"numpy": "2.0"}, "timings": {"select_s": 0.1}}
            >>> rec = SelectionRecord.from_dict(old)
            >>> rec.engine["versions"], rec.provenance.versions
            ({'numpy': '2.0'}, {'numpy': '2.0'})
        """
        data = dict(data)
        missing = [key for key in ("k", "n") if data.get(key) is None]
        if missing:
            raise UniformError(f"the selection record lacks {', '.join(missing)}; pass the selection.json written "
                               "by `hf-uniform select` (or Selection.to_dict())")
        for key in ("k", "n"):  # numpy integers (a Selection's) and whole floats are whole numbers
            value = data[key]
            if hasattr(value, "item") and not isinstance(value, (int, float)):
                value = value.item()
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            data[key] = value
        _check_selection(data)
        if "schema" not in data:  # first version: versions and timings at the top level, beside the engine
            engine = dict(data.get("engine") or {})
            for key in ("versions", "timings"):
                if key in data and key not in engine:
                    engine[key] = data.pop(key)
            data["engine"] = engine
            data["schema"] = SELECTION_SCHEMA
        known, extra = _split(data, cls)
        for key in ("files", "engine"):
            if known.get(key) is None:
                known.pop(key, None)
        if known.get("meaning") is None:
            known.pop("meaning", None)
        return cls(**known, extra=extra)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``selection.json`` atomically (temporary file, then rename); a folder gets ``selection.json``.

        Example:
            >>> import tempfile
            >>> p = SelectionRecord(k=1, n=1, metric="cosine").to_json(tempfile.mkdtemp())
            >>> p.name, SelectionRecord.from_json(p).k
            ('selection.json', 1)
        """
        from .io import atomic_write_json

        path = Path(path)
        if path.is_dir():
            path = path / SELECTION_FILE
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, source: str | os.PathLike | Mapping[str, Any]) -> SelectionRecord:
        """Read ``selection.json`` (a path, the folder holding it, or the already-parsed dict).

        Raises:
            FileNotFoundError: no such file (or no ``selection.json`` in the folder).
            UniformError: not JSON, or not a valid selection record (see :meth:`from_dict`); the message names
                the file.

        Example:
            >>> SelectionRecord.from_json({"k": 1, "n": 2, "metric": "euclidean"}).metric
            'euclidean'
        """
        data = _read_json(source, "selection.json", SELECTION_FILE)
        if isinstance(source, Mapping):
            return cls.from_dict(data)
        path = Path(source) / SELECTION_FILE if Path(source).is_dir() else Path(source)
        try:
            return cls.from_dict(data)
        except UniformError as err:
            raise UniformError(f"{path}: {err}") from err


@dataclass
class RunInfo:
    """``run_info.json``, written by a fine-tuning run (``hf-uniform sft``): the regime,
    the optimizer chain, steps, losses, CPU seconds, tokens, time to each loss threshold, timings, the data's
    provenance, the arguments and the package versions. Every field is optional, so older files read too;
    keys not named here are kept in ``extra``.

    Example:
        >>> info = RunInfo(global_step=30, train_loss=1.25, versions={"torch": "2.13.0"})
        >>> RunInfo.from_dict(info.to_dict()) == info
        True
    """

    regime: dict[str, Any] | None = None
    optimizer_chain: list[str] | None = None
    optimizer_class: str | None = None
    l2sgd_steps: int | None = None
    l2sgd_updated_elements: int | None = None
    global_step: int | None = None
    train_loss: float | None = None
    train_loss_this_session: float | None = None
    train_cpu_seconds: float | None = None
    train_tokens: int | None = None
    time_to_threshold: Any = None
    seconds: dict[str, Any] | None = None
    train_rows: int | None = None
    data: dict[str, Any] | None = None
    args: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the order ``run_info.json`` is written (``extra`` keys last).

        Example:
            >>> RunInfo(global_step=3).to_dict()["global_step"]
            3
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunInfo:
        """Read a ``run_info.json`` object (unknown keys go to ``extra``).

        Example:
            >>> RunInfo.from_dict({"global_step": 4, "new_key": True}).extra
            {'new_key': True}
        """
        known, extra = _split(data, cls)
        return cls(**known, extra=extra)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``run_info.json`` atomically; a folder gets ``run_info.json``.

        Example:
            >>> import tempfile
            >>> RunInfo(global_step=1).to_json(tempfile.mkdtemp()).name
            'run_info.json'
        """
        from .atomic import _json_safe, atomic_write_json

        path = Path(path)
        if path.is_dir():
            path = path / RUN_INFO_FILE
        # numpy numbers as numbers (not their str()); other objects (paths, dtypes in args) as text
        return atomic_write_json(path, json.loads(json.dumps(_json_safe(self.to_dict()), default=str)))

    @classmethod
    def from_json(cls, source: str | os.PathLike | Mapping[str, Any]) -> RunInfo:
        """Read ``run_info.json`` (a path, the run's output folder, or the parsed dict).

        Raises:
            UniformError: not JSON, or a field of the wrong type (``global_step: "ten"``); names the file.

        Example:
            >>> RunInfo.from_json({"train_tokens": 10}).train_tokens
            10
        """
        data = _read_json(source, "run_info.json", RUN_INFO_FILE)
        try:
            _check_run_info(data)  # what is read back is checked; writers (from_dict) are not slowed or failed
            return cls.from_dict(data)
        except UniformError as err:
            if isinstance(source, Mapping):
                raise
            path = Path(source) / RUN_INFO_FILE if Path(source).is_dir() else Path(source)
            raise UniformError(f"{path}: {err}") from err


def write_record(out: str | os.PathLike, record: SelectionRecord) -> Path:
    """Write ``out/selection.json`` (atomically; the marker of a finished selection). A record without an
    ``embedder`` block gets one from ``embedded`` (the embedder's settings, without the text layout).

    Example:
        >>> import tempfile
        >>> r = SelectionRecord(k=1, n=1, metric="cosine", embedded={"name": "w2v", "layout": "alpaca"})
        >>> _ = write_record(tempfile.mkdtemp(), r); r.embedder
        {'name': 'w2v'}
    """
    if record.embedder is None:
        record.embedder = {k: v for k, v in (record.embedded or {}).items()
                           if k not in ("layout", "joined_by", "dropped_empty_rows")}
    return record.to_json(Path(out) / SELECTION_FILE)
