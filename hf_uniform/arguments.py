"""Script arguments: dataclasses from ``--config FILE.yaml`` and the command line, with one-line errors.

The scripts (:mod:`hf_uniform.scripts`: ``sft``, ``eval``, ``compare``) build their parser with
:func:`script_parser` (TRL's ``TrlParser``: a YAML ``--config`` gives defaults, the command line wins) and
parse it with :func:`parse_config_args`, so a bad value or an unknown argument is a
:class:`~hf_uniform.errors.UniformError` that names it. :func:`prepare_parser` makes ``--help`` say what the
parser does: it lists ``--config`` and gives every ``--no_*`` flag its own text.

>>> from dataclasses import dataclass
>>> from transformers import HfArgumentParser
>>> @dataclass
... class Args:
...     k: int = 1
>>> parse_config_args(HfArgumentParser((Args,)), ["--k", "3"], "demo")
[Args(k=3)]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import UniformError

CONFIG_HELP = ("YAML file whose keys set the defaults of the other arguments (the command line wins); an env: "
               "mapping in it sets environment variables")


def prepare_parser(parser: Any) -> Any:
    """Make ``parser``'s ``--help`` accurate; returns ``parser`` (calling it again changes nothing).

    * ``--config FILE.yaml`` is listed when the parser reads one (a ``TrlParser``: it takes the option out of
      the arguments itself, so the listed option never holds a value).
    * Each ``--no_X`` flag that ``HfArgumentParser`` adds for a boolean field whose default is true gets its own
      text (``set X to false``) instead of a copy of ``--X``'s text and a wrong ``(default: False)``.

    Example:
        >>> from dataclasses import dataclass, field
        >>> from trl import TrlParser
        >>> @dataclass
        ... class Args:
        ...     progress: bool = field(default=True, metadata={"help": "show progress bars"})
        >>> text = prepare_parser(TrlParser((Args,), prog="demo")).format_help()
        >>> "--config FILE.yaml" in text, text.count("show progress bars")
        (True, 1)
        >>> "set progress to false (the same as --progress false)" in " ".join(text.split())
        True
    """
    for action in parser._actions:
        if isinstance(action, argparse._StoreFalseAction) and any(o.startswith("--no_") for o in action.option_strings):
            action.help = f"set {action.dest} to false (the same as --{action.dest} false)"
            action.default = argparse.SUPPRESS  # the --X action before it holds the default
    if hasattr(parser, "parse_args_and_config") and "--config" not in parser._option_string_actions:
        parser.add_argument("--config", metavar="FILE.yaml", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return parser


def script_parser(dataclass_types: Iterable[type], *, prog: str | None = None, subparsers: Any = None,
                  name: str | None = None, help: str | None = None) -> Any:
    """The parser of a script over ``dataclass_types``, :func:`prepared <prepare_parser>`.

    A ``TrlParser`` (``--config FILE.yaml`` then the command line) named ``prog``; or, given ``subparsers``
    (the ``add_subparsers()`` of a ``TrlParser``, as TRL's scripts take), the sub-command ``name`` added to it.
    Without TRL installed, a plain ``HfArgumentParser`` (no ``--config``).

    Example:
        >>> from dataclasses import dataclass
        >>> from trl import TrlParser
        >>> @dataclass
        ... class Args:
        ...     k: int = 1
        >>> script_parser((Args,), prog="demo").prog
        'demo'
        >>> sub = TrlParser(prog="tool").add_subparsers(dest="command")
        >>> parser = script_parser((Args,), subparsers=sub, name="demo", help="a demo")
        >>> parser.prog, parse_config_args(parser, ["--k", "2"], "demo")
        ('tool demo', [Args(k=2)])
    """
    types = tuple(dataclass_types)
    if subparsers is not None:
        if not name:
            raise UniformError("script_parser: a sub-command needs a name")
        return prepare_parser(subparsers.add_parser(name, help=help, dataclass_types=types))
    try:
        from trl import TrlParser
    except ImportError:  # pragma: no cover - TRL is in the [train] extra; YAML configs then need it
        from transformers import HfArgumentParser as TrlParser
    return prepare_parser(TrlParser(types, prog=prog))


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
    prepare_parser(parser)
    parse = getattr(parser, "parse_args_and_config", None) or parser.parse_args_into_dataclasses
    args: list[str] = []
    for arg in list(argv) if argv is not None else sys.argv[1:]:  # TrlParser reads --config FILE, not --config=FILE
        args += arg.split("=", 1) if arg.startswith("--config=") else [arg]
    import yaml

    try:
        out = parse(args, return_remaining_strings=True)
    except UniformError:
        raise
    except OSError as err:  # --config FILE that cannot be read
        raise UniformError(f"cannot read the {what} config {err.filename}: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise UniformError(f"the {what} config is not valid YAML: {str(err).splitlines()[0]}") from err
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
