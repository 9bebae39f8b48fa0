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

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
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
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        gensim.setLevel(saved[1])


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
