"""The rules of the selection options, one function each: ``k``, start rows, seed, device, counts, radius, quotas.

:class:`hf_uniform.spine.SelectConfig` applies them once; :func:`hf_uniform.selection.maxmin_select` applies the
same ones to its arguments, and the command line's argument types call them on the parsed text. Each raises a
one-line :class:`~hf_uniform.errors.UniformError` naming the problem and the fix.

>>> check_start(3), check_seed(0), check_device("cpu")
((3,), 0, 'cpu')
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import UniformError

METRICS = ("cosine", "euclidean")
METHODS = ("auto", "lazy", "sweep", "plain")
DTYPES = ("float32", "float16", "bfloat16")
BACKENDS = ("exact", "coreset", "ray")
TIE_BREAKS = ("lowest", "random")
DEVICES_HELP = "cpu (default), cuda, cuda:N or auto (CUDA when available)"


# --------------------------------------------------------------------------------- the rules, one each


def check_k_option(k: Any) -> int | float | None:
    """``k`` as an option (its form; the row count is known later): ``None``, a count (numpy ints welcome) or a
    fraction in (0, 1). Text is the command line's and the config files' business
    (:func:`hf_uniform.selection.parse_k`): ``"2"`` is not a count here, and ``1.0`` is refused everywhere.

    Example:
        >>> check_k_option(np.int64(3)), check_k_option(0.5), check_k_option(None)
        (3, 0.5, None)
    """
    return None if k is None else check_k(k)


def check_start(start: Any) -> tuple[int, ...] | None:
    """Start rows: ``None``, a row index (numpy ints welcome) or distinct row indices (floats, booleans and text
    are refused; the command line's ``--start 3,17`` goes through :func:`parse_start`).

    Example:
        >>> check_start(np.int64(3)), check_start([4, 1]), check_start(np.array([2, 5])), check_start(None)
        ((3,), (4, 1), (2, 5), None)
        >>> check_start(2.7)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: start must be a row index (an int) or a list of them, got 2.7; pass e.g. start=3 or start=[3, 17] (CLI: --start 3,17)
    """
    if start is None:
        return None
    items: list[Any]
    if isinstance(start, np.ndarray) and start.ndim == 1 and np.issubdtype(start.dtype, np.integer):
        items = start.tolist()
    elif isinstance(start, (list, tuple, range)):
        items = list(start)
    else:  # text too: the command line's --start goes through parse_start; "3" is not a row index here
        items = [start]
    bad = [s for s in items if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer))]
    if bad:
        raise UniformError(f"start must be a row index (an int) or a list of them, got {start!r}; pass e.g. "
                           "start=3 or start=[3, 17] (CLI: --start 3,17)")
    rows = tuple(int(s) for s in items)
    if not rows:
        raise UniformError("start lists no row; pass at least one row index, or leave start out for a seeded "
                           "random start")
    if min(rows) < 0:
        raise UniformError(f"start rows must be 0 or more, got {[r for r in rows if r < 0][:10]}")
    if len(set(rows)) != len(rows):
        raise UniformError(f"start rows repeat a row: {list(rows)[:20]}; pass each row once")
    return rows


def parse_start(text: str) -> tuple[int, ...]:
    """``--start 3,17``: comma-separated row indices, then :func:`check_start`.

    Example:
        >>> parse_start("3, 17")
        (3, 17)
    """
    try:
        rows = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError as err:
        raise UniformError(f"start must be comma-separated row indices, got {text!r}; pass e.g. --start 3,17") from err
    return check_start(rows)


def check_seed(seed: Any) -> int | None:
    """``seed``: a whole number 0 or more (numpy ints welcome), or ``None`` for an unseeded start row.

    Example:
        >>> check_seed(np.int64(2)), check_seed(None)
        (2, None)
        >>> check_seed(-1)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: seed must be a whole number 0 or more, got -1; pass e.g. seed=0
    """
    if seed is None:
        return None
    if isinstance(seed, str) and seed.strip().lstrip("+").isdigit():
        seed = int(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UniformError(f"seed must be a whole number 0 or more, got {seed!r}; pass e.g. seed=0")
    return int(seed)


def check_device(device: Any) -> str:
    """``device``: ``cpu``, ``auto`` (or ``None``: CUDA when available), ``cuda`` or ``cuda:N`` (checked here).

    Example:
        >>> check_device("cpu"), check_device(None)
        ('cpu', 'auto')
        >>> check_device("tpu")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: unknown device 'tpu'; use cpu (default), cuda, cuda:N or auto (CUDA when available)
    """
    if device is None:
        return "auto"
    if not isinstance(device, str) and type(device).__name__ == "device":  # a torch.device
        device = str(device)
    if device in ("cpu", "auto"):
        return device
    if not isinstance(device, str) or not re.fullmatch(r"cuda(:\d+)?", device):
        raise UniformError(f"unknown device {device!r}; use {DEVICES_HELP}")
    import torch

    if not torch.cuda.is_available():
        raise UniformError(f"device {device}: no CUDA device is available here; use cpu or auto (CLI: --device)")
    if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise UniformError(f"device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def _check_count(name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise UniformError(f"{name} must be a whole number {low} or more, got {value!r}")
    return int(value)


def _check_radius(r: Any) -> float:
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float, np.integer, np.floating)) \
            or not 0 <= float(r) < math.inf:
        raise UniformError(f"radius must be a finite distance 0 or more, got {r!r}")
    return float(r)


def _parse_quotas(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in (p for p in text.split(",") if p.strip()):
        label, sep, rows = part.rpartition("=")
        if not sep or not label.strip() or not rows.strip().isdigit():
            raise UniformError(f"quotas take label=rows pairs such as en=300,de=100, got {text!r}")
        out[label.strip()] = int(rows)
    if not out:
        raise UniformError("quotas list no group; pass e.g. en=300,de=100")
    return out


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise UniformError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")
    return value


def parse_k(text: str) -> int | float:
    """``k`` as written on a command line or in a text config: ``"4500"`` a count, ``"0.5"`` a fraction,
    then checked by :func:`check_k` (so ``"1.0"`` is refused: a float is a fraction).

    Example:
        >>> parse_k("0.25"), parse_k(" 7 ")
        (0.25, 7)
    """
    t = str(text).strip()
    if t.lstrip("+").isdigit():
        return check_k(int(t))
    try:
        value = float(t)
    except ValueError as err:
        raise UniformError(f"k must be a number of rows or a fraction in (0, 1), got {t!r}") from err
    return check_k(value)


def check_k(k: int | float, n: int | None = None) -> int | float:
    """The one k rule: ``k`` is a whole number of rows (>= 1, at most ``n``) or a fraction strictly between
    0 and 1 of the ``n`` rows (``round(k * n)`` rows, at least one). Every entry point (the CLI ``-k``,
    ``Dataset.filter_uniform``, ``maxmin_select``, the recipes' ``uniform_k``, the study) calls this.

    An int is a count and a float a fraction, so ``1.0`` is refused (pass ``n`` for every row); text goes
    through :func:`parse_k`. With ``n=None`` only the form is checked and ``k`` returned (for argument
    parsers, before the data is read); with ``n`` the row count is returned.

    Example:
        >>> check_k(0.5, 10), check_k(3, 10), check_k(0.25)
        (5, 3, 0.25)
        >>> check_k(0.01, 8)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: k=0.01 of n=8 rows rounds to 0 rows; pass a larger fraction or a row count
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise UniformError(f"k must be an int or a fraction in (0, 1), got {k!r}")
    if isinstance(k, (float, np.floating)):
        if not 0 < float(k) < 1:  # also NaN and inf
            raise UniformError(f"k={k} is neither a whole number of rows nor a fraction strictly between 0 and 1; "
                               "pass e.g. 4500 or 0.5 (for every row, pass the row count)")
        if n is None:
            return float(k)
        rows = round(float(k) * n)
        if rows < 1:
            raise UniformError(f"k={k} of n={n} rows rounds to 0 rows; pass a larger fraction or a row count")
        return int(rows)
    k = int(k)
    if k < 1:
        raise UniformError(f"k must be at least 1, got {k}")
    if n is not None and k > n:
        raise UniformError(f"k={k} exceeds the number of rows n={n}; pass k <= {n}")
    return k
