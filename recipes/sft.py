"""Supervised fine-tuning on a uniform (or random, or full) subset, timing the loss to thresholds.

Run from the repository root::

    accelerate launch recipes/sft.py --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke
    accelerate launch --config_file recipes/configs/accelerate_zero3_offload_adamw.yaml \\
        recipes/sft.py --config recipes/configs/table1_alpaca_adamw.yaml --uniform_k 1000

Every argument of ``SFTConfig``, ``ModelConfig`` and ``hf_uniform.train.UniformSFTArguments`` can be set in
the YAML or on the command line (the command line wins). ``--optim l2_sgd`` selects the paper's ℓ2-SGD
regime. The logic lives in ``hf_uniform.train.sft``.
"""

import sys

from hf_uniform.train.sft import main

if __name__ == "__main__":
    sys.exit(main())
