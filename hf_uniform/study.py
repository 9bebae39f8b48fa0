"""The paper's study on your data: uniform vs random vs the mixed baseline vs full, trained and evaluated alike.

:func:`run_study` (what ``recipes/compare.py`` runs) does, in this order:

1. **Hold out** a fixed, seeded split of the pool that no arm trains on (before embedding or selection).
2. **Embed** the remaining training pool (the paper's Word2Vec by default) and build each arm per seed:
   ``uniform`` (exact greedy max-min, seeded start row), ``random`` (same size), ``mixed`` (the paper's
   half-random / half-min-distance baseline, same size) and ``full`` (the whole training pool).
3. **Train** every arm and seed with the same SFT recipe through :func:`hf_uniform.train.sft.run_sft` (the
   function behind ``recipes/sft.py``), with periodic evaluation on the held-out split. A tiny-LLaMA recipe
   gets one shared base model per seed (same tokenizer and initial weights for every arm).
4. **Evaluate** each final model: held-out loss (:func:`hf_uniform.evaluation.heldout_loss`) and lm-eval
   benchmarks (:func:`hf_uniform.evaluation.run_lm_eval`).
5. **Report**: ``report.json`` and ``report.md`` (mean ± std over seeds of size, h, coverage radius, steps
   and seconds to each threshold on train and held-out loss, final losses, lm-eval scores), and PNG plots:
   the PCA map, loss curves (raw and smoothed) and time-to-threshold bars.

A finished arm/seed writes ``runs/<arm>-seed<s>.json`` in the output folder; a rerun reads it back instead
of training again (its settings fingerprint must match). Thresholds are applied after training, to the
recorded curves, so changing them only rewrites the report.

Time is the training clock of :class:`~hf_uniform.train.TimeToThresholdCallback` (starts at
``on_train_begin``) minus the wall-clock of the periodic held-out evaluations, i.e. seconds of training
alone; steps are optimizer steps. Both are reported because wall-clock on a shared machine is noisy.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import os
import shlex
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UniformError
from .io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

ARMS = ("uniform", "random", "mixed", "full")
LOSS_KINDS = ("train", "heldout")
KIND_LABEL = {"train": "train loss", "heldout": "held-out loss"}

#: The paper's own numbers (LLaMA-1-7B, time to training-loss thresholds 0.65 / 0.34, minutes).
PAPER_REFERENCE = {
    "model": "LLaMA-1-7B",
    "thresholds": [0.65, 0.34],
    "unit": "minutes",
    "time_to_threshold": {"uniform": [21.3, 116.1], "random": [111.7, 197.4], "full": [148.8, 231.3]},
}


@dataclass
class StudyConfig:
    """Settings of the study (``recipes/compare.py`` reads them from YAML and the command line).

    Example:
        >>> StudyConfig(pool="pool.jsonl", k=100, recipe="recipe.yaml").arms
        ['uniform', 'random', 'mixed', 'full']
    """

    pool: str = field(default="", metadata={"help": "the pool: a .jsonl/.json/.parquet/.csv file, a "
                                                    "save_to_disk folder or a Hub id"})
    k: float = field(default=0.5, metadata={"help": "subset size of the uniform, random and mixed arms: rows, "
                                                    "or a fraction of the training pool in (0, 1)"})
    recipe: str = field(default="", metadata={"help": "SFT recipe YAML (the one recipes/sft.py takes); every arm "
                                                      "is trained with it"})
    recipe_args: str = field(default="", metadata={
        "help": "extra recipes/sft.py arguments for every arm, as one string: --recipe_args '--max_steps 200'"})
    output_dir: str = field(default="out/compare", metadata={"help": "report, plots and per-run results"})
    work_dir: str | None = field(default=None, metadata={
        "help": "trainer outputs, models, embeddings and data files (default OUTPUT_DIR/work)"})
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "one replicate per seed"})
    arms: list[str] = field(default_factory=lambda: list(ARMS), metadata={
        "help": "arms to run, of uniform, random, mixed, full"})
    heldout_size: float = field(default=0.05, metadata={
        "help": "rows held out of the pool before anything else (fraction in (0, 1) or a count)"})
    heldout_seed: int = field(default=1234, metadata={"help": "seed of the held-out split (fixed across seeds)"})
    embedder: str = field(default="w2v", metadata={"help": "embedder for selection and the PCA map (paper: w2v)"})
    text_columns: str | None = field(default=None, metadata={"help": "comma-separated columns to embed"})
    metric: str = field(default="cosine", metadata={"help": "cosine or euclidean"})
    selection_method: str = field(default="auto", metadata={
        "help": "exact max-min engine (auto, plain, ...; see hf_uniform.maxmin_select): speed only, same rows"})
    train_thresholds: list[float] | None = field(default=None, metadata={
        "help": "training-loss thresholds (default: automatic, see report)"})
    heldout_thresholds: list[float] | None = field(default=None, metadata={
        "help": "held-out-loss thresholds (default: automatic, see report)"})
    smoothing: float = field(default=0.9, metadata={
        "help": "EMA weight applied to the training loss before threshold crossing and in smoothed plots"})
    eval_steps: int | None = field(default=None, metadata={
        "help": "held-out evaluation every N steps (default: the recipe's eval_steps, else logging_steps x 5)"})
    eval_tasks: str = field(default="arc_challenge:25,truthfulqa_mc1:0,truthfulqa_mc2:0", metadata={
        "help": "lm-eval tasks NAME:SHOTS,..."})
    eval_data_dir: str | None = field(default=None, metadata={"help": "local benchmark files (e.g. ../shared/data/eval)"})
    eval_limit: float | None = field(default=None, metadata={"help": "lm-eval documents per task"})
    eval_batch_size: int = field(default=8, metadata={"help": "lm-eval and held-out loss batch size"})
    skip_lm_eval: bool = field(default=False, metadata={"help": "only losses, no benchmarks"})
    device: str = field(default="cpu", metadata={"help": "device for evaluation (training follows the recipe)"})
    keep_models: bool = field(default=True, metadata={"help": "keep each arm's final weights in WORK_DIR"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's)"})
    progress: bool = field(default=True, metadata={"help": "progress bars are on by default; --no_progress hides them"})
    command: str | None = field(default=None, metadata={"help": "the command line, recorded in the report"})

    def validate(self) -> None:
        """Check the settings; raise :class:`~hf_uniform.errors.UniformError` with a one-line message.

        Example:
            >>> StudyConfig(pool="p.jsonl", recipe="r.yaml", arms=["uniform", "best"]).validate()
            Traceback (most recent call last):
            ...
            hf_uniform.errors.UniformError: unknown arm(s) ['best']; choose from ('uniform', 'random', 'mixed', 'full')
        """
        if not self.pool:
            raise UniformError("no pool given; pass --pool FILE")
        if not self.recipe:
            raise UniformError("no recipe given; pass --recipe recipes/configs/NAME.yaml (an SFT recipe YAML)")
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise UniformError(f"unknown arm(s) {bad}; choose from {ARMS}")
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise UniformError(f"arms must be a non-empty list without repeats, got {self.arms}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise UniformError(f"seeds must be a non-empty list without repeats, got {self.seeds}")
        if self.metric not in ("cosine", "euclidean"):
            raise UniformError(f"metric must be cosine or euclidean, got {self.metric!r}")
        if not 0 <= self.smoothing < 1:
            raise UniformError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.heldout_size <= 0:
            raise UniformError(f"heldout_size must be positive (a fraction or a count), got {self.heldout_size}")
        if self.k <= 0:
            raise UniformError(f"k must be positive (rows or a fraction in (0, 1)), got {self.k}")
        for name in ("train_thresholds", "heldout_thresholds"):
            v = getattr(self, name)
            if v is not None and (not v or any(not math.isfinite(float(t)) for t in v)):
                raise UniformError(f"{name} must be a non-empty list of finite numbers, got {v}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise UniformError(f"eval_steps must be >= 1, got {self.eval_steps}")
        if not Path(self.recipe).is_file():
            raise UniformError(f"recipe {self.recipe} not found; pass an SFT recipe YAML")
        if self.eval_data_dir is not None and not self.skip_lm_eval and not Path(self.eval_data_dir).is_dir():
            raise UniformError(f"eval_data_dir {self.eval_data_dir} is not a folder")

    @property
    def work_path(self) -> Path:
        """``work_dir`` or ``output_dir/work``."""
        return Path(self.work_dir) if self.work_dir else Path(self.output_dir) / "work"


# ------------------------------------------------------------------------------------------------ the split


def split_heldout(n: int, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(heldout, train)`` row indices of a pool of ``n`` rows; ``size`` is a count or a fraction.

    Raises:
        UniformError: the split would leave no held-out or no training rows.

    Example:
        >>> ho, tr = split_heldout(10, 0.2, seed=0)
        >>> len(ho), len(tr), set(ho) & set(tr)
        (2, 8, set())
    """
    m = int(size) if size >= 1 else int(round(size * n))
    if not 0 < m < n:
        raise UniformError(f"heldout_size {size} leaves {m} held-out and {n - m} training rows of {n}; "
                           "use a fraction in (0, 1) or a smaller count")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:m]).astype(np.int64), np.sort(perm[m:]).astype(np.int64)


