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


def _nonneg_int(what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from err
        if value < 0:
            raise argparse.ArgumentTypeError(f"{what} must be 0 or more, got {value}")
        return value
    return parse


def _pos_int(what: str):
    def parse(text: str) -> int:
        value = _nonneg_int(what)(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} must be 1 or more, got {value}")
        return value
    return parse


def _int_list(text: str) -> list[int]:
    try:
        rows = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated row indices, got {text!r}") from err
    if not rows:
        raise argparse.ArgumentTypeError("--start lists no row; pass e.g. --start 3,17")
    if any(r < 0 for r in rows):
        raise argparse.ArgumentTypeError(f"start rows must be 0 or more, got {text!r}")
    if len(set(rows)) != len(rows):
        raise argparse.ArgumentTypeError(f"start rows repeat a row: {text!r}; pass each row once")
    return rows


def _radius_value(text: str) -> float:
    """--radius: a finite distance >= 0."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--radius must be a distance, got {text!r}") from err
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"--radius must be a finite distance >= 0, got {text!r}")
    return value


def _quotas_value(text: str) -> dict[str, int]:
    """--quotas: ``label=rows`` pairs, comma-separated (``en=300,de=100``)."""
    out: dict[str, int] = {}
    for part in (p for p in text.split(",") if p.strip()):
        label, sep, rows = part.rpartition("=")
        if not sep or not label.strip() or not rows.strip().isdigit():
            raise argparse.ArgumentTypeError(f"--quotas takes label=rows pairs such as en=300,de=100, got {text!r}")
        out[label.strip()] = int(rows)
    if not out:
        raise argparse.ArgumentTypeError("--quotas lists no group; pass e.g. en=300,de=100")
    return out


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``hf-uniform select: error: ...; see --help``), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
