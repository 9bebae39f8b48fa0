"""Figures: the PCA coverage map of a pool and its subsets (the paper's Figures 2–3).

matplotlib is imported lazily (extra ``[eval]``); the figures are written with the Agg backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import UniformError


def pca_2d(embeddings: np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components, then min-max scale each axis to [0, 1].

    Example:
        >>> p = pca_2d(np.random.default_rng(0).normal(size=(20, 5)))
        >>> p.shape, float(p.min()), float(p.max())
        ((20, 2), 0.0, 1.0)
    """
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x[:: max(1, len(x) // 20000)], full_matrices=False)  # fit on <= 20k rows
    p = x @ vt[:2].T
    lo, hi = p.min(axis=0), p.max(axis=0)
    return (p - lo) / np.where(hi > lo, hi - lo, 1.0)


def pca_coverage_plot(
    embeddings: np.ndarray,
    subsets: Mapping[str, Sequence[int] | np.ndarray],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Scatter the pool (PCA fit on the full pool, min-max scaled) with each subset in its own panel.

    Args:
        embeddings: ``(n, d)`` pool embeddings.
        subsets: panel name -> row indices (e.g. ``{"uniform": sel.indices, "random": rnd}``).
        path: output PNG (written to a temporary name, then renamed).
        title: figure title.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(50, 4))
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> pca_coverage_plot(x, {"first": range(10)}, d + "/pca.png").name
        'pca.png'
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the install
        raise UniformError("plots need matplotlib; pip install 'hf-uniform[eval]'") from err
    p = pca_2d(embeddings)
    panels = {"full": np.arange(len(p)), **{k: np.asarray(v, dtype=np.int64) for k, v in subsets.items()}}
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (name, idx) in zip(axes[0], panels.items(), strict=True):
        ax.scatter(p[:, 0], p[:, 1], s=2, c="#dddddd", linewidths=0)
        ax.scatter(p[idx, 0], p[idx, 1], s=3, linewidths=0)
        ax.set_title(f"{name} (n={len(idx)})")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
