"""``hf-uniform stats``: the uniformity report of a pool, or of a subset file against its pool."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UniformError
from .printing import _print_lengths, _print_report

logger = logging.getLogger("hf_uniform")

# --------------------------------------------------------------------------------------------- stats


def stats_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform stats``: the uniformity report of a pool, or of a subset file against its pool.

    Subset rows are matched to pool rows by their text (or stored vector), so a cached embedding of the
    pool serves both and no embedder is refitted; rows not found in the pool are embedded like the pool.
    """
    import numpy as np

    from ..baselines import random_subset
    from ..integration import embedding_matrix
    from ..io import read_source
    from ..metrics import subset_stats
    from ..spine import config_from_args
    from ..steps import embed_prepared, prepare

    cfg = config_from_args(args, progress=not args.quiet)  # the options, checked as for select (one place)
    if args.subset and not Path(args.subset).exists():
        raise MissingFileError(f"subset file {args.subset} does not exist")
    src = read_source(args.input, split=args.split, revision=args.revision)
    sub = read_source(args.subset) if args.subset else None
    emb = cfg.embedder_instance()
    cols = [cfg.embedding_column] if emb is None else emb.renderer.describe(src.columns)["columns"]
    if emb is None and cfg.embedding_column not in src.columns:
        raise UniformError(f"embedding column {cfg.embedding_column!r} not found; available columns: {src.columns[:20]}")
    # the pool through the spine's own steps (text layout, empty rows, embedding; k=1 only to pass the check)
    prepared = prepare(src.to_dataset(cols), cfg.replace(k=1, start=None))
    emb = prepared.embedder
    x, _ = embed_prepared(prepared)
    if not isinstance(x, np.ndarray):
        x = embedding_matrix(prepared.ds, cfg.embedding_column)
    y = None
    if emb is None:
        y = embedding_matrix(sub.to_dataset([cfg.embedding_column]), cfg.embedding_column) if sub else None
    elif sub is not None:
        ds = prepared.ds.select(prepared.rows.tolist()) if len(prepared.rows) < len(prepared.ds) else prepared.ds
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

    from ..lengths import RESPONSE_COLUMNS, lengths_block, row_lengths

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
