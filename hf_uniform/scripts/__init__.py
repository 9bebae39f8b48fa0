"""The scripts, inside the package as TRL 1.x keeps its own: ``sft``, ``eval`` and ``compare``.

Each module has ``make_parser(subparsers=None, prog=None)`` (its ``TrlParser``: ``--config FILE.yaml`` gives
the defaults, the command line wins; ``--help`` lists every option), ``main(...)`` (the whole run, on parsed
arguments, called in-process by the comparison study and the tests) and ``cli(argv=None, prog=None)`` (parse,
run, return the exit status: 2 with one line ``PROG: error: ...`` for bad input). Run them as::

    hf-uniform sft --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke
    hf-uniform eval --model runs/smoke --output_dir runs/smoke/eval
    hf-uniform compare --config recipes/configs/compare_cpu_reference.yaml
    accelerate launch recipes/sft.py --config recipes/configs/smoke_cpu.yaml   # or -m hf_uniform.scripts.sft

``recipes/sft.py``, ``eval.py`` and ``compare.py`` are the documented entry points of the same code.
Importing this package is cheap (:data:`SCRIPTS` is what ``hf-uniform --help`` lists); a script's module
imports TRL and torch.

>>> sorted(SCRIPTS)
['compare', 'eval', 'sft']
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import UniformError

#: the scripts and their one-line descriptions (``hf-uniform --help``)
SCRIPTS = {
    "sft": "fine-tune on a uniform subset (or a baseline, or the full pool) with TRL, timed to loss thresholds",
    "eval": "evaluate a checkpoint: lm-eval (ARC-Challenge, TruthfulQA MC1/MC2) and held-out loss",
    "compare": "the paper's study on your data: uniform vs random vs mixed vs full, trained and evaluated",
}

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def script_logging() -> Iterator[None]:
    """Log lines on stderr while a script runs (level ``HF_UNIFORM_LOG_LEVEL``, default ``INFO``; gensim at
    ``WARNING``), as a script's ``logging.basicConfig`` would; the caller's logging is put back afterwards.

    Example:
        >>> with script_logging():
        ...     logging.getLogger().level == logging.getLevelName(os.environ.get("HF_UNIFORM_LOG_LEVEL", "INFO"))
        True
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root, gensim = logging.getLogger(), logging.getLogger("gensim")
    saved = (root.level, gensim.level)
    root.addHandler(handler)
    root.setLevel(os.environ.get("HF_UNIFORM_LOG_LEVEL", "INFO").upper())
    gensim.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(), _no_cpu_accelerator_warning():
            for message in QUIET_WARNINGS:  # upstream noise on every successful run, nothing the user can act on
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        gensim.setLevel(saved[1])


#: warnings that third-party code emits on every successful run and that ask nothing of the user: transformers'
#: token counter copies a tensor with ``torch.tensor`` (its own code, every step)
QUIET_WARNINGS = (r"To copy construct from a tensor, it is recommended to use sourceTensor\.detach\(\)\.clone\(\)",)


@contextlib.contextmanager
def _no_cpu_accelerator_warning() -> Iterator[None]:
    """DeepSpeed logs ``[WARNING] Setting accelerator to CPU. If you have GPU ...`` when it finds no GPU on
    import; on a machine without CUDA, name the CPU accelerator it would pick anyway (``DS_ACCELERATOR=cpu``)
    so the run stays quiet. A user's own ``DS_ACCELERATOR`` is kept; the variable is put back afterwards.

    Example:
        >>> with _no_cpu_accelerator_warning():
        ...     pass
    """
    import importlib.util

    if "DS_ACCELERATOR" in os.environ or importlib.util.find_spec("deepspeed") is None:
        yield
        return
    import torch

    if torch.cuda.is_available():
        yield
        return
    os.environ["DS_ACCELERATOR"] = "cpu"
    try:
        yield
    finally:
        os.environ.pop("DS_ACCELERATOR", None)


