"""Reading inputs and writing outputs safely.

* :func:`read_source`: the rows of a ``.json``/``.jsonl``/``.parquet``/``.csv`` file exactly as stored (no schema
  cast: ``1`` stays ``1``, a key a row lacks stays absent, an empty CSV field stays ``""``), with a content
  hash computed while the bytes are read; or a ``save_to_disk`` folder / Hub dataset through ``datasets``.
  :meth:`SourceData.write_rows` writes chosen rows back unchanged, plus our columns.
* :func:`load_input`: the same inputs as a ``Dataset`` whose fingerprint is the content hash.
* :func:`atomic_write_text`, :func:`atomic_write_json`, :func:`atomic_path`, :func:`atomic_dir`,
  :func:`resolve_path`, :func:`remove_stale_tmp` (from :mod:`hf_uniform.atomic`): write to a temporary name
  in the same folder, then rename, so an interrupted run never leaves a partial file; user paths are resolved
  before they are checked. Files follow the umask.
* :func:`is_main_process`: only rank 0 writes under ``torchrun`` / ``accelerate launch``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import (  # noqa: F401 - the safe-writing helpers, importable from here as before
    TMP_MARK,
    TMP_PATTERN,
    _json_safe,
    atomic_dir,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    follow_umask,
    remove_stale_tmp,
    resolve_path,
    temp_affixes,
)
from .errors import MissingFileError, UniformError
from .formats import _BOM, _parse_csv, _parse_json, _parse_jsonl, _read_bytes, _union_columns, dumps_row

logger = logging.getLogger(__name__)

_SUFFIX_BUILDER = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def is_main_process() -> bool:
    """True on rank 0 (or without a distributed launcher).

    Example:
        >>> is_main_process()
        True
    """
    if "torch.distributed" in sys.modules:  # without torch loaded nothing can be initialised
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions (missing ones are left out), for provenance.

    Example:
        >>> "numpy" in package_versions("numpy", "not-a-real-package-xyz")
        True
    """
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out

