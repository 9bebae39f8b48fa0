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
    plt = _pyplot()
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
    return _save(fig, path)


# ----------------------------------------------------------------------------- study figures (Figures 4–8, 11)

ARM_COLORS = {"uniform": "#1f77b4", "random": "#ff7f0e", "mixed": "#2ca02c", "full": "#7f7f7f"}


def ema_smooth(values: Sequence[float] | np.ndarray, weight: float = 0.9) -> np.ndarray:
    """TensorBoard-style exponential moving average with bias correction (``weight=0``: unchanged).

    Example:
        >>> ema_smooth([1.0, 1.0, 1.0], 0.9).tolist()
        [1.0, 1.0, 1.0]
        >>> ema_smooth([2.0, 0.0], 0.5).round(3).tolist()
        [2.0, 0.667]
    """
    if not 0 <= weight < 1:
        raise UniformError(f"smoothing weight must be in [0, 1), got {weight}")
    y = np.asarray(values, dtype=np.float64)
    out = np.empty_like(y)
    acc = 0.0
    for i, v in enumerate(y):
        acc = weight * acc + (1 - weight) * v
        out[i] = acc / (1 - weight ** (i + 1))
    return out


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the install
        raise UniformError("plots need matplotlib; pip install 'hf-uniform[eval]'") from err
    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def loss_curves_plot(
    curves: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
    path: str | os.PathLike,
    *,
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    smoothing: float = 0.9,
    thresholds: Sequence[float] = (),
) -> Path:
    """Loss curves per arm, raw (left) and EMA-smoothed (right), one line per seed (the paper's Figures 4–8).

    Args:
        curves: arm -> list of ``(x, loss)`` pairs, one per seed (x: step or seconds).
        path: output PNG.
        xlabel: label of the x axis.
        ylabel: label of the y axis.
        title: figure title.
        smoothing: EMA weight of the right panel (see :func:`ema_smooth`).
        thresholds: loss thresholds drawn as dashed horizontal lines.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> c = {"uniform": [([1, 2, 3], [2.0, 1.5, 1.2])], "random": [([1, 2, 3], [2.0, 1.7, 1.4])]}
        >>> loss_curves_plot(c, d + "/loss.png", thresholds=[1.5]).name
        'loss.png'
    """
    plt = _pyplot()
    if not curves:
        raise UniformError("no loss curves to plot")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, smooth in zip(axes, (0.0, smoothing), strict=True):
        for i, (arm, runs) in enumerate(curves.items()):
            color = ARM_COLORS.get(arm, f"C{i + 4}")
            for j, (x, y) in enumerate(runs):
                if len(y) == 0:
                    continue
                yy = ema_smooth(y, smooth) if smooth else np.asarray(y, dtype=np.float64)
                ax.plot(np.asarray(x, dtype=np.float64), yy, color=color, lw=1.2, alpha=0.85 if j == 0 else 0.5,
                        label=arm if j == 0 else None)
        for t in thresholds:
            ax.axhline(t, color="black", ls="--", lw=0.8, alpha=0.6)
        ax.set_xlabel(xlabel)
        ax.set_title("raw" if not smooth else f"smoothed (EMA {smooth:g})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[1].legend(loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def threshold_bars_plot(
    values: Mapping[str, Mapping[str, tuple[float, float]]],
    path: str | os.PathLike,
    *,
    ylabel: str = "time to threshold",
    title: str | None = None,
) -> Path:
    """Grouped bars: one group per threshold, one bar per arm, mean with a ±std error bar (Figure 11).

    Runs that never reached a threshold are passed as ``nan`` and drawn as an empty bar marked "not reached".

    Args:
        values: threshold label -> arm -> ``(mean, std)``.
        path: output PNG.
        ylabel: label of the y axis.
        title: figure title.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> v = {"loss<=1.5": {"uniform": (10.0, 1.0), "random": (12.0, 2.0)},
        ...      "loss<=1.2": {"uniform": (30.0, 3.0), "random": (float("nan"), 0.0)}}
        >>> threshold_bars_plot(v, d + "/ttt.png").name
        'ttt.png'
    """
    plt = _pyplot()
    if not values:
        raise UniformError("no thresholds to plot")
    groups = list(values)
    arms: list[str] = []
    for g in groups:
        arms += [a for a in values[g] if a not in arms]
    width = 0.8 / max(1, len(arms))
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(groups) * max(1, len(arms)) / 2), 4))
    finite = [m for g in groups for m, _ in values[g].values() if np.isfinite(m)]
    top = max(finite) if finite else 1.0
    for i, arm in enumerate(arms):
        xs = np.arange(len(groups)) + (i - (len(arms) - 1) / 2) * width
        means = np.array([values[g].get(arm, (np.nan, np.nan))[0] for g in groups], dtype=np.float64)
        stds = np.array([values[g].get(arm, (np.nan, np.nan))[1] for g in groups], dtype=np.float64)
        ok = np.isfinite(means)
        color = ARM_COLORS.get(arm, f"C{i + 4}")
        ax.bar(xs[ok], means[ok], width, yerr=np.nan_to_num(stds[ok]), color=color, label=arm, capsize=3)
        for x in xs[~ok]:
            ax.bar([x], [top * 1.05], width, fill=False, edgecolor=color, hatch="//")
            ax.text(x, top * 1.07, "not\nreached", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)
