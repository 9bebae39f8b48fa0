"""Recipe arguments: dataclasses from ``--config FILE.yaml`` and the command line, with one-line errors.

The recipes (``recipes/sft.py``, ``eval.py``, ``compare.py``) parse their dataclasses with TRL's
``TrlParser`` (a YAML ``--config`` gives defaults, the command line wins) through :func:`parse_config_args`,
so a bad value or an unknown argument is a :class:`~hf_uniform.errors.UniformError` that names it.

>>> from dataclasses import dataclass
>>> from transformers import HfArgumentParser
>>> @dataclass
... class Args:
...     k: int = 1
>>> parse_config_args(HfArgumentParser((Args,)), ["--k", "3"], "demo")
[Args(k=3)]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from .errors import UniformError


def parse_config_args(parser: Any, argv: Sequence[str] | None, what: str) -> list[Any]:
    """The dataclasses ``parser`` fills from ``argv`` (default ``sys.argv[1:]``), in the parser's order.

    ``parser`` is a ``TrlParser`` (``--config FILE.yaml`` read first) or a plain ``HfArgumentParser``.
    ``--help`` exits 0 as argparse does; anything else argparse or a dataclass refuses, and every argument
    no dataclass knows, raises a one-line :class:`~hf_uniform.errors.UniformError` naming ``what``.

    Example:
        >>> from dataclasses import dataclass
        >>> from transformers import HfArgumentParser
        >>> @dataclass
        ... class Args:
        ...     k: int = 1
        >>> parse_config_args(HfArgumentParser((Args,)), ["--kk", "3"], "demo")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: unknown demo arguments ['--kk', '3']; check the spelling (see --help) or remove them
    """
    parse = getattr(parser, "parse_args_and_config", None) or parser.parse_args_into_dataclasses
    try:
        out = parse(list(argv) if argv is not None else sys.argv[1:], return_remaining_strings=True)
    except UniformError:
        raise
    except SystemExit as err:
        if not err.code:  # --help printed the usage: exit 0 as argparse does
            raise
        raise UniformError(f"bad {what} arguments (exit status {err.code}); see --help") from err
    except ValueError as err:
        raise UniformError(f"bad {what} arguments: {str(err).splitlines()[0]}") from err
    *parsed, rest = out
    if rest:
        raise UniformError(f"unknown {what} arguments {rest}; check the spelling (see --help) or remove them")
    return parsed
