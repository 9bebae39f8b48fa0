"""Errors raised by hf-uniform.

Every user-facing problem raises :class:`UniformError`, a ``ValueError`` subclass whose message is one line
that names the problem and the fix. The CLI turns it into exit status 2 without a traceback. Two kinds are
also the exception Python code expects: :class:`MissingExtraError` (an ``ImportError``: an optional package is
not installed; raise it with :func:`missing_extra`) and :class:`MissingFileError` (a ``FileNotFoundError``: a
path the user passed does not exist). Raise them ``from`` the caught exception so the cause is kept.
"""

from __future__ import annotations


class UniformError(ValueError):
    """A problem with the user's input, reported in one line.

    Example:
        >>> try:
        ...     raise UniformError("k must be positive; pass -k 1 or more")
        ... except ValueError as err:
        ...     print(err)
        k must be positive; pass -k 1 or more
    """


class MissingExtraError(UniformError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it.

    It is an ``ImportError`` (what Python code expects of a missing package) and a :class:`UniformError`
    (so the CLI reports it in one line with exit status 2).

    Example:
        >>> try:
        ...     raise MissingExtraError("plots need matplotlib; pip install 'hf-uniform[eval]'")
        ... except ImportError as err:
        ...     print(err)
        plots need matplotlib; pip install 'hf-uniform[eval]'
    """


class MissingFileError(UniformError, FileNotFoundError):
    """A file or folder the user passed does not exist; the message names it and what to pass instead.

    It is a ``FileNotFoundError`` (what Python code expects of a missing path) and a :class:`UniformError`
    (so the CLI reports it in one line with exit status 2).

    Example:
        >>> try:
        ...     raise MissingFileError("input file nope.jsonl does not exist")
        ... except FileNotFoundError as err:
        ...     print(err, isinstance(err, UniformError))
        input file nope.jsonl does not exist True
    """


def missing_extra(what: str, extra: str) -> MissingExtraError:
    """The error for a missing optional dependency, with the install command for its extra.

    Raise it ``from`` the original ``ImportError`` so the cause is kept.

    Example:
        >>> print(missing_extra("plots need matplotlib", "eval"))
        plots need matplotlib; pip install 'hf-uniform[eval]'
    """
    return MissingExtraError(f"{what}; pip install 'hf-uniform[{extra}]'")
