"""Evaluate a checkpoint: lm-evaluation-harness (ARC-Challenge 25-shot, TruthfulQA MC1/MC2 0-shot) and
held-out loss.

The code is :mod:`hf_uniform.scripts.eval` (``hf-uniform eval`` runs the same). Run from the repository root::

    python recipes/eval.py --model out/run --output_dir out/run/eval
    python recipes/eval.py --model out/run --output_dir out/eval --data_dir ../shared/data/eval --limit 8 \\
        --heldout heldout.jsonl
    python recipes/eval.py --config my_eval.yaml --tasks arc_challenge:10,hellaswag:0 --device cuda

Writes ``results.json`` and ``summary.md``. Every field of ``hf_uniform.evaluation.EvalArguments`` can be set
in a YAML (``--config``) or on the command line (the command line wins); ``--help`` lists them.
``main(args)`` is the whole run: held-out loss → benchmarks → results. Bad input exits with status 2 and one
line ``eval: error: ...``.
"""

import sys

from hf_uniform.scripts.eval import cli, main, make_parser

__all__ = ["cli", "main", "make_parser"]

if __name__ == "__main__":
    sys.exit(cli(prog="eval"))
