"""Supervised fine-tuning on a uniform subset (or a paper baseline, or the full pool), timed to loss thresholds.

Run from the repository root::

    accelerate launch recipes/sft.py --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke
    accelerate launch --config_file recipes/configs/paper/accelerate_1gpu_adamw.yaml \\
        recipes/sft.py --config recipes/configs/paper/llama7b_teamsrl9k_adamw.yaml --subset_method mixed

Every argument of ``SFTConfig``, ``ModelConfig`` and ``hf_uniform.train.UniformSFTArguments`` can be set in
the YAML or on the command line (the command line wins). ``--optim l2_sgd`` selects the paper's ℓ2-SGD
regime. ``recipes/configs/paper/`` holds one YAML per experiment of the paper. The logic lives in
``hf_uniform.train.sft``.
"""

import sys

from hf_uniform.train.sft import main

if __name__ == "__main__":
    sys.exit(main())