@dataclass
class SourceData:
    """The rows of an input as stored, for rendering, embedding and writing back unchanged.

    Attributes:
        source: what was read (path or Hub id).
        kind: ``"jsonl"``, ``"json"``, ``"csv"``, ``"parquet"`` or ``"datasets"`` (a ``save_to_disk`` folder
            or a Hub dataset, read through ``datasets``).
        columns: every column name, in first-seen order (a key present in any row).
        content_hash: BLAKE2b of the file bytes (``None`` for ``"datasets"``: its fingerprint is used).
        rows: the source rows (JSON/CSV inputs).
        table: the Arrow table (parquet inputs).
        dataset: the ``Dataset`` (``"datasets"`` inputs).
        raw_rows: positions of JSON rows holding a number too large for a float (``1e400``), written back
            with its source text (:class:`~hf_uniform.formats.RawFloat`).
        revision: the commit id (40 hex digits) of a Hub dataset the rows were read at (see
            :func:`read_source`); ``None`` for local inputs, or when it could not be told.

    Example:
        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a.jsonl"
        >>> _ = p.write_text('{"a": 1}\\n{"a": 2, "b": "x"}\\n')
        >>> src = read_source(p)
        >>> src.n, src.columns, src.rows[0]
        (2, ['a', 'b'], {'a': 1})
    """

    source: str
    kind: str
    columns: list[str]
    content_hash: str | None = None
    rows: list[dict] | None = None
    table: Any = None
    dataset: Any = None
    raw_rows: frozenset[int] = frozenset()
    revision: str | None = None
    _datasets: dict = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        """Number of rows."""
        if self.rows is not None:
            return len(self.rows)
        if self.table is not None:
            return self.table.num_rows
        return len(self.dataset)

    @property
    def default_format(self) -> str:
        """The output format that keeps rows exactly: ``csv`` for CSV, ``parquet`` for parquet, else ``jsonl``."""
        return {"csv": "csv", "parquet": "parquet"}.get(self.kind, "jsonl")

    def fingerprint(self) -> str:
        """An identifier of the content (the content hash, or the ``datasets`` fingerprint).

        Example:
            >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a.jsonl"; _ = p.write_text('{"a": 1}')
            >>> read_source(p).fingerprint()
            'hfu-6903fb303cd60ccb0a2b9c2592fa773b'
        """
        if self.content_hash is not None:
            return f"hfu-{self.content_hash}"
        return str(getattr(self.dataset, "_fingerprint", "")) or "unknown"

    def to_dataset(self, columns: Sequence[str] | None = None) -> Any:
        """The rows as a ``Dataset`` (only ``columns`` when given), fingerprinted by content.

        A key a row lacks is ``None`` there, and a column of mixed types is kept as JSON values (datasets'
        ``on_mixed_types="use_json"``); the source rows themselves are never changed.

        Example:
            >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a.jsonl"
            >>> _ = p.write_text('{"a": 1}\\n{"a": 2, "b": "x"}\\n')
            >>> read_source(p).to_dataset()["b"][:]
            [None, 'x']
        """
        cols = list(self.columns) if columns is None else [c for c in columns if c in self.columns]
        key = tuple(cols)
        if key in self._datasets:
            return self._datasets[key]
        from datasets import Dataset

        if self.dataset is not None:
            ds = self.dataset if cols == list(self.dataset.column_names) else self.dataset.select_columns(cols)
        elif self.table is not None:
            from datasets.table import InMemoryTable

            ds = Dataset(InMemoryTable(self.table.select(cols)), fingerprint=self._fp(cols))
        else:
            data = {c: [r.get(c) for r in self.rows] for c in cols}
            try:
                ds = Dataset.from_dict(data, on_mixed_types="use_json")
            except Exception as err:  # arrow raises several types for values it cannot store
                msg = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise UniformError(f"cannot hold the rows of {self.source} as a dataset ({msg}); "
                                   "give each column one type") from err
            ds = Dataset(ds.data, info=ds.info, fingerprint=self._fp(cols))
        self._datasets[key] = ds
        return ds

    def _fp(self, cols: Sequence[str]) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(self.fingerprint().encode())
        h.update(json.dumps(list(cols)).encode())
        return h.hexdigest()

    def write_rows(self, indices: Sequence[int], path: str | os.PathLike, fmt: str | None = None,
                   extra: Mapping[str, Sequence[Any]] | None = None) -> Path:
        """Write the rows at ``indices`` (in that order) to ``path``, unchanged, plus ``extra`` columns.

        JSON Lines rows are the source objects with ``extra`` keys appended (a key the source already has is
        replaced in place); CSV keeps every field as text; parquet keeps the Arrow schema. Written to a
        temporary file, then renamed.

        Args:
            indices: row positions.
            path: output file.
            fmt: ``"jsonl"``, ``"csv"`` or ``"parquet"`` (default :attr:`default_format`).
            extra: column name -> one value per written row.

        Example:
            >>> import tempfile; d = Path(tempfile.mkdtemp()); p = d / "a.jsonl"
            >>> _ = p.write_text('{"a": 1}\\n{"a": 2.0}\\n')
            >>> _ = read_source(p).write_rows([1], d / "o.jsonl", extra={"r": [0]})
            >>> (d / "o.jsonl").read_text()
            '{"a": 2.0, "r": 0}\\n'
        """
        fmt = fmt or self.default_format
        idx = [int(i) for i in indices]
        extra = {k: list(v) for k, v in (extra or {}).items()}
        for k, v in extra.items():
            if len(v) != len(idx):
                raise UniformError(f"column {k!r} has {len(v)} values for {len(idx)} rows")
        path = Path(path)
        with atomic_path(path) as tmp:
            if fmt == "parquet":
                self._write_parquet(idx, tmp, extra)
            elif fmt == "csv":
                self._write_csv(idx, tmp, extra)
            elif fmt == "jsonl":
                with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                    for j, row in enumerate(self._pyrows(idx)):
                        out = dict(row)
                        for k, v in extra.items():
                            out[k] = v[j]
                        raw = bool(self.raw_rows) and idx[j] in self.raw_rows
                        f.write((dumps_row(out) if raw else json.dumps(out, ensure_ascii=False, default=str)) + "\n")
            else:
                raise UniformError(f"unknown output format {fmt!r}; use jsonl, csv or parquet")
        return path

    def _pyrows(self, idx: list[int]) -> Iterator[dict]:
        if self.rows is not None:
            for i in idx:
                yield self.rows[i]
        elif self.table is not None:
            yield from self.table.take(idx).to_pylist()
        else:
            sub = self.dataset.select(idx)
            for start in range(0, len(idx), 1000):
                batch = sub[start:start + 1000]
                keys = list(batch)
                for j in range(len(batch[keys[0]]) if keys else 0):
                    yield {k: batch[k][j] for k in keys}

    def _write_csv(self, idx: list[int], tmp: Path, extra: Mapping[str, list]) -> None:
        cols = list(self.columns) + [k for k in extra if k not in self.columns]
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for j, row in enumerate(self._pyrows(idx)):
                vals = {**row, **{k: v[j] for k, v in extra.items()}}
                w.writerow(["" if vals.get(c) is None else
                            (json.dumps(vals[c], ensure_ascii=False) if isinstance(vals[c], (dict, list)) else vals[c])
                            for c in cols])

    def _write_parquet(self, idx: list[int], tmp: Path, extra: Mapping[str, list]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.table is not None:
            table = self.table.take(idx)
        elif self.dataset is not None:
            sub = self.dataset.select(idx).flatten_indices()
            table = sub.data.table
        else:
            try:
                table = _table_from_rows([self.rows[i] for i in idx], self.columns)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                raise UniformError(f"the rows of {self.source} cannot be stored as parquet ({err}); "
                                   "use --format jsonl") from err
        for k, v in extra.items():
            if k in table.column_names:
                table = table.remove_column(table.column_names.index(k))
            table = table.append_column(k, pa.array(v))
        pq.write_table(table, tmp)


def _table_from_rows(rows: list[dict], columns: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.table({c: pa.array([r.get(c) for r in rows]) for c in columns})


def read_source(source: str | os.PathLike, *, split: str = "train", revision: str | None = None) -> SourceData:
    """Read an input's rows exactly as stored, hashing the bytes while reading them (one pass).

    Args:
        source: a ``.json``/``.jsonl`` (JSON Lines, a list of objects, or columns; a UTF-8 BOM is accepted),
            ``.csv`` or ``.parquet`` file, a ``save_to_disk`` folder, or a Hub dataset id.
        split: split to take from a ``DatasetDict`` or a Hub dataset; a file is one split, so another split
            than ``"train"`` is refused for it.
        revision: a branch, tag or commit id of a Hub dataset (``datasets.load_dataset(..., revision=)``);
            refused for a local file or folder. A Hub dataset's rows are read at one commit, whose id is
            :attr:`SourceData.revision` (:func:`load_hub_dataset`).

    Raises:
        UniformError: a missing, unreadable, malformed or empty input (one line naming file and line), a
            ``split`` other than ``"train"`` for a file, a ``revision`` for a local input, or a Hub id while
            offline (``HF_HUB_OFFLINE=1`` or no connection; raised within seconds, naming the fix).

    The name ``"sample"`` (:data:`hf_uniform.data.SAMPLE_NAME`) reads the demo dataset shipped with the
    package (:func:`hf_uniform.data.sample_path`) unless a local path of that name exists.

    Example:
        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a.json"
        >>> _ = p.write_text('{\\n  "q": ["x", "y"],\\n  "n": [1, 2]\\n}\\n')
        >>> read_source(p).rows
        [{'q': 'x', 'n': 1}, {'q': 'y', 'n': 2}]
        >>> read_source(p, revision="v1.0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: --revision v1.0 applies to Hub dataset ids only; .../a.json is a local file, ...
    """
    from .data import resolve_builtin

    revision = revision or None
    source = resolve_builtin(source)
    path = Path(source)
    resolved = resolve_path(source)
    if resolved.exists() or resolved.suffix.lower() in _SUFFIX_BUILDER:  # a local path (not a Hub id)
        path = resolved
    if path.is_dir():
        import datasets

        if not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            raise UniformError(f"{path} is a folder but not one written by save_to_disk (no dataset_info.json)")
        _refuse_revision(revision, path, "folder")
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise UniformError(f"split {split!r} not in {path}; available splits: {list(ds)}")
            ds = ds[split]
        return _from_dataset(str(path), ds)
    suffix = path.suffix.lower()
    if suffix in _SUFFIX_BUILDER or path.exists():
        if not path.exists():
            raise MissingFileError(f"input file {path} does not exist")
        if suffix not in _SUFFIX_BUILDER:
            raise UniformError(f"{path}: unsupported file type {suffix!r}; use .json, .jsonl, .parquet or .csv")
        if split not in (None, "train"):
            raise UniformError(f"--split {split} applies to Hub datasets and save_to_disk folders; the file {path} "
                               "is a single split, so drop --split (or pass the file of that split)")
        _refuse_revision(revision, path, "file")
        data, digest = _read_bytes(path)
        if suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(pa.BufferReader(data))
            except (pa.ArrowException, OSError) as err:
                raise UniformError(f"cannot read {path} as parquet: {str(err).splitlines()[0]}") from err
            if table.num_rows == 0:
                raise UniformError(f"{path} has no records: the dataset is empty")
            return SourceData(str(path), "parquet", list(table.column_names), digest, table=table)
        if suffix == ".csv":
            rows, header = _parse_csv(data, path)
            kind, columns = "csv", header
        raw_rows: set[int] = set()
        if suffix != ".csv":
            rows, kind = _parse_json(data, path, suffix, raw_rows)
            columns = _union_columns(rows)
        if not rows:
            raise UniformError(f"{path} has no records: the dataset is empty")
        return SourceData(str(path), kind, columns, digest, rows=rows, raw_rows=frozenset(raw_rows))
    ds, commit = _load_hub(str(source), split=split, revision=revision)
    return _from_dataset(str(source), ds, revision=commit)


def _refuse_revision(revision: str | None, path: Path, what: str) -> None:
    """A revision names a commit of a Hub dataset: refuse it for a local file or folder (one line, the fix)."""
    if revision is not None:
        raise UniformError(f"--revision {revision} applies to Hub dataset ids only; {path} is a local {what}, which "
                           "has no Hub revision, so drop --revision (or pass the Hub id of the dataset)")


def load_hub_dataset(repo_id: str, *, split: str = "train", revision: str | None = None) -> Any:
    """``datasets.load_dataset(repo_id, split=split, revision=revision)``, failing fast with a one-line hint when
    offline.

    With ``HF_HUB_OFFLINE=1`` a dataset already in the ``datasets`` cache loads as usual; one that is not
    raises at once. Online, the endpoint is probed first with one short request (``HF_ENDPOINT``, 5 s), so a
    machine without a network fails in seconds instead of retrying for half a minute.

    The rows are read at one commit: online, ``revision`` (default: ``main``) is resolved to its commit id
    first (``HfApi.dataset_info(repo_id, revision=revision).sha``, one request to the endpoint and with the
    token ``datasets`` uses) and the dataset is loaded at that commit
    (``load_dataset(..., revision=<commit id>)``), so the id recorded is that of the rows read even when a
    push lands meanwhile. :func:`read_source` keeps that id as :attr:`SourceData.revision`
    (``selection.json``'s ``input_revision``). Offline, the commit is the name of the ``datasets`` cache
    folder the rows were read from (``.../<config>/<version>/<commit>/``, the layout of the ``datasets``
    cache); ``datasets`` reads the latest cached copy whatever ``revision`` says, so a ``revision`` that is
    known (a commit id, or a branch or tag the hub cache's ``refs`` name) and differs from that copy is
    refused. A commit that cannot be told (the Hub's answer failed, or rows held in memory without a cache
    file) is ``None``, with a warning; the load itself goes on.

    Raises:
        UniformError: offline and not cached, the Hub unreachable, offline with a ``revision`` other than the
            cached copy's, or any other load failure, e.g. a revision the Hub does not have (one line).

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict("os.environ", {"HF_HUB_OFFLINE": "1"}):
        ...     try:
        ...         load_hub_dataset("nobody/not-cached-anywhere", revision="v1.0")
        ...     except UniformError as err:
        ...         print(str(err).split(" (")[0])
        cannot load the Hub dataset 'nobody/not-cached-anywhere' at revision 'v1.0': offline
    """
    return _load_hub(repo_id, split=split, revision=revision)[0]


def _load_hub(repo_id: str, *, split: str, revision: str | None) -> tuple[Any, str | None]:
    """:func:`load_hub_dataset`, and the commit id the rows were read at (``None`` when it cannot be told)."""
    import datasets
    from huggingface_hub import constants

    from ._hub_revision import cached_commit, check_offline_revision, hub_commit

    revision = revision or None
    at = f" at revision {revision!r}" if revision else ""
    fix = ("pass a local file or folder (e.g. `sample`, the demo set shipped with hf-uniform), or {what}")
    offline = _env_true("HF_HUB_OFFLINE") or _env_true("HF_DATASETS_OFFLINE") or constants.HF_HUB_OFFLINE
    if not offline:
        reason = _endpoint_unreachable(constants.ENDPOINT)
        if reason:
            raise UniformError(f"cannot load the Hub dataset {repo_id!r}{at}: offline, {constants.ENDPOINT} is "
                               f"unreachable ({reason}); " + fix.format(what="check the network / HF_ENDPOINT"))
    # the libraries read HF_HUB_OFFLINE once, at import: tell them when it was set later
    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    if offline:
        constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    commit, unresolved = None, None
    try:
        if not offline:
            commit, unresolved = hub_commit(repo_id, revision)
        ds = datasets.load_dataset(repo_id, split=split, revision=commit or revision)
    except Exception as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        if offline or _is_connection_error(err):
            raise UniformError(f"cannot load the Hub dataset {repo_id!r}{at}: offline (HF_HUB_OFFLINE=1 or no "
                               f"connection) and not in the datasets cache ({msg[:120]}); "
                               + fix.format(what="unset HF_HUB_OFFLINE and check the network")) from err
        raise UniformError(f"cannot load {repo_id!r}{at} as a file, folder or Hub dataset: {msg}") from err
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved
    if offline:
        commit = cached_commit(ds)
        unresolved = "offline, and the rows are not read from a datasets cache folder named by its commit"
        if revision is not None:
            check_offline_revision(repo_id, revision, commit)
    if commit is None:
        logger.warning("the commit of the Hub dataset %s%s is not known (%s); selection.json records no "
                       "input_revision", repo_id, at, unresolved)
    return ds, commit


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _endpoint_unreachable(endpoint: str, timeout: float = 5.0) -> str | None:
    """Why the Hub endpoint cannot be reached with one TCP connect (``None`` when it can)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    host = parts.hostname
    if not host:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as err:  # DNS failure (gaierror), refused, unreachable, timeout
        return f"{type(err).__name__}: {err}"


def _is_connection_error(err: BaseException) -> bool:
    """Whether ``err`` says the Hub could not be reached (not: the Hub answered with an error).

    Follows ``__cause__``, and ``__context__`` unless it was suppressed (``__suppress_context__``): ``datasets``
    re-raises a Hub *server* error that way, over a ``LocalEntryNotFoundError`` that would read as offline. An
    HTTP answer anywhere on the chain (a status code) means the Hub was reached.

    Example:
        >>> try:
        ...     try:
        ...         raise TimeoutError("read timed out")
        ...     except TimeoutError:
        ...         raise FileNotFoundError("no such dataset") from None  # cause hidden: as datasets does
        ... except FileNotFoundError as e:
        ...     _is_connection_error(e)
        False
        >>> _is_connection_error(ConnectionError("refused"))
        True
    """
    seen: set[int] = set()
    cur: BaseException | None = err
    found = False
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        name = type(cur).__name__
        if getattr(getattr(cur, "response", None), "status_code", None) is not None:
            return False  # the server answered (4xx/5xx): not a connection problem
        if isinstance(cur, (ConnectionError, TimeoutError)) or name in {
                "ConnectError", "ConnectTimeout", "OfflineModeIsEnabled", "LocalEntryNotFoundError"}:
            found = True
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return found


def _from_dataset(source: str, ds: Any, revision: str | None = None) -> SourceData:
    if len(ds) == 0:
        raise UniformError(f"{source} has no records: the dataset is empty")
    return SourceData(source, "datasets", list(ds.column_names), None, dataset=ds, revision=revision)


def check_jsonl(path: str | os.PathLike) -> int:
    """Validate a JSON Lines file; return its number of records.

    Raises:
        UniformError: the file is unreadable, a line is not a JSON object (naming file and line), or it
            has no records.

    Example:
        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a.jsonl"
        >>> _ = p.write_text('{"a": 1}\\n\\n{"a": 2}\\n')
        >>> check_jsonl(p)
        2
    """
    data, _ = _read_bytes(Path(path))
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    return len(_parse_jsonl(data, Path(path)))


def load_input(source: str | os.PathLike, *, split: str = "train") -> Any:
    """Load a dataset from a file, a ``save_to_disk`` folder, or a Hub dataset id.

    Files are read by :func:`read_source` (no ``datasets`` build cache, so an edited file is always read
    anew); the ``Dataset``'s fingerprint is derived from the file's content hash.

    Args:
        source: ``.json``/``.jsonl``/``.parquet``/``.csv`` path, a folder written by ``save_to_disk``, or a
            Hub id such as ``"tatsu-lab/alpaca"``.
        split: split to take from a ``DatasetDict`` or a Hub dataset.

    Example:
        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a.jsonl"
        >>> _ = p.write_text('{"a": 1}\\n{"a": 2}\\n')
        >>> len(load_input(p))
        2
    """
    return read_source(source, split=split).to_dataset()
