"""Data shipped with the package, so the first command runs offline from any clone.

``sample.jsonl`` holds 1,200 instruction/input/output rows over about twenty task families (arithmetic,
unit conversion, string edits, sorting, sentiment labels, capitals, definitions, code, ...), generated
deterministically by ``benchmarks/make_sample_data.py`` and released under CC0 (see ``README.md`` beside
it). It is a demo of selection, not a training set.

The CLI and :func:`hf_uniform.io.read_source` / :func:`~hf_uniform.io.load_input` accept the name
:data:`SAMPLE_NAME` (``"sample"``) for it, unless a local file or folder of that name exists::

    hf-uniform select sample -k 100 -o out/sample_subset

From Python, it is an ordinary JSON Lines file for ``datasets``::

    from datasets import load_dataset
    from hf_uniform.data import sample_path
    ds = load_dataset("json", data_files=str(sample_path()), split="train")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SAMPLE_NAME = "sample"
"""The name the CLI and :func:`hf_uniform.io.read_source` accept for the shipped sample."""

_HERE = Path(__file__).resolve().parent


def sample_path() -> Path:
    """The path of the shipped demo dataset (``sample.jsonl``, 1,200 instruction rows, CC0).

    Example:
        >>> p = sample_path()
        >>> p.name, p.exists()
        ('sample.jsonl', True)
    """
    return _HERE / "sample.jsonl"


def load_sample() -> Any:
    """The shipped demo dataset as a ``datasets.Dataset`` (columns ``instruction``, ``input``, ``output``).

    The same as ``load_dataset("json", data_files=str(sample_path()), split="train")``.

    Example:
        >>> ds = load_sample()
        >>> len(ds), ds.column_names
        (1200, ['instruction', 'input', 'output'])
    """
    from datasets import load_dataset

    return load_dataset("json", data_files=str(sample_path()), split="train")


def resolve_builtin(source: str | os.PathLike) -> str | os.PathLike:
    """``source``, or the shipped file's path when ``source`` is :data:`SAMPLE_NAME` and no such local path exists.

    Example:
        >>> resolve_builtin("sample") == sample_path()
        True
        >>> resolve_builtin("tatsu-lab/alpaca")
        'tatsu-lab/alpaca'
    """
    if isinstance(source, str) and source == SAMPLE_NAME and not Path(source).exists():
        return sample_path()
    return source
