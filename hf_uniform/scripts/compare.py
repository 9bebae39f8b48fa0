"""The paper's study on your data: uniform vs random vs the mixed baseline vs full, with one command.

Run from the repository root::

    hf-uniform compare --config recipes/configs/compare_cpu_reference.yaml
    hf-uniform compare --pool ../shared/data/instruct/alpaca_9k.jsonl --k 4500 \\
        --recipe recipes/configs/compare_tiny_llama_cpu.yaml --seeds 0 1 --output_dir out/compare
    hf-uniform compare --config recipes/configs/compare_smollm2_finetune.yaml --report_only true
    python recipes/compare.py --config recipes/configs/compare_cpu_reference.yaml   # the same

A fixed held-out split of the pool is set aside first; every arm (uniform max-min, random of the same
size, the paper's mixed baseline, a length-matched random subset, the full pool) is trained with the same
SFT recipe (the one ``hf-uniform sft`` takes, run by :func:`hf_uniform.scripts.sft.main`) and evaluated
(held-out loss, lm-eval). Writes ``report.json``, ``report.md`` and ``plots/*.png`` to ``--output_dir``;
finished arm/seed runs (``runs/<arm>-seed<s>.json``) are read back on a rerun, and ``--report_only true``
rewrites the report from them without training. A run of some arms or seeds (``--arms full --seeds 3``)
trains those and still reports every finished run in ``--output_dir``.

Every field of :class:`hf_uniform.study.StudyConfig` can be set in the YAML (``--config``) or on the command
line (the command line wins); ``--help`` lists them. The components live in :mod:`hf_uniform.study`:
``Study`` (pool, split, arms, one train + evaluate job), ``build_report`` and ``StudyReport``
(``report.json``, ``report.md``). Bad input exits with status 2 and one line ``PROG: error: ...``.
``HF_UNIFORM_LOG_LEVEL`` sets the log level.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..arguments import parse_config_args, script_parser
from ..errors import UniformError
from ..study import ARMS, Study, StudyConfig, StudyReport, build_report, job_order, write_report
from . import SCRIPTS, run_script

logger = logging.getLogger(__name__)


def main(cfg: StudyConfig) -> StudyReport:
    """Run (or resume) the study: pool -> held-out split -> arms -> train/eval jobs -> report -> write.

    Every arm is trained by :func:`hf_uniform.scripts.sft.main`, in this process. Settings that cannot work
    are refused before the pool is read.

    Example:
        >>> main(StudyConfig(pool="p.jsonl", recipe="no_such_recipe.yaml"))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.MissingFileError: recipe no_such_recipe.yaml not found; pass an SFT recipe YAML
    """
    from tqdm.auto import tqdm

    cfg.validate()
    if cfg.num_threads:
        import torch

        torch.set_num_threads(int(cfg.num_threads))
    t0 = time.perf_counter()
    from .sft import main as sft_main  # TRL, transformers, torch: after the settings are checked

    study = Study(cfg, train=sft_main)  # every arm: hf_uniform.scripts.sft.main, in this process
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
    # a run of some arms or seeds (--arms full --seeds 3) still reports the whole study in OUTPUT_DIR
    others = [] if cfg.report_only else study.other_finished_runs()
    if others:
        runs, missing = _read_other_runs(cfg, study, runs, others)
    if cfg.report_only or others:
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


def _read_other_runs(cfg: StudyConfig, study: Study, runs: list[dict[str, Any]],
                     others: list[tuple[str, int]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Widen ``cfg`` to the arms and seeds of the finished records ``others`` and read them back.

    A record written with other settings is left out of the report, with a warning (the runs just trained
    are fine; a full rerun would refuse that record).
    """
    logger.info("the report also reads %d finished run(s) of other arms or seeds in %s", len(others), study.out)
    cfg.arms = [a for a in ARMS if a in cfg.arms or any(a == o for o, _ in others)]
    cfg.seeds = sorted(set(cfg.seeds) | {s for _, s in others})
    study.build_arms()  # the rows of every arm and seed the report covers (cached)
    done = {(r["arm"], r["seed"]) for r in runs}
    runs, missing = list(runs), []
    for arm, seed in job_order(cfg.arms, cfg.seeds, cfg.run_order):
        if (arm, seed) in done:
            continue
        if not study.record_path(arm, seed).exists():
            missing.append(f"{arm}-seed{seed}")
            continue
        try:
            runs.append(study.run_one(arm, seed))  # the record exists: read back, never trained
        except UniformError as exc:
            logger.warning("left out of the report: %s", exc)
            missing.append(f"{arm}-seed{seed}")
    return runs, missing


def parse_args(argv: Sequence[str], parser: Any = None, command: str = "hf-uniform compare") -> StudyConfig:
    """``[--config FILE.yaml] [--key value ...]`` into a :class:`StudyConfig` (the command line wins).

    ``cfg.command`` (the report's "Reproduce" line) is ``command`` followed by ``argv`` without
    ``--report_only``, unless the arguments set it. ``parser`` defaults to :func:`make_parser`'s.

    Example:
        >>> cfg = parse_args(["--pool", "p.jsonl", "--k", "10", "--report_only", "true"])
        >>> cfg.k, cfg.command
        (10, 'hf-uniform compare --pool p.jsonl --k 10')
    """
    (cfg,) = parse_config_args(parser if parser is not None else make_parser(), argv, "compare")
    if not cfg.command:  # the command that reproduces the runs (a report-only pass trains nothing)
        kept = [a for i, a in enumerate(argv) if not (a.startswith("--report_only")
                or (i and argv[i - 1] == "--report_only"))]
        cfg.command = f"{command} {shlex.join(kept)}"
    return cfg


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None) -> Any:
    """``TrlParser`` over :class:`~hf_uniform.study.StudyConfig` (``--config FILE.yaml``, then the command line);
    with ``subparsers`` (a ``TrlParser``'s), the sub-command ``compare``.

    Example:
        >>> make_parser(prog="hf-uniform compare").prog
        'hf-uniform compare'
    """
    return script_parser((StudyConfig,), prog=prog, subparsers=subparsers, name="compare", help=SCRIPTS["compare"])


def cli(argv: Sequence[str] | None = None, prog: str | None = None, command: str | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run :func:`main`, print the verdict and the report's path;
    return the exit status (2 for bad input, with one line ``PROG: error: ...``).

    ``command`` starts the reproducing command recorded in the report (default ``prog``, else
    ``hf-uniform compare``).

    Example:
        >>> cli(["--pool", "p.jsonl", "--recipe", "no_such_recipe.yaml"], prog="compare")
        2
    """
    args = list(argv) if argv is not None else sys.argv[1:]

    def run() -> None:
        cfg = parse_args(args, make_parser(prog=prog), command=command or prog or "hf-uniform compare")
        report = main(cfg)
        for line in report.verdict_summary or report.verdict:  # the verdicts, or why there is none
            print(line.replace("**", ""))
        print(f"report: {Path(cfg.output_dir) / 'report.md'}")

    return run_script(prog or "compare", run)


if __name__ == "__main__":
    sys.exit(cli())
