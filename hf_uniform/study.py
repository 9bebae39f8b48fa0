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
from .heldout import split_heldout
from .io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

ARMS = ("uniform", "random", "mixed", "length_matched", "full")
#: Arms a run compares uniform against, in the order the verdict and the paired differences list them.
COMPARATORS = ("random", "length_matched", "mixed", "full")
#: Mixed into each seed's pool draw so that it differs from the arms' own use of the seed.
POOL_DRAW_SALT = 20_240_601
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
        >>> "length_matched" in ARMS  # the length control is an arm you can add
        True
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
    arms: list[str] = field(default_factory=lambda: ["uniform", "random", "mixed", "full"], metadata={
        "help": "arms to run, of uniform, random, mixed, length_matched, full"})
    pool_size: int | None = field(default=None, metadata={
        "help": "rows drawn from the training pool for each seed (its own seeded draw per seed; k applies to it); "
                "default: every seed uses the whole training pool"})
    second_heldout: str | None = field(default=None, metadata={
        "help": "a second evaluation source the pool never saw (e.g. ../shared/data/instruct/dolly_3k.jsonl)"})
    second_heldout_size: float = field(default=200, metadata={
        "help": "rows of second_heldout scored (a seeded draw: count or fraction)"})
    eval_pool_loss: bool = field(default=False, metadata={
        "help": "also score each final model (and the base model) on its seed's whole pool"})
    periodic_eval: bool = field(default=True, metadata={
        "help": "evaluate the held-out split during training (a held-out curve); false: only at the end"})
    relative_thresholds: list[float] | None = field(default=None, metadata={
        "help": "training-loss thresholds as fractions of each run's step-0 loss (the base model's loss on "
                "the run's training rows), e.g. 0.9 0.8"})
    window: int | None = field(default=None, metadata={
        "help": "moving-average window (steps) of the training loss for threshold crossings "
                "(hf_uniform.train.callbacks.first_crossings); default: EMA with `smoothing`"})
    length_bins: int = field(default=10, metadata={
        "help": "quantile bins of the pool's lengths used by the length_matched arm"})
    length_measure: str = field(default="text_chars", metadata={
        "help": "length the length_matched arm matches: text_chars (the text the embedder saw) or "
                "response_chars"})
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
    run_order: str = field(default="seed", metadata={
        "help": "seed: every arm of seed 0, then seed 1, ...; comparison: uniform, random and length_matched "
                "of every seed first, then the other arms (so an interrupted study still has paired seeds)"})
    report_only: bool = field(default=False, metadata={
        "help": "train nothing: write the report from the finished runs of the seeds whose arms all finished"})
    command: str | None = field(default=None, metadata={"help": "the command line, recorded in the report"})

    def validate(self) -> None:
        """Check the settings; raise :class:`~hf_uniform.errors.UniformError` with a one-line message.

        Example:
            >>> StudyConfig(pool="p.jsonl", recipe="r.yaml", arms=["uniform", "best"]).validate()
            Traceback (most recent call last):
            ...
            hf_uniform.errors.UniformError: unknown arm(s) ['best']; choose from ('uniform', 'random', 'mixed', 'length_matched', 'full')
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
        if self.pool_size is not None and self.pool_size < 2:
            raise UniformError(f"pool_size must be >= 2 rows, got {self.pool_size}")
        if self.relative_thresholds is not None and (not self.relative_thresholds or any(
                not 0 < float(r) < 1 for r in self.relative_thresholds)):
            raise UniformError(f"relative_thresholds must be fractions in (0, 1), got {self.relative_thresholds}")
        if self.window is not None and self.window < 1:
            raise UniformError(f"window must be >= 1 step, got {self.window}")
        if self.length_measure not in ("text_chars", "response_chars"):
            raise UniformError(f"length_measure must be text_chars or response_chars, got {self.length_measure!r}")
        if self.length_bins < 1:
            raise UniformError(f"length_bins must be >= 1, got {self.length_bins}")
        if self.second_heldout is not None and not Path(self.second_heldout).exists():
            raise UniformError(f"second_heldout {self.second_heldout} not found; pass a data file")
        if self.second_heldout_size <= 0:
            raise UniformError(f"second_heldout_size must be positive, got {self.second_heldout_size}")
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
    if arm == "length_matched":
        raise UniformError("the length_matched arm needs row lengths and the uniform rows; "
                           "use hf_uniform.baselines.length_matched_subset")
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
    if isinstance(c, list):  # one entry per logged loss (TimeToThresholdCallback since CPU seconds were added)
        c = {key: [e.get(key) for e in c] for key in ("step", "seconds", "cpu_seconds", "tokens", ttt["metric"])}
        c["value"] = c.pop(ttt["metric"])
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
    if c.get("tokens") and all(t is not None for t in c["tokens"]):  # the callback's own count (non-padding)
        tok_by_step = {int(s): float(t) for s, t in zip(c["step"], c["tokens"], strict=True)}
    t_tokens = [tok_by_step.get(int(s)) for s in t_steps]
    if tok_by_step and all(t is not None for t in t_tokens):
        ks = sorted(tok_by_step)
        h_tokens = [float(np.interp(s, [0.0, *ks], [0.0, *[tok_by_step[k] for k in ks]])) for s in h_steps]
    else:
        t_tokens, h_tokens = [None] * len(t_steps), [None] * len(h_steps)
    return {
        "train": {"step": t_steps.astype(int).tolist(), "seconds": t_excl.tolist(), "wall_seconds": t_wall.tolist(),
                  "cpu_seconds": [None if v is None else float(v) for v in c.get("cpu_seconds") or
                                  [None] * len(t_steps)],
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


def threshold_labels(thresholds: Mapping[str, Sequence[float]]) -> list[tuple[str, str]]:
    """``(kind, label)`` of every threshold in report order: absolute and relative train, then held-out.

    Example:
        >>> threshold_labels({"train": [2.0], "train_relative": [0.9], "heldout": [2.5]})
        [('train', 'train<=2'), ('train', 'train<=0.9x start'), ('heldout', 'held-out<=2.5')]
    """
    out = [("train", threshold_label("train", t)) for t in thresholds.get("train", [])]
    out += [("train", f"train<={r:g}x start") for r in thresholds.get("train_relative", []) or []]
    out += [("heldout", threshold_label("heldout", t)) for t in thresholds.get("heldout", [])]
    return out


def run_crossings(run: Mapping[str, Any], thresholds: Mapping[str, Sequence[float]], *, smoothing: float,
                  window: int | None = None) -> dict[str, dict[str, Any] | None]:
    """First crossing of every threshold by one run: ``{label: {"step", "seconds", "cpu_seconds", "tokens",
    "value", "threshold"} or None}``.

    Training loss: with ``window`` the trailing moving average over ``window`` steps and the ``<=`` rule of
    :func:`hf_uniform.train.callbacks.first_crossings` (the callback's own rule); without it the EMA of
    ``smoothing``. Relative thresholds are fractions of ``run["start"]["train_loss"]`` (the base model's loss on
    the run's rows). Held-out loss: as evaluated.

    Example:
        >>> run = {"curves": {"train": {"step": [1, 2, 3], "seconds": [1.0, 2.0, 3.0], "value": [4.0, 2.0, 2.0],
        ...                             "cpu_seconds": [2.0, 4.0, 6.0], "tokens": [10, 20, 30]},
        ...                   "heldout": {"step": [], "seconds": [], "value": []}},
        ...        "start": {"train_loss": 4.0}}
        >>> c = run_crossings(run, {"train": [], "train_relative": [0.75], "heldout": []}, smoothing=0.0, window=2)
        >>> c["train<=0.75x start"]["step"], c["train<=0.75x start"]["cpu_seconds"]  # mean(4, 2) <= 3
        (2, 4.0)
    """
    from .train.callbacks import first_crossings, threshold_key

    out: dict[str, dict[str, Any] | None] = {}
    train = run["curves"]["train"]
    values = {"train": [float(t) for t in thresholds.get("train", [])],
              "train_relative": [float(r) * float(run["start"]["train_loss"])
                                 for r in thresholds.get("train_relative", []) or []]}
    labels = [lab for kind, lab in threshold_labels(thresholds) if kind == "train"]
    flat = values["train"] + values["train_relative"]
    n = len(train["step"])
    cols = {k: (list(train.get(k)) if train.get(k) is not None else [None] * n)
            for k in ("step", "seconds", "cpu_seconds", "tokens", "value")}
    if window:
        entries = [{"step": cols["step"][i], "seconds": cols["seconds"][i], "cpu_seconds": cols["cpu_seconds"][i],
                    "tokens": cols["tokens"][i], "loss": cols["value"][i]} for i in range(n)]
        found = first_crossings(entries, flat, window=int(window), key="loss") if flat else {}
        for lab, t in zip(labels, flat, strict=True):
            rec = found[threshold_key(t)]["smoothed"]
            out[lab] = None if rec is None else {
                "step": int(rec["step"]), "seconds": rec.get("seconds"), "cpu_seconds": rec.get("cpu_seconds"),
                "tokens": rec.get("tokens"), "value": rec["value"], "threshold": t}
    else:
        smoothed = _curve_for_threshold(train, "train", smoothing)
        for lab, t in zip(labels, flat, strict=True):
            out[lab] = None
            for i in range(n):
                v = smoothed[i]
                if v is not None and math.isfinite(v) and v <= t:
                    out[lab] = {"step": int(cols["step"][i]), "seconds": cols["seconds"][i],
                                "cpu_seconds": cols["cpu_seconds"][i], "tokens": cols["tokens"][i],
                                "value": float(v), "threshold": t}
                    break
    held = run["curves"]["heldout"]
    for t in thresholds.get("heldout", []):
        c = first_crossing(held["step"], held["seconds"], held["value"], t, held.get("tokens"))
        if c is not None:
            c = {**c, "cpu_seconds": None, "threshold": float(t)}
            c.setdefault("tokens", None)
        out[threshold_label("heldout", t)] = c
    return out


FINALS = {"final_train_loss": ("final", "train_loss"), "final_heldout_loss": ("final", "heldout_loss"),
          "final_second_heldout_loss": ("final", "second_heldout_loss"), "final_pool_loss": ("final", "pool_loss"),
          "start_train_loss": ("start", "train_loss")}
MEASURES = ("steps", "tokens", "cpu_seconds", "seconds")


def aggregate(runs: Sequence[Mapping[str, Any]], thresholds: Mapping[str, Sequence[float]], *,
              arms: Sequence[str], smoothing: float, window: int | None = None) -> dict[str, Any]:
    """Per-arm mean ± std over seeds of every reported quantity, with steps, tokens, CPU and wall seconds to
    each threshold.

    ``runs`` are the per-run records (``runs/<arm>-seed<s>.json``). Returns ``{arm: {...}}`` and adds
    ``crossings`` (:func:`run_crossings`) to each run.

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
        run["crossings"] = run_crossings(run, thresholds, smoothing=smoothing, window=window)  # type: ignore[index]
    key_of = {"steps": "step", "seconds": "seconds", "cpu_seconds": "cpu_seconds", "tokens": "tokens"}
    for arm in arms:
        rs = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        if not rs:
            continue
        entry: dict[str, Any] = {
            "seeds": [r["seed"] for r in rs],
            "size": mean_std([r["size"] for r in rs]),
            "h": mean_std([r.get("h") for r in rs]),
            "coverage_radius": mean_std([r.get("coverage_radius") for r in rs]),
            **{name: mean_std([(r.get(a) or {}).get(b) for r in rs]) for name, (a, b) in FINALS.items()},
            "steps": mean_std([r["final"].get("steps") for r in rs]),
            "train_seconds": mean_std([r["final"].get("train_seconds") for r in rs]),
            "train_cpu_seconds": mean_std([r["final"].get("train_cpu_seconds") for r in rs]),
            "train_tokens": mean_std([r["final"].get("train_tokens") for r in rs]),
            "tokens_per_step": mean_std([(r["final"].get("train_tokens") or math.nan) / max(1, r["final"].get("steps")
                                         or 1) for r in rs]),
            "thresholds": {},
            "lm_eval": {},
        }
        for label in rs[0]["crossings"]:
            cross = [r["crossings"][label] for r in rs]
            entry["thresholds"][label] = {m: mean_std([c.get(key_of[m]) if c else None for c in cross])
                                          for m in MEASURES}
        metrics = sorted({m for r in rs for m in (r.get("lm_eval") or {})})
        for m in metrics:
            entry["lm_eval"][m] = mean_std([(r.get("lm_eval") or {}).get(m) for r in rs])
        out[arm] = entry
    return out


def paired_differences(runs: Sequence[Mapping[str, Any]], *, base: str = "uniform",
                       others: Sequence[str] = COMPARATORS) -> dict[str, Any]:
    """Per-seed differences ``base - other`` (same seed = same pool draw, start row and base weights).

    For every threshold (from each run's ``crossings``) and measure (steps, tokens, CPU seconds, wall
    seconds) and for the final and step-0 losses: ``{"mean", "std", "n", "of", "values"}`` over seeds (a
    seed where either arm did not reach a threshold gives ``None``), and for thresholds ``reached``: how
    many seeds each arm reached it in. Negative = ``base`` needed less / has lower loss.

    Example:
        >>> mk = lambda arm, seed, step, loss: {"arm": arm, "seed": seed, "final": {"heldout_loss": loss},
        ...     "start": {}, "crossings": {"train<=1": {"step": step, "tokens": None, "cpu_seconds": None,
        ...                                             "seconds": None}}}
        >>> runs = [mk("uniform", 0, 4, 2.0), mk("random", 0, 6, 2.5), mk("uniform", 1, 5, 2.1),
        ...         mk("random", 1, 5, 2.0)]
        >>> d = paired_differences(runs, others=["random"])["uniform-random"]
        >>> d["thresholds"]["train<=1"]["steps"]["values"], round(d["final_heldout_loss"]["mean"], 3)
        ([-2.0, 0.0], -0.2)
    """
    key_of = {"steps": "step", "seconds": "seconds", "cpu_seconds": "cpu_seconds", "tokens": "tokens"}
    by = {(r["arm"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs if r["arm"] == base})
    out: dict[str, Any] = {}
    for other in others:
        pairs = [(by[(base, s)], by[(other, s)]) for s in seeds if (other, s) in by]
        if not pairs:
            continue
        rec: dict[str, Any] = {"seeds": [u["seed"] for u, _ in pairs], "thresholds": {}}
        for label in pairs[0][0].get("crossings", {}):
            cell: dict[str, Any] = {}
            for m in MEASURES:
                vals: list[float | None] = []
                for u, o in pairs:
                    cu, co = u["crossings"].get(label), o["crossings"].get(label)
                    a = cu.get(key_of[m]) if cu else None
                    b = co.get(key_of[m]) if co else None
                    vals.append(None if a is None or b is None else float(a) - float(b))
                cell[m] = mean_std(vals)
            cell["reached"] = {base: sum(1 for u, _ in pairs if u["crossings"].get(label)),
                               other: sum(1 for _, o in pairs if o["crossings"].get(label)), "of": len(pairs)}
            rec["thresholds"][label] = cell
        for name, (a, b) in FINALS.items():
            vals = []
            for u, o in pairs:
                x, y = (u.get(a) or {}).get(b), (o.get(a) or {}).get(b)
                vals.append(None if x is None or y is None else float(x) - float(y))
            rec[name] = mean_std(vals)
        out[f"{base}-{other}"] = rec
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
    for _, label in threshold_labels(thresholds):
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
        for _, label in threshold_labels(th):
            rec = e["thresholds"][label]
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
    labels = [lab for _, lab in threshold_labels(th)]
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


def render_compute_table(report: Mapping[str, Any]) -> str:
    """Markdown table: per arm and threshold, steps, k tokens, CPU seconds and wall seconds to reach it, plus
    the step-0 and final losses (mean ± std over seeds).

    Example:
        >>> print(render_compute_table({"thresholds": {"train": [], "heldout": []}, "arms": {}}))
        <BLANKLINE>
    """
    arms = report["arms"]
    if not arms:
        return ""
    labels = [lab for _, lab in threshold_labels(report["thresholds"])]
    lines = ["| arm | threshold | reached | steps | k tokens | CPU s | wall s |", "|---|---|---|---|---|---|---|"]
    for arm, e in arms.items():
        for lab in labels:
            rec = e["thresholds"][lab]
            tok = dict(rec.get("tokens") or {})
            if tok.get("mean") is not None:
                tok = {**tok, "mean": tok["mean"] / 1e3, "std": (tok["std"] or 0.0) / 1e3}
            lines.append(f"| {arm} | {lab} | {rec['steps']['n']}/{rec['steps']['of']} | {_pm(rec['steps'], 1)} | "
                         f"{_pm(tok, 1)} | {_pm(rec.get('cpu_seconds'), 0)} | {_pm(rec.get('seconds'), 0)} |")
    lines += ["", "| arm | step-0 loss (own rows) | final train loss | final held-out | final second source | "
              "final full pool | steps | k tokens | train CPU s | train wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for arm, e in arms.items():
        tok = dict(e.get("train_tokens") or {})
        if tok.get("mean") is not None:
            tok = {**tok, "mean": tok["mean"] / 1e3, "std": (tok["std"] or 0.0) / 1e3}
        lines.append(f"| {arm} | {_pm(e.get('start_train_loss'), 4)} | {_pm(e.get('final_train_loss'), 4)} | "
                     f"{_pm(e.get('final_heldout_loss'), 4)} | {_pm(e.get('final_second_heldout_loss'), 4)} | "
                     f"{_pm(e.get('final_pool_loss'), 4)} | {_pm(e.get('steps'), 0)} | {_pm(tok, 1)} | "
                     f"{_pm(e.get('train_cpu_seconds'), 0)} | {_pm(e.get('train_seconds'), 0)} |")
    return "\n".join(lines)


def _lengths_section(report: Mapping[str, Any]) -> list[str]:
    from .lengths import render_lengths_table

    lens = report.get("lengths") or {}
    if not lens.get("all_seeds"):
        return []
    return ["## Lengths of each arm (all seeds' rows together)", "", lens["measures"] + ". The length_matched arm "
            f"matches {lens['length_matched_on']} in {lens['length_bins']} quantile bins of the pool.", "",
            render_lengths_table(lens["all_seeds"]), ""]


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
    lines = ["# Uniform vs random vs full: study report", ""]
    if report.get("plain_verdict"):
        lines += ["## Verdict: does uniform reach the thresholds sooner?", "",
                  "Paired per-seed differences (same seed = same pool draw, start row, data order and base "
                  "weights); negative = uniform needed fewer steps / tokens / seconds or has the lower loss; "
                  "\"larger than the seed spread\" = |mean| exceeds the standard deviation of the per-seed "
                  "differences.", ""]
        lines += [f"**{v}**" + "\n" for v in report.get("verdict_summary") or []]
        lines += ["Every threshold and loss, per comparison:", ""]
        lines += [f"- {v}" for v in report["plain_verdict"]]
        cost = report.get("cost") or {}
        if cost:
            lines += ["", f"Cost of the study: {cost['total_wall_seconds'] / 60:.1f} min wall, "
                      f"{cost['total_cpu_seconds'] / 60:.1f} min process CPU (training + evaluation of every run "
                      "and the base-model evaluations; CPU time sums all threads).", ""]
    if report.get("missing_runs"):
        lines += [f"**Incomplete study:** runs {', '.join(report['missing_runs'])} had not finished; this report "
                  f"covers the seeds whose arms all finished ({report['seeds']}).", ""]
    lines += [
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
        render_compute_table(report),
        "",
        "Training tokens to each threshold (thousands; prompt + response tokens processed, padding excluded): "
        "a compute measure that, unlike seconds, does not depend on the machine's load and, unlike steps, "
        "counts that arms whose examples are shorter process fewer tokens per step.",
        "",
        render_tokens_table(report),
        "",
        f"Thresholds ({th['source']}): train loss {th['train']}"
        + (f", relative to each run's step-0 loss {th['train_relative']}" if th.get("train_relative") else "")
        + f", held-out loss {th['heldout']}. {th['rule']}",
        "",
        *(["Held-out loss at each evaluation (mean ± std over seeds), independent of any threshold:", "",
           render_heldout_table(report), ""] if render_heldout_table(report) else
          ["No held-out evaluation during training (`periodic_eval: false`): held-out losses are those of the "
           "base model (step 0) and of each final model.", ""]),
        "Curve points are the Trainer's `eval_loss` on the held-out split (mean of per-batch token means); the "
        "final held-out loss is the token-weighted mean over all response tokens of the split, computed on the "
        "final model by `hf_uniform.evaluation.heldout_loss`; the two can differ in the third decimal. The final "
        "train loss is the last logged training loss (mean over the last logging interval).",
        "",
        f"Time: {report['time_measure']}",
        "",
        *_lengths_section(report),
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
        if not any(r["curves"][kind]["step"] for r in report["runs"]):
            continue  # e.g. no held-out evaluation during training
        for xkey, xlabel in (("step", "optimizer step"), ("seconds", "training seconds (excl. eval)")):
            curves: dict[str, list[tuple[list[float], list[float]]]] = {}
            for r in report["runs"]:
                c = r["curves"][kind]
                curves.setdefault(r["arm"], []).append((c[xkey], c["value"]))
            fname = f"loss_{kind}_{'steps' if xkey == 'step' else 'seconds'}.png"
            paths[f"{KIND_LABEL[kind]} vs {xlabel} (Figures 4-8)"] = loss_curves_plot(
                curves, pdir / fname, xlabel=xlabel, ylabel=KIND_LABEL[kind], smoothing=smoothing,
                thresholds=th[kind], title=f"{KIND_LABEL[kind]}: one line per seed")
    measures = [("seconds", "training seconds (excl. eval)"), ("steps", "optimizer steps"),
                ("tokens", "training tokens")]
    if any((e["thresholds"].get(lab) or {}).get("cpu_seconds", {}).get("mean") is not None
           for e in report["arms"].values() for lab in e["thresholds"]):
        measures.append(("cpu_seconds", "process CPU seconds of training"))
    if not threshold_labels(th):
        measures = []
    for measure, unit in measures:
        values = {}
        for _, label in threshold_labels(th):
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


class _atomic_dir:  # noqa: N801 - used as a context manager like a function
    """Write a folder under a temporary name, rename it into place on success."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")

    def __enter__(self) -> Path:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.replace(self.tmp, self.path)


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
        _write_jsonl(pool.select(heldout.tolist()), self.heldout_file)  # always: an older file may be stale
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
        cfg = self.cfg
        # lengths of every training-pool row (the text the embedder saw, and the response alone)
        from .lengths import row_lengths

        self.row_len = row_lengths(self.train_pool, text_columns=cfg.text_columns)
        # each seed trains on its own draw of pool_size rows (positions into the training pool), or on all
        self.seed_pos: dict[int, np.ndarray] = {}
        for seed in cfg.seeds:
            if cfg.pool_size:
                if cfg.pool_size > len(train):
                    raise UniformError(f"pool_size {cfg.pool_size} exceeds the {len(train)} training rows; lower it")
                draw = np.random.default_rng([POOL_DRAW_SALT, seed]).choice(len(train), cfg.pool_size, replace=False)
                self.seed_pos[seed] = np.sort(draw).astype(np.int64)
            else:
                self.seed_pos[seed] = np.arange(len(train), dtype=np.int64)
        self.k = resolve_k(cfg.k, cfg.pool_size or len(train))

        # one cache entry per arm and seed, so adding an arm or a seed never recomputes the others
        arms_path = self.work / f"arms-{_fingerprint([emb_key, self.k, cfg.metric, cfg.pool_size, cfg.length_bins, cfg.length_measure])}.json"
        stored = json.loads(arms_path.read_text()) if arms_path.exists() else {"indices": {}, "geometry": {}}
        self.arm_idx, self.geometry = {}, {}
        for seed in cfg.seeds:
            pos = self.seed_pos[seed]
            xs = self.x[pos]
            order = sorted(cfg.arms, key=lambda a: a != "uniform")  # length_matched needs uniform's rows
            if "length_matched" in cfg.arms and "uniform" not in cfg.arms:
                order = ["uniform", *order]
            for arm in order:
                key = f"{arm}-seed{seed}"
                src = "full" if arm == "full" and not cfg.pool_size else key  # full does not depend on the seed
                if src not in stored["indices"]:
                    t0 = time.perf_counter()
                    if arm == "length_matched":
                        from .baselines import length_matched_subset

                        uni = np.searchsorted(pos, np.asarray(stored["indices"][f"uniform-seed{seed}"]))
                        local = length_matched_subset(self.row_len[cfg.length_measure][pos], uni,
                                                      bins=cfg.length_bins, seed=seed)
                    else:
                        local = build_arm_indices(xs, arm, self.k, seed, metric=cfg.metric,
                                                  method=cfg.selection_method)
                    idx = pos[local]
                    stored["indices"][src] = idx.tolist()
                    stored["geometry"][src] = arm_geometry(xs, local, metric=cfg.metric)
                    atomic_write_json(arms_path, stored)
                    logger.info("arm %s: %d rows, h=%.5f, coverage radius=%.5f (%.1f s)", key, len(idx),
                                stored["geometry"][src]["h"], stored["geometry"][src]["coverage_radius"],
                                time.perf_counter() - t0)
                if arm in cfg.arms:
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
        self.second_ds = None
        if cfg.second_heldout:
            second = load_input(cfg.second_heldout)
            m = int(cfg.second_heldout_size) if cfg.second_heldout_size >= 1 else int(
                round(cfg.second_heldout_size * len(second)))
            if not 0 < m <= len(second):
                raise UniformError(f"second_heldout_size {cfg.second_heldout_size} gives {m} of {len(second)} rows")
            rows2 = np.sort(np.random.default_rng(cfg.heldout_seed).permutation(len(second))[:m])
            self.second_ds = second.select(rows2.tolist())
            self.second_digest = _file_digest(cfg.second_heldout) if Path(cfg.second_heldout).is_file() else ""
            self.second_rows = rows2
    # -- training ----------------------------------------------------------------------------------------
    def _recipe(self, run_dir: Path, seed: int, data_file: Path) -> tuple[Any, Any, Any]:
        from .train.sft import parse_sft_args

        cfg = self.cfg
        argv = ["--config", cfg.recipe, *shlex.split(cfg.recipe_args), "--output_dir", str(run_dir),
                "--seed", str(seed)]
        sft, model, uargs = parse_sft_args(argv)
        if cfg.periodic_eval:
            eval_steps = cfg.eval_steps or (sft.eval_steps if sft.eval_steps and sft.eval_steps >= 1 else None) \
                or max(1, int(sft.logging_steps) * 5)
            argv += ["--eval_strategy", "steps", "--eval_steps", str(int(eval_steps)), "--eval_on_start", "true",
                     "--per_device_eval_batch_size",
                     str(max(sft.per_device_eval_batch_size, cfg.eval_batch_size))]
        else:
            argv += ["--eval_strategy", "no"]
        sft, model, uargs = parse_sft_args(argv)
        uargs.dataset_name = str(data_file)
        uargs.eval_dataset_name = str(self.heldout_file) if cfg.periodic_eval else None
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
        elif uargs.gguf_file or str(model.model_name_or_path).endswith(".gguf"):
            model.model_name_or_path = str(self._gguf_base(model.model_name_or_path, uargs.gguf_file))
            uargs.gguf_file = None
        return sft, model, uargs

    def base_model_path(self, seed: int) -> Path | str:
        """The weights every arm of ``seed`` starts from (a folder), built once and cached in WORK_DIR."""
        sft, model, uargs = self._recipe(self.work / "tmp", seed, self.heldout_file)
        return model.model_name_or_path

    def _gguf_base(self, name: str, gguf_file: str | None) -> Path:
        """Dequantise a GGUF model once into WORK_DIR/base_model/<name> (safetensors + a working tokenizer).

        transformers 5 converts the SmolLM2 GGUF tokenizer as a Metaspace (SentencePiece-style) tokenizer
        that encodes every space as ``<|endoftext|>`` (id 0) and adds a ``<|im_start|>`` BOS: the model then
        sees garbage (loss ~12 instead of ~2). The tokenizer saved here is the GGUF's byte-level BPE
        (``tokenizer.json``) with the GPT-2 byte-level pre-tokenizer, decoder and no added BOS, as the
        original SmolLM2 tokenizer; a loading of the folder costs < 1 s instead of ~30 s.
        """
        from .train.sft import load_model_and_tokenizer, resolve_model_source

        source, gguf = resolve_model_source(name, gguf_file)
        folder = self.work / "base_model" / Path(str(gguf)).stem
        if (folder / "config.json").exists() and (folder / "tokenizer.json").exists():
            return folder
        model, tok = load_model_and_tokenizer(name, gguf_file=gguf_file, dtype="float32")
        with _atomic_dir(folder) as tmp:
            model.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))  # load_model_and_tokenizer repaired the GGUF tokenizer
        del model
        gc.collect()
        return folder

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

    def _score(self, model: Any, tok: Any, ds: Any, max_length: int | None, prompt_format: str) -> dict[str, Any]:
        from .evaluation import checkpoint_heldout_loss

        return checkpoint_heldout_loss(model, ds, tokenizer=tok, device=self.cfg.device, max_length=max_length,
                                       prompt_format=prompt_format, batch_size=self.cfg.eval_batch_size)

    def base_eval(self, seed: int) -> dict[str, Any]:
        """Losses of the base model (step 0) of ``seed``: per pool row, held-out, second source and pool.

        Per-row losses (summed response-token cross-entropy and response-token count, each row scored alone)
        give every arm's step-0 loss as a token-weighted mean over its rows, the quantity its training loss
        starts from; relative thresholds are fractions of it. Cached in WORK_DIR/base_eval-seed<s>.json.
        """
        from .evaluation import format_pairs, heldout_loss, load_model

        sft, _, uargs = self._recipe(self.work / "tmp", seed, self.heldout_file)
        base = self.base_model_path(seed)
        pos = self.seed_pos[seed]
        fp = _fingerprint({"base": str(base), "rows": pos.tolist(), "pool": self.pool_digest,
                           "heldout": self.heldout_idx.tolist(), "max_length": sft.max_length,
                           "prompt_format": uargs.prompt_format,
                           "second": [self.cfg.second_heldout, self.cfg.second_heldout_size],
                           "recipe": _recipe_content(self.cfg.recipe)})
        path = self.work / f"base_eval-seed{seed}.json"
        if path.exists():
            rec = json.loads(path.read_text(encoding="utf-8"))
            if rec.get("fingerprint") == fp:
                return rec
        t0, c0 = time.perf_counter(), time.process_time()
        model, tok = load_model(base, device=self.cfg.device)
        pairs = format_pairs(self.train_pool.select(pos.tolist()), uargs.prompt_format)
        loss_sum, tokens = [], []
        for pair in pairs:
            try:
                r = heldout_loss(model, tok, [pair], max_length=sft.max_length, batch_size=1)
            except UniformError:  # the response was truncated away: the row adds no token to the loss
                loss_sum.append(0.0)
                tokens.append(0)
                continue
            loss_sum.append(r.loss * r.tokens)
            tokens.append(r.tokens)
        rec = {"fingerprint": fp, "seed": seed, "rows": pos.tolist(), "loss_sum": loss_sum, "tokens": tokens,
               "heldout": self._score(model, tok, self.heldout_ds, sft.max_length, uargs.prompt_format),
               "second_heldout": None if self.second_ds is None else
               self._score(model, tok, self.second_ds, sft.max_length, uargs.prompt_format)}
        rec["pool_loss"] = float(np.sum(loss_sum) / max(1, int(np.sum(tokens))))
        rec["seconds"], rec["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
        del model
        gc.collect()
        atomic_write_json(path, rec)
        return rec

    def start_loss(self, seed: int, rows_pos: np.ndarray) -> float:
        """Step-0 loss of a run: the base model's token-weighted loss over its training rows (positions)."""
        rec = self.base_eval(seed)
        where = {p: i for i, p in enumerate(rec["rows"])}
        i = np.array([where[int(p)] for p in rows_pos], dtype=np.int64)
        return float(np.sum(np.asarray(rec["loss_sum"])[i]) / max(1, int(np.sum(np.asarray(rec["tokens"])[i]))))

    def run_fingerprint(self, arm: str, seed: int) -> str:
        cfg = self.cfg
        return _fingerprint({
            "pool": self.pool_digest, "heldout": self.heldout_idx.tolist(),
            "rows": np.sort(self.arm_rows[f"{arm}-seed{seed}"]).tolist(), "seed": seed,
            "recipe": _recipe_content(cfg.recipe), "recipe_args": cfg.recipe_args, "eval_steps": cfg.eval_steps,
            "periodic_eval": cfg.periodic_eval, "second": [cfg.second_heldout, cfg.second_heldout_size],
            "pool_loss": cfg.eval_pool_loss,
            "eval": None if cfg.skip_lm_eval else [cfg.eval_tasks, cfg.eval_limit, cfg.eval_data_dir],
        })

    def run_one(self, arm: str, seed: int) -> dict[str, Any]:
        from .evaluation import load_model, run_lm_eval
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
        data_file = self.work / "data" / (f"{arm}.jsonl" if arm == "full" and not cfg.pool_size else f"{key}.jsonl")
        _write_jsonl(self.pool.select(rows.tolist()), data_file)  # always: a file left by other settings is stale
        run_dir = self.work / "runs" / arm / f"seed{seed}"
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an unfinished earlier attempt
        sft, model_args, uargs = self._recipe(run_dir, seed, data_file)
        base = self.base_eval(seed)
        start = self.start_loss(seed, self.arm_idx[key])
        logger.info("%s: training on %d rows (%s); step-0 loss %.4f", key, len(rows), run_dir, start)
        t0, c0 = time.perf_counter(), time.process_time()
        info = run_sft(sft, model_args, uargs)
        curves = curves_from_run(run_dir)
        t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
        gc.collect()
        t1, c1 = time.perf_counter(), time.process_time()
        final_model, final_tok = load_model(run_dir, device=cfg.device)
        ho = self._score(final_model, final_tok, self.heldout_ds, sft.max_length, uargs.prompt_format)
        second = None if self.second_ds is None else self._score(final_model, final_tok, self.second_ds,
                                                                 sft.max_length, uargs.prompt_format)
        pool_ho = None
        if cfg.eval_pool_loss:
            pool_ds = self.train_pool.select(self.seed_pos[seed].tolist())
            pool_ho = self._score(final_model, final_tok, pool_ds, sft.max_length, uargs.prompt_format)
        del final_model
        gc.collect()
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
        t_eval, c_eval = time.perf_counter() - t1, time.process_time() - c1
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
                "second_heldout_loss": second["loss"] if second else None,
                "second_heldout": second,
                "pool_loss": pool_ho["loss"] if pool_ho else None,
                "pool": pool_ho,
                "train_seconds": train_curve["seconds"][-1] if train_curve["seconds"] else None,
                "train_cpu_seconds": (train_curve.get("cpu_seconds") or [None])[-1],
                "train_tokens": train_curve["tokens"][-1] if train_curve["tokens"] else None,
                "train_seconds_wall": curves["train_seconds_wall"],
                "eval_seconds_during_training": curves["eval_seconds"],
            },
            "curves": {k: curves[k] for k in LOSS_KINDS},
            "start": {"train_loss": start, "heldout_loss": base["heldout"]["loss"],
                      "second_heldout_loss": (base.get("second_heldout") or {}).get("loss"),
                      "pool_loss": base["pool_loss"]},
            "epochs": float(sft.num_train_epochs) if not sft.max_steps or sft.max_steps < 0 else None,
            "lm_eval": lm,
            "lm_eval_details": lm_raw,
            "seconds": {"train_call": t_train, "evaluation": t_eval},
            "cpu_seconds": {"train_call": c_train, "evaluation": c_eval},
            "run_dir": str(run_dir),
            "model": info.get("args", {}).get("model", {}).get("model_name_or_path"),
            "regime": info.get("regime"),
        }
        atomic_write_json(record_path, rec)
        return rec

    def lengths_report(self) -> dict[str, Any]:
        """Length summaries (:mod:`hf_uniform.lengths`) of every arm: all seeds' rows together and per seed."""
        from .lengths import lengths_block, row_lengths

        lens = dict(self.row_len)
        try:
            from transformers import AutoTokenizer

            base = self.base_model_path(self.cfg.seeds[0])
            tok = AutoTokenizer.from_pretrained(str(base))
            tl = row_lengths(self.train_pool, text_columns=self.cfg.text_columns, tokenizer=tok)
            lens.update({k: v for k, v in tl.items() if k.endswith("_tokens")})
            token_note = f"tokens of the tokenizer of {base}"
        except (OSError, ValueError, UniformError) as err:  # no tokenizer: characters only
            token_note = f"no token counts ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        sets: dict[str, Any] = {}
        for arm in self.cfg.arms:
            sets[arm] = np.concatenate([self.arm_idx[f"{arm}-seed{s}"] for s in self.cfg.seeds])
        sets["pool (all seeds)"] = np.concatenate([self.seed_pos[s] for s in self.cfg.seeds])
        per_seed = {f"seed{s}": lengths_block(lens, {arm: self.arm_idx[f"{arm}-seed{s}"] for arm in self.cfg.arms})
                    for s in self.cfg.seeds}
        return {"measures": "text_chars: characters of the text the embedder saw (instruction, input, output "
                            "joined by newlines); response_chars: the output alone; *_tokens: " + token_note,
                "all_seeds": lengths_block(lens, sets), "per_seed": per_seed,
                "length_matched_on": self.cfg.length_measure, "length_bins": self.cfg.length_bins}

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


def job_order(arms: Sequence[str], seeds: Sequence[int], order: str = "seed") -> list[tuple[str, int]]:
    """``(arm, seed)`` runs in the order they are trained.

    Example:
        >>> job_order(["uniform", "random", "full"], [0, 1], "comparison")
        [('uniform', 0), ('random', 0), ('uniform', 1), ('random', 1), ('full', 0), ('full', 1)]
    """
    if order == "seed":
        return [(arm, seed) for seed in seeds for arm in arms]
    if order != "comparison":
        raise UniformError(f"run_order must be seed or comparison, got {order!r}")
    first = [a for a in arms if a in ("uniform", "random", "length_matched")]
    rest = [a for a in arms if a not in first]
    return [(a, s) for s in seeds for a in first] + [(a, s) for a in rest for s in seeds]


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
    missing: list[str] = []
    jobs = job_order(cfg.arms, cfg.seeds, cfg.run_order)
    with tqdm(total=len(jobs), desc="study runs", unit="run", disable=not cfg.progress) as bar:
        for i, (arm, seed) in enumerate(jobs, 1):
            bar.set_postfix_str(f"{arm} seed {seed}")
            logger.info("run %d/%d: %s seed %d", i, len(jobs), arm, seed)
            if cfg.report_only and not (study.out / "runs" / f"{arm}-seed{seed}.json").exists():
                missing.append(f"{arm}-seed{seed}")
            else:
                runs.append(study.run_one(arm, seed))
            bar.update(1)
    if cfg.report_only:
        if not runs:
            raise UniformError(f"report_only: no run has finished (missing {missing}); run the study first")
        # arms are aggregated over the seeds they finished; paired differences use the seeds both arms finished
        cfg.seeds = [s for s in cfg.seeds if any(r["seed"] == s for r in runs)]
        cfg.arms = [a for a in cfg.arms if any(r["arm"] == a for r in runs)]
    report = build_report(cfg, study, runs)
    report["missing_runs"] = missing
    report["seconds_total"] = time.perf_counter() - t0
    atomic_write_json(study.out / "report.json", report)
    atomic_write_text(study.out / "report.md", render_markdown(report))
    logger.info("report written to %s", study.out / "report.md")
    return report


def study_cost(runs: Sequence[Mapping[str, Any]], study: Any = None) -> dict[str, Any]:
    """Total wall and process CPU seconds of the study's runs (training call + final evaluation) and of the
    base-model evaluations; summed over the records, so a resumed study counts each run once.

    Example:
        >>> study_cost([{"seconds": {"train_call": 10.0, "evaluation": 2.0},
        ...              "cpu_seconds": {"train_call": 18.0, "evaluation": 3.0}}])["runs_wall_seconds"]
        12.0
    """
    wall = sum(sum((r.get("seconds") or {}).values()) for r in runs)
    cpu = sum(sum((r.get("cpu_seconds") or {}).values()) for r in runs)
    out = {"runs_wall_seconds": wall, "runs_cpu_seconds": cpu}
    if study is not None and hasattr(study, "seed_pos"):
        base = [json.loads(p.read_text()) for p in sorted(study.work.glob("base_eval-seed*.json"))]
        out["base_eval_wall_seconds"] = sum(b.get("seconds", 0.0) for b in base)
        out["base_eval_cpu_seconds"] = sum(b.get("cpu_seconds", 0.0) for b in base)
    out["total_wall_seconds"] = wall + out.get("base_eval_wall_seconds", 0.0)
    out["total_cpu_seconds"] = cpu + out.get("base_eval_cpu_seconds", 0.0)
    return out


def _fmt_diff(ms: Mapping[str, Any], digits: int = 1, scale: float = 1.0) -> str:
    if not ms or ms.get("mean") is None:
        return "n/a"
    vals = ", ".join("–" if v is None else f"{v / scale:+.{digits}f}" for v in ms["values"])
    return f"{ms['mean'] / scale:+.{digits}f} ± {(ms['std'] or 0) / scale:.{digits}f} (seeds: {vals})"


def _clear(ms: Mapping[str, Any]) -> str:
    """Is a mean paired difference larger than its seed spread (the std of the per-seed differences)?"""
    if not ms or ms.get("mean") is None or ms["n"] < 2:
        return "too few seeds to tell"
    if ms["mean"] == 0:
        return "no difference"
    return "larger than the seed spread" if abs(ms["mean"]) > (ms["std"] or 0) else "within the seed spread"


def verdict_summary(report: Mapping[str, Any]) -> list[str]:
    """One sentence per comparison arm: at how many thresholds uniform was sooner / later in steps (mean of the
    paired per-seed differences), at how many of those the difference exceeded the seed spread, and the final
    held-out loss difference.

    Example:
        >>> ms = lambda v: mean_std(v)
        >>> cell = lambda v: {"steps": ms(v), "reached": {"uniform": 2, "random": 2, "of": 2}}
        >>> pd = {"uniform-random": {"thresholds": {"a": cell([-2.0, -3.0]), "b": cell([1.0, -1.0])},
        ...                          "final_heldout_loss": ms([0.1, 0.2])}}
        >>> lines = verdict_summary({"paired_differences": pd})
        >>> lines[0][:81]
        'Does uniform reach the thresholds sooner? not clearly against random (sooner at 1'
        >>> lines[1][:80]
        'Against random: uniform reached 1 of 2 thresholds sooner (1 beyond the seed spre'
    """
    out = []
    answers = []
    for comp, rec in (report.get("paired_differences") or {}).items():
        other = comp.split("-", 1)[1]
        cells = [c["steps"] for c in rec["thresholds"].values() if c["steps"]["mean"] is not None]
        if other in ("random", "length_matched") and cells:
            n_sooner = sum(1 for c in cells if c["mean"] < 0)
            n_clear = sum(1 for c in cells if c["mean"] < 0 and c["n"] >= 2 and abs(c["mean"]) > (c["std"] or 0))
            n_worse = sum(1 for c in cells if c["mean"] > 0 and c["n"] >= 2 and abs(c["mean"]) > (c["std"] or 0))
            word = ("yes" if 2 * n_sooner > len(cells) and n_clear and not n_worse
                    else "no" if 2 * n_sooner < len(cells) else "not clearly")
            answers.append(f"{word} against {other} (sooner at {n_sooner} of {len(cells)} thresholds)")
        sooner = [c for c in cells if c["mean"] < 0]
        later = [c for c in cells if c["mean"] > 0]
        clear = lambda cs: sum(1 for c in cs if c["n"] >= 2 and abs(c["mean"]) > (c["std"] or 0))  # noqa: E731
        line = (f"Against {other}: uniform reached {len(sooner)} of {len(rec['thresholds'])} thresholds sooner "
                f"({clear(sooner)} beyond the seed spread) and {len(later)} later ({clear(later)} beyond the "
                f"seed spread), in steps (mean of the paired per-seed differences)")
        ho = rec.get("final_heldout_loss")
        if ho and ho.get("mean") is not None:
            line += (f"; final held-out loss uniform - {other} = {ho['mean']:+.4f} ± {ho['std'] or 0:.4f} "
                     f"({_clear(ho)})")
        out.append(line + ".")
    if answers:
        out.insert(0, "Does uniform reach the thresholds sooner? " + "; ".join(answers)
                   + ". (\"yes\" needs sooner at most thresholds, at least one beyond the seed spread and none "
                   "later beyond it.)")
    return out


def plain_verdict(report: Mapping[str, Any]) -> list[str]:
    """The opening of ``report.md``: per comparison arm and threshold, does uniform get there sooner (in
    steps, tokens and CPU seconds), by how much (mean ± std of the per-seed paired differences), and is that
    larger than the seed spread; then the final losses.

    Example:
        >>> ms = lambda v: mean_std(v)
        >>> pd = {"uniform-random": {"thresholds": {"train<=0.9x start": {
        ...     "steps": ms([-2.0, -3.0, -1.0]), "tokens": ms([-100.0, -50.0, -80.0]),
        ...     "cpu_seconds": ms([-5.0, -6.0, -4.0]), "seconds": ms([-3.0, -2.0, -1.0]),
        ...     "reached": {"uniform": 3, "random": 3, "of": 3}}},
        ...     "final_heldout_loss": ms([0.1, 0.0, 0.05])}}
        >>> plain_verdict({"paired_differences": pd})[0][:58]
        'uniform vs random, train<=0.9x start: uniform reached it 2'
    """
    lines = []
    pd = report.get("paired_differences") or {}
    for comp, rec in pd.items():
        other = comp.split("-", 1)[1]
        for label, cell in rec["thresholds"].items():
            st = cell["steps"]
            head = f"uniform vs {other}, {label}: "
            reached = cell["reached"]
            if st["mean"] is None:
                lines.append(head + f"no seed where both reached it (uniform {reached['uniform']}/{reached['of']}, "
                             f"{other} {reached[other]}/{reached['of']} seeds).")
                continue
            word = "sooner" if st["mean"] < 0 else ("later" if st["mean"] > 0 else "at the same step")
            amount = f"{abs(st['mean']):.1f} steps {word}" if st["mean"] else word
            lines.append(
                head + f"uniform reached it {amount} (paired difference uniform - {other}: steps "
                f"{_fmt_diff(st)}, {_clear(st)}; tokens {_fmt_diff(cell['tokens'], 1, 1e3)}k, "
                f"{_clear(cell['tokens'])}; CPU seconds {_fmt_diff(cell['cpu_seconds'], 0)}, "
                f"{_clear(cell['cpu_seconds'])}; wall seconds {_fmt_diff(cell['seconds'], 0)}). "
                f"Reached in uniform {reached['uniform']}/{reached['of']}, {other} {reached[other]}/{reached['of']} seeds.")
        for name, what in (("final_heldout_loss", "final held-out loss (alpaca split taken before selection)"),
                           ("final_second_heldout_loss", "final loss on the unseen second source"),
                           ("final_pool_loss", "final loss on the seed's full pool"),
                           ("start_train_loss", "step-0 loss on the arm's own rows")):
            ms = rec.get(name)
            if ms and ms.get("mean") is not None:
                lines.append(f"uniform vs {other}, {what}: uniform - {other} = {_fmt_diff(ms, 4)} "
                             f"({'uniform lower' if ms['mean'] < 0 else 'uniform higher'}; {_clear(ms)}).")
    return lines


def build_report(cfg: StudyConfig, study: _Study, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Thresholds, aggregation, verdict and plots for finished runs (internal to :func:`run_study`).

    Example:
        >>> build_report  # doctest: +ELLIPSIS
        <function build_report at ...>
    """
    thresholds: dict[str, list[float]] = {}
    given = {"train": cfg.train_thresholds, "heldout": cfg.heldout_thresholds}
    declared = bool(cfg.relative_thresholds)
    if declared:  # declared in the config before the runs: nothing is chosen after seeing the curves
        thresholds["train_relative"] = sorted({float(r) for r in cfg.relative_thresholds}, reverse=True)
    for kind in LOSS_KINDS:
        if declared and not given[kind]:
            thresholds[kind] = []
        elif given[kind]:
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
    if declared:
        source, rule = "declared in the config before the runs", ""
    smooth = (f"its trailing moving average over {cfg.window} optimizer steps "
              "(hf_uniform.train.callbacks.first_crossings)" if cfg.window else
              f"its EMA (weight {cfg.smoothing:g})")
    rule += (f"A run reaches a threshold at the first logged point at or below it (<=); the training loss is "
             f"{smooth}, held-out loss is used as evaluated. Relative thresholds (r x start) are fractions of "
             "the run's step-0 loss: the base model's token-weighted loss on the run's own training rows.")
    agg = aggregate(runs, thresholds, arms=cfg.arms, smoothing=cfg.smoothing, window=cfg.window)
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
    epochs = sorted({r.get("epochs") for r in runs if r.get("epochs") is not None})
    report["epochs"] = epochs[0] if len(epochs) == 1 else (epochs or None)
    report["seeds"] = list(cfg.seeds)
    report["paired_differences"] = paired_differences(runs, others=[a for a in COMPARATORS if a in cfg.arms]) \
        if "uniform" in cfg.arms else {}
    report["lengths"] = study.lengths_report()
    report["cost"] = study_cost(runs, study)
    report["verdict"] = verdict(report)
    report["plain_verdict"] = plain_verdict(report)
    report["verdict_summary"] = verdict_summary(report)
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
        if not cfg.command:  # the command that reproduces the runs (a report-only pass trains nothing)
            kept = [a for i, a in enumerate(args) if not (a.startswith("--report_only")
                    or (i and args[i - 1] == "--report_only"))]
            cfg.command = "python recipes/compare.py " + shlex.join(kept)
        report = run_study(cfg)
    except UniformError as err:
        logger.error("%s", err)
        print(f"compare: error: {err}", file=sys.stderr)
        return 2
    for line in report["verdict"]:
        print(line)
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return 0
