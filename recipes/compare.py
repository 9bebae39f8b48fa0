"""The paper's study on your data: uniform vs random vs the mixed baseline vs full, with one command.

The code is :mod:`hf_uniform.scripts.compare` (``hf-uniform compare`` runs the same). Run from the
repository root::

    python recipes/compare.py --config recipes/configs/compare_cpu_reference.yaml
    python recipes/compare.py --pool ../shared/data/instruct/alpaca_9k.jsonl --k 4500 \\
        --recipe recipes/configs/compare_tiny_llama_cpu.yaml --seeds 0 1 --output_dir out/compare
    python recipes/compare.py --config recipes/configs/compare_smollm2_finetune.yaml --report_only true

Every arm is trained by ``hf_uniform.scripts.sft.main`` (the code of ``recipes/sft.py``) and evaluated;
``report.json``, ``report.md`` and ``plots/*.png`` go to ``--output_dir``, finished runs are read back on a
rerun. Every field of ``hf_uniform.study.StudyConfig`` can be set in the YAML (``--config``) or on the command
line (the command line wins); ``--help`` lists them. ``main(cfg)`` (also ``run(cfg)``) runs the study and
returns its ``StudyReport``. Bad input exits with status 2 and one line ``compare: error: ...``.
"""

import sys

from hf_uniform.scripts.compare import cli, main, make_parser, parse_args

run = main  # the study's driver under its earlier name

__all__ = ["cli", "main", "make_parser", "parse_args", "run"]

if __name__ == "__main__":
    sys.exit(cli(prog="compare", command="python recipes/compare.py"))
