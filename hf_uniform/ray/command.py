"""``hf-uniform select ... --ray``: :func:`run_selection_ray`, what :func:`hf_uniform.pipeline.run_selection`
runs when given ``ray=``."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hf_uniform.errors import UniformError
from hf_uniform.records import MEANING, SELECTION_FILE, SelectionRecord, write_record
from hf_uniform.vectors import DISTANCE_COLUMN, RANK_COLUMN

from ._common import _ray, init_ray
from .embedding import embed_ray
from .reading import from_dataset, read_input
from .select import select_uniform_ray


def _is_ray_folder(source: Any) -> bool:
    path = Path(str(source))
    return path.is_dir() and not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists())


def run_selection_ray(input: str | os.PathLike, k: int | float, output: str | os.PathLike, *,
                      config: Any = None, command: str | None = None, split: str = "train",
                      revision: str | None = None, format: str | None = None, heldout: Any = None,
                      baselines: bool = False, overwrite: bool = False, plot: bool = True,
                      **options: Any) -> SelectionRecord:
    """``hf-uniform select INPUT -k K -o OUT --ray [ADDRESS|local] [--ray-shards S]``; returns the record written.

    ``config`` / ``options`` are the :class:`~hf_uniform.spine.SelectConfig` fields (validated there, once;
    ``ray_address="local"`` starts a Ray instance on this machine or reuses the one this process is connected
    to); the other keywords are :func:`~hf_uniform.pipeline.run_selection`'s. Everything that can be checked
    without the data is checked first, as without Ray. A file, a ``save_to_disk`` folder or a Hub id is read
    as without Ray and its rows are written back unchanged; a folder of Parquet / JSON Lines files is read with
    Ray's readers (files in sorted order) and the chosen rows come back from the cluster; ``revision`` applies
    to a Hub id only (its commit id is recorded as ``input_revision``). Embedding runs on a Ray actor pool (or
    ``embedding_column`` is used) and the selection is :func:`~hf_uniform.ray.select_uniform_ray`.
    Writes ``OUT/subset.*`` (greedy order, ``uniform_rank``, ``uniform_min_distance``) and
    ``OUT/selection.json`` (k, n, h, the coverage radius estimate, shards, k per shard, cluster size, seconds
    per stage).

    Example:
        >>> run_selection_ray("d.jsonl", 3, "o", ray_address="local", start=[1])
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: backend='ray' runs the composable core-set, which takes no start; drop them or use backend='exact'
    """
    from hf_uniform.io import SourceData, package_versions, read_source, remove_stale_tmp
    from hf_uniform.preflight import check_output_folder, check_previous_selection, text_pool
    from hf_uniform.spine import SelectConfig

    cfg = SelectConfig.from_options(config, k=k, **options)
    if cfg.backend != "ray":
        raise UniformError("run_selection_ray needs a Ray address (ray_address='local' or a cluster; CLI: --ray)")
    unsupported = [flag for flag, on in (("--baselines", baselines), ("--heldout", heldout is not None)) if on]
    if unsupported:
        raise UniformError(f"{', '.join(unsupported)} cannot be combined with --ray (core-set mode); "
                           f"drop {'it' if len(unsupported) == 1 else 'them'}, or run without --ray for the "
                           "exact selection")
    if revision and _is_ray_folder(input):  # a file or save_to_disk folder is refused by read_source
        raise UniformError(f"--revision {revision} applies to Hub dataset ids only; {input} is a local folder, which "
                           "has no Hub revision, so drop --revision (or pass the Hub id of the dataset)")
    k, progress = cfg.k, cfg.progress
    metric, seed, embedding_column = cfg.metric, cfg.seed, cfg.embedding_column
    out = check_output_folder(output, [str(input)])
    emb = cfg.embedder_instance()
    device = cfg.device
    engine = {name: value for name, value in cfg.engine_kwargs().items()
              if name in ("method", "dtype", "max_memory", "chunk_size")}
    replaced = check_previous_selection(out, overwrite)
    opt = {"format": format, "split": split, "drop_empty": cfg.drop_empty, "ray": cfg.ray_address,
           "ray_shards": cfg.shards}.get
    ray = _ray()
    if not progress:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
    started = init_ray(cfg.ray_address, quiet=not progress)
    try:
        remove_stale_tmp(out)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        folder = _is_ray_folder(input)
        src: SourceData | None = None
        text_info: dict[str, Any] | None = None
        pool_rows: np.ndarray | None = None
        if folder:
            rd = read_input(input)
            schema = rd.schema()
            columns = list(schema.names) if schema is not None else []
            fmt = opt("format") or ("parquet" if any(Path(input).rglob("*.parquet")) else "jsonl")
        else:
            src = read_source(input, split=opt("split", "train"), revision=revision)
            columns, fmt = list(src.columns), opt("format") or src.default_format
            pool_rows = np.arange(src.n)
            if emb is not None:
                ds, text_info, pool_rows = text_pool(emb, src, pool_rows, drop_empty=opt("drop_empty", False))
            else:
                if embedding_column not in columns:
                    raise UniformError(f"embedding column {embedding_column!r} not found; available "
                                       f"columns: {columns}")
                ds = src.to_dataset([embedding_column])
            rd = from_dataset(ds)
        timings["load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if emb is not None:
            local = started and cfg.ray_address in (None, "", "local")  # our own instance: fail fast, quietly
            rd = embed_ray(rd, emb, max_restarts=0 if local else None)
            column, source = emb.output_column, emb.config()
        else:
            if embedding_column not in columns:
                raise UniformError(f"embedding column {embedding_column!r} not found; available columns: "
                                   f"{columns}")
            column, source = embedding_column, {"embedding_column": embedding_column}
        timings["fit_s"] = time.perf_counter() - t0  # a Word2Vec is fitted on the driver; the rest runs lazily
        res = select_uniform_ray(rd, k, shards=opt("ray_shards"), embedding_column=column, metric=metric,
                                 seed=seed, device=device, progress=progress,
                                 output_columns=[c for c in columns if c != column or emb is None] if folder else None,
                                 return_rows=folder, **engine)
        sel = res.selection
        timings.update({("embed_and_materialize_s" if key == "materialize_s" else key): v
                        for key, v in res.record["timings"].items()})

        for p in sorted(replaced, key=lambda q: q.name != SELECTION_FILE):  # the marker goes first
            p.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        subset_path = out / f"subset.{fmt}"
        radii = [None if not math.isfinite(r) else float(r) for r in sel.min_distances]
        extra = {RANK_COLUMN: list(range(sel.k)), DISTANCE_COLUMN: radii}
        if src is not None:
            rows = pool_rows[sel.indices]
            src.write_rows(rows, subset_path, fmt, extra=extra)
        else:
            table = res.table().drop_columns([RANK_COLUMN, DISTANCE_COLUMN])
            rows = sel.indices
            SourceData(str(input), "parquet", list(table.column_names), None, table=table).write_rows(
                range(sel.k), subset_path, fmt, extra=extra)
        timings["write_s"] = time.perf_counter() - t0
    finally:
        if started:
            ray.shutdown()
    r = res.record
    summary = (f"{sel.k} of {sel.n} rows chosen by the two-round composable core-set on Ray ({r['shards']} shards "
               f"x {r['k_per_shard']} rows, {metric} distance): h = {sel.h:.6g}, coverage radius = "
               f"{r['coverage_radius']:.6g} over the {r['coverage_radius_over']}; equal to "
               f"hf_uniform.coreset_select(x, {sel.k}, shards={r['shards']})")
    engine_block = {**{key: v for key, v in r.items() if key not in ("timings",)}, **sel.info,
                    "engine_coverage_radius": sel.coverage_radius,
                    "versions": package_versions("hf-uniform", "ray", "torch", "numpy", "datasets", "gensim",
                                                 "sentence-transformers", "model2vec", "numba"),
                    "timings": {key: round(v, 4) for key, v in timings.items()}}
    dropped = [] if pool_rows is None else sorted(set(range(src.n)) - set(pool_rows.tolist()))
    record = SelectionRecord(
        k=sel.k, n=sel.n, metric=metric, h=None if not math.isfinite(sel.h) else sel.h,
        coverage_radius=r["coverage_radius"], mean_nn_distance=None, summary=summary, report=None,
        embedded={**source, **(text_info or {}), "dropped_empty_rows": len(dropped)},
        input=str(input), input_fingerprint=src.fingerprint() if src is not None else None,
        input_revision=src.revision if src is not None else None, command=command,
        seed=seed, start=None, embedder=None if emb is not None else {"embedding_column": embedding_column},
        files={"subset": subset_path.name}, subset_file=subset_path.name, indices=np.asarray(rows).tolist(),
        min_distances=radii, engine={**engine_block, "pool_rows": sel.n, "dropped_empty_rows": dropped},
        meaning=dict(MEANING),
        extra={"coverage_radius_over": r["coverage_radius_over"], "backend": "ray", "shards": r["shards"],
               "k_per_shard": r["k_per_shard"], "cluster": r["cluster"], "timings": engine_block["timings"]})
    write_record(out, record)
    return record
