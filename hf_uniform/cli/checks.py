"""Checks of ``hf-uniform`` arguments and output folders, run before any data is read; the files a
selection writes."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UniformError

logger = logging.getLogger("hf_uniform")

SELECTION_FILE = "selection.json"
HELDOUT_FILE = "heldout.jsonl"
# Every file `select` may write (besides selection.json); --overwrite and the clean-up of an unfinished run
# remove exactly these (plus whatever an earlier selection.json lists under "files").
OUTPUT_STEMS = ("subset", "random", "mixed", "heldout", "length_matched")
OUTPUT_SUFFIXES = (".jsonl", ".parquet", ".csv")
OUTPUT_EXTRA = ("coverage.png", "uniformity.png")
DEVICES_HELP = "cpu (default), cuda, cuda:N or auto (CUDA when available)"

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



# ----------------------------------------------------------------------------------------- validation


def check_device(device: str) -> str:
    """Validate ``--device`` (before any data is read); return it.

    Example:
        >>> check_device("cpu")
        'cpu'
        >>> check_device("tpu")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: unknown device 'tpu'; use cpu (default), cuda, cuda:N or auto (CUDA when available)
    """
    import re

    if device in ("cpu", "auto"):
        return device
    if not re.fullmatch(r"cuda(:\d+)?", device or ""):
        raise UniformError(f"unknown device {device!r}; use {DEVICES_HELP}")
    import torch

    if not torch.cuda.is_available():
        raise UniformError(f"--device {device}: no CUDA device is available here; use --device cpu or auto")
    if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise UniformError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_output_folder(out: str | os.PathLike, inputs: Sequence[str] = ()) -> Path:
    """Validate an output folder before any work: not a file, not under a file, writable, not holding an input.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> check_output_folder(d / "new") == d / "new"
        True
        >>> _ = (d / "f.txt").write_text("x")
        >>> check_output_folder(d / "f.txt" / "out")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: output folder ... lies under the file ...; pass a folder path for -o
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UniformError(f"output {out} exists and is not a folder; pass a folder path for -o")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UniformError(f"output folder {out} lies under the file {probe}; pass a folder path for -o")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UniformError(f"cannot write to {probe} (permission denied); pass another -o folder")
    for src in inputs:
        p = Path(src)
        if p.exists() and _is_within(p, out):
            raise UniformError(f"the output folder {out} holds the input {p}; write the selection to another "
                               "folder (a rerun would replace the input)")
    return out


def _our_files(out: Path) -> list[Path]:
    """Files of an earlier (finished or unfinished) selection in ``out``."""
    import json

    names = {f"{stem}{suffix}" for stem in OUTPUT_STEMS for suffix in OUTPUT_SUFFIXES} | set(OUTPUT_EXTRA)
    record = out / SELECTION_FILE
    if record.is_file():
        try:
            files = json.loads(record.read_text(encoding="utf-8")).get("files") or {}
            names |= {str(v) for v in files.values() if isinstance(v, str) and "/" not in v and v}
        except (OSError, ValueError, AttributeError):
            pass
    return [out / name for name in sorted(names) if (out / name).is_file()]


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


def _check_embedding_args(args: argparse.Namespace) -> Any:
    """The embedder (validated, nothing loaded) or ``None`` with --embedding-column."""
    from ..embed import resolve_embedder

    if args.embedding_column:
        given = [f for f, v in (("--text-columns", args.text_columns), ("--template", args.template),
                                ("--drop-empty", args.drop_empty)) if v]
        if given or args.embedder != "w2v":
            raise UniformError(f"--embedding-column uses stored vectors, so {', '.join(given) or '--embedder'} "
                               "has no effect; drop it")
        return None
    if args.text_columns is not None and args.template is not None:
        raise UniformError("pass either --text-columns or --template, not both")
    if args.text_columns is not None and not [c for c in args.text_columns.split(",") if c.strip()]:
        raise UniformError("--text-columns names no column; pass e.g. --text-columns instruction,output")
    return resolve_embedder(args.embedder, text_columns=args.text_columns, template=args.template)


def _engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    kwargs: dict[str, Any] = {"dtype": getattr(torch, args.dtype)}
    if args.method != "auto":
        kwargs["method"] = args.method
    if args.max_memory:
        from ..engine.store import parse_bytes

        try:
            parse_bytes(args.max_memory)
        except (ValueError, TypeError) as err:
            raise UniformError(f"--max-memory {args.max_memory!r}: {err}; pass e.g. 4GB") from None
        kwargs["max_memory"] = args.max_memory
    if args.checkpoint:
        kwargs.update(checkpoint_dir=args.checkpoint, checkpoint_every=args.checkpoint_every,
                      resume=args.resume)
    elif args.resume:
        raise UniformError("--resume needs --checkpoint DIR (the folder the interrupted run saved to)")
    return kwargs


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


def resolve_k(k: int | float, n: int) -> int:
    """Rows for ``-k`` on a pool of ``n`` rows: a count in [1, n], or a fraction in (0, 1) that must give at
    least one row.

    Example:
        >>> resolve_k(0.5, 9), resolve_k(3, 9)
        (4, 3)
        >>> resolve_k(1e-7, 100)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: k=1e-07 of n=100 rows rounds to 0 rows; pass a larger fraction or a row count
    """
    from ..integration import check_k_arg  # the one k rule, shared with filter_uniform

    return check_k_arg(k, n)
