"""Evaluate a checkpoint: lm-evaluation-harness (ARC-Challenge 25-shot, TruthfulQA MC1/MC2 0-shot) and
held-out loss.

Run from the repository root::

    hf-uniform eval --model out/run --output_dir out/run/eval
    hf-uniform eval --model out/run --output_dir out/eval --data_dir ../shared/data/eval --limit 8 \\
        --heldout heldout.jsonl
    hf-uniform eval --config my_eval.yaml --tasks arc_challenge:10,hellaswag:0 --device cuda
    python recipes/eval.py --model out/run   # the same

The task YAMLs ship in ``hf_uniform/eval_tasks`` and read the Hub datasets; ``--data_dir`` points them at
local files (the layout of ``../shared/data/eval``). Writes ``results.json`` and ``summary.md``. Every field
of :class:`hf_uniform.evaluation.EvalArguments` can be set in a YAML (``--config``) or on the command line (the
command line wins); ``--help`` lists them. :func:`main` is the whole run: held-out loss → benchmarks →
results; the components come from :mod:`hf_uniform.evaluation` (``evaluate_checkpoint`` runs the same steps
in one call).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ..arguments import script_parser
from ..evaluation import (
    EvalArguments,
    check_eval_args,
    checkpoint_heldout_loss,
    parse_eval_args,
    run_lm_eval,
    summary_table,
    write_results,
)
from . import SCRIPTS, run_script

logger = logging.getLogger(__name__)


def main(args: EvalArguments) -> dict[str, Any]:
    """Evaluate ``args.model``; returns the record also written to ``OUTPUT_DIR/results.json``.

    Prints the summary table and the results path (the command's result). Bad arguments are refused before
    any model is loaded.

    Example:
        >>> main(EvalArguments(model="./no/such/ckpt"))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.MissingFileError: model ./no/such/ckpt not found locally (...); pass a checkpoint folder
    """
    check_eval_args(args)  # model found, data folder, task list, something to evaluate: before the slow parts
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
    out = args.results_dir()
    limit = args.limit_value()
    result: dict[str, Any] = {"model": str(args.model), "device": args.device, "dtype": args.dtype}

    # Held-out loss: mean per-token cross-entropy on the response tokens, the prompt rendered as in training.
    if args.heldout is not None:
        result["heldout"] = checkpoint_heldout_loss(
            args.model, args.heldout, device=args.device, dtype=args.dtype, max_length=args.heldout_max_length,
            prompt_format=args.heldout_prompt_format,
            limit=args.heldout_limit if args.heldout_limit is not None else limit,  # --limit bounds it too
            progress=not args.no_progress)

    # Benchmarks: lm-eval on the shipped task YAMLs (Hub datasets, or local files with --data_dir).
    if not args.skip_lm_eval:
        result["lm_eval"] = run_lm_eval(
            args.model, args.tasks, work_dir=out, data_dir=args.data_dir, limit=limit,
            batch_size=args.lm_eval_batch_size(), device=args.device, dtype=args.dtype)

    # Results: results.json (everything, lm-eval's raw output included) and summary.md (one table).
    path = write_results(out, result)
    print(summary_table(result))
    print(f"results: {path}")
    return result


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None) -> Any:
    """``TrlParser`` over :class:`~hf_uniform.evaluation.EvalArguments` (``--config FILE.yaml``, then the command
    line); with ``subparsers`` (a ``TrlParser``'s), the sub-command ``eval``.

    Example:
        >>> make_parser(prog="hf-uniform eval").parse_args_and_config(["--model", "m"])[0].model
        'm'
    """
    return script_parser((EvalArguments,), prog=prog, subparsers=subparsers, name="eval", help=SCRIPTS["eval"])


def cli(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run :func:`main`; return the exit status (2 for bad input,
    with one line ``PROG: error: ...``).

    Example:
        >>> cli(["--limit", "8"])  # no --model
        2
    """
    def run() -> None:
        main(parse_eval_args(argv, make_parser(prog=prog)))

    return run_script(prog or "eval", run)


if __name__ == "__main__":
    sys.exit(cli())
