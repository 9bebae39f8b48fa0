"""Checks that :func:`hf_uniform.pipeline.run_selection` (and so ``hf-uniform select`` / ``stats``) runs before
any data is read: device, output folder, an earlier selection there, embedding and engine options, k; and
the files a selection writes."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UniformError
from .records import MEANING, SELECTION_FILE  # noqa: F401 - MEANING re-exported
from .spine import DEVICES_HELP, check_device  # noqa: F401 - the one device rule, re-exported

logger = logging.getLogger("hf_uniform")

HELDOUT_FILE = "heldout.jsonl"
# Every file `select` may write (besides selection.json); --overwrite and the clean-up of an unfinished run
# remove exactly these, nothing else (not what an earlier selection.json lists under "files").
OUTPUT_STEMS = ("subset", "random", "mixed", "heldout", "length_matched")
OUTPUT_SUFFIXES = (".jsonl", ".parquet", ".csv")
OUTPUT_EXTRA = ("coverage.png", "uniformity.png")




# ----------------------------------------------------------------------------------------- validation


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _check_folder_path(out: Path, flag: str, given: Any) -> None:
    """``out`` (resolved) can be a folder we write: not a file, not under a file, its first existing parent
    writable."""
    if out.exists() and not out.is_dir():
        raise UniformError(f"{flag} {given} exists and is not a folder; pass a folder path for {flag}")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UniformError(f"{flag} folder {given} lies under the file {probe}; pass a folder path for {flag}")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UniformError(f"cannot write to {probe} (permission denied); pass another {flag} folder")


def check_output_folder(out: str | os.PathLike, inputs: Sequence[str] = ()) -> Path:
    """Validate an output folder before any work: not a file, not under a file, writable, not holding an input.

    The path is resolved first (:func:`hf_uniform.io.resolve_path`): ``nothere/../Y`` is checked, and then
    written, as ``Y``. Returns the resolved path.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()).resolve()
        >>> check_output_folder(d / "new") == d / "new"
        True
        >>> check_output_folder(d / "nothere" / ".." / "new") == d / "new"
        True
        >>> _ = (d / "f.txt").write_text("x")
        >>> check_output_folder(d / "f.txt" / "out")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: -o folder ... lies under the file ...; pass a folder path for -o
    """
    from .io import resolve_path

    given = out
    out = resolve_path(out)
    _check_folder_path(out, "-o", given)
    for src in inputs:
        p = Path(src)
        if p.exists() and _is_within(p, out):
            raise UniformError(f"the output folder {given} holds the input {p}; write the selection to another "
                               "folder (a rerun would replace the input)")
    return out


def _our_files(out: Path) -> list[Path]:
    """Files of an earlier (finished or unfinished) selection in ``out``: only the names ``select`` writes
    (``OUTPUT_STEMS`` x ``OUTPUT_SUFFIXES``, ``OUTPUT_EXTRA``). A name an earlier ``selection.json`` lists
    beyond these is never removed: the record may be hand-made or pulled from the Hub, and the file the user's."""
    names = {f"{stem}{suffix}" for stem in OUTPUT_STEMS for suffix in OUTPUT_SUFFIXES} | set(OUTPUT_EXTRA)
    return [out / name for name in sorted(names) if (out / name).is_file() or (out / name).is_symlink()]


def check_previous_selection(out: Path, overwrite: bool) -> list[Path]:
    """Files of an earlier selection in ``out`` that this run will replace; refuses a finished one without
    ``--overwrite``. A folder without ``selection.json`` holds an unfinished run: its files are replaced.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "subset.jsonl").write_text("{}")
        >>> [p.name for p in check_previous_selection(d, overwrite=False)]
        ['subset.jsonl']
    """
    if not out.is_dir():
        return []
    finished = (out / SELECTION_FILE).is_file()
    if finished and not overwrite:
        raise UniformError(f"{out} already holds a selection; pass --overwrite or another -o folder")
    old = _our_files(out)
    if old and not finished:
        logger.info("%s holds files of an unfinished run (no %s); they will be replaced", out, SELECTION_FILE)
    return old + ([out / SELECTION_FILE] if finished else [])


def check_checkpoint_folder(checkpoint: str | os.PathLike) -> str:
    """The ``--checkpoint`` folder, resolved and checked to be a folder we can write (before any work).

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()).resolve()
        >>> check_checkpoint_folder(d / "ck") == str(d / "ck")
        True
    """
    from .io import resolve_path

    folder = resolve_path(checkpoint)
    _check_folder_path(folder, "--checkpoint", checkpoint)
    return str(folder)


def text_pool(emb: Any, src: Any, pool_rows: Any, *, drop_empty: bool, ignore: Any = None) -> tuple[Any, dict, Any]:
    """The pool rows as a dataset of the embedded columns, without rows whose rendered text is empty.

    Returns ``(ds, text_info, pool_rows)``: ``ds`` holds the kept ``pool_rows`` (source row numbers, sorted)
    in order; ``text_info`` names the embedded columns and template. Empty rows are refused unless
    ``drop_empty`` (one line naming the rows and the fix); rows in ``ignore`` (e.g. held out) are not checked.

    Example:
        >>> text_pool  # doctest: +ELLIPSIS
        <function text_pool at ...>
    """
    import numpy as np

    text_info = emb.renderer.describe(src.columns)
    ds = src.to_dataset(text_info["columns"])
    empty = emb.renderer.empty_rows(ds)
    if ignore is not None:
        empty = sorted(set(empty) - set(np.asarray(ignore).tolist()))
    if empty and not drop_empty:
        raise UniformError(
            f"{len(empty)} of {src.n} rows have empty text in columns {text_info['columns']} (rows "
            f"{empty[:10]}{' ...' if len(empty) > 10 else ''}); pass --drop-empty to leave them out, or "
            "choose other --text-columns / --template")
    if empty:
        logger.warning("leaving out %d row(s) with empty text (rows %s)", len(empty), empty[:10])
        pool_rows = np.setdiff1d(pool_rows, np.asarray(empty, dtype=np.int64))
        if len(pool_rows) == 0:
            raise UniformError("every row has empty text; check --text-columns / --template")
    if len(pool_rows) < src.n:
        ds = ds.select(np.asarray(pool_rows).tolist())
    return ds, text_info, pool_rows
