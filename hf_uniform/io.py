"""Reading inputs and writing outputs safely.

* :func:`load_input`: a ``.json``/``.jsonl``/``.parquet``/``.csv`` file, a ``save_to_disk`` folder, or a Hub
  dataset id, as a ``Dataset``. Malformed JSON Lines are reported with the file and line.
* :func:`atomic_write_text`, :func:`atomic_write_json`, :func:`atomic_path`: write to a temporary name in
  the same folder, then rename, so an interrupted run never leaves a partial file.
* :func:`is_main_process`: only rank 0 writes under ``torchrun`` / ``accelerate launch``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UniformError

_SUFFIX_BUILDER = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def is_main_process() -> bool:
    """True on rank 0 (or without a distributed launcher).

    Example:
        >>> is_main_process()
        True
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hi")
        >>> (d / "a.txt").read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically.

    Example:
        >>> import tempfile
        >>> atomic_write_text(Path(tempfile.mkdtemp()) / "x.txt", "ok").read_text()
        'ok'
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


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


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _json_safe(obj.tolist())
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (non-finite floats become ``null``; numpy is converted).

    Example:
        >>> import tempfile
        >>> p = atomic_write_json(Path(tempfile.mkdtemp()) / "x.json", {"h": float("inf")})
        >>> json.loads(p.read_text())
        {'h': None}
    """
    return atomic_write_text(path, json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n")


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
    count = 0
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UniformError(f"{path}: line {lineno} is not valid JSON ({err.msg}); fix or remove it") from None
                if not isinstance(rec, dict):
                    raise UniformError(f"{path}: line {lineno} is not a JSON object; each line must be {{...}}")
                count += 1
    except UnicodeDecodeError as err:
        raise UniformError(f"{path}: not UTF-8 text ({err.reason}); convert it to UTF-8 JSON Lines") from None
    except OSError as err:
        raise UniformError(f"cannot read {path}: {err.strerror}") from None
    return count


def load_input(source: str | os.PathLike, *, split: str = "train") -> Any:
    """Load a dataset from a file, a ``save_to_disk`` folder, or a Hub dataset id.

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
    import datasets

    path = Path(source)
    if path.is_dir():
        if not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            raise UniformError(f"{path} is a folder but not one written by save_to_disk (no dataset_info.json)")
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise UniformError(f"split {split!r} not in {path}; available splits: {list(ds)}")
            ds = ds[split]
        return ds
    suffix = path.suffix.lower()
    if suffix in _SUFFIX_BUILDER or path.exists():
        if not path.exists():
            raise UniformError(f"input file {path} does not exist")
        if suffix not in _SUFFIX_BUILDER:
            raise UniformError(f"{path}: unsupported file type {suffix!r}; use .json, .jsonl, .parquet or .csv")
        if suffix == ".jsonl" or (suffix == ".json" and _looks_like_jsonl(path)):
            if check_jsonl(path) == 0:
                raise UniformError(f"{path} has no records: the dataset is empty")
        try:
            ds = datasets.load_dataset(_SUFFIX_BUILDER[suffix], data_files=str(path), split="train")
        except Exception as err:  # datasets raises many types for malformed files
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UniformError(f"cannot read {path}: {msg}") from None
        if len(ds) == 0:
            raise UniformError(f"{path} has no records: the dataset is empty")
        return ds
    try:
        return datasets.load_dataset(str(source), split=split)
    except Exception as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UniformError(f"cannot load {source!r} as a file, folder or Hub dataset: {msg}") from None


def _looks_like_jsonl(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(1).lstrip()
        while not head:
            c = f.read(1)
            if not c:
                return False
            head = c.strip()
    return head == "{"
