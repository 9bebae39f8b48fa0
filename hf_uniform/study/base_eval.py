"""The base model's step-0 losses per pool row, held-out split and second source (``base_eval-seed<s>.json``).

Kept out of :mod:`hf_uniform.study.runner` so that the cache rule (grow, never narrow) is one small function.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import stable_hash
from ..errors import UniformError
from ..io import atomic_write_json
from ..records import read_json_record

logger = logging.getLogger(__name__)

FINGERPRINT_LENGTH = 16


def _recipe_content(path: str | Path) -> Any:
    """The parsed recipe YAML (so comments and layout do not change a run's fingerprint)."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise UniformError(f"cannot read recipe {path}: {str(err).splitlines()[0]}") from err



def base_eval(study: Any, seed: int) -> dict[str, Any]:
    """Losses of ``study``'s base model (step 0) for ``seed``: see :meth:`hf_uniform.study.Study.base_eval`.

    Example:
        >>> base_eval  # doctest: +ELLIPSIS
        <function base_eval at ...>
    """
    from ..evaluation import format_pairs, load_model, row_losses

    sft, _, uargs = study._recipe(study.work / "tmp", seed, study.heldout_file)
    base = study.base_model_path(seed)
    pos = study.seed_pos[seed]
    drawn_outside = [idx for name, idx in getattr(study, "arm_idx", {}).items() if name.endswith(f"-seed{seed}")]
    if drawn_outside:  # arms drawn from the whole training pool (length_matched) need their rows scored too
        pos = np.union1d(pos, np.concatenate(drawn_outside)).astype(np.int64)

    def fingerprint(rows: list[int]) -> str:
        return stable_hash({"base": str(base), "rows": rows, "pool": study.pool_digest,
                            "heldout": study.heldout_idx.tolist(), "max_length": sft.max_length,
                            "prompt_format": uargs.prompt_format,
                            "second": [study.cfg.second_heldout, study.cfg.second_heldout_size],
                            "recipe": _recipe_content(study.cfg.recipe)}, FINGERPRINT_LENGTH)

    path = study.work / f"base_eval-seed{seed}.json"
    rec = read_json_record(path, what="base-model evaluation") if path.exists() else None
    if rec is not None and rec.get("fingerprint") != fingerprint(list(rec.get("rows", []))):
        rec = None  # other settings: scored again from scratch
    scored = np.asarray(rec["rows"] if rec else [], dtype=np.int64)
    todo = np.setdiff1d(pos, scored)
    if rec is not None and todo.size == 0:
        return rec
    t0, c0 = time.perf_counter(), time.process_time()
    model, tok = load_model(base, device=study.cfg.device)
    logger.info("seed %d: scoring the base model on %d pool rows (%d already scored)", seed, todo.size,
                scored.size)
    pairs = format_pairs(study.train_pool.select(todo.tolist()), uargs.prompt_format)
    # batched, one summed loss and token count per row (a row truncated away adds 0 tokens)
    loss_sum, tokens, _ = row_losses(model, tok, pairs, max_length=sft.max_length,
                                     batch_size=study.cfg.eval_batch_size, progress=study.cfg.progress)
    if rec is None:
        rec = {"seed": seed, "rows": [], "loss_sum": [], "tokens": [], "seconds": 0.0, "cpu_seconds": 0.0,
               "heldout": study._score(model, tok, study.heldout_ds, sft.max_length, uargs.prompt_format),
               "second_heldout": None if study.second_ds is None else
               study._score(model, tok, study.second_ds, sft.max_length, uargs.prompt_format)}
    rows = np.concatenate([scored, todo])
    order = np.argsort(rows, kind="stable")
    rec["rows"] = rows[order].tolist()
    rec["loss_sum"] = np.asarray([*rec["loss_sum"], *loss_sum], dtype=np.float64)[order].tolist()
    rec["tokens"] = np.asarray([*rec["tokens"], *tokens], dtype=np.int64)[order].tolist()
    rec["fingerprint"] = fingerprint(rec["rows"])
    rec["seconds"] = float(rec["seconds"]) + time.perf_counter() - t0
    rec["cpu_seconds"] = float(rec["cpu_seconds"]) + time.process_time() - c0
    del model
    gc.collect()
    atomic_write_json(path, rec)
    return rec


def loss_over_rows(rec: dict[str, Any], rows_pos: np.ndarray) -> float:
    """Token-weighted base-model loss of a :func:`base_eval` record over some of its rows (positions).

    Example:
        >>> loss_over_rows({"rows": [3, 5, 7], "loss_sum": [2.0, 6.0, 1.0], "tokens": [1, 3, 1]}, np.array([5, 3]))
        2.0
    """
    where = {p: i for i, p in enumerate(rec["rows"])}
    i = np.array([where[int(p)] for p in rows_pos], dtype=np.int64)
    return float(np.sum(np.asarray(rec["loss_sum"])[i]) / max(1, int(np.sum(np.asarray(rec["tokens"])[i]))))