def resolve_k(k: float, n: int) -> int:
    """Rows for ``k`` (a count, or a fraction in (0, 1)) of a training pool of ``n`` rows.

    Example:
        >>> resolve_k(0.5, 9), resolve_k(4, 9)
        (4, 4)
    """
    kk = int(k) if k >= 1 else int(math.floor(k * n))
    if not 1 < kk <= n:
        raise UniformError(f"k={k} gives {kk} rows of a training pool of {n}; need 2..{n}")
    return kk


def build_arm_indices(
    x: np.ndarray, arm: str, k: int, seed: int, *, metric: str = "cosine", method: str = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Row indices (into ``x``) of one arm for one seed.

    ``uniform``: exact greedy max-min from a seeded random start row (all-zero rows are skipped under
    cosine); ``random``: a seeded draw; ``mixed``: the paper's half-random / half-min-distance baseline;
    ``full``: every row. ``method`` picks the exact max-min engine (see
    :func:`~hf_uniform.selection.maxmin_select`); every engine returns the same rows.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(30, 4))
        >>> [len(build_arm_indices(x, a, 10, 0)) for a in ("uniform", "random", "mixed", "full")]
        [10, 10, 10, 30]
    """
    from .baselines import mixed_subset, random_subset
    from .integration import nonzero_rows, select_rows

    n = len(x)
    if arm == "full":
        return np.arange(n, dtype=np.int64)
    if arm == "random":
        return random_subset(n, k, seed=seed)
    if arm == "uniform":
        sel = select_rows(x, k, metric=metric, drop_zero_vectors=True, seed=seed, progress=progress,
                          method=method)
        return np.asarray(sel.indices, dtype=np.int64)
    if arm == "mixed":
        keep = nonzero_rows(x) if metric == "cosine" else np.arange(n)
        return keep[mixed_subset(x[keep], k, metric=metric, seed=seed, method=method)].astype(np.int64)
    raise UniformError(f"unknown arm {arm!r}; choose from {ARMS}")


def arm_geometry(x: np.ndarray, idx: np.ndarray, *, metric: str = "cosine") -> dict[str, float]:
    """``h`` (minimum pairwise distance) and coverage radius of ``x[idx]`` within ``x`` (zero rows ignored).

    Example:
        >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> arm_geometry(x, np.array([0, 1]))["h"]
        1.0
    """
    from .integration import nonzero_rows
    from .metrics import subset_stats

    if metric == "cosine":
        nz = nonzero_rows(x)
        idx = np.intersect1d(idx, nz)
        full = x[nz]
    else:
        full = x
    stats = subset_stats(x[idx], full, metric=metric)
    return {"h": stats["h"], "coverage_radius": stats["coverage_radius"],
            "mean_nn_distance": stats["mean_nn_distance"]}


# ------------------------------------------------------------------------------------------------ curves


def first_crossing(steps: Sequence[int], seconds: Sequence[float], values: Sequence[float],
                   threshold: float, tokens: Sequence[float | None] | None = None) -> dict[str, Any] | None:
    """The first point whose value is at or below ``threshold``: ``{"step", "seconds", "value"[, "tokens"]}``.

    ``None`` when no point reaches it.

    Example:
        >>> first_crossing([10, 20, 30], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0], 2.0)
        {'step': 20, 'seconds': 2.0, 'value': 2.0}
        >>> first_crossing([10], [1.0], [3.0], 2.0) is None
        True
    """
    for i, (s, t, v) in enumerate(zip(steps, seconds, values, strict=True)):
        if v is not None and math.isfinite(v) and v <= threshold:
            out: dict[str, Any] = {"step": int(s), "seconds": float(t), "value": float(v)}
            if tokens is not None and i < len(tokens) and tokens[i] is not None:
                out["tokens"] = float(tokens[i])
            return out
    return None


def curves_from_run(run_dir: str | os.PathLike) -> dict[str, dict[str, list[float]]]:
    """Training and held-out loss curves of one trainer output folder.

    Reads ``time_to_threshold.json`` (the training-loss curve with the training clock, written by
    :class:`~hf_uniform.train.TimeToThresholdCallback`) and ``trainer_state.json`` (the held-out
    ``eval_loss`` points and each evaluation's ``eval_runtime``). ``seconds`` excludes the time spent in
    held-out evaluations before each point; ``wall_seconds`` includes it. A held-out point at step ``s`` gets
    the training time at step ``s`` (interpolated between the nearest training-loss points).

    Example:
        >>> curves_from_run("out/work/runs/uniform/seed0")["heldout"]["value"][:2]  # doctest: +SKIP
        [6.93, 5.12]
    """
    run_dir = Path(run_dir)
    ttt_path, state_path = run_dir / "time_to_threshold.json", run_dir / "trainer_state.json"
    for p in (ttt_path, state_path):
        if not p.exists():
            raise UniformError(f"{p} is missing: the training run in {run_dir} did not finish")
    ttt = json.loads(ttt_path.read_text(encoding="utf-8"))
    if ttt.get("metric") != "loss":
        raise UniformError(f"{ttt_path} tracks {ttt.get('metric')!r}, expected the training 'loss'")
    history = json.loads(state_path.read_text(encoding="utf-8")).get("log_history", [])
    evals = [(int(h["step"]), float(h["eval_loss"]), float(h.get("eval_runtime", 0.0)))
             for h in history if "eval_loss" in h]
    c = ttt["curve"]
    t_steps = np.asarray(c["step"], dtype=np.float64)
    t_wall = np.asarray(c["seconds"], dtype=np.float64)
    eval_steps = np.array([e[0] for e in evals], dtype=np.float64)
    eval_rt = np.array([e[2] for e in evals], dtype=np.float64)

    def eval_time_before(step: float, inclusive: bool = False) -> float:
        # evaluations at step s run after the training log of step s
        mask = eval_steps <= step if inclusive else eval_steps < step
        return float(eval_rt[mask].sum()) if len(eval_rt) else 0.0

    t_excl = np.array([w - eval_time_before(s) for s, w in zip(t_steps, t_wall, strict=True)])
    h_steps = [e[0] for e in evals]
    if len(t_steps):
        anchor_s = np.concatenate([[0.0], t_steps])
        anchor_x = np.concatenate([[0.0], t_excl])
        h_excl = [float(np.interp(s, anchor_s, anchor_x)) for s in h_steps]
    else:
        h_excl = [0.0 for _ in h_steps]
    h_wall = [x + eval_time_before(s) for s, x in zip(h_steps, h_excl, strict=True)]
    # training tokens processed (TRL's num_tokens: prompt + response, padding excluded), by step
    tok_by_step = {int(h["step"]): float(h["num_tokens"]) for h in history if "loss" in h and "num_tokens" in h}
    t_tokens = [tok_by_step.get(int(s)) for s in t_steps]
    if tok_by_step and all(t is not None for t in t_tokens):
        ks = sorted(tok_by_step)
        h_tokens = [float(np.interp(s, [0.0, *ks], [0.0, *[tok_by_step[k] for k in ks]])) for s in h_steps]
    else:
        t_tokens, h_tokens = [None] * len(t_steps), [None] * len(h_steps)
    return {
        "train": {"step": t_steps.astype(int).tolist(), "seconds": t_excl.tolist(), "wall_seconds": t_wall.tolist(),
                  "tokens": t_tokens, "value": [float(v) for v in c["value"]]},
        "heldout": {"step": h_steps, "seconds": h_excl, "wall_seconds": h_wall, "tokens": h_tokens,
                    "value": [e[1] for e in evals]},
        "eval_seconds": float(eval_rt.sum()) if len(eval_rt) else 0.0,
        "train_seconds_wall": float(ttt.get("train_seconds", t_wall[-1] if len(t_wall) else 0.0)),
    }


def _curve_for_threshold(curve: Mapping[str, Sequence[float]], kind: str, smoothing: float) -> list[float]:
    from .plots import ema_smooth

    values = list(curve["value"])
    if kind == "train" and smoothing and values:
        return ema_smooth(values, smoothing).tolist()
    return values


def auto_thresholds(curves: Sequence[Sequence[float]]) -> list[float]:
    """Two thresholds every run reaches: a loose one halfway down and a tight one at the worst run's best.

    ``tight`` = the largest over runs of each run's minimum loss (rounded up to 3 decimals), so every run
    reaches it; ``loose`` = halfway between ``tight`` and the lowest first value (rounded to 3 decimals).
    :func:`run_study` passes the curves without their step-0 evaluation.
    This mirrors the paper's pair of an early (0.65) and a late (0.34) threshold, for any model and data.

    Example:
        >>> auto_thresholds([[4.0, 3.0, 2.0], [4.2, 3.5, 2.5]])
        [3.25, 2.5]
    """
    runs = [[v for v in c if v is not None and math.isfinite(v)] for c in curves]
    runs = [r for r in runs if r]
    if not runs:
        raise UniformError("no loss values recorded; cannot choose thresholds (check logging/eval steps)")
    tight = math.ceil(max(min(r) for r in runs) * 1000 - 1e-9) / 1000
    start = min(r[0] for r in runs)
    loose = round(tight + max(0.0, start - tight) / 2, 3)
    return [loose, tight] if loose > tight else [tight]


# --------------------------------------------------------------------------------------------- aggregation


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` over the finite values (sample std; 0 for one value).

    Example:
        >>> mean_std([1.0, 3.0, None])
        {'mean': 2.0, 'std': 1.4142135623730951, 'n': 2, 'of': 3, 'values': [1.0, 3.0, None]}
    """
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    mean = float(np.mean(vals)) if vals else None
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)
    return {"mean": mean, "std": std, "n": len(vals), "of": len(values),
            "values": [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]}


