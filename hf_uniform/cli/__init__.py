"""The ``hf-uniform`` command line.

``hf-uniform select INPUT -k K -o OUT`` writes the uniform subset and its evidence; ``hf-uniform stats``
prints a uniformity report; ``hf-uniform push`` publishes a selection to the Hub. Every argument, the
template and the output folder are checked before any data is read; bad input exits with status 2 and a
one-line message, without a traceback; Ctrl-C exits with status 130.

``hf-uniform sft|eval|compare [--config FILE.yaml] [--key value ...]`` run the scripts of
:mod:`hf_uniform.scripts` in this process (their own parsers, imported only then, so ``hf-uniform --help``
stays instant); under ``accelerate launch`` use ``recipes/sft.py`` or ``-m hf_uniform.scripts.sft``.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence

from ..errors import UniformError
from ..preflight import (
    DEVICES_HELP,
    HELDOUT_FILE,
    MEANING,
    OUTPUT_EXTRA,
    OUTPUT_STEMS,
    OUTPUT_SUFFIXES,
    SELECTION_FILE,
    check_device,
    check_output_folder,
    check_previous_selection,
    text_pool,
)
from ..scripts import SCRIPTS
from .args import _heldout_value, _k_value, _Parser
from .select import select_command
from .stats import stats_command

SCRIPT_NAMES = tuple(SCRIPTS)

__all__ = ["DEVICES_HELP", "HELDOUT_FILE", "MEANING", "OUTPUT_EXTRA", "OUTPUT_STEMS", "OUTPUT_SUFFIXES",
           "SELECTION_FILE", "build_parser", "check_device", "check_output_folder", "check_previous_selection",
           "main", "select_command", "stats_command", "text_pool"]


def _add_data_args(p: argparse.ArgumentParser) -> None:
    """The input and the options that decide the embedding (generated from :class:`~hf_uniform.spine.SelectConfig`)."""
    from ..spine import STATS_FIELDS, add_config_arguments

    p.add_argument("input", help="a .json/.jsonl/.parquet/.csv file, a save_to_disk folder, or a Hub dataset id")
    p.add_argument("--split", default="train", help="split of a DatasetDict or Hub dataset (default: train)")
    p.add_argument("--revision", metavar="REV", help="branch, tag or commit id of a Hub dataset (default: main); "
                   "select records the commit it read as input_revision")
    add_config_arguments(p, STATS_FIELDS)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result: no progress bars or logs")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hf-uniform`` (imports nothing heavy, so ``--help`` is instant).

    Example:
        >>> build_parser().parse_args(["select", "data.jsonl", "-k", "10", "-o", "out"]).k
        10
    """
    parser = _Parser(prog="hf-uniform", description="hf-uniform: uniform (greedy max-min) subsets of datasets, "
                     "and the scripts that fine-tune and evaluate on them")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"hf-uniform {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sel = sub.add_parser("select", help="select a uniform subset (greedy max-min) and write it with its evidence")
    _add_data_args(sel)
    sel.add_argument("-k", type=_k_value, required=True,
                     help="subset size: a whole number of rows, or a fraction in (0, 1) such as 0.5")
    sel.add_argument("-o", "--output", required=True, help="output folder (must not hold the input)")
    sel.add_argument("--format", choices=("jsonl", "parquet", "csv"),
                     help="subset file format (default: the input's: csv for .csv, parquet for .parquet, "
                          "else jsonl)")
    sel.add_argument("--heldout", type=_heldout_value, metavar="N",
                     help="first set aside N rows (a count, or a fraction in (0, 1)) drawn with --seed and write "
                          "them unchanged to OUT/heldout.jsonl; the subset and the baselines are chosen from the "
                          "other rows only. The held-out rows depend on the input's row count, N and --seed, "
                          "never on -k; row indices in selection.json are the input's row numbers")
    sel.add_argument("--baselines", action="store_true",
                     help="also write random.* and mixed.* (the paper's half-random baseline) of the same size")
    sel.add_argument("--overwrite", action="store_true",
                     help="replace an earlier selection in the output folder (all of its files)")
    sel.add_argument("--no-plot", action="store_true", help="do not draw uniformity.png")
    from ..spine import STATS_FIELDS, SelectConfig, add_config_arguments

    add_config_arguments(sel, [f.name for f in dataclasses.fields(SelectConfig)  # the selection options
                               if f.metadata.get("flag", True) and f.name not in STATS_FIELDS])
    sel.set_defaults(func=select_command)

    st = sub.add_parser("stats", help="print the uniformity report (h, coverage) of a pool or a subset of it")
    _add_data_args(st)
    st.add_argument("--subset", help="a subset file written by select (default: report the pool alone)")
    st.set_defaults(func=stats_command)

    from .push import add_push_parser

    add_push_parser(sub)
    for name, text in SCRIPTS.items():  # parsed by the script itself (see _run_script)
        sub.add_parser(name, help=f"{text} (--config FILE.yaml; see hf-uniform {name} --help)", add_help=False)
    return parser


