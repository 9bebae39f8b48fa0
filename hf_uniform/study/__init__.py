"""The paper's study on your data: uniform vs random vs the mixed baseline vs full, trained and evaluated alike.

``recipes/compare.py`` runs it, in this order:

1. **Hold out** a fixed, seeded split of the pool that no arm trains on (before embedding or selection):
   :meth:`Study.load_pool`, with :func:`hf_uniform.heldout.split_heldout`.
2. **Embed** the remaining training pool (the paper's Word2Vec by default; :meth:`Study.embed_pool`) and
   build each arm per seed (:meth:`Study.build_arms`): ``uniform`` (exact greedy max-min, seeded start row),
   ``random`` (same size), ``mixed`` (the paper's half-random / half-min-distance baseline, same size),
   ``length_matched`` (random with uniform's length histogram) and ``full`` (the whole training pool).
3. **Train** every arm and seed with the same SFT recipe (:meth:`Study.run_one`), with periodic evaluation
   on the held-out split. A tiny-LLaMA recipe gets one shared base model per seed (same tokenizer and
   initial weights for every arm).
4. **Evaluate** each final model: held-out loss (:func:`hf_uniform.evaluation.heldout_loss`) and lm-eval
   benchmarks (:func:`hf_uniform.evaluation.run_lm_eval`).
5. **Report** (:func:`build_report`, :class:`StudyReport`): ``report.json`` and ``report.md`` (mean ± std
   over seeds of size, h, coverage radius, steps and seconds to each threshold on train and held-out loss,
   final losses, lm-eval scores, paired per-seed differences and the verdict), and PNG plots.

Modules: :mod:`~hf_uniform.study.config` (settings), :mod:`~hf_uniform.study.arms` (pool draws and arms),
:mod:`~hf_uniform.study.runner` (the jobs), :mod:`~hf_uniform.study.curves` (a run's loss curves),
:mod:`~hf_uniform.study.analysis` (crossings, aggregates, paired differences, verdict),
:mod:`~hf_uniform.study.report` (``report.json`` and plots), :mod:`~hf_uniform.study.markdown` (``report.md``).
Thresholds are applied after training, to the recorded curves, so changing them only rewrites the report.

Example:
    >>> from hf_uniform.study import StudyConfig, job_order
    >>> job_order(StudyConfig().arms, [0])
    [('uniform', 0), ('random', 0), ('mixed', 0), ('full', 0)]
"""

from ..heldout import split_heldout
from .analysis import (
    FINALS,
    MEASURES,
    aggregate,
    auto_thresholds,
    choose_thresholds,
    first_crossing,
    mean_std,
    paired_differences,
    plain_verdict,
    run_crossings,
    study_cost,
    threshold_label,
    threshold_labels,
    verdict,
    verdict_summary,
)
from .arms import arm_geometry, build_arm_indices, job_order, resolve_k, seed_pools
from .config import ARMS, COMPARATORS, KIND_LABEL, LOSS_KINDS, PAPER_REFERENCE, POOL_DRAW_SALT, StudyConfig
from .curves import curves_from_run
from .markdown import (
    md_table,
    render_compute_table,
    render_heldout_table,
    render_markdown,
    render_table,
    render_tokens_table,
    table_columns,
    write_report,
)
from .report import StudyReport, build_report, make_plots
from .runner import Study

__all__ = [
    "ARMS", "COMPARATORS", "FINALS", "KIND_LABEL", "LOSS_KINDS", "MEASURES", "PAPER_REFERENCE", "POOL_DRAW_SALT",
    "Study", "StudyConfig", "StudyReport", "aggregate", "arm_geometry", "auto_thresholds", "build_arm_indices",
    "build_report", "choose_thresholds", "curves_from_run", "first_crossing", "job_order", "make_plots",
    "md_table", "mean_std", "paired_differences", "plain_verdict", "render_compute_table", "render_heldout_table",
    "render_markdown", "render_table", "render_tokens_table", "resolve_k", "run_crossings", "seed_pools",
    "split_heldout", "study_cost", "table_columns", "threshold_label", "threshold_labels", "verdict",
    "verdict_summary", "write_report",
]
