"""The paper's study on your data: uniform vs random vs the mixed baseline vs full, with one command.

Run from the repository root::

    python recipes/compare.py --config recipes/configs/compare_cpu_reference.yaml
    python recipes/compare.py --pool ../shared/data/instruct/alpaca_9k.jsonl --k 4500 \\
        --recipe recipes/configs/compare_tiny_llama_cpu.yaml --seeds 0 1 --output_dir out/compare

A fixed held-out split of the pool is set aside first; every arm (uniform max-min, random of the same
size, the paper's mixed baseline, the full pool) is trained with the same SFT recipe (the function behind
``recipes/sft.py``) and evaluated (held-out loss, lm-eval). Writes ``report.json``, ``report.md`` and
``plots/*.png`` to ``--output_dir``; finished arm/seed runs are read back on a rerun. Every field of
``hf_uniform.study.StudyConfig`` can be set in the YAML or on the command line (the command line wins).
The logic lives in ``hf_uniform.study``.
"""

import sys

from hf_uniform.study import main

if __name__ == "__main__":
    sys.exit(main())