def _run_script(name: str, argv: list[str]) -> int:
    """``hf-uniform NAME ...``: the script's own ``cli`` on the arguments after ``NAME`` (as TRL's ``trl sft``)."""
    import importlib

    return int(importlib.import_module(f"..scripts.{name}", __package__).cli(argv, prog=f"hf-uniform {name}"))



# ---------------------------------------------------------------------------------------------- main


def _configure_output(quiet: bool) -> Callable[[], None]:
    """Our log lines on stderr (once each); -q: only warnings, and no progress bar from any library.

    Returns a function that puts the loggers back as they were (``main`` may run inside another program,
    e.g. a notebook or a test session, whose logging must not change).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    lg, root = logging.getLogger("hf_uniform"), logging.getLogger()
    libraries = [logging.getLogger(name) for name in ("datasets", "huggingface_hub", "transformers")]
    saved = (lg.handlers[:], lg.propagate, lg.level, root.level, [lib.level for lib in libraries])

    def restore() -> None:
        lg.handlers[:], lg.propagate = saved[0], saved[1]
        lg.setLevel(saved[2])
        root.setLevel(saved[3])
        for lib, level in zip(libraries, saved[4], strict=True):
            lib.setLevel(level)

    lg.handlers[:] = [handler]
    lg.propagate = False
    lg.setLevel(logging.ERROR if quiet else logging.INFO)
    if quiet:
        for var, value in (("TQDM_DISABLE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                           ("TRANSFORMERS_VERBOSITY", "error"), ("DATASETS_VERBOSITY", "error"),
                           ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")):
            os.environ[var] = value
        logging.getLogger().setLevel(logging.ERROR)
        for lib in libraries:  # already imported (hf_uniform imports datasets): their *_VERBOSITY was read
            lib.setLevel(logging.ERROR)
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
    return restore


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hf-uniform``; returns the exit status (2 for bad input, 130 on Ctrl-C).

    Example:
        >>> main(["select", "missing.jsonl", "-k", "3", "-o", "out", "-q"])
        2
    """
    parser = build_parser()
    argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        args, rest = parser.parse_known_args(argv)
        if args.command not in SCRIPT_NAMES and rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    except SystemExit as err:  # --help, --version (0) or a bad argument (2, one line already printed)
        return int(err.code or 0)
    if args.command in SCRIPT_NAMES:
        return _run_script(args.command, argv[argv.index(args.command) + 1:])
    args.argv = argv
    restore_logging = _configure_output(getattr(args, "quiet", False))
    code = 0
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except UniformError as err:
        print(f"hf-uniform: error: {_one_line(err)}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("hf-uniform: interrupted; nothing was left half-written (rerun to start again)", file=sys.stderr)
        code = 130
    except MemoryError:
        print("hf-uniform: error: out of memory; use a smaller pool, --max-memory, or a machine with more RAM",
              file=sys.stderr)
        code = 2
    except OSError as err:
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        if err.errno in (errno.EPIPE,):
            code = 0
        else:
            what = err.strerror or _one_line(err)
            print(f"hf-uniform: error: cannot read or write{where}: {what}", file=sys.stderr)
            code = 2
        try:  # stdout itself may be what failed (e.g. > /dev/full): do not fail again at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    finally:
        if "torch.distributed" in sys.modules:  # a group init_distributed made for this command
            from ..distributed import close_distributed

            close_distributed()
        restore_logging()
    return code

