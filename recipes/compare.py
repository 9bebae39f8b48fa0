"""The paper's study on your data: uniform vs random vs the mixed baseline vs full, with one command.

Run from the repository root::

    python recipes/compare.py --config recipes/configs/compare_cpu_reference.yaml
    python recipes/compare.py --pool ../shared/data/instruct/alpaca_9k.jsonl --k 4500 \\
        --recipe recipes/configs/compare_tiny_llama_cpu.yaml --seeds 0 1 --output_dir out/compare
    python recipes/compare.py --config recipes/configs/compare_smollm2_finetune.yaml --report_only true

A fixed held-out split of the pool is set aside first; every arm (uniform max-min, random of the same
size, the paper's mixed baseline, a length-matched random subset, the full pool) is trained with the same
SFT recipe (the one ``recipes/sft.py`` takes) and evaluated (held-out loss, lm-eval). Writes ``report.json``,
``report.md`` and ``plots/*.png`` to ``--output_dir``; finished arm/seed runs (``runs/<arm>-seed<s>.json``)
are read back on a rerun, and ``--report_only true`` rewrites the report from them without training.

Every field of ``hf_uniform.study.StudyConfig`` can be set in the YAML (``--config``) or on the command line
(the command line wins); ``--help`` lists them. The components live in ``hf_uniform.study``: ``Study`` (pool,
split, arms, one train + evaluate job), ``build_report`` and ``StudyReport`` (``report.json``, ``report.md``).
Bad input exits with status 2 and one line ``compare: error: ...``. ``HF_UNIFORM_LOG_LEVEL`` sets the log level.
"""

from __future__ import annotations

import logging
import os
import runpy
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hf_uniform.arguments import parse_config_args
from hf_uniform.errors import UniformError
from hf_uniform.study import Study, StudyConfig, StudyReport, build_report, job_order, write_report

logger = logging.getLogger("compare")


def parse_args(argv: Sequence[str]) -> StudyConfig:
    """``[--config FILE.yaml] [--key value ...]`` into a :class:`StudyConfig` (the command line wins)."""
    from trl import TrlParser

    (cfg,) = parse_config_args(TrlParser((StudyConfig,)), argv, "compare")
    if not cfg.command:  # the command that reproduces the runs (a report-only pass trains nothing)
        kept = [a for i, a in enumerate(argv) if not (a.startswith("--report_only")
                or (i and argv[i - 1] == "--report_only"))]
        cfg.command = "python recipes/compare.py " + shlex.join(kept)
    return cfg


def run(cfg: StudyConfig) -> StudyReport:
    """Run (or resume) the study: pool -> held-out split -> arms -> train/eval jobs -> report -> write."""
    from tqdm.auto import tqdm

    cfg.validate()
    if cfg.num_threads:
        import torch

        torch.set_num_threads(int(cfg.num_threads))
    t0 = time.perf_counter()
    study = Study(cfg, train=runpy.run_path(str(Path(__file__).with_name("sft.py")))["main"])  # recipes/sft.py
    study.load_pool()  # the pool and its held-out split (split.json), taken before anything else
    study.embed_pool()  # the training pool's embeddings (cached in WORK_DIR/embeddings)
    study.build_arms()  # each seed's pool draw and every arm's rows (arms.json)

    runs, missing = [], []
    jobs = job_order(cfg.arms, cfg.seeds, cfg.run_order)
    with tqdm(total=len(jobs), desc="study runs", unit="run", disable=not cfg.progress) as bar:
        for i, (arm, seed) in enumerate(jobs, 1):
            bar.set_postfix_str(f"{arm} seed {seed}")
            logger.info("run %d/%d: %s seed %d", i, len(jobs), arm, seed)
            if cfg.report_only and not study.record_path(arm, seed).exists():
                missing.append(f"{arm}-seed{seed}")
            else:
                runs.append(study.run_one(arm, seed))  # trains and evaluates, or reads the finished record
            bar.update(1)
    if cfg.report_only:
        if not runs:
            raise UniformError(f"report_only: no run has finished (missing {missing}); run the study first")
        # arms are aggregated over the seeds they finished; paired differences use the seeds both arms finished
        cfg.seeds = [s for s in cfg.seeds if any(r["seed"] == s for r in runs)]
        cfg.arms = [a for a in cfg.arms if any(r["arm"] == a for r in runs)]

    report = build_report(cfg, study, runs, missing_runs=missing)
    report.seconds_total = time.perf_counter() - t0
    path = write_report(report, study.out)
    logger.info("report written to %s", path)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, print the verdict; bad input exits with status 2 and a one-line message."""
    logging.basicConfig(level=os.environ.get("HF_UNIFORM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cfg = parse_args(args)
        report = run(cfg)
    except UniformError as err:
        print(f"compare: error: {err}", file=sys.stderr)
        return 2
    for line in report.verdict:
        print(line)
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
