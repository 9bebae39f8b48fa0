"""The ``hf-uniform`` command line.

``hf-uniform select INPUT -k K -o OUT`` writes the uniform subset and its evidence; ``hf-uniform stats``
prints a uniformity report; ``hf-uniform push`` publishes a selection to the Hub. Every argument, the
template and the output folder are checked before any data is read; bad input exits with status 2 and a
one-line message, without a traceback; Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import UniformError

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


# ------------------------------------------------------------------------------------------------ parsing


def _k_value(text: str) -> int | float:
    """-k: a whole number of rows, or a fraction strictly between 0 and 1 (written with a decimal point)."""
    t = text.strip()
    if t.lstrip("+").isdigit():
        if int(t) < 1:
            raise argparse.ArgumentTypeError(f"k must be at least 1, got {text}")
        return int(t)
    try:
        value = float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"k must be a number of rows or a fraction in (0, 1), got {text!r}") from None
    if not math.isfinite(value) or not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"-k {text} is neither a whole number of rows nor a fraction strictly between 0 and 1; "
            "pass e.g. -k 4500 or -k 0.5 (for every row, pass the row count)")
    return value


def _heldout_value(text: str) -> int | float:
    """--heldout: a whole number of rows (>= 1), or a fraction strictly between 0 and 1."""
    try:
        return _k_value(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"--heldout {text} is neither a whole number of rows nor a fraction strictly between 0 and 1; "
            "pass e.g. --heldout 200 or --heldout 0.05") from None


def _nonneg_int(what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{what} must be 0 or more, got {value}")
        return value
    return parse


def _pos_int(what: str):
    def parse(text: str) -> int:
        value = _nonneg_int(what)(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} must be 1 or more, got {value}")
        return value
    return parse


def _int_list(text: str) -> list[int]:
    try:
        rows = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated row indices, got {text!r}") from None
    if not rows:
        raise argparse.ArgumentTypeError("--start lists no row; pass e.g. --start 3,17")
    if any(r < 0 for r in rows):
        raise argparse.ArgumentTypeError(f"start rows must be 0 or more, got {text!r}")
    if len(set(rows)) != len(rows):
        raise argparse.ArgumentTypeError(f"start rows repeat a row: {text!r}; pass each row once")
    return rows


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``hf-uniform select: error: ...; see --help``), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a .json/.jsonl/.parquet/.csv file, a save_to_disk folder, or a Hub dataset id")
    p.add_argument("--split", default="train", help="split of a DatasetDict or Hub dataset (default: train)")
    p.add_argument("--embedder", default="w2v",
                   help="w2v (the paper's Word2Vec, default), st:MODEL, m2v:PATH_OR_ID, m2v-distill:ST_MODEL")
    p.add_argument("--embedding-column", help="use vectors already stored in this column instead of embedding")
    p.add_argument("--text-columns", help="comma-separated columns to embed, joined by newlines "
                                          "(default: the detected layout, recorded in selection.json)")
    p.add_argument("--template", help="str.format template over columns, e.g. '{instruction} {output}'")
    p.add_argument("--drop-empty", action="store_true",
                   help="leave out rows whose text is empty (default: refuse them, reporting how many)")
    p.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine")
    p.add_argument("--drop-zero-vectors", action="store_true",
                   help="ignore all-zero embeddings (rows with no known word) instead of failing")
    p.add_argument("--no-cache", action="store_true", help="do not reuse or store embeddings")
    p.add_argument("--device", default="cpu", help=DEVICES_HELP)
    p.add_argument("--seed", type=_nonneg_int("--seed"), default=0, help="seed of the random start row (default: 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result: no progress bars or logs")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hf-uniform`` (imports nothing heavy, so ``--help`` is instant).

    Example:
        >>> build_parser().parse_args(["select", "data.jsonl", "-k", "10", "-o", "out"]).k
        10
    """
    parser = _Parser(prog="hf-uniform", description=__doc__.splitlines()[0])
    from . import __version__

    parser.add_argument("--version", action="version", version=f"hf-uniform {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sel = sub.add_parser("select", help="select a uniform subset (greedy max-min) and write it with its evidence")
    _add_data_args(sel)
    sel.add_argument("-k", type=_k_value, required=True,
                     help="subset size: a whole number of rows, or a fraction in (0, 1) such as 0.5")
    sel.add_argument("-o", "--output", required=True, help="output folder (must not hold the input)")
    sel.add_argument("--start", type=_int_list, help="comma-separated start rows (default: a seeded random row)")
    sel.add_argument("--format", choices=("jsonl", "parquet", "csv"),
                     help="subset file format (default: the input's: csv for .csv, parquet for .parquet, "
                          "else jsonl)")
    sel.add_argument("--heldout", type=_heldout_value, metavar="N",
                     help="first set aside N rows (a count, or a fraction in (0, 1)) drawn with --seed and write "
                          "them unchanged to OUT/heldout.jsonl; the subset and the baselines are chosen from the "
                          "other rows only. The held-out rows depend on the input's row count, N and --seed, "
                          "never on -k; row indices in selection.json are the input's row numbers")
    sel.add_argument("--baselines", action="store_true",
                     help="also write random.* and mixed.* (the paper's half-random baseline) of the same size")
    sel.add_argument("--method", choices=("auto", "lazy", "sweep", "plain"), default="auto",
                     help="selection engine: auto (default, the fastest exact one), lazy, sweep or plain")
    sel.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                     help="storage precision of the embeddings in the engine")
    sel.add_argument("--max-memory", help="stream embeddings in chunks above this size, e.g. 4GB")
    sel.add_argument("--checkpoint", help="save the selection state in this folder so --resume can continue")
    sel.add_argument("--checkpoint-every", type=_pos_int("--checkpoint-every"), default=1000,
                     help="steps between checkpoints")
    sel.add_argument("--resume", action="store_true", help="continue from --checkpoint after a crash")
    sel.add_argument("--overwrite", action="store_true",
                     help="replace an earlier selection in the output folder (all of its files)")
    sel.add_argument("--no-plot", action="store_true", help="do not draw uniformity.png")
    sel.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                     help="embed and select on Ray (composable core-set, pip install 'hf-uniform[ray]'): "
                          "'local' (default) starts Ray on this machine, an address (auto, ray://host:10001) "
                          "joins a cluster")
    sel.add_argument("--ray-shards", type=_pos_int("--ray-shards"), metavar="S",
                     help="contiguous shards for --ray (default: the cluster's CPUs); the result equals "
                          "hf_uniform.coreset_select(x, k, shards=S)")
    sel.set_defaults(func=select_command)

    st = sub.add_parser("stats", help="print the uniformity report (h, coverage) of a pool or a subset of it")
    _add_data_args(st)
    st.add_argument("--subset", help="a subset file written by select (default: report the pool alone)")
    st.set_defaults(func=stats_command)

    from .hub import add_push_parser

    add_push_parser(sub)
    return parser


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
    from .embed import resolve_embedder

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
        from .engine.store import parse_bytes

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
    from .integration import check_k_arg  # the one k rule, shared with filter_uniform

    return check_k_arg(k, n)