def threshold_label(kind: str, t: float) -> str:
    """Column label of a threshold, e.g. ``"held-out<2.5"``.

    Example:
        >>> threshold_label("heldout", 2.5)
        'held-out<=2.5'
    """
    return f"{'held-out' if kind == 'heldout' else 'train'}<={t:g}"


def aggregate(runs: Sequence[Mapping[str, Any]], thresholds: Mapping[str, Sequence[float]], *,
              arms: Sequence[str], smoothing: float) -> dict[str, Any]:
    """Per-arm mean ± std over seeds of every reported quantity, with time and steps to each threshold.

    ``runs`` are the per-run records (``runs/<arm>-seed<s>.json``). Returns ``{arm: {...}}`` and adds
    ``crossings`` to each run.

    Example:
        >>> run = {"arm": "uniform", "seed": 0, "size": 4, "h": 0.1, "coverage_radius": 0.2,
        ...        "curves": {"train": {"step": [1, 2], "seconds": [1.0, 2.0], "value": [3.0, 2.0]},
        ...                   "heldout": {"step": [2], "seconds": [2.0], "value": [2.5]}},
        ...        "final": {"train_loss": 2.0, "heldout_loss": 2.5}, "lm_eval": {}}
        >>> agg = aggregate([run], {"train": [2.5], "heldout": [2.5]}, arms=["uniform"], smoothing=0.0)
        >>> agg["uniform"]["thresholds"]["train<=2.5"]["steps"]["mean"]
        2.0
    """
    out: dict[str, Any] = {}
    for run in runs:
        crossings = {}
        for kind in LOSS_KINDS:
            curve = run["curves"][kind]
            values = _curve_for_threshold(curve, kind, smoothing)
            for t in thresholds[kind]:
                crossings[threshold_label(kind, t)] = first_crossing(curve["step"], curve["seconds"], values, t,
                                                                     curve.get("tokens"))
        run["crossings"] = crossings  # type: ignore[index]
    for arm in arms:
        rs = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        if not rs:
            continue
        entry: dict[str, Any] = {
            "seeds": [r["seed"] for r in rs],
            "size": mean_std([r["size"] for r in rs]),
            "h": mean_std([r.get("h") for r in rs]),
            "coverage_radius": mean_std([r.get("coverage_radius") for r in rs]),
            "final_train_loss": mean_std([r["final"].get("train_loss") for r in rs]),
            "final_heldout_loss": mean_std([r["final"].get("heldout_loss") for r in rs]),
            "steps": mean_std([r["final"].get("steps") for r in rs]),
            "train_seconds": mean_std([r["final"].get("train_seconds") for r in rs]),
            "tokens_per_step": mean_std([(r["final"].get("train_tokens") or math.nan) / max(1, r["final"].get("steps")
                                         or 1) for r in rs]),
            "thresholds": {},
            "lm_eval": {},
        }
        for label in rs[0]["crossings"]:
            cross = [r["crossings"][label] for r in rs]
            entry["thresholds"][label] = {
                "steps": mean_std([c["step"] if c else None for c in cross]),
                "seconds": mean_std([c["seconds"] if c else None for c in cross]),
                "tokens": mean_std([c.get("tokens") if c else None for c in cross]),
            }
        metrics = sorted({m for r in rs for m in (r.get("lm_eval") or {})})
        for m in metrics:
            entry["lm_eval"][m] = mean_std([(r.get("lm_eval") or {}).get(m) for r in rs])
        out[arm] = entry
    return out


