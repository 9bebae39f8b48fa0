"""Evaluate a checkpoint: lm-evaluation-harness (ARC-Challenge 25-shot, TruthfulQA MC1/MC2 0-shot) and
held-out loss.

Run from the repository root::

    python recipes/eval.py --model out/run --output_dir out/run/eval
    python recipes/eval.py --model out/run --output_dir out/eval --data_dir ../shared/data/eval --limit 8 \\
        --heldout heldout.jsonl
    python recipes/eval.py --config my_eval.yaml --tasks arc_challenge:10,hellaswag:0 --device cuda

The task YAMLs ship in ``hf_uniform/eval_tasks`` and read the Hub datasets; ``--data_dir`` points them at
local files (the layout of ``../shared/data/eval``). Writes ``results.json`` and ``summary.md``. Every field
of ``hf_uniform.evaluation.EvalArguments`` can be set in a YAML (``--config``) or on the command line.
The logic lives in ``hf_uniform.evaluation``.
"""

import sys

from hf_uniform.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