# -------------------------------------------------------------------------------------------- select


def _status(msg: str, *a: Any) -> float:
    logger.info(msg, *a)
    return time.perf_counter()


def select_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform select``: validate, read, embed, select, write the subset files, then
    ``selection.json`` last (the marker of a finished selection)."""
    import numpy as np

    if getattr(args, "ray", None) or getattr(args, "ray_shards", None):
        from .ray import select_command_ray

        return select_command_ray(args)
    # --- everything that can be checked without the data ---------------------------------------------
    out = check_output_folder(args.output, [args.input])
    emb = _check_embedding_args(args)
    device = check_device(args.device)
    engine_kwargs = _engine_kwargs(args)
    replaced = check_previous_selection(out, args.overwrite)
    from .distributed_embed import init_distributed, launched_distributed
    from .io import is_main_process

    if launched_distributed():  # torchrun / accelerate launch: every path (embedding column too) is sharded
        init_distributed()
    progress = not args.quiet and is_main_process()

    from .integration import embed, embedding_matrix, select_rows
    from .io import read_source, remove_stale_tmp

    remove_stale_tmp(out)
    timings: dict[str, float] = {}
    t0 = _status("reading %s", args.input)
    src = read_source(args.input, split=args.split)
    n_source = src.n
    fmt = args.format or src.default_format
    k = resolve_k(args.k, n_source)
    if args.start and max(args.start) >= n_source:
        raise UniformError(f"start rows {[s for s in args.start if s >= n_source][:10]} are out of range for "
                           f"n={n_source}")
    pool_rows = np.arange(n_source)
    heldout_rows = None
    if args.heldout is not None:  # held out before anything else; the rest is the pool
        from .heldout import split_heldout

        heldout_rows, pool_rows = split_heldout(n_source, args.heldout, args.seed)
        if args.start and set(args.start) & set(heldout_rows.tolist()):
            raise UniformError(f"start rows {sorted(set(args.start) & set(heldout_rows.tolist()))} are held out by "
                               "--heldout; choose other start rows or another --seed")
        k = resolve_k(args.k, len(pool_rows))
        if k > len(pool_rows):
            raise UniformError(f"k={k} exceeds the {len(pool_rows)} rows left after holding out {len(heldout_rows)}")
        out.mkdir(parents=True, exist_ok=True)
        (out / SELECTION_FILE).unlink(missing_ok=True)  # --overwrite: unfinished from now until the new marker
        src.write_rows(heldout_rows.tolist(), out / HELDOUT_FILE, "jsonl")  # first: rows unchanged
        replaced = [p for p in replaced if p.name != HELDOUT_FILE]
        logger.info("held out %d of %d rows (--seed %d) in %s", len(heldout_rows), n_source, args.seed,
                    out / HELDOUT_FILE)
    text_info: dict[str, Any] | None = None
    if emb is not None:
        # held-out rows are written as they are; only the pool needs text
        ds, text_info, kept = text_pool(emb, src, pool_rows, drop_empty=args.drop_empty,
                                        ignore=heldout_rows)
        if len(kept) < len(pool_rows):
            pool_rows = kept
            k = resolve_k(args.k, len(pool_rows)) if isinstance(args.k, float) else k
            if k > len(pool_rows):
                raise UniformError(f"k={k} exceeds the {len(pool_rows)} rows left after dropping empty ones")
            if args.start and not set(args.start) <= set(pool_rows.tolist()):
                raise UniformError("a --start row has empty text and was left out; choose other start rows")
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if emb is None:
        x = embedding_matrix(src.to_dataset([args.embedding_column]), args.embedding_column)
        if heldout_rows is not None:
            x = x[pool_rows]
        source: dict[str, Any] = {"embedding_column": args.embedding_column}
    else:
        x = embed(ds, emb, progress=progress, cache=not args.no_cache)
        source = emb.config()
    timings["embed_s"] = time.perf_counter() - t0

    position = {int(r): i for i, r in enumerate(pool_rows)}
    start = [position[s] for s in args.start] if args.start else None
    t0 = time.perf_counter()
    sel = select_rows(x, k, metric=args.metric, drop_zero_vectors=args.drop_zero_vectors, seed=args.seed,
                      start=start, device=device, progress=progress, **engine_kwargs)
    timings["select_s"] = time.perf_counter() - t0
    from .io import is_main_process

    if not is_main_process():
        return 0
    record, subsets = _evidence(args, x, sel, timings, progress)
    # pool positions -> source rows
    to_source = {name: pool_rows[np.asarray(idx, dtype=np.int64)] for name, idx in subsets.items()}
    dropped = sorted(set(range(n_source)) - set(pool_rows.tolist()))

    # --- write: earlier files go first, the subset files next, selection.json last ----------------------
    for p in sorted(replaced, key=lambda q: q.name != SELECTION_FILE):  # the marker goes first
        p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    radii = [None if not math.isfinite(r) else float(r) for r in sel.min_distances]
    subset_path = out / f"subset.{fmt}"
    t0 = _status("writing %s", subset_path)
    src.write_rows(to_source["subset"], subset_path, fmt,
                   extra={"uniform_rank": list(range(sel.k)), "uniform_min_distance": radii})
    files["subset"] = subset_path.name
    if args.baselines:
        for name in ("random", "mixed"):
            path = out / f"{name}.{fmt}"
            src.write_rows(to_source[name], path, fmt)
            files[name] = path.name
    timings["write_s"] = time.perf_counter() - t0
    if not args.no_plot:
        t0 = _status("drawing uniformity.png (radius trace, nearest-neighbour distances, PCA map)")
        try:
            from .plots import uniformity_plot

            uniformity_plot(x, subsets, out / "uniformity.png", metric=args.metric,
                            report=record["report"], uniform_trace=sel.min_distances)
            files["coverage_plot"] = "uniformity.png"
        except UniformError as err:  # matplotlib missing: the selection itself is still complete
            logger.warning("%s", err)
        timings["plot_s"] = time.perf_counter() - t0
    record["files"] = files
    record["subset_file"] = subset_path.name
    record["indices"] = to_source["subset"].tolist()
    record["engine"]["pool_rows"] = len(pool_rows)
    record["engine"]["dropped_empty_rows"] = dropped
    record["embedded"] = {**source, **(text_info or {}), "dropped_empty_rows": len(dropped)}
    if heldout_rows is not None:
        files["heldout"] = HELDOUT_FILE
        record["heldout"] = {"rows": len(heldout_rows), "file": HELDOUT_FILE, "size": args.heldout,
                             "seed": args.seed, "indices": heldout_rows.tolist(),
                             "note": "input row numbers (0-based); every row index in this file (indices, "
                                     "heldout.indices) refers to the input's rows, not to the pool left after "
                                     "holding out"}
    record["lengths"] = _lengths_record(src, emb, to_source, pool_rows)
    _write_record(out / SELECTION_FILE, record)
    _print_report(record["report"], record["k"], record["n"], args.metric)
    _print_lengths(record["lengths"])
    if sel.k > 1 and record["h"] == 0.0:
        print("note: h = 0 - the pool has duplicates and the subset contains at least two equal rows")
    print(f"wrote {subset_path} and {out / SELECTION_FILE}")
    return 0


def _evidence(args: argparse.Namespace, x: Any, sel: Any, timings: dict[str, float],
              progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The selection record (user-facing block first, engine internals under ``engine``) and the row sets
    (pool positions) of the subset and its baselines."""
    import numpy as np

    from .baselines import mixed_subset, random_subset
    from .io import package_versions
    from .metrics import REPORT_MAX_PAIRS, selection_report

    kept = np.setdiff1d(np.arange(len(x)), sel.info.get("dropped_rows", []))
    pool = x[kept]
    subsets: dict[str, Any] = {"subset": sel.indices, "random": kept[random_subset(len(kept), sel.k, seed=args.seed)]}
    if args.baselines:
        t0 = _status("building the mixed baseline (half random, half greedy min-distance)")
        subsets["mixed"] = kept[mixed_subset(pool, sel.k, metric=args.metric, seed=args.seed, device=args.device,
                                             progress=progress)]
        timings["mixed_s"] = time.perf_counter() - t0
    t0 = _status("computing h, coverage radius and nearest-neighbour distances of %d set(s) (exact float64; "
                 "estimated from a stated sample above %.0e pairs)", len(subsets) + 1, REPORT_MAX_PAIRS)
    at = np.searchsorted(kept, np.arange(len(x)))  # rows of x -> pool positions (subsets hold kept rows)
    report, report_info = selection_report(
        pool, {name: at[np.asarray(idx, dtype=np.int64)] for name, idx in subsets.items()}, metric=args.metric,
        known={"subset": (sel.h, sel.coverage_radius)}, seed=args.seed)
    timings["report_s"] = time.perf_counter() - t0
    timings["report_sets_s"] = report_info["seconds"]
    sub = report["subset"]
    summary = (f"{sel.k} of {len(kept)} rows chosen by exact greedy max-min ({args.metric} distance): h = "
               f"{sub['h']:.6g} (random subset of the same size: {report['random']['h']:.6g}; higher is better), "
               f"coverage radius = {sub['coverage_radius']:.6g} (random: {report['random']['coverage_radius']:.6g};"
               " lower is better)")
    engine = {k: v for k, v in sel.to_dict().items() if k not in ("indices", "min_distances", "engine", "k", "n",
                                                                 "metric", "h", "coverage_radius")}
    engine.update({"engine_h": sel.h if math.isfinite(sel.h) else None,
                   "engine_coverage_radius": sel.coverage_radius, **sel.info,
                   "versions": package_versions("hf-uniform", "torch", "numpy", "datasets", "gensim",
                                                "sentence-transformers", "model2vec", "numba"),
                   "timings": timings})
    record: dict[str, Any] = {
        "schema": "hf-uniform/selection/2",
        "summary": summary,
        "k": sel.k,
        "n": len(kept),
        "metric": args.metric,
        "h": sub["h"],
        "coverage_radius": sub["coverage_radius"],
        "mean_nn_distance": sub["mean_nn_distance"],
        "meaning": MEANING,
        "report": report,
        "embedded": None,
        "lengths": None,
        "heldout": None,
        "input": str(args.input),
        "command": "hf-uniform " + shlex.join(getattr(args, "argv", None) or sys.argv[1:]),
        "seed": args.seed,
        "start": sel.info.get("start"),
        "embedder": None,
        "files": {},
        "subset_file": None,
        "indices": [],
        "min_distances": [None if not math.isfinite(r) else float(r) for r in sel.min_distances],
        "engine": engine,
    }
    record["embedder"] = ({"embedding_column": args.embedding_column} if args.embedding_column else None)
    return record, subsets


