"""``hf-uniform select``: validate, read, embed, select, write the subset files, then ``selection.json``."""

from __future__ import annotations

import argparse
import logging
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UniformError
from .checks import (
    HELDOUT_FILE,
    MEANING,
    SELECTION_FILE,
    _check_embedding_args,
    _engine_kwargs,
    check_device,
    check_output_folder,
    check_previous_selection,
    resolve_k,
    text_pool,
)
from .printing import _print_lengths, _print_report

logger = logging.getLogger("hf_uniform")

# -------------------------------------------------------------------------------------------- select


def _status(msg: str, *a: Any) -> float:
    logger.info(msg, *a)
    return time.perf_counter()


def select_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform select``: validate, read, embed, select, write the subset files, then
    ``selection.json`` last (the marker of a finished selection)."""
    import numpy as np

    if getattr(args, "ray", None) or getattr(args, "ray_shards", None):
        from ..ray import select_command_ray

        return select_command_ray(args)
    # --- everything that can be checked without the data ---------------------------------------------
    out = check_output_folder(args.output, [args.input])
    emb = _check_embedding_args(args)
    device = check_device(args.device)
    engine_kwargs = _engine_kwargs(args)
    replaced = check_previous_selection(out, args.overwrite)
    from ..distributed_embed import init_distributed, launched_distributed
    from ..io import is_main_process

    if launched_distributed():  # torchrun / accelerate launch: every path (embedding column too) is sharded
        init_distributed()
    progress = not args.quiet and is_main_process()

    from ..integration import embed, embedding_matrix, select_rows
    from ..io import read_source, remove_stale_tmp

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
        from ..heldout import split_heldout

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
    from ..io import is_main_process

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
            from ..plots import uniformity_plot

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

    from ..baselines import mixed_subset, random_subset
    from ..io import package_versions
    from ..metrics import REPORT_MAX_PAIRS, selection_report

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

    from ..lengths import RESPONSE_COLUMNS, lengths_block, row_lengths

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



def _write_record(path: Path, record: dict[str, Any]) -> None:
    from ..io import atomic_write_json

    if record.get("embedder") is None:
        record["embedder"] = {k: v for k, v in (record.get("embedded") or {}).items()
                              if k not in ("layout", "joined_by", "dropped_empty_rows")}
    atomic_write_json(path, record)
