"""Errors raised by hf-uniform.

Every user-facing problem raises :class:`UniformError`, a ``ValueError`` subclass whose message is one line
that names the problem and the fix. The CLI turns it into exit status 2 without a traceback.
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
