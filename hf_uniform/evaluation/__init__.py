"""Evaluate a checkpoint: lm-evaluation-harness benchmarks and held-out loss.

* :mod:`~hf_uniform.evaluation.lm_eval`: :func:`run_lm_eval`, ARC-Challenge (25-shot, acc and acc_norm) and
  TruthfulQA MC1/MC2 (0-shot), the paper's settings, through ``lm_eval.simple_evaluate``. The task YAMLs
  ship in ``hf_uniform/eval_tasks`` and read the Hub datasets; with ``data_dir`` they are pointed at local
  files instead (the layout of ``../shared/data/eval``). Tasks and shot counts are overridable
  (``"arc_challenge:10,hellaswag:0"``).
* :mod:`~hf_uniform.evaluation.heldout`: :func:`heldout_loss`, mean per-token cross-entropy on the response
  tokens of a split (prompt tokens masked), the quantity the study's held-out thresholds are measured on.
* :mod:`~hf_uniform.evaluation.checkpoint`: :func:`evaluate_checkpoint`, both in one call, writing
  ``results.json`` and ``summary.md``; the arguments of ``hf-uniform eval``
  (:func:`hf_uniform.scripts.eval.main` shows the steps).

lm-eval, transformers and torch are imported lazily (extras ``[eval]`` and ``[train]``).

>>> from hf_uniform.evaluation import parse_tasks
>>> [t.name for t in parse_tasks("arc_challenge:25,truthfulqa_mc2:0")]
['arc_challenge', 'truthfulqa_mc2']
"""

from __future__ import annotations

from .checkpoint import (
    EvalArguments,
    check_eval_args,
    evaluate_checkpoint,
    parse_eval_args,
    summary_table,
    write_results,
)
from .heldout import (
    IGNORE_INDEX,
    HeldoutLoss,
    checkpoint_heldout_loss,
    format_pairs,
    heldout_loss,
    load_model,
    row_losses,
    tokenize_prompt_response,
)
from .lm_eval import (
    DEFAULT_TASKS,
    SHIPPED_TASKS,
    TASK_METRICS,
    TaskSpec,
    convert_truthfulqa_mc,
    local_task_overrides,
    parse_tasks,
    prepare_tasks,
    run_lm_eval,
    shipped_tasks_dir,
)

__all__ = [
    "DEFAULT_TASKS",
    "IGNORE_INDEX",
    "SHIPPED_TASKS",
    "TASK_METRICS",
    "EvalArguments",
    "HeldoutLoss",
    "TaskSpec",
    "check_eval_args",
    "checkpoint_heldout_loss",
    "convert_truthfulqa_mc",
    "evaluate_checkpoint",
    "format_pairs",
    "heldout_loss",
    "load_model",
    "local_task_overrides",
    "parse_eval_args",
    "parse_tasks",
    "prepare_tasks",
    "row_losses",
    "run_lm_eval",
    "shipped_tasks_dir",
    "summary_table",
    "tokenize_prompt_response",
    "write_results",
]
