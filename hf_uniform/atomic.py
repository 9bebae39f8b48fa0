"""Files written safely: one temporary-name pattern, write-then-rename, and user paths resolved before use.

* :func:`resolve_path`: a user's path made absolute and symlink-free *before* it is checked.
* :func:`atomic_path`, :func:`atomic_write_text`, :func:`atomic_write_json`, :func:`atomic_dir`: write to a
  temporary name in the same folder, then rename, so an interrupted run never leaves a partial file; a folder
  holding files is never replaced unless its owner says so.
* :data:`TMP_PATTERN` / :func:`remove_stale_tmp`: the one pattern of our temporary names, and the clean-up
  that removes only those (never a user's ``.env.tmp``).

All of these are also importable from :mod:`hf_uniform.io`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import UniformError

TMP_MARK = ".hfu-tmp"  # every temporary file or folder we write is named ".<final name>.<8 random>.hfu-tmp<suffix>"
# the one pattern of our temporary names (mkstemp/mkdtemp draw the 8 characters from [a-z0-9_]); nothing else
# in a folder is ever removed as "temporary" (a user's ".env.tmp" is not ours)
TMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}" + re.escape(TMP_MARK) + r"(?P<suffix>\.[^./]*)?$")


def resolve_path(path: str | os.PathLike) -> Path:
    """The absolute, symlink-free path of a user's path (``~`` expanded; ``..`` of missing folders resolved).

    Every path the user passes is resolved with this *before* it is checked, so the check and the write see
    the same folder: ``nothere/../X`` is ``X``, whether or not ``nothere`` exists.

    Example:
        >>> resolve_path("nothere/../x") == Path.cwd().resolve() / "x"
        True
    """
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _resolve_parent(path: str | os.PathLike) -> Path:
    """``path`` with its folder resolved but not its last component: a link there is replaced, never written
    through (a ``subset.jsonl`` that links elsewhere does not get the elsewhere file overwritten)."""
    p = Path(os.path.expanduser(os.fspath(path)))
    if p.name in ("", ".", ".."):
        return resolve_path(p)
    return resolve_path(p.parent) / p.name


def temp_affixes(final: str | os.PathLike) -> dict[str, str]:
    """``prefix=``/``suffix=`` for ``tempfile.mkstemp``/``mkdtemp``: the one temporary-name pattern of ours.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> name = Path(tempfile.mkstemp(dir=d, **temp_affixes("subset.jsonl"))[1]).name
        >>> bool(TMP_PATTERN.match(name)), name.startswith(".subset.jsonl."), name.endswith(".hfu-tmp.jsonl")
        (True, True, True)
    """
    final = Path(final)
    return {"prefix": f".{final.name}.", "suffix": TMP_MARK + final.suffix}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike, mode: int = 0o666) -> None:
    """Give ``path`` the permissions a plain ``open()`` would (``mode & ~umask``); temp files start private.

    Example:
        >>> import tempfile; p = Path(tempfile.mkstemp()[1]); follow_umask(p)
        >>> oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
        True
    """
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file (named by :func:`temp_affixes`) is removed on any error (Ctrl-C included), and so are
    the parent folders this call created; the final file follows the umask. ``path``'s folder is resolved
    first (:func:`resolve_path`); a link at ``path`` itself is replaced by the file, never written through.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hi")
        >>> (d / "a.txt").read_text()
        'hi'
    """
    path = _resolve_parent(path)
    created = _make_parents(path)
    fd, name = tempfile.mkstemp(dir=path.parent, **temp_affixes(path))
    os.close(fd)
    tmp = Path(name)
    done = False
    try:
        yield tmp
        if tmp.exists():
            follow_umask(tmp)
        os.replace(tmp, path)
        done = True
    finally:
        if tmp.exists():
            tmp.unlink()
        if not done:
            _remove_created(created)


def _make_parents(path: Path) -> list[Path]:
    """Create ``path``'s missing parent folders; return those this call created (outermost first)."""
    missing = []
    parent = path.parent
    while not parent.exists() and parent.parent != parent:
        missing.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_created(created: list[Path]) -> None:
    """Remove the folders :func:`_make_parents` created, innermost first, where they are still empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()  # only an empty folder: rmdir cannot remove anything else
        except OSError:
            break


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it becomes ``path``.

    ``path`` is resolved first (:func:`resolve_path`). It must be new or an empty folder; a folder holding
    files is replaced only with ``replace=True`` (for a folder the caller itself wrote), and never removed
    otherwise, even when it appears while the block runs. The temporary folder (and any parent folder this
    call created) is removed on any error, so ``path`` is either untouched or the complete new folder.

    Raises:
        UniformError: ``path`` is a file, or a non-empty folder without ``replace=True``.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> with atomic_dir(d / "model") as tmp:
        ...     _ = (tmp / "config.json").write_text("{}")
        >>> sorted(p.name for p in (d / "model").iterdir())
        ['config.json']
    """
    import shutil

    path = _resolve_parent(path)

    def check() -> None:
        if path.is_symlink():
            raise UniformError(f"{path} is a link; pass a new or empty folder itself, not a link to one")
        if path.exists() and not path.is_dir():
            raise UniformError(f"{path} exists and is not a folder; pass a new or empty folder")
        if path.exists() and not replace and not _is_empty_dir(path):
            raise UniformError(f"{path} is not empty; pass a new or empty folder (nothing in it was changed)")

    check()
    created = _make_parents(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, **temp_affixes(path.name)))
    done = False
    try:
        follow_umask(tmp, 0o777)  # mkdtemp makes it private; the folder gets a plain mkdir's permissions
        yield tmp
        check()  # again: something may have appeared there meanwhile
        if path.is_dir():
            if replace:
                shutil.rmtree(path)
            else:
                path.rmdir()  # empty (checked): rmdir cannot remove anything else
        os.replace(tmp, path)
        done = True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_created(created)


def remove_stale_tmp(folder: str | os.PathLike, names: Sequence[str] | None = None, *,
                     older_than: float | None = None) -> list[Path]:
    """Delete temporary files and folders left in ``folder`` by killed runs; return what was removed.

    Only names of our one pattern (:data:`TMP_PATTERN`: ``.NAME.<8 random>.hfu-tmp<suffix>``) are touched;
    a user's ``.env.tmp`` or ``notes.tmp`` is never removed.

    Args:
        folder: the output folder (or a cache folder).
        names: only temporary files of these final names (default: any of ours).
        older_than: only those not modified for this many seconds (a cache shared by concurrent runs).

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> _ = (d / ".subset.jsonl.ab12cd34.hfu-tmp.jsonl").write_text("x"); _ = (d / ".env.tmp").write_text("x")
        >>> [p.name for p in remove_stale_tmp(d)], sorted(p.name for p in d.iterdir())
        (['.subset.jsonl.ab12cd34.hfu-tmp.jsonl'], ['.env.tmp'])
    """
    import shutil
    import time

    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for p in sorted(folder.iterdir()):
        m = TMP_PATTERN.match(p.name)
        if m is None or p.is_symlink():
            continue
        if names is not None and m.group("name") not in names:
            continue
        try:
            if older_than is not None and now - p.stat().st_mtime < older_than:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed


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


# ----------------------------------------------------------------------------------------------- reading