# ---------------------------------------------------------------------------------------------- the report


def _pm(ms: Mapping[str, Any] | None, digits: int = 3, *, show_n: bool = False) -> str:
    if not ms or ms.get("mean") is None:
        return "not reached" if show_n else "–"
    s = f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}" if ms["of"] > 1 else f"{ms['mean']:.{digits}f}"
    if show_n and ms["n"] < ms["of"]:
        s += f" ({ms['n']}/{ms['of']} reached)"
    return s


def _fmt_num(v: Any, digits: int) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.{digits}f}"


def table_columns(thresholds: Mapping[str, Sequence[float]], lm_metrics: Sequence[str]) -> list[str]:
    """Header of the report table, in order.

    Example:
        >>> table_columns({"train": [2.0], "heldout": [2.5]}, ["arc_challenge/acc"])[:4]
        ['arm', 'size', 'h', 'coverage radius']
    """
    cols = ["arm", "size", "h", "coverage radius"]
    for kind in LOSS_KINDS:
        for t in thresholds[kind]:
            label = threshold_label(kind, t)
            cols += [f"steps to {label}", f"seconds to {label}"]
    cols += ["final train loss", "final held-out loss"]
    cols += list(lm_metrics)
    return cols


def render_table(report: Mapping[str, Any]) -> str:
    """The Markdown table of a report (one row per arm, mean ± std over seeds).

    Example:
        >>> print(render_table({"thresholds": {"train": [], "heldout": []}, "lm_metrics": [],
        ...                     "arms": {"full": {"size": mean_std([10]), "h": mean_std([0.0]),
        ...                     "coverage_radius": mean_std([0.0]), "thresholds": {},
        ...                     "final_train_loss": mean_std([2.0]), "final_heldout_loss": mean_std([2.5]),
        ...                     "lm_eval": {}}}}))
        | arm | size | h | coverage radius | final train loss | final held-out loss |
        |---|---|---|---|---|---|
        | full | 10 | 0.0000 | 0.0000 | 2.000 | 2.500 |
    """
    th = report["thresholds"]
    cols = table_columns(th, report["lm_metrics"])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for arm, e in report["arms"].items():
        cells = [arm, f"{e['size']['mean']:.0f}", _pm(e["h"], 4), _pm(e["coverage_radius"], 4)]
        for kind in LOSS_KINDS:
            for t in th[kind]:
                rec = e["thresholds"][threshold_label(kind, t)]
                cells += [_pm(rec["steps"], 0, show_n=True), _pm(rec["seconds"], 1, show_n=True)]
        cells += [_pm(e["final_train_loss"]), _pm(e["final_heldout_loss"])]
        cells += [_pm(e["lm_eval"].get(m), 3) for m in report["lm_metrics"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_tokens_table(report: Mapping[str, Any]) -> str:
    """Markdown table of training tokens (thousands) to each threshold and tokens per step, per arm.

    Example:
        >>> print(render_tokens_table({"thresholds": {"train": [], "heldout": []},
        ...                            "arms": {"full": {"tokens_per_step": mean_std([2000.0])}}}))
        | arm | tokens per step |
        |---|---|
        | full | 2000 |
    """
    th = report["thresholds"]
    labels = [threshold_label(kind, t) for kind in LOSS_KINDS for t in th[kind]]
    lines = ["| " + " | ".join(["arm", "tokens per step", *[f"k tokens to {lab}" for lab in labels]]) + " |",
             "|---|---|" + "---|" * len(labels)]
    for arm, e in report["arms"].items():
        cells = [arm, _pm(e.get("tokens_per_step"), 0)]
        for lab in labels:
            ms = dict(e["thresholds"][lab].get("tokens") or {})
            if ms.get("mean") is not None:
                ms = {**ms, "mean": ms["mean"] / 1e3, "std": (ms["std"] or 0.0) / 1e3}
            cells.append(_pm(ms, 1, show_n=True) if ms else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_heldout_table(report: Mapping[str, Any], max_columns: int = 12) -> str:
    """Held-out loss at each evaluation step, per arm (mean ± std over seeds); empty when steps differ.

    At most ``max_columns`` steps are shown (evenly spaced, always the first and the last).

    Example:
        >>> run = lambda a, v: {"arm": a, "curves": {"heldout": {"step": [0, 10], "value": v}}}
        >>> print(render_heldout_table({"runs": [run("uniform", [7.0, 5.0]), run("uniform", [7.0, 6.0])]}))
        | arm | step 0 | step 10 |
        |---|---|---|
        | uniform | 7.000 ± 0.000 | 5.500 ± 0.707 |
    """
    runs = report["runs"]
    steps = [tuple(r["curves"]["heldout"]["step"]) for r in runs]
    if not runs or len(set(steps)) != 1 or not steps[0]:
        return ""
    cols = list(steps[0])
    if len(cols) > max_columns:
        pick = np.unique(np.round(np.linspace(0, len(cols) - 1, max_columns)).astype(int))
        cols = [cols[i] for i in pick]
    lines = ["| arm | " + " | ".join(f"step {c}" for c in cols) + " |", "|---|" + "---|" * len(cols)]
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    for arm in arms:
        cells = []
        for c in cols:
            i = steps[0].index(c)
            cells.append(_pm(mean_std([r["curves"]["heldout"]["value"][i] for r in runs if r["arm"] == arm])))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(report: Mapping[str, Any]) -> list[str]:
    """Plain sentences: did uniform reach each held-out (and train) threshold sooner than random and full?

    A difference counts as clear only when it exceeds the sum of the two arms' seed standard deviations.

    Example:
        >>> ms = lambda v: mean_std(v)
        >>> arms = {a: {"thresholds": {"held-out<=2": {"steps": ms(s), "seconds": ms(s)}}}
        ...         for a, s in (("uniform", [10, 12]), ("random", [20, 22]))}
        >>> verdict({"arms": arms, "thresholds": {"heldout": [2.0], "train": []}})[0][:60]
        'Held-out loss <= 2: uniform reached it at step 11 ± 1 (11.0 '
    """
    arms = report["arms"]
    if "uniform" not in arms:
        return ["No uniform arm was run, so there is no verdict."]
    lines = []
    for kind in ("heldout", "train"):
        for t in report["thresholds"][kind]:
            label = threshold_label(kind, t)
            u = arms["uniform"]["thresholds"][label]
            head = f"{KIND_LABEL[kind].capitalize()} <= {t:g}: "
            if u["steps"]["mean"] is None:
                lines.append(head + "uniform never reached it.")
                continue
            parts = [head + f"uniform reached it at step {_pm(u['steps'], 0)} ({_pm(u['seconds'], 1)} s)"]
            for other in ("random", "mixed", "full"):
                if other not in arms:
                    continue
                o = arms[other]["thresholds"][label]
                if o["steps"]["mean"] is None:
                    parts.append(f"{other} never reached it (uniform sooner)")
                    continue
                d_steps = o["steps"]["mean"] - u["steps"]["mean"]
                d_sec = o["seconds"]["mean"] - u["seconds"]["mean"]
                noise = (o["steps"]["std"] or 0) + (u["steps"]["std"] or 0)
                head_o = f"{other} at step {_pm(o['steps'], 0)} ({_pm(o['seconds'], 1)} s)"
                extra = ""
                if u.get("tokens", {}).get("mean") and o.get("tokens", {}).get("mean"):
                    extra = (f"; in training tokens {u['tokens']['mean'] / 1e3:,.1f}k vs "
                             f"{o['tokens']['mean'] / 1e3:,.1f}k")
                sec = "sooner" if d_sec > 0 else "later"
                if d_steps == 0:
                    parts.append(f"{head_o}: the same step{extra}; by the clock uniform {abs(d_sec):.1f} s {sec}")
                    continue
                word = "sooner" if d_steps > 0 else "later"
                clear = "larger than the seed spread" if abs(d_steps) > noise else "within the seed spread"
                rel = f" ({abs(d_steps) / o['steps']['mean'] * 100:.0f}%)" if o["steps"]["mean"] else ""
                parts.append(f"{head_o}: uniform {word} by {abs(d_steps):g} steps{rel}, {clear}{extra}; by the "
                             f"clock {abs(d_sec):.1f} s {sec}")
            lines.append("; ".join(parts) + ".")
    tps = {a: (e.get("tokens_per_step") or {}).get("mean") for a, e in arms.items()}
    if tps.get("uniform") and tps.get("random"):
        ratio = tps["uniform"] / tps["random"] - 1
        if abs(ratio) > 0.1:
            lines.append(f"Uniform's batches hold {abs(ratio) * 100:.0f}% {'fewer' if ratio < 0 else 'more'} tokens "
                         f"than random's ({tps['uniform']:.0f} vs {tps['random']:.0f} per step): its examples are "
                         f"{'shorter' if ratio < 0 else 'longer'}, so a step costs {'less' if ratio < 0 else 'more'} "
                         "compute; compare tokens as well as steps.")
    finals = [f"{a} {_pm(e['final_heldout_loss'], 4)}" for a, e in arms.items() if e.get("final_heldout_loss")]
    if finals:
        lines.append("Final held-out loss (lower is better): " + ", ".join(finals) + ".")
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: setup, the table, the verdict, the paper's numbers and the plots.

    Example:
        >>> render_markdown  # doctest: +ELLIPSIS
        <function render_markdown at ...>
    """
    cfg = report["config"]
    th = report["thresholds"]
    pool = report["pool"]
    lines = [
        "# Uniform vs random vs full: study report",
        "",
        f"Pool `{cfg['pool']}`: {pool['rows']} rows; **{pool['heldout_rows']} held out** (seed {cfg['heldout_seed']}) "
        f"before anything else, {pool['train_rows']} form the training pool. Arms: "
        + ", ".join(f"{a} ({report['arms'][a]['size']['mean']:.0f} rows)" for a in report["arms"])
        + f". Seeds: {cfg['seeds']}. Embedder `{cfg['embedder']}`, metric {cfg['metric']}. "
        f"Recipe `{cfg['recipe']}`" + (f" with `{cfg['recipe_args']}`" if cfg["recipe_args"] else "")
        + f"; model: {report.get('model', {}).get('description', '?')}.",
        "",
    ]
    if cfg.get("command"):
        lines += ["Reproduce:", "", "```bash", cfg["command"], "```", ""]
    lines += [
        "## Results (mean ± std over seeds)",
        "",
        render_table(report),
        "",
        "Training tokens to each threshold (thousands; prompt + response tokens processed, padding excluded): "
        "a compute measure that, unlike seconds, does not depend on the machine's load and, unlike steps, "
        "counts that arms whose examples are shorter process fewer tokens per step.",
        "",
        render_tokens_table(report),
        "",
        f"Thresholds ({th['source']}): train loss {th['train']}, held-out loss {th['heldout']}. {th['rule']}",
        "",
        "Held-out loss at each evaluation (mean ± std over seeds), independent of any threshold:",
        "",
        render_heldout_table(report),
        "",
        "Curve points are the Trainer's `eval_loss` on the held-out split (mean of per-batch token means); the "
        "final held-out loss is the token-weighted mean over all response tokens of the split, computed on the "
        "final model by `hf_uniform.evaluation.heldout_loss`; the two can differ in the third decimal. The final "
        "train loss is the last logged training loss (mean over the last logging interval).",
        "",
        f"Time: {report['time_measure']}",
        "",
        "## Did uniform reach the thresholds sooner?",
        "",
    ]
    lines += [f"- {s}" for s in report["verdict"]]
    paper = report["paper"]
    lines += [
        "",
        "## The paper's numbers, for context",
        "",
        f"{paper['model']}, time ({paper['unit']}) to training-loss thresholds "
        f"{' / '.join(str(t) for t in paper['thresholds'])}:",
        "",
        "| arm | " + " | ".join(f"loss<{t}" for t in paper["thresholds"]) + " |",
        "|---|" + "---|" * len(paper["thresholds"]),
    ]
    for arm, vals in paper["time_to_threshold"].items():
        lines.append(f"| {arm} | " + " | ".join(f"{v:g} min" for v in vals) + " |")
    lines += ["", "These are training-loss thresholds on different training sets; the held-out columns above "
              "measure loss on one fixed split that no arm trains on.", "", "## Plots", ""]
    for name, rel in report["plots"].items():
        lines += [f"**{name}**", "", f"![{name}]({rel})", ""]
    lines += ["## Runs", "",
              "| arm | seed | size | steps | training tokens | train s (excl. eval) | wall s (incl. eval) | "
              "held-out evals | final train loss | final held-out loss |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        f = r["final"]
        tokens = f"{f['train_tokens']:,.0f}" if f.get("train_tokens") else "–"
        lines.append(f"| {r['arm']} | {r['seed']} | {r['size']} | {f.get('steps')} | {tokens} | "
                     f"{_fmt_num(f.get('train_seconds'), 1)} | {_fmt_num(f.get('train_seconds_wall'), 1)} | "
                     f"{len(r['curves']['heldout']['step'])} | {_fmt_num(f.get('train_loss'), 4)} | "
                     f"{_fmt_num(f.get('heldout_loss'), 4)} |")
    return "\n".join(lines) + "\n"


def make_plots(report: Mapping[str, Any], out_dir: str | os.PathLike, *, embeddings: np.ndarray | None = None,
               subsets: Mapping[str, np.ndarray] | None = None, smoothing: float = 0.9) -> dict[str, str]:
    """Write the study's PNGs into ``out_dir/plots``; return ``{name: path relative to out_dir}``.

    Plots: the PCA map (PCA fit on the training pool, min-max scaled; full, uniform and random), train and
    held-out loss curves against steps and against seconds (raw and smoothed), and time/steps-to-threshold
    bars.

    Example:
        >>> make_plots  # doctest: +ELLIPSIS
        <function make_plots at ...>
    """
    from .plots import loss_curves_plot, pca_coverage_plot, threshold_bars_plot

    out_dir = Path(out_dir)
    pdir = out_dir / "plots"
    paths: dict[str, Path] = {}
    if embeddings is not None and subsets:
        paths["PCA map of the training pool (Figures 2-3)"] = pca_coverage_plot(
            embeddings, subsets, pdir / "pca_coverage.png",
            title="PCA of the training pool (fit on the full pool, min-max scaled)")
    th = report["thresholds"]
    for kind in LOSS_KINDS:
        for xkey, xlabel in (("step", "optimizer step"), ("seconds", "training seconds (excl. eval)")):
            curves: dict[str, list[tuple[list[float], list[float]]]] = {}
            for r in report["runs"]:
                c = r["curves"][kind]
                curves.setdefault(r["arm"], []).append((c[xkey], c["value"]))
            fname = f"loss_{kind}_{'steps' if xkey == 'step' else 'seconds'}.png"
            paths[f"{KIND_LABEL[kind]} vs {xlabel} (Figures 4-8)"] = loss_curves_plot(
                curves, pdir / fname, xlabel=xlabel, ylabel=KIND_LABEL[kind], smoothing=smoothing,
                thresholds=th[kind], title=f"{KIND_LABEL[kind]}: one line per seed")
    for measure, unit in (("seconds", "training seconds (excl. eval)"), ("steps", "optimizer steps"),
                          ("tokens", "training tokens")):
        values = {}
        for kind in LOSS_KINDS:
            for t in th[kind]:
                label = threshold_label(kind, t)
                values[label] = {}
                for arm, e in report["arms"].items():
                    ms = e["thresholds"][label].get(measure) or {}
                    values[label][arm] = (ms["mean"] if ms.get("mean") is not None else float("nan"),
                                          ms.get("std") or 0.0)
        paths[f"{measure} to threshold (Figure 11)"] = threshold_bars_plot(
            values, pdir / f"time_to_threshold_{measure}.png", ylabel=unit,
            title=f"{measure} to threshold (mean ± std over seeds)")
    return {k: str(v.relative_to(out_dir)) for k, v in paths.items()}


# ----------------------------------------------------------------------------------------------- running


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _recipe_content(path: str | os.PathLike) -> Any:
    """The parsed recipe YAML (so comments and layout do not change a run's fingerprint)."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise UniformError(f"cannot read recipe {path}: {str(err).splitlines()[0]}") from None


def _write_jsonl(ds: Any, path: Path) -> Path:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        ds.to_json(str(tmp), lines=True, force_ascii=False)
    return path


class _Study:
    """State of one study run (internal; use :func:`run_study`)."""

    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.work = cfg.work_path
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)

    # -- data and arms -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        from .integration import embed
        from .io import load_input

        cfg = self.cfg
        pool = load_input(cfg.pool)
        self.pool = pool
        n = len(pool)
        heldout, train = split_heldout(n, cfg.heldout_size, cfg.heldout_seed)
        self.heldout_idx, self.train_idx = heldout, train
        self.pool_digest = _file_digest(cfg.pool) if Path(cfg.pool).is_file() else str(pool._fingerprint)
        data_dir = self.work / "data"
        self.heldout_file = data_dir / "heldout.jsonl"
        if not self.heldout_file.exists():
            _write_jsonl(pool.select(heldout.tolist()), self.heldout_file)
        self.heldout_ds = pool.select(heldout.tolist())
        self.train_pool = pool.select(train.tolist())
        atomic_write_json(self.out / "split.json", {
            "pool": cfg.pool, "pool_digest": self.pool_digest, "rows": n, "heldout_seed": cfg.heldout_seed,
            "heldout": heldout.tolist(), "train_rows": len(train)})
        logger.info("held out %d of %d rows (seed %d); training pool %d rows", len(heldout), n,
                    cfg.heldout_seed, len(train))

        emb_key = _fingerprint({"pool": self.pool_digest, "heldout": heldout.tolist(), "embedder": cfg.embedder,
                                "text_columns": cfg.text_columns})
        emb_path = self.work / f"embeddings-{emb_key}.npy"
        if emb_path.exists():
            self.x = np.load(emb_path)
        else:
            t0 = time.perf_counter()
            from .embed import resolve_embedder

            emb = resolve_embedder(cfg.embedder, text_columns=cfg.text_columns.split(",") if cfg.text_columns
                                   else None)
            self.x = embed(self.train_pool, emb, progress=cfg.progress, cache=False)
            from .io import atomic_path

            with atomic_path(emb_path) as tmp, open(tmp, "wb") as f:
                np.save(f, self.x)
            logger.info("embedded the training pool with %s in %.1f s", cfg.embedder, time.perf_counter() - t0)
        self.k = resolve_k(cfg.k, len(train))

        # one cache entry per arm and seed, so adding an arm or a seed never recomputes the others
        arms_path = self.work / f"arms-{_fingerprint([emb_key, self.k, cfg.metric])}.json"
        stored = json.loads(arms_path.read_text()) if arms_path.exists() else {"indices": {}, "geometry": {}}
        self.arm_idx, self.geometry = {}, {}
        for seed in cfg.seeds:
            for arm in cfg.arms:
                key = f"{arm}-seed{seed}"
                src = "full" if arm == "full" else key  # the full arm does not depend on the seed
                if src not in stored["indices"]:
                    t0 = time.perf_counter()
                    idx = build_arm_indices(self.x, arm, self.k, seed, metric=cfg.metric,
                                            method=cfg.selection_method)
                    stored["indices"][src] = idx.tolist()
                    stored["geometry"][src] = arm_geometry(self.x, idx, metric=cfg.metric)
                    atomic_write_json(arms_path, stored)
                    logger.info("arm %s: %d rows, h=%.5f, coverage radius=%.5f (%.1f s)", key, len(idx),
                                stored["geometry"][src]["h"], stored["geometry"][src]["coverage_radius"],
                                time.perf_counter() - t0)
                self.arm_idx[key] = np.asarray(stored["indices"][src], dtype=np.int64)
                self.geometry[key] = stored["geometry"][src]
        # pool row ids (not training-pool positions) are what the report and the disjointness check use
        self.arm_rows = {key: self.train_idx[idx] for key, idx in self.arm_idx.items()}
        overlap = {key: int(np.intersect1d(rows, self.heldout_idx).size) for key, rows in self.arm_rows.items()}
        if any(overlap.values()):  # cannot happen by construction; checked because the report relies on it
            raise UniformError(f"held-out rows leaked into arms {overlap}")
        # compact JSON: every arm's pool rows (in selection order), for auditing the split and the arms
        atomic_write_text(self.out / "arms.json", json.dumps(
            {key: {"rows": rows.tolist(), **self.geometry[key]} for key, rows in self.arm_rows.items()},
            separators=(",", ":")) + "\n")

    # -- training ----------------------------------------------------------------------------------------
    def _recipe(self, run_dir: Path, seed: int, data_file: Path) -> tuple[Any, Any, Any]:
        from .train.sft import parse_sft_args

        cfg = self.cfg
        argv = ["--config", cfg.recipe, *shlex.split(cfg.recipe_args), "--output_dir", str(run_dir),
                "--seed", str(seed)]
        sft, model, uargs = parse_sft_args(argv)
        eval_steps = cfg.eval_steps or (sft.eval_steps if sft.eval_steps and sft.eval_steps >= 1 else None) \
            or max(1, int(sft.logging_steps) * 5)
        argv += ["--eval_strategy", "steps", "--eval_steps", str(int(eval_steps)), "--eval_on_start", "true",
                 "--per_device_eval_batch_size", str(max(sft.per_device_eval_batch_size, cfg.eval_batch_size))]
        sft, model, uargs = parse_sft_args(argv)
        uargs.dataset_name = str(data_file)
        uargs.eval_dataset_name = str(self.heldout_file)
        uargs.eval_size = 0.0
        uargs.uniform_k = None
        uargs.threshold_metric = "loss"
        uargs.threshold_smoothing = 0.0
        uargs.stop_at_last_threshold = False
        uargs.save_final_model = True
        uargs.measure_h = False
        if uargs.tiny_model:
            model.model_name_or_path = str(self._tiny_base(uargs, seed))
            uargs.tiny_model = False
        return sft, model, uargs

    def _tiny_base(self, uargs: Any, seed: int) -> Path:
        """One tiny LLaMA per seed shared by every arm: same tokenizer (trained on the training pool) and weights."""
        from .train.data import example_texts, prepare_sft_dataset
        from .train.tiny import build_tiny_llama

        if not hasattr(self, "_tiny_texts"):
            prepared = prepare_sft_dataset(self.train_pool, uargs.prompt_format)
            self._tiny_texts = example_texts(prepared, limit=None)
        return build_tiny_llama(self.work / "base_model" / f"seed{seed}", self._tiny_texts,
                                vocab_size=uargs.tiny_vocab_size, hidden_size=uargs.tiny_hidden_size,
                                intermediate_size=2 * uargs.tiny_hidden_size, num_hidden_layers=uargs.tiny_layers,
                                seed=seed)

    def run_fingerprint(self, arm: str, seed: int) -> str:
        cfg = self.cfg
        return _fingerprint({
            "pool": self.pool_digest, "heldout": self.heldout_idx.tolist(),
            "rows": np.sort(self.arm_rows[f"{arm}-seed{seed}"]).tolist(), "seed": seed,
            "recipe": _recipe_content(cfg.recipe), "recipe_args": cfg.recipe_args, "eval_steps": cfg.eval_steps,
            "eval": None if cfg.skip_lm_eval else [cfg.eval_tasks, cfg.eval_limit, cfg.eval_data_dir],
        })

    def run_one(self, arm: str, seed: int) -> dict[str, Any]:
        from .evaluation import checkpoint_heldout_loss, run_lm_eval
        from .train.sft import run_sft

        cfg = self.cfg
        key = f"{arm}-seed{seed}"
        record_path = self.out / "runs" / f"{key}.json"
        fp = self.run_fingerprint(arm, seed)
        if record_path.exists():
            rec = json.loads(record_path.read_text(encoding="utf-8"))
            if rec.get("fingerprint") != fp:
                raise UniformError(f"{record_path} was produced with other settings (pool, arm rows, recipe or "
                                   "eval); use a new --output_dir or delete that file to rerun it")
            logger.info("%s: finished earlier, reading %s", key, record_path)
            if "tokens" not in rec["curves"]["train"] and (Path(rec["run_dir"]) / "trainer_state.json").exists():
                curves = curves_from_run(rec["run_dir"])  # a record from before token counts were kept
                rec["curves"] = {k: curves[k] for k in LOSS_KINDS}
                rec["final"]["train_tokens"] = curves["train"]["tokens"][-1] if curves["train"]["tokens"] else None
                atomic_write_json(record_path, rec)
            return rec
        rows = np.sort(self.arm_rows[key])  # pool order: training depends on the set of rows, not its greedy order
        data_file = self.work / "data" / (f"{arm}.jsonl" if arm == "full" else f"{key}.jsonl")
        if not data_file.exists():
            _write_jsonl(self.pool.select(rows.tolist()), data_file)
        run_dir = self.work / "runs" / arm / f"seed{seed}"
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an unfinished earlier attempt
        sft, model_args, uargs = self._recipe(run_dir, seed, data_file)
        logger.info("%s: training on %d rows (%s)", key, len(rows), run_dir)
        t0 = time.perf_counter()
        info = run_sft(sft, model_args, uargs)
        curves = curves_from_run(run_dir)
        t_train = time.perf_counter() - t0
        gc.collect()
        t1 = time.perf_counter()
        ho = checkpoint_heldout_loss(run_dir, self.heldout_ds, device=cfg.device, max_length=sft.max_length,
                                     prompt_format=uargs.prompt_format, batch_size=cfg.eval_batch_size)
        lm: dict[str, float] = {}
        lm_raw = None
        if not cfg.skip_lm_eval:
            res = run_lm_eval(run_dir, cfg.eval_tasks, work_dir=self.work / "lm_eval" / key,
                              data_dir=cfg.eval_data_dir, limit=cfg.eval_limit, batch_size=cfg.eval_batch_size,
                              device=cfg.device)
            for task, metrics in res["scores"].items():
                for m, v in metrics.items():
                    if not m.endswith("_stderr"):
                        lm[f"{task}/{m}"] = v
            lm_raw = {k: res[k] for k in ("scores", "n_samples", "n_shot", "limit", "seconds")}
        t_eval = time.perf_counter() - t1
        if not cfg.keep_models:
            for p in run_dir.glob("*.safetensors"):
                p.unlink()
        train_curve = curves["train"]
        rec = {
            "arm": arm, "seed": seed, "fingerprint": fp, "size": int(len(rows)),
            **{k: self.geometry[key][k] for k in ("h", "coverage_radius", "mean_nn_distance")},
            "final": {
                "steps": int(info["global_step"]),
                "train_loss": train_curve["value"][-1] if train_curve["value"] else None,
                "train_loss_mean": info.get("train_loss"),
                "heldout_loss": ho["loss"],
                "heldout_loss_trainer": curves["heldout"]["value"][-1] if curves["heldout"]["value"] else None,
                "heldout": ho,
                "train_seconds": train_curve["seconds"][-1] if train_curve["seconds"] else None,
                "train_tokens": train_curve["tokens"][-1] if train_curve["tokens"] else None,
                "train_seconds_wall": curves["train_seconds_wall"],
                "eval_seconds_during_training": curves["eval_seconds"],
            },
            "curves": {k: curves[k] for k in LOSS_KINDS},
            "lm_eval": lm,
            "lm_eval_details": lm_raw,
            "seconds": {"train_call": t_train, "evaluation": t_eval},
            "run_dir": str(run_dir),
            "model": info.get("args", {}).get("model", {}).get("model_name_or_path"),
            "regime": info.get("regime"),
        }
        atomic_write_json(record_path, rec)
        return rec

    def model_description(self) -> dict[str, Any]:
        from .train.sft import parse_sft_args

        _, model, uargs = parse_sft_args(["--config", self.cfg.recipe, *shlex.split(self.cfg.recipe_args),
                                          "--output_dir", str(self.work / "tmp")])
        if uargs.tiny_model:
            spec = self.work / "base_model" / f"seed{self.cfg.seeds[0]}" / "tiny_llama.json"
            extra = json.loads(spec.read_text()) if spec.exists() else {}
            desc = (f"tiny LLaMA from scratch (hidden {uargs.tiny_hidden_size}, {uargs.tiny_layers} layers, BPE "
                    f"vocabulary {extra.get('actual_vocab_size', uargs.tiny_vocab_size)}, "
                    f"{extra.get('parameters', '?')} parameters), one initialisation per seed shared by all arms")
            return {"description": desc, "tiny": True, **extra}
        return {"description": f"`{model.model_name_or_path}`" + (f" ({uargs.gguf_file})" if uargs.gguf_file else ""),
                "tiny": False}


def run_study(cfg: StudyConfig) -> dict[str, Any]:
    """Run (or resume) the study and write ``report.json``, ``report.md`` and ``plots/*.png``.

    Returns the report dict. See the module docstring for the steps.

    Raises:
        UniformError: bad settings, a pool that cannot be split, or an output folder from other settings.

    Example:
        >>> cfg = StudyConfig(pool="../shared/data/instruct/alpaca_9k.jsonl", k=4500,
        ...                   recipe="recipes/configs/compare_tiny_cpu.yaml", seeds=[0, 1])
        >>> report = run_study(cfg)  # doctest: +SKIP
        >>> report["verdict"][0]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    cfg.validate()
    if cfg.num_threads:
        import torch

        torch.set_num_threads(int(cfg.num_threads))
    t0 = time.perf_counter()
    study = _Study(cfg)
    study.prepare()
    runs = []
    jobs = [(arm, seed) for seed in cfg.seeds for arm in cfg.arms]
    with tqdm(total=len(jobs), desc="study runs", unit="run", disable=not cfg.progress) as bar:
        for i, (arm, seed) in enumerate(jobs, 1):
            bar.set_postfix_str(f"{arm} seed {seed}")
            logger.info("run %d/%d: %s seed %d", i, len(jobs), arm, seed)
            runs.append(study.run_one(arm, seed))
            bar.update(1)
    report = build_report(cfg, study, runs)
    report["seconds_total"] = time.perf_counter() - t0
    atomic_write_json(study.out / "report.json", report)
    atomic_write_text(study.out / "report.md", render_markdown(report))
    logger.info("report written to %s", study.out / "report.md")
    return report


def build_report(cfg: StudyConfig, study: _Study, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Thresholds, aggregation, verdict and plots for finished runs (internal to :func:`run_study`).

    Example:
        >>> build_report  # doctest: +ELLIPSIS
        <function build_report at ...>
    """
    thresholds: dict[str, list[float]] = {}
    given = {"train": cfg.train_thresholds, "heldout": cfg.heldout_thresholds}
    for kind in LOSS_KINDS:
        if given[kind]:
            thresholds[kind] = sorted({float(t) for t in given[kind]}, reverse=True)
        else:
            # the evaluation before the first step only shows the untrained model: leave it out, or the loose
            # threshold falls in the first, trivial drop that every arm makes before the next evaluation
            thresholds[kind] = auto_thresholds([
                [v for st, v in zip(r["curves"][kind]["step"], _curve_for_threshold(r["curves"][kind], kind,
                                                                                      cfg.smoothing), strict=True)
                 if st > 0] for r in runs])
    source = "given" if all(given.values()) else ("automatic" if not any(given.values()) else "partly automatic")
    rule = ("Automatic thresholds: the tight one is the worst run's lowest loss (so every run reaches it), the "
            "loose one lies halfway between it and the lowest loss at the first logged point after step 0. ")
    rule += (f"A run reaches a threshold at the first logged point at or below it; the training loss is "
             f"EMA-smoothed (weight {cfg.smoothing:g}) first, held-out loss is used as evaluated.")
    agg = aggregate(runs, thresholds, arms=cfg.arms, smoothing=cfg.smoothing)
    lm_metrics = sorted({m for r in runs for m in (r.get("lm_eval") or {})})
    report: dict[str, Any] = {
        "config": asdict(cfg),
        "pool": {"rows": len(study.pool), "heldout_rows": int(len(study.heldout_idx)),
                 "train_rows": int(len(study.train_idx)), "k": study.k, "digest": study.pool_digest},
        "model": study.model_description(),
        "thresholds": {**thresholds, "source": source, "rule": rule},
        "time_measure": ("seconds of training from on_train_begin (TimeToThresholdCallback's clock) minus the "
                         "wall-clock of the periodic held-out evaluations before that point; steps are optimizer "
                         "steps. The machine may be shared, so compare steps as well as seconds."),
        "lm_metrics": lm_metrics,
        "arms": agg,
        "runs": runs,
        "paper": PAPER_REFERENCE,
    }
    report["verdict"] = verdict(report)
    pca_subsets = {name: study.arm_idx[f"{name}-seed{cfg.seeds[0]}"] for name in ("uniform", "random")
                   if f"{name}-seed{cfg.seeds[0]}" in study.arm_idx}
    report["plots"] = make_plots(report, study.out, embeddings=study.x, subsets=pca_subsets,
                                 smoothing=cfg.smoothing)
    return report


def parse_study_args(argv: Sequence[str] | None = None) -> StudyConfig:
    """Parse ``[--config FILE.yaml] [--key value ...]`` into a :class:`StudyConfig` (the command line wins).

    Raises:
        UniformError: an unknown or malformed argument (one line naming it).

    Example:
        >>> cfg = parse_study_args(["--pool", "p.jsonl", "--recipe", "r.yaml", "--k", "100", "--seeds", "0", "1", "2"])
        >>> cfg.k, cfg.seeds
        (100.0, [0, 1, 2])
    """
    from trl import TrlParser

    parser = TrlParser((StudyConfig,))
    try:
        (cfg, rest) = parser.parse_args_and_config(list(argv) if argv is not None else None,
                                                   return_remaining_strings=True)
    except SystemExit as err:
        if not err.code:  # --help printed the usage: exit 0 as argparse does
            raise
        raise UniformError(f"bad arguments for compare (exit status {err.code}); see --help") from None
    except ValueError as err:
        raise UniformError(f"bad arguments for compare: {str(err).splitlines()[0]}") from None
    if rest:
        raise UniformError(f"unknown compare arguments {rest}; check the spelling (see --help)")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``recipes/compare.py``; bad input exits with status 2 and a one-line message.

    Example:
        >>> main(["--pool", "no/such/pool.jsonl", "--recipe", "no/such/recipe.yaml"])
        2
    """
    import sys

    logging.basicConfig(level=os.environ.get("HF_UNIFORM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cfg = parse_study_args(args)
        if not cfg.command:
            cfg.command = "python recipes/compare.py " + shlex.join(args)
        report = run_study(cfg)
    except UniformError as err:
        logger.error("%s", err)
        print(f"compare: error: {err}", file=sys.stderr)
        return 2
    for line in report["verdict"]:
        print(line)
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return 0