def _lengths_record(src: Any, emb: Any, sets: dict[str, Any], pool_rows: Any) -> dict[str, Any] | None:
    """The ``lengths`` block of selection.json: mean / median / p90 of the rendered text's and the response's
    characters (:mod:`hf_uniform.lengths`) for the subset, its baselines and the full pool."""
    import numpy as np

    from .lengths import RESPONSE_COLUMNS, lengths_block, row_lengths

    cols = [c for c in src.columns if c in (*RESPONSE_COLUMNS, "messages")]
    if emb is not None:
        cols = sorted(set(cols) | set(emb.renderer.describe(src.columns)["columns"]))
    if not cols:
        return None
    rows = np.asarray(pool_rows, dtype=np.int64)
    try:
        ds = src.to_dataset(cols).select(rows.tolist())
        lens = row_lengths(ds, render=emb.texts if emb is not None else (lambda b: [""] * len(next(iter(b.values())))))
    except (UniformError, ValueError, KeyError) as err:  # lengths are evidence, not the selection itself
        logger.warning("no length summary: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
    if emb is None:
        lens.pop("text_chars", None)
    position = {int(r): i for i, r in enumerate(rows)}
    named = {name: [position[int(r)] for r in idx] for name, idx in sets.items()}
    named["full"] = None
    block = lengths_block(lens, named)
    return {"measures": "text_chars: characters of the text the embedder saw; response_chars: characters of the "
                        "response alone (output / response / completion, or the assistant turns)", **block}


def _print_lengths(block: dict[str, Any] | None) -> None:
    """The length table (characters) under the uniformity report: shorter rows make cheaper training steps."""
    if not block:
        return
    sets = {k: v for k, v in block.items() if isinstance(v, dict)}
    measures = [m for m in ("text_chars", "response_chars") if any(m in v for v in sets.values())]
    if not sets or not measures:
        return
    print("length in characters (mean / median / p90)" + ("; text = what the embedder saw" if
                                                           "text_chars" in measures else ""))
    print(f"{'set':<8} {'rows':>8} " + " ".join(f"{m.replace('_chars', ''):>24}" for m in measures))
    for name, rec in sets.items():
        rows = next(iter(rec.values()))["rows"]
        cells = [f"{rec[m]['mean']:>8.1f} /{rec[m]['median']:>6.0f} /{rec[m]['p90']:>6.0f}" if m in rec else
                 f"{'-':>24}" for m in measures]
        print(f"{name:<8} {rows:>8} " + " ".join(f"{c:>24}" for c in cells))


def _write_record(path: Path, record: dict[str, Any]) -> None:
    from .io import atomic_write_json

    if record.get("embedder") is None:
        record["embedder"] = {k: v for k, v in (record.get("embedded") or {}).items()
                              if k not in ("layout", "joined_by", "dropped_empty_rows")}
    atomic_write_json(path, record)


def _print_report(report: dict[str, dict[str, float]], k: int, n: int, metric: str) -> None:
    print(f"uniformity ({metric} distance), k={k} of n={n}; h: higher is better, coverage radius: lower is better")
    print(f"{'set':<8} {'rows':>8} {'h (min pairwise)':>18} {'coverage radius':>16} {'mean NN dist':>13}")
    for name, row in report.items():
        print(f"{name:<8} {row['k']:>8} {row['h']:>18.6f} {row['coverage_radius']:>16.6f} "
              f"{row['mean_nn_distance']:>13.6f}")


# --------------------------------------------------------------------------------------------- stats


def stats_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform stats``: the uniformity report of a pool, or of a subset file against its pool.

    Subset rows are matched to pool rows by their text (or stored vector), so a cached embedding of the
    pool serves both and no embedder is refitted; rows not found in the pool are embedded like the pool.
    """
    import numpy as np

    from .baselines import random_subset
    from .integration import embed, embedding_matrix
    from .io import read_source
    from .metrics import subset_stats

    emb = _check_embedding_args(args)
    check_device(args.device)
    if args.subset and not Path(args.subset).exists():
        raise UniformError(f"subset file {args.subset} does not exist")
    src = read_source(args.input, split=args.split)
    sub = read_source(args.subset) if args.subset else None
    if emb is None:
        x = embedding_matrix(src.to_dataset([args.embedding_column]), args.embedding_column)
        y = embedding_matrix(sub.to_dataset([args.embedding_column]), args.embedding_column) if sub else None
    else:
        cols = emb.renderer.describe(src.columns)["columns"]
        ds = src.to_dataset(cols)
        x = embed(ds, emb, progress=not args.quiet, cache=not args.no_cache)
        y = None
        if sub is not None:
            sub_ds = sub.to_dataset(cols)
            index = {}
            for i, t in enumerate(t for b in ds.iter(batch_size=2000) for t in emb.texts(b)):
                index.setdefault(t, i)
            texts = [t for b in sub_ds.iter(batch_size=2000) for t in emb.texts(b)]
            found = [index.get(t) for t in texts]
            if all(i is not None for i in found):
                y = x[np.asarray(found, dtype=np.int64)]
            else:
                logger.info("%d subset row(s) are not in the pool; embedding the subset with the pool's embedder",
                            sum(i is None for i in found))
                if emb.needs_fit and getattr(emb, "model", None) is None and \
                        getattr(emb, "_pending_fit", None) is not None:
                    logger.info("fitting the embedder on the pool (the cached pool vectors do not hold it)")
                y = np.concatenate([emb.encode(texts[i:i + 1000]) for i in range(0, len(texts), 1000)])
    if args.drop_zero_vectors:
        x = x[np.any(x != 0, axis=1)]
        y = None if y is None else y[np.any(y != 0, axis=1)]
    report = {"full": subset_stats(x, x, metric=args.metric)}
    rnd = None
    if y is not None:
        rnd = random_subset(len(x), len(y), seed=args.seed)
        report = {"subset": subset_stats(y, x, metric=args.metric),
                  "random": subset_stats(x[rnd], x, metric=args.metric),
                  **report}
    _print_report(report, len(y) if y is not None else len(x), len(x), args.metric)
    _print_lengths(_stats_lengths(src, sub, emb, rnd, zero_rows_dropped=args.drop_zero_vectors))
    return 0


def _stats_lengths(src: Any, sub: Any, emb: Any, rnd: Any, *, zero_rows_dropped: bool) -> dict[str, Any] | None:
    """Length summaries for ``stats``: the subset file's rows, a random subset of the pool and the pool."""
    import numpy as np

    from .lengths import RESPONSE_COLUMNS, lengths_block, row_lengths

    if zero_rows_dropped:  # random rows index the pool without its all-zero rows: no faithful mapping
        rnd = None

    def lens(source: Any) -> dict[str, Any] | None:
        cols = [c for c in source.columns if c in (*RESPONSE_COLUMNS, "messages")]
        if emb is not None:
            cols = sorted(set(cols) | set(emb.renderer.describe(source.columns)["columns"]))
        if not cols:
            return None
        out = row_lengths(source.to_dataset(cols), render=emb.texts if emb is not None else
                          (lambda b: [""] * len(next(iter(b.values())))))
        if emb is None:
            out.pop("text_chars", None)
        return out or None

    try:
        pool = lens(src)
        if pool is None:
            return None
        block = {}
        if sub is not None:
            sl = lens(sub)
            if sl:
                block.update(lengths_block(sl, {"subset": None}))
            if rnd is not None:
                block.update(lengths_block(pool, {"random": np.asarray(rnd)}))
        block.update(lengths_block(pool, {"full": None}))
        return block
    except (UniformError, ValueError, KeyError) as err:
        logger.warning("no length summary: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None


# ---------------------------------------------------------------------------------------------- main


def _configure_output(quiet: bool) -> Callable[[], None]:
    """Our log lines on stderr (once each); -q: only warnings, and no progress bar from any library.

    Returns a function that puts the loggers back as they were (``main`` may run inside another program,
    e.g. a notebook or a test session, whose logging must not change).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    lg, root = logging.getLogger("hf_uniform"), logging.getLogger()
    saved = (lg.handlers[:], lg.propagate, lg.level, root.level)

    def restore() -> None:
        lg.handlers[:], lg.propagate = saved[0], saved[1]
        lg.setLevel(saved[2])
        root.setLevel(saved[3])

    lg.handlers[:] = [handler]
    lg.propagate = False
    lg.setLevel(logging.ERROR if quiet else logging.INFO)
    if quiet:
        for var, value in (("TQDM_DISABLE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                           ("TRANSFORMERS_VERBOSITY", "error"), ("DATASETS_VERBOSITY", "error"),
                           ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")):
            os.environ[var] = value
        logging.getLogger().setLevel(logging.ERROR)
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
    return restore


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hf-uniform``; returns the exit status (2 for bad input, 130 on Ctrl-C).

    Example:
        >>> main(["select", "missing.jsonl", "-k", "3", "-o", "out", "-q"])
        2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as err:  # --help, --version (0) or a bad argument (2, one line already printed)
        return int(err.code or 0)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    restore_logging = _configure_output(getattr(args, "quiet", False))
    code = 0
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except UniformError as err:
        print(f"hf-uniform: error: {_one_line(err)}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("hf-uniform: interrupted; nothing was left half-written (rerun to start again)", file=sys.stderr)
        code = 130
    except MemoryError:
        print("hf-uniform: error: out of memory; use a smaller pool, --max-memory, or a machine with more RAM",
              file=sys.stderr)
        code = 2
    except OSError as err:
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        if err.errno in (errno.EPIPE,):
            code = 0
        else:
            what = err.strerror or _one_line(err)
            print(f"hf-uniform: error: cannot read or write{where}: {what}", file=sys.stderr)
            code = 2
        try:  # stdout itself may be what failed (e.g. > /dev/full): do not fail again at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    finally:
        restore_logging()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
