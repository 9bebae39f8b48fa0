"""The ``hf-uniform`` command line.

``hf-uniform select INPUT -k K -o OUT`` writes the uniform subset and its evidence; ``hf-uniform stats``
prints a uniformity report; ``hf-uniform push`` publishes a selection to the Hub. Bad input exits with
status 2 and a one-line message, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UniformError

logger = logging.getLogger("hf_uniform")


def _k_value(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"k must be a number, got {text!r}") from None
    return int(value) if value.is_integer() else value


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated row indices, got {text!r}") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a .json/.jsonl/.parquet/.csv file, a save_to_disk folder, or a Hub dataset id")
    p.add_argument("--split", default="train", help="split of a DatasetDict or Hub dataset (default: train)")
    p.add_argument("--embedder", default="w2v",
                   help="w2v (the paper's Word2Vec, default), st:MODEL, m2v:PATH_OR_ID, m2v-distill:ST_MODEL")
    p.add_argument("--embedding-column", help="use vectors already stored in this column instead of embedding")
    p.add_argument("--text-columns", help="comma-separated columns to embed (default: detected)")
    p.add_argument("--template", help="str.format template over columns, e.g. '{instruction} {output}'")
    p.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine")
    p.add_argument("--drop-zero-vectors", action="store_true",
                   help="ignore all-zero embeddings (rows with no known word) instead of failing")
    p.add_argument("--no-cache", action="store_true", help="do not reuse or store embeddings")
    p.add_argument("--device", default="cpu", help="cpu, cuda, or auto (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random start row (default: 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log messages")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hf-uniform``.

    Example:
        >>> build_parser().parse_args(["select", "data.jsonl", "-k", "10", "-o", "out"]).k
        10
    """
    parser = argparse.ArgumentParser(prog="hf-uniform", description=__doc__.splitlines()[0])
    from . import __version__

    parser.add_argument("--version", action="version", version=f"hf-uniform {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sel = sub.add_parser("select", help="select a uniform subset (greedy max-min) and write it with its evidence")
    _add_data_args(sel)
    sel.add_argument("-k", type=_k_value, required=True, help="subset size, or a fraction in (0, 1)")
    sel.add_argument("-o", "--output", required=True, help="output folder")
    sel.add_argument("--start", type=_int_list, help="comma-separated start rows (default: a seeded random row)")
    sel.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="subset file format")
    sel.add_argument("--baselines", action="store_true",
                     help="also write random.* and mixed.* (the paper's half-random baseline) of the same size")
    sel.add_argument("--method", default="auto", help="selection engine: auto (default, the fastest exact one), lazy, sweep or plain")
    sel.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                     help="storage precision of the embeddings in the engine")
    sel.add_argument("--max-memory", help="stream embeddings in chunks above this size, e.g. 4GB")
    sel.add_argument("--checkpoint", help="save the selection state in this folder so --resume can continue")
    sel.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    sel.add_argument("--resume", action="store_true", help="continue from --checkpoint after a crash")
    sel.add_argument("--overwrite", action="store_true", help="replace existing files in the output folder")
    sel.set_defaults(func=select_command)

    st = sub.add_parser("stats", help="print the uniformity report (h, coverage) of a pool or a subset of it")
    _add_data_args(st)
    st.add_argument("--subset", help="a subset file written by select (default: report the pool alone)")
    st.set_defaults(func=stats_command)

    try:
        from .hub import add_push_parser
    except ImportError:  # pragma: no cover - hub support is part of the package
        pass
    else:
        add_push_parser(sub)
    return parser



def _engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    kwargs: dict[str, Any] = {"dtype": getattr(torch, args.dtype)}
    if args.method != "auto":
        kwargs["method"] = args.method
    if args.max_memory:
        kwargs["max_memory"] = args.max_memory
    if args.checkpoint:
        kwargs.update(checkpoint_dir=args.checkpoint, checkpoint_every=args.checkpoint_every,
                      resume=args.resume)
    elif args.resume:
        raise UniformError("--resume needs --checkpoint DIR (the folder the interrupted run saved to)")
    return kwargs


def _write_subset(ds: Any, path: Path, fmt: str) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        if fmt == "parquet":
            ds.to_parquet(str(tmp))
        else:
            ds.to_json(str(tmp), lines=True, force_ascii=False)


