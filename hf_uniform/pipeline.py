"""``run_selection``: what ``hf-uniform select`` does, as one function that returns the :class:`SelectionRecord`.

load the input -> check -> hold rows out -> embed (or use a stored vector column) -> select -> report ->
write ``subset.*`` (and baselines, ``heldout.jsonl``, ``uniformity.png``) -> write ``selection.json`` last.
The CLI, the Hub push and the study call this; bad input raises :class:`~hf_uniform.errors.UniformError`
before any data is read where it can be checked without the data.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import time
from typing import Any

from .errors import UniformError
from .preflight import (
    HELDOUT_FILE,
    SELECTION_FILE,
    check_checkpoint_folder,
    check_output_folder,
    check_previous_selection,
)
from .records import SelectionRecord, write_record
from .spine import SelectConfig

logger = logging.getLogger("hf_uniform")

#: the options of ``run_selection`` that are not selection options (those are :class:`SelectConfig`'s fields)
_RUN_DEFAULTS: dict[str, Any] = {"split": "train", "revision": None, "format": None, "heldout": None,
                                 "baselines": False, "overwrite": False, "plot": True}


def _config_defaults() -> dict[str, Any]:
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(SelectConfig)
            if f.metadata.get("flag", True) and f.default is not dataclasses.MISSING}


def select_command_line(input: str | os.PathLike, k: int | float, output: str | os.PathLike, **options: Any) -> str:
    """The ``hf-uniform select`` command equivalent to ``run_selection(input, k, output, **options)`` (the flags
    come from the :class:`~hf_uniform.spine.SelectConfig` fields and ``run_selection``'s own options).

    Example:
        >>> select_command_line("d.jsonl", 0.5, "out", seed=3, plot=False, start=[1, 2])
        'hf-uniform select d.jsonl -k 0.5 -o out --start 1,2 --seed 3 --no-plot'
        >>> select_command_line("someuser/data", 10, "out", revision="v1.0")
        'hf-uniform select someuser/data -k 10 -o out --revision v1.0'
    """
    argv = ["select", str(input), "-k", str(k), "-o", str(output)]
    for name, default in {**_config_defaults(), **_RUN_DEFAULTS}.items():
        value = options.get(name, default)
        if value == default or (name == "backend" and value == "ray"):
            continue
        flag = "--" + name.replace("_", "-")
        if value is False and default is True:
            argv.append("--no-" + name.replace("_", "-"))
        elif value is True:
            argv.append(flag)
        elif name == "ray_address":
            argv += ["--ray", str(value)]
        elif name == "shards":
            argv += ["--ray-shards" if options.get("ray_address") else "--shards", str(value)]
        elif name == "start":
            argv += [flag, ",".join(str(int(s)) for s in ([value] if not isinstance(value, (list, tuple)) else value))]
        elif name == "text_columns" and isinstance(value, (list, tuple)):
            argv += [flag, ",".join(value)]
        elif name == "quotas" and isinstance(value, dict):
            argv += [flag, ",".join(f"{g}={q}" for g, q in value.items())]
        else:
            argv += [flag, str(value)]
    return "hf-uniform " + shlex.join(argv)


def run_selection(
    input: str | os.PathLike,
    k: int | float | str,
    output: str | os.PathLike,
    *,
    config: SelectConfig | None = None,
    split: str = "train",
    revision: str | None = None,
    format: str | None = None,
    heldout: int | float | None = None,
    baselines: bool = False,
    overwrite: bool = False,
    plot: bool = True,
    command: str | None = None,
    **options: Any,
) -> SelectionRecord:
    """Select a uniform subset of ``input`` and write it with its evidence to the folder ``output``.

    Exactly ``hf-uniform select INPUT -k K -o OUTPUT``: ``options`` are the fields of
    :class:`~hf_uniform.spine.SelectConfig` (validated there, once; ``cache=False`` is ``--no-cache``,
    ``ray_address`` is ``--ray``), the selection is :func:`hf_uniform.spine.run_spine`'s (the rows of
    :func:`hf_uniform.select_uniform` on the pool), and the other keywords are the command's own: ``split``,
    ``revision`` (a branch, tag or commit id of a Hub dataset; refused for a local input), ``format``,
    ``heldout`` (first set aside these rows, written to ``heldout.jsonl``), ``baselines`` (also ``random.*``
    and ``mixed.*``), ``overwrite``, ``plot`` (``uniformity.png``), ``command`` (recorded as the reproducing
    command; default: the equivalent ``hf-uniform select`` line). Writes ``subset.*`` (the input's rows
    unchanged plus ``uniform_rank`` and ``uniform_min_distance``) and ``selection.json`` last; for a Hub
    dataset the record's ``input_revision`` is the commit id its rows were read at
    (:func:`hf_uniform.io.read_source`; ``None`` for a local input, or when it could not be told). A Ray address
    runs the composable core-set on Ray (:func:`hf_uniform.ray.command.run_selection_ray`).

    Returns:
        the :class:`~hf_uniform.records.SelectionRecord` written to ``output/selection.json``.

    Raises:
        UniformError: bad input (checked before the data is read where possible).

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); src = d / "pool.jsonl"
        >>> _ = src.write_text("".join(json.dumps({"id": i, "emb": [i % 3 + 1.0, i // 3 + 1.0]}) + "\\n"
        ...                            for i in range(9)))
        >>> rec = run_selection(src, 3, d / "out", embedding_column="emb", metric="euclidean",
        ...                     plot=False, start=0, progress=False)
        >>> rec.k, rec.indices, rec.input_revision, sorted(p.name for p in (d / "out").iterdir())
        (3, [0, 8, 2], None, ['selection.json', 'subset.jsonl'])
    """
    import numpy as np

    from .selection import check_k

    if heldout is not None:  # its form first: 1.0 is the count 1 (recorded as --heldout 1, as the CLI takes it)
        from .heldout import check_heldout_size

        heldout = check_heldout_size(heldout)
    cfg = SelectConfig.from_options(config, k=k, **options)  # every selection option, checked once
    given = {f: getattr(cfg, f) for f in _config_defaults()}
    run_opts = {"split": split, "revision": revision, "format": format, "heldout": heldout,
                "baselines": baselines, "overwrite": overwrite, "plot": plot}
    command = command or select_command_line(input, cfg.k, output, **given, **run_opts)
    if format not in (None, "jsonl", "parquet", "csv"):
        raise UniformError(f"unknown format {format!r}; use jsonl, parquet or csv")
    if cfg.k is None:
        raise UniformError("hf-uniform select needs -k (rows or a fraction; with --radius it is a cap)")
    progress = cfg.progress
    if cfg.backend == "ray":
        from .ray.command import run_selection_ray

        return run_selection_ray(input, cfg.k, output, command=command, config=cfg, **run_opts)
    # --- everything that can be checked without the data (paths resolved first: what is checked is written) -
    out = check_output_folder(output, [str(input)])
    if cfg.checkpoint:
        cfg = cfg.replace(checkpoint=check_checkpoint_folder(cfg.checkpoint))
    replaced = check_previous_selection(out, overwrite)
    from .distributed import init_distributed, launched_distributed
    from .io import is_main_process

    distributed = launched_distributed()
    if distributed:  # torchrun / accelerate launch: every path (embedding column too) is sharded
        init_distributed()
    progress = progress and is_main_process()
    if progress != cfg.progress:
        cfg = cfg.replace(progress=progress)

    from .integration import embedding_matrix
    from .io import read_source, remove_stale_tmp
    from .steps import embed_prepared, finish, prepare

    # --- the checks that need the data; every rank runs them, and all agree before anything is written ------
    timings: dict[str, float] = {}
    t0 = _status("reading %s", input)
    failure: UniformError | None = None
    start = list(cfg.start) if cfg.start else None
    try:
        src = read_source(input, split=split, revision=revision)
        n_source = src.n
        if cfg.group_by is not None and isinstance(cfg.group_by, str) and cfg.group_by not in src.columns:
            raise UniformError(f"--group-by column {cfg.group_by!r} is not in {input}; columns: {src.columns[:20]}")
        fmt = format or src.default_format
        kk = check_k(cfg.k, n_source)
        if start and max(start) >= n_source:
            raise UniformError(f"start rows {[s for s in start if s >= n_source][:10]} are out of range for "
                               f"n={n_source}")
        pool_rows = np.arange(n_source)
        heldout_rows = None
        if heldout is not None:  # held out before anything else; the rest is the pool (written with the subset)
            from .heldout import split_heldout

            heldout_rows, pool_rows = split_heldout(n_source, heldout, cfg.seed)
            if start and set(start) & set(heldout_rows.tolist()):
                raise UniformError(f"start rows {sorted(set(start) & set(heldout_rows.tolist()))} are held out by "
                                   "--heldout; choose other start rows or another --seed")
            kk = check_k(cfg.k, len(pool_rows))
            if kk > len(pool_rows):
                raise UniformError(f"k={kk} exceeds the {len(pool_rows)} rows left after holding out "
                                   f"{len(heldout_rows)}")
        position = {int(r): i for i, r in enumerate(pool_rows)}
        emb = cfg.embedder_instance()
        cols = [cfg.embedding_column] if emb is None else emb.renderer.describe(src.columns)["columns"]
        if emb is None and cfg.embedding_column not in src.columns:
            raise UniformError(f"embedding column {cfg.embedding_column!r} not found; available columns: {src.columns[:20]}")
        if isinstance(cfg.group_by, str):
            cols = list(dict.fromkeys([*cols, cfg.group_by]))
        pool = src.to_dataset(cols)
        if len(pool_rows) < n_source:
            pool = pool.select(pool_rows.tolist())
        prepared = prepare(pool, cfg.replace(start=[position[s] for s in start] if start else None),
                           source_rows=pool_rows, source_n=n_source)
        kk = prepared.k
        check_memory(cfg.engine_kwargs(), n=len(prepared.rows), k=kk, device=cfg.device,
                     d=_dimension_hint(src, emb, cfg.embedding_column))
    except UniformError as err:
        failure = err
    _all_ranks_agree(failure)
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    x, source = embed_prepared(prepared, distributed=distributed)
    timings["embed_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = finish(prepared, x, source, distributed=distributed)
    timings["select_s"] = time.perf_counter() - t0
    pool_rows = pool_rows[prepared.rows]  # without the rows left out for empty text
    sel = result.positions  # positions among the kept rows (x's rows), zero vectors in info["dropped_rows"]
    if not is_main_process():
        return SelectionRecord(k=sel.k, n=sel.n, metric=cfg.metric, indices=pool_rows[sel.indices].tolist())
    # a stored column streamed to the engine under --max-memory: the report reads it in full
    x_report = x if isinstance(x, np.ndarray) else embedding_matrix(prepared.ds, cfg.embedding_column)
    record, subsets = evidence(x_report, sel, timings, metric=cfg.metric, seed=cfg.seed, baselines=baselines,
                               device=cfg.device, progress=progress)
    seed = cfg.seed
    record.input, record.input_fingerprint, record.command, record.seed = str(input), src.fingerprint(), command, seed
    record.input_revision = src.revision
    record.embedder = {"embedding_column": cfg.embedding_column} if cfg.embedding_column else None
    to_source = {name: pool_rows[np.asarray(idx, dtype=np.int64)] for name, idx in subsets.items()}
    text_info = prepared.text
    emb = prepared.embedder
    source = {"embedding_column": cfg.embedding_column} if emb is None else emb.config()
    metric = cfg.metric

    dropped = sorted(set(range(n_source)) - set(pool_rows.tolist())
                     - set(heldout_rows.tolist() if heldout_rows is not None else []))

    # --- write (rank 0, every check passed on every rank): earlier files go first (the marker first), then
    # --- heldout.jsonl and the subset files, selection.json last ---------------------------------------------
    for p in sorted(replaced, key=lambda q: q.name != SELECTION_FILE):
        p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out)
    files = {}
    if heldout_rows is not None:
        src.write_rows(heldout_rows.tolist(), out / HELDOUT_FILE, "jsonl")  # rows unchanged
        logger.info("held out %d of %d rows (--seed %d) in %s", len(heldout_rows), n_source, seed, out / HELDOUT_FILE)
    subset_path = out / f"subset.{fmt}"
    t0 = _status("writing %s", subset_path)
    src.write_rows(to_source["subset"], subset_path, fmt,
                   extra={"uniform_rank": list(range(sel.k)), "uniform_min_distance": record.min_distances})
    files["subset"] = subset_path.name
    if baselines:
        for name in ("random", "mixed"):
            path = out / f"{name}.{fmt}"
            src.write_rows(to_source[name], path, fmt)
            files[name] = path.name
    timings["write_s"] = time.perf_counter() - t0
    if plot:
        t0 = _status("drawing uniformity.png (radius trace, nearest-neighbour distances, PCA map)")
        try:
            from .plots import uniformity_plot

            uniformity_plot(x_report, subsets, out / "uniformity.png", metric=metric, report=record.report,
                            uniform_trace=sel.min_distances)
            files["coverage_plot"] = "uniformity.png"
        except UniformError as err:  # matplotlib missing: the selection itself is still complete
            logger.warning("%s", err)
        timings["plot_s"] = time.perf_counter() - t0
    record.files = files
    record.subset_file = subset_path.name
    record.indices = to_source["subset"].tolist()
    record.engine["pool_rows"] = len(pool_rows)
    record.engine["dropped_empty_rows"] = dropped
    record.embedded = {**source, **(text_info or {}), "dropped_empty_rows": len(dropped)}
    if heldout_rows is not None:
        files["heldout"] = HELDOUT_FILE
        record.heldout = {"rows": len(heldout_rows), "file": HELDOUT_FILE, "size": heldout, "seed": seed,
                          "indices": heldout_rows.tolist(),
                          "note": "input row numbers (0-based); every row index in this file (indices, "
                                  "heldout.indices) refers to the input's rows, not to the pool left after "
                                  "holding out"}
    record.lengths = lengths_record(src, emb, to_source, pool_rows)
    write_record(out, record)
    return record


def _all_ranks_agree(failure: UniformError | None) -> None:
    """Raise ``failure`` here, and on every other rank of a ``torchrun`` job a one-line error, so that no rank
    writes (or waits in a collective) after another one refused the input.

    Example:
        >>> _all_ranks_agree(None)
    """
    from .distributed import all_ranks_true, distributed_context

    ctx = distributed_context(init=False)
    if ctx.enabled and not all_ranks_true(failure is None, ctx) and failure is None:
        raise UniformError("another rank refused the input (its message names the problem); nothing was written")
    if failure is not None:
        raise failure


def _dimension_hint(src: Any, emb: Any, embedding_column: str | None) -> int:
    """The vectors' length when it is known without embedding (a stored column, Word2Vec's vector_size), else 1
    (a lower bound, enough to refuse a --max-memory that cannot hold even the per-row state)."""
    if emb is None and src.rows is not None and src.rows and isinstance(src.rows[0].get(embedding_column), list):
        return max(1, len(src.rows[0][embedding_column]))
    size = getattr(emb, "vector_size", None)
    return int(size) if isinstance(size, int) and size > 0 else 1


def check_memory(engine_kwargs: dict[str, Any], *, n: int, k: int, d: int, device: str) -> None:
    """Refuse a ``--max-memory`` below what the lazy engine needs for ``n`` rows, ``k`` centres and ``d``
    dimensions (``d``: a lower bound when not known yet) *before* embedding, not after it.

    Example:
        >>> check_memory({"max_memory": "1KB", "method": "lazy"}, n=100_000, k=10, d=1, device="cpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: max_memory=0.0MB is below what the lazy engine needs for 100000 rows of 1 dims (per-row state 96 B/row, centres, buffers): at least ...MB; raise max_memory or pass fewer rows
    """
    budget = engine_kwargs.get("max_memory")
    if not budget:
        return
    from .engine.store import parse_bytes
    from .selection import _resolve_method, resolve_device

    method = _resolve_method(engine_kwargs.get("method", "auto"), resolve_device(device), False)
    if method != "lazy":
        return
    from .distributed import distributed_context, shard_bounds
    from .engine.lazy import memory_plan

    ctx = distributed_context(init=False)
    lo, hi = shard_bounds(n, ctx.world_size)[ctx.rank] if ctx.enabled else (0, n)
    memory_plan(hi - lo, d, k, parse_bytes(budget))


def _status(msg: str, *a: Any) -> float:
    logger.info(msg, *a)
    return time.perf_counter()


def evidence(x: Any, sel: Any, timings: dict[str, float], *, metric: str, seed: int, baselines: bool, device: str,
             progress: bool) -> tuple[SelectionRecord, dict[str, Any]]:
    """The selection record (h, coverage and mean NN distance of the subset, a random subset of the same size,
    the mixed baseline with ``baselines``, and the pool; engine internals under ``engine``) and the row sets
    (pool positions) of the subset and its baselines.

    Example:
        >>> import numpy as np
        >>> from hf_uniform.selection import maxmin_select
        >>> x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
        >>> rec, sets = evidence(x, maxmin_select(x, 4, start=[0]), {}, metric="cosine", seed=0, baselines=False,
        ...                      device="cpu", progress=False)
        >>> sorted(sets), sorted(rec.report), rec.h == rec.report["subset"]["h"]
        (['random', 'subset'], ['full', 'random', 'subset'], True)
    """
    import numpy as np

    from .baselines import mixed_subset, random_subset
    from .io import package_versions
    from .metrics import REPORT_MAX_PAIRS, selection_report

    kept = np.setdiff1d(np.arange(len(x)), sel.info.get("dropped_rows", []))
    pool = x[kept]
    subsets: dict[str, Any] = {"subset": sel.indices, "random": kept[random_subset(len(kept), sel.k, seed=seed)]}
    if baselines:
        t0 = _status("building the mixed baseline (half random, half greedy min-distance)")
        subsets["mixed"] = kept[mixed_subset(pool, sel.k, metric=metric, seed=seed, device=device, progress=progress)]
        timings["mixed_s"] = time.perf_counter() - t0
    t0 = _status("computing h, coverage radius and nearest-neighbour distances of %d set(s) (exact float64; "
                 "estimated from a stated sample above %.0e pairs)", len(subsets) + 1, REPORT_MAX_PAIRS)
    at = np.searchsorted(kept, np.arange(len(x)))  # rows of x -> pool positions (subsets hold kept rows)
    report, report_info = selection_report(
        pool, {name: at[np.asarray(idx, dtype=np.int64)] for name, idx in subsets.items()}, metric=metric,
        known={"subset": (sel.h, sel.coverage_radius)}, seed=seed)
    timings["report_s"] = time.perf_counter() - t0
    timings["report_sets_s"] = report_info["seconds"]
    sub = report["subset"]
    summary = (f"{sel.k} of {len(kept)} rows chosen by exact greedy max-min ({metric} distance): h = "
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
    record = SelectionRecord(
        k=sel.k, n=len(kept), metric=metric, h=sub["h"], coverage_radius=sub["coverage_radius"],
        mean_nn_distance=sub["mean_nn_distance"], summary=summary, report=report, seed=seed,
        start=sel.info.get("start"), min_distances=[None if not math.isfinite(r) else float(r) for r in sel.min_distances],
        engine=engine)
    return record, subsets


def lengths_record(src: Any, emb: Any, sets: dict[str, Any], pool_rows: Any) -> dict[str, Any] | None:
    """The ``lengths`` block of selection.json: mean / median / p90 of the rendered text's and the response's
    characters (:mod:`hf_uniform.lengths`) for the subset, its baselines and the full pool.

    Example:
        >>> lengths_record  # doctest: +ELLIPSIS
        <function lengths_record at ...>
    """
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
