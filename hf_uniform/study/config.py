"""Settings of the study: :class:`StudyConfig` (what ``recipes/compare.py`` parses) and the study's constants.

Example:
    >>> from hf_uniform.study import StudyConfig
    >>> StudyConfig(pool="pool.jsonl", k=100, recipe="recipe.yaml").work_path.as_posix()
    'out/compare/work'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UniformError

ARMS = ("uniform", "random", "mixed", "length_matched", "longest", "full")
#: Arms a run compares uniform against, in the order the verdict and the paired differences list them.
COMPARATORS = ("random", "length_matched", "longest", "mixed", "full")
#: Where the length_matched arm draws its rows: the seed's pool or the whole training pool, uniform's rows
#: excluded in both (at k = n/2 of a seed's pool only the complement is left, so ``training_pool`` is the
#: control that can be length-matched).
LENGTH_MATCHED_SOURCES = ("seed_pool", "training_pool")
#: Outcomes a study can declare primary: the in-source held-out loss at ``primary_step`` (lower is better).
PRIMARY_OUTCOMES = ("heldout_loss_at_step",)
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
    k: str = field(default="0.5", metadata={"help": "subset size of the uniform, random and mixed arms: a whole "
                                                    "number of rows (128) or a fraction of the training pool in "
                                                    "(0, 1) (0.5); the -k rule of hf-uniform select (1.0 is refused)"})
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
        "help": "seed: every arm of seed 0, then seed 1, ...; comparison: uniform, random, length_matched "
                "and longest of every seed first, then the other arms (so an interrupted study still has paired seeds)"})
    report_only: bool = field(default=False, metadata={
        "help": "train nothing: write the report from the finished runs (each arm over the seeds it finished, "
                "each comparison over the seeds both arms finished)"})
    command: str | None = field(default=None, metadata={"help": "the command line, recorded in the report"})
    # -- the measurement rules and the pre-declared analysis (issue: evidence that can answer) ------------
    length_matched_source: str = field(default="seed_pool", metadata={
        "help": "where length_matched draws its rows, uniform's rows excluded: seed_pool or training_pool"})
    schedule_steps: int | None = field(default=None, metadata={
        "help": "score both held-out sets every N optimizer steps (and at the last step) outside the training "
                "clock; the primary outcome is read from this schedule"})
    primary_outcome: str | None = field(default=None, metadata={
        "help": "declared before the runs: heldout_loss_at_step (the in-source held-out loss at primary_step)"})
    primary_step: int | None = field(default=None, metadata={
        "help": "the optimizer step at which the primary outcome is compared (a step of the schedule)"})
    heldout_relative_thresholds: list[float] | None = field(default=None, metadata={
        "help": "held-out thresholds as fractions of the base model's held-out loss (secondary outcome: "
                "steps/tokens to reach them on the schedule)"})
    full_window: bool = field(default=True, metadata={
        "help": "a training-loss crossing counts only on a full moving-average window"})
    min_updates: int = field(default=1, metadata={
        "help": "a training-loss crossing counts only after this many optimizer updates"})
    claimed_speedup: float = field(default=1.7, metadata={
        "help": "the smallest speed-up the paper reports; the effect a verdict of 'no' must have been able "
                "to detect"})
    alpha: float = field(default=0.05, metadata={"help": "two-sided significance level of each comparison"})
    target_power: float = field(default=0.8, metadata={"help": "power at which the minimum detectable effect "
                                                                  "is stated"})

    def __post_init__(self) -> None:
        self.k = _study_k(self.k)  # "128" from the command line is the count 128, as hf-uniform select's -k

    def validate(self) -> None:
        """Check the settings; raise :class:`~hf_uniform.errors.UniformError` with a one-line message.

        Example:
            >>> StudyConfig(pool="p.jsonl", recipe="r.yaml", arms=["uniform", "best"]).validate()
            Traceback (most recent call last):
            ...
            hf_uniform.errors.UniformError: unknown arm(s) ['best']; choose from ('uniform', 'random', 'mixed', 'length_matched', 'longest', 'full')
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
        self.k = _study_k(self.k)
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
            raise MissingFileError(f"second_heldout {self.second_heldout} not found; pass a data file")
        if self.second_heldout_size <= 0:
            raise UniformError(f"second_heldout_size must be positive, got {self.second_heldout_size}")
        for name in ("train_thresholds", "heldout_thresholds"):
            v = getattr(self, name)
            if v is not None and (not v or any(not math.isfinite(float(t)) for t in v)):
                raise UniformError(f"{name} must be a non-empty list of finite numbers, got {v}")
        if self.length_matched_source not in LENGTH_MATCHED_SOURCES:
            raise UniformError(f"length_matched_source must be one of {LENGTH_MATCHED_SOURCES}, "
                               f"got {self.length_matched_source!r}")
        if self.schedule_steps is not None and self.schedule_steps < 1:
            raise UniformError(f"schedule_steps must be >= 1, got {self.schedule_steps}")
        if self.primary_outcome is not None:
            if self.primary_outcome not in PRIMARY_OUTCOMES:
                raise UniformError(f"primary_outcome must be one of {PRIMARY_OUTCOMES}, got {self.primary_outcome!r}")
            if not self.schedule_steps or not self.primary_step or self.primary_step % self.schedule_steps:
                raise UniformError("primary_outcome heldout_loss_at_step needs schedule_steps and a primary_step "
                                   "that is a multiple of it (e.g. schedule_steps 8, primary_step 16)")
        if self.heldout_relative_thresholds is not None and (not self.heldout_relative_thresholds or any(
                not 0 < float(r) < 1 for r in self.heldout_relative_thresholds)):
            raise UniformError("heldout_relative_thresholds must be fractions in (0, 1), got "
                               f"{self.heldout_relative_thresholds}")
        if self.min_updates < 0:
            raise UniformError(f"min_updates must be >= 0, got {self.min_updates}")
        if not self.claimed_speedup > 1:
            raise UniformError(f"claimed_speedup must be > 1 (e.g. 1.7), got {self.claimed_speedup}")
        if not 0 < self.alpha < 1 or not 0 < self.target_power < 1:
            raise UniformError(f"alpha and target_power must be in (0, 1), got {self.alpha}, {self.target_power}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise UniformError(f"eval_steps must be >= 1, got {self.eval_steps}")
        if not Path(self.recipe).is_file():
            raise MissingFileError(f"recipe {self.recipe} not found; pass an SFT recipe YAML")
        if self.eval_data_dir is not None and not self.skip_lm_eval and not Path(self.eval_data_dir).is_dir():
            raise UniformError(f"eval_data_dir {self.eval_data_dir} is not a folder")

    @property
    def work_path(self) -> Path:
        """``work_dir`` or ``output_dir/work``."""
        return Path(self.work_dir) if self.work_dir else Path(self.output_dir) / "work"


def _study_k(k: Any) -> int | float:
    """The one k rule (``hf-uniform select -k``): text as on a command line, an int a count, a float a fraction
    in (0, 1) (so ``1.0`` is refused).

    Example:
        >>> _study_k("128"), _study_k(128), _study_k("0.5"), _study_k(0.25)
        (128, 128, 0.5, 0.25)
    """
    from ..options import check_k, parse_k

    return parse_k(k) if isinstance(k, str) else check_k(k)