def select_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform select``: embed, select, write ``subset.*``, ``selection.json`` and plots."""
    import numpy as np

    from .baselines import mixed_subset, random_subset
    from .embed import resolve_embedder
    from .integration import embed, embedding_matrix, select_rows, subset_from_selection
    from .io import atomic_write_json, is_main_process, load_input, package_versions
    from .metrics import subset_stats

    out = Path(args.output)
    subset_path = out / f"subset.{args.format}"
    if (subset_path.exists() or (out / "selection.json").exists()) and not args.overwrite:
        raise UniformError(f"{out} already holds a selection; pass --overwrite or another -o folder")
    progress = not args.quiet
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ds = load_input(args.input, split=args.split)
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.embedding_column:
        x = embedding_matrix(ds, args.embedding_column)
        source: dict[str, Any] = {"embedding_column": args.embedding_column}
    else:
        emb = resolve_embedder(args.embedder, text_columns=args.text_columns, template=args.template)
        x = embed(ds, emb, progress=progress, cache=not args.no_cache)
        source = emb.config()
    timings["embed_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sel = select_rows(x, args.k, metric=args.metric, drop_zero_vectors=args.drop_zero_vectors, seed=args.seed,
                      start=args.start, device=args.device, progress=progress, **_engine_kwargs(args))
    timings["select_s"] = time.perf_counter() - t0
    if not is_main_process():
        return 0
    t0 = time.perf_counter()
    kept = np.setdiff1d(np.arange(len(x)), sel.info.get("dropped_rows", []))
    pool = x[kept]
    rnd = kept[random_subset(len(kept), sel.k, seed=args.seed)]
    report = {"subset": subset_stats(x[sel.indices], pool, metric=args.metric),
              "random": subset_stats(x[rnd], pool, metric=args.metric),
              "full": subset_stats(pool, pool, metric=args.metric)}
    timings["report_s"] = time.perf_counter() - t0

    subset = subset_from_selection(ds, sel)
    _write_subset(subset, subset_path, args.format)
    files = {"subset": subset_path.name}
    if args.baselines:
        mixed = kept[mixed_subset(pool, sel.k, metric=args.metric, seed=args.seed, device=args.device)]
        report["mixed"] = subset_stats(x[mixed], pool, metric=args.metric)
        for name, idx in (("random", rnd), ("mixed", mixed)):
            path = out / f"{name}.{args.format}"
            _write_subset(ds.select(idx.tolist()), path, args.format)
            files[name] = path.name
    try:
        from .plots import pca_coverage_plot

        pca_coverage_plot(x, {"uniform": sel.indices, "random": rnd}, out / "coverage.png",
                          title=f"k={sel.k} of n={len(x)} ({args.metric})")
        files["coverage_plot"] = "coverage.png"
    except UniformError as err:  # matplotlib missing: the selection itself is still complete
        logger.warning("%s", err)
    record = {
        "input": str(args.input),
        "command": "hf-uniform " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None,
        **{k: v for k, v in sel.to_dict().items() if k not in ("indices", "min_distances", "engine")},
        "seed": args.seed,
        "start": sel.info.get("start"),
        "embedder": source,
        "report": report,
        "files": files,
        "subset_file": subset_path.name,
        "engine": sel.info,
        "versions": package_versions("hf-uniform", "torch", "numpy", "datasets", "gensim", "sentence-transformers", "model2vec", "numba"),
        "timings": timings,
        "indices": sel.indices.tolist(),
        "min_distances": sel.to_dict()["min_distances"],
    }
    atomic_write_json(out / "selection.json", record)
    _print_report(report, sel.k, sel.n, args.metric)
    if sel.k > 1 and sel.h == 0.0:
        print("note: h = 0 — the pool has duplicates and the subset contains at least two equal rows")
    print(f"wrote {subset_path} and {out / 'selection.json'}")
    return 0


def _print_report(report: dict[str, dict[str, float]], k: int, n: int, metric: str) -> None:
    print(f"uniformity ({metric} distance), k={k} of n={n}")
    print(f"{'set':<8} {'rows':>8} {'h (min pairwise)':>18} {'coverage radius':>16} {'mean NN dist':>13}")
    for name, row in report.items():
        print(f"{name:<8} {row['k']:>8} {row['h']:>18.6f} {row['coverage_radius']:>16.6f} "
              f"{row['mean_nn_distance']:>13.6f}")


def stats_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform stats``: the uniformity report of a pool, or of a subset file against its pool."""
    import numpy as np

    from .baselines import random_subset
    from .embed import resolve_embedder
    from .integration import embed, embedding_matrix
    from .io import load_input
    from .metrics import subset_stats

    ds = load_input(args.input, split=args.split)
    sub = load_input(args.subset) if args.subset else None
    if args.embedding_column:
        x = embedding_matrix(ds, args.embedding_column)
        y = embedding_matrix(sub, args.embedding_column) if sub is not None else None
    else:
        emb = resolve_embedder(args.embedder, text_columns=args.text_columns, template=args.template)
        x = embed(ds, emb, progress=not args.quiet, cache=not args.no_cache)
        y = None
        if sub is not None:  # the embedder is fitted on the pool; the subset's rows are embedded alike
            y = np.concatenate([emb.encode(emb.texts(b)) for b in sub.iter(batch_size=1000)])
    if args.drop_zero_vectors:
        x = x[np.any(x != 0, axis=1)]
        y = None if y is None else y[np.any(y != 0, axis=1)]
    report = {"full": subset_stats(x, x, metric=args.metric)}
    if y is not None:
        report = {"subset": subset_stats(y, x, metric=args.metric),
                  "random": subset_stats(x[random_subset(len(x), len(y), seed=args.seed)], x, metric=args.metric),
                  **report}
    _print_report(report, len(y) if y is not None else len(x), len(x), args.metric)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hf-uniform``; returns the exit status (2 for bad input).

    Example:
        >>> main(["select", "missing.jsonl", "-k", "3", "-o", "out", "-q"])
        2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
        try:
            import datasets

            datasets.disable_progress_bars()
        except ImportError:  # pragma: no cover
            pass
    try:
        return int(args.func(args) or 0)
    except UniformError as err:
        print(f"hf-uniform: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
