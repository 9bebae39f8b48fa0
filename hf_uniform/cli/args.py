"""Argument types of the ``hf-uniform`` command line (one-line errors, nothing heavy imported)."""

from __future__ import annotations

import argparse


def _k_value(text: str) -> int | float:
    """-k: a whole number of rows, or a fraction strictly between 0 and 1 (:func:`hf_uniform.selection.check_k`,
    the one k rule; imported here, when the option is parsed, so ``--help`` stays instant)."""
    from ..errors import UniformError
    from ..selection import parse_k

    try:
        return parse_k(text)
    except UniformError as err:
        message = str(err)
        if "neither a whole number" in message:
            message = (f"-k {text} is neither a whole number of rows nor a fraction strictly between 0 and 1; "
                       "pass e.g. -k 4500 or -k 0.5 (for every row, pass the row count)")
        raise argparse.ArgumentTypeError(message) from err


def _heldout_value(text: str) -> int | float:
    """--heldout: a whole number of rows (>= 1), or a fraction strictly between 0 and 1."""
    try:
        return _k_value(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(
            f"--heldout {text} is neither a whole number of rows nor a fraction strictly between 0 and 1; "
            "pass e.g. --heldout 200 or --heldout 0.05") from err


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``hf-uniform select: error: ...; see --help``), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