def run_script(prog: str, run: Callable[[], Any]) -> int:
    """Run ``run()`` under :func:`script_logging`; return the exit status: 0, 2 after one line
    ``PROG: error: ...`` on stderr for a :class:`~hf_uniform.errors.UniformError` (no traceback), argparse's
    status for ``--help`` (0) and its own errors.

    Example:
        >>> def bad():
        ...     raise UniformError("no data")
        >>> import contextlib, io
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     run_script("demo", bad)
        2
        >>> err.getvalue()
        'demo: error: no data\\n'
    """
    with script_logging():
        try:
            run()
        except UniformError as err:
            print(f"{prog}: error: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}",
                  file=sys.stderr)
            return 2
        except SystemExit as err:  # --help (0) or an error argparse printed itself
            return err.code if isinstance(err.code, int) else (0 if err.code is None else 2)
    return 0


HELP_ALL = "--help_all"


class _HelpAllAction(argparse.Action):
    """``--help_all``: print every option (the full TRL / transformers list) and exit 0."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        print(parser._hfu_full_help(), end="")  # type: ignore[attr-defined]
        parser.exit()


def short_help(parser: Any, ours: Iterable[type], keep: Iterable[str] = ()) -> Any:
    """Make ``parser``'s ``--help`` list only our options plus the few inherited ones in ``keep``, and add
    ``--help_all`` for the full list (TRL's ``SFTConfig`` / transformers' ``TrainingArguments`` add ~300).

    Every option still parses as before; only the text of ``--help`` changes. Returns ``parser``.

    Args:
        parser: an ``argparse`` parser (``TrlParser`` / ``HfArgumentParser``).
        ours: dataclasses whose every field is listed (fields they inherit from a base dataclass are not,
            unless named in ``keep``).
        keep: ``dest`` names of inherited options to list too.

    Example:
        >>> from dataclasses import dataclass
        >>> from transformers import HfArgumentParser
        >>> @dataclass
        ... class Base:
        ...     lots: int = 0
        ...     seed: int = 1
        >>> @dataclass
        ... class Mine(Base):
        ...     k: int = 2
        >>> p = short_help(HfArgumentParser((Mine,), prog="demo"), [Mine], keep=["seed"])
        >>> text = p.format_help()
        >>> "--k" in text, "--seed" in text, "--lots" in text, "--help_all" in text
        (True, True, False, True)
    """
    import dataclasses

    listed = {"help", "config", *keep}
    for cls in ours:
        inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base)
                     for f in dataclasses.fields(base)}
        listed |= {f.name for f in dataclasses.fields(cls) if f.name not in inherited}
    full_help = parser.format_help
    parser._hfu_full_help = full_help
    parser.add_argument(HELP_ALL, action=_HelpAllAction,
                        help="show every option (TRL SFTConfig, transformers TrainingArguments, ModelConfig) and exit")
    listed.add(HELP_ALL)

    def format_help() -> str:
        shown = [a for a in parser._actions
                 if a.dest in listed or HELP_ALL in a.option_strings or "-h" in a.option_strings]
        hidden = len({a.dest for a in parser._actions} - {a.dest for a in shown})
        formatter = parser._get_formatter()
        formatter.add_usage(f"{parser.prog} [--config FILE.yaml] [OPTIONS]", [], [], prefix="usage: ")
        formatter.add_text(parser.description)
        for group in parser._action_groups:
            actions = [a for a in group._group_actions if a in shown]
            if actions:
                formatter.start_section(group.title)
                formatter.add_arguments(actions)
                formatter.end_section()
        formatter.add_text(f"{hidden} more options (the rest of TRL's SFTConfig, transformers' TrainingArguments "
                           "and ModelConfig) are accepted too, on the command line or in --config; to list them:")
        return formatter.format_help() + f"\n  {parser.prog} {HELP_ALL}\n"

    parser.format_help = format_help
    return parser
