"""Figures: what the selection did (:func:`uniformity_plot`), the PCA coverage map of a pool and its subsets
(the paper's Figures 2–3), and the study's loss curves and time-to-threshold bars.

matplotlib is imported lazily (extra ``[eval]``); the figures are written with the Agg backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import UniformError, missing_extra


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


def ordered_min_distances(embeddings: np.ndarray, order: Sequence[int] | np.ndarray, *,
                          metric: str = "cosine", block: int = 1024) -> np.ndarray:
    """For rows taken in ``order``, the distance of each row to the nearest row taken before it (``inf``
    for the first): the radius trace of any ordered subset (float32 GEMM blocks; for plotting).

    For the greedy max-min order this is ``Selection.min_distances``; its running minimum is the h of
    every prefix.

    Example:
        >>> ordered_min_distances(np.array([[0.0], [1.0], [3.0]]), [0, 2, 1], metric="euclidean").tolist()
        [inf, 3.0, 1.0]
    """
    import torch

    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32)[np.asarray(order, dtype=np.int64)])
    if metric == "cosine":
        x = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-30)
    k = x.shape[0]
    out = np.full(k, np.inf)
    for a in range(1, k, block):
        q = x[a:a + block]
        prev = x[:a + q.shape[0]]
        d = (1.0 - q @ prev.T).clamp_(min=0.0) if metric == "cosine" else torch.cdist(q, prev)
        mask = torch.arange(prev.shape[0])[None, :] >= torch.arange(a, a + q.shape[0])[:, None]
        d.masked_fill_(mask, float("inf"))
        out[a:a + q.shape[0]] = d.min(dim=1).values.double().numpy()
    return out


def _nn_distances(x: np.ndarray, metric: str, block: int = 2048, max_pairs: float | None = None) -> np.ndarray:
    """Nearest-other-row distance of every row, or of a seeded sample of rows above ``max_pairs`` distances.

    float32 GEMM blocks (for histograms). Above ``max_pairs`` (default: ``metrics.REPORT_MAX_PAIRS``, the
    report's own limit) only ``max_pairs // n`` query rows are scored, against all ``n`` rows, so the plot
    never costs the n² of a large pool.
    """
    import torch

    from .metrics import REPORT_MAX_PAIRS

    limit = REPORT_MAX_PAIRS if max_pairs is None else max_pairs
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if metric == "cosine":
        t = t / torch.linalg.vector_norm(t, dim=1, keepdim=True).clamp_min(1e-30)
    n = t.shape[0]
    rows = np.arange(n)
    if float(n) * n > limit:
        rows = np.sort(np.random.default_rng(0).choice(n, size=max(2, int(limit // n)), replace=False))
    out = np.empty(len(rows))
    for a in range(0, len(rows), block):
        ids = torch.as_tensor(rows[a:a + block])
        q = t[ids]
        d = ((1.0 - q @ t.T).clamp_(min=0.0) if metric == "cosine"
             else torch.cdist(q, t, compute_mode="donot_use_mm_for_euclid_dist"))
        d[torch.arange(len(ids)), ids] = float("inf")
        out[a:a + len(ids)] = d.min(dim=1).values.double().numpy()
    return out


def uniformity_plot(
    embeddings: np.ndarray,
    subsets: Mapping[str, Sequence[int] | np.ndarray],
    path: str | os.PathLike,
    *,
    metric: str = "cosine",
    report: Mapping[str, Mapping[str, float]] | None = None,
    uniform_trace: Sequence[float] | np.ndarray | None = None,
    max_trace_rows: int = 20000,
) -> Path:
    """One figure of three panels that shows what max-min selection does, next to same-size baselines.

    1. **Radius trace**: h of the first ``j`` rows (the running minimum of each row's distance to the rows
       taken before it) against ``j``, for the uniform subset in greedy order and for the random and mixed
       subsets in their own order. Max-min keeps it high: every row it adds is far from all earlier ones.
    2. **Nearest-neighbour distances**: histograms of each row's distance to its nearest other row within
       the uniform subset, the random subset and the full pool. Uniform has no mass near 0 (no
       near-duplicates).
    3. **PCA map**: the pool (grey) and the subsets on the first two principal components of the pool,
       axes labelled with the variance they explain. Two dimensions of many cannot show max-min spread
       faithfully; panels 1-2 measure it in the full space.

    Args:
        embeddings: ``(n, d)`` pool embeddings.
        subsets: ``{"subset": uniform rows in greedy order, "random": ..., "mixed": ...}`` (row indices).
        path: output PNG (written to a temporary name, then renamed).
        metric: ``"cosine"`` or ``"euclidean"``.
        report: ``{set: {"h": ...}}`` (selection.json's ``report``) for the h values in titles and legend.
        uniform_trace: the selection's ``min_distances`` (saves recomputing the greedy trace).
        max_trace_rows: trace at most this many steps of each baseline order.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(60, 4))
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> uniformity_plot(x, {"subset": [0, 5, 9, 12], "random": [1, 2, 3, 4]}, d + "/u.png").name
        'u.png'
    """
    plt = _pyplot()
    x = np.asarray(embeddings, dtype=np.float32)
    sets = {("uniform" if k == "subset" else k): np.asarray(v, dtype=np.int64) for k, v in subsets.items()}
    hs = {("uniform" if k == "subset" else k): v.get("h") for k, v in (report or {}).items()}

    def label(name: str, rows: int) -> str:
        h = hs.get(name)
        return f"{name} (k={rows}" + (f", h={h:.3g})" if h is not None and np.isfinite(h) else ")")

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8))
    # 1. radius trace
    for name, idx in sets.items():
        if name == "uniform" and uniform_trace is not None:
            trace = np.asarray(uniform_trace, dtype=np.float64)
        else:
            trace = ordered_min_distances(x, idx[:max_trace_rows], metric=metric)
        running = np.minimum.accumulate(trace[1:]) if len(trace) > 1 else np.zeros(0)
        if len(running):
            ax1.plot(np.arange(2, len(running) + 2), np.clip(running, 1e-12, None), lw=1.6,
                     color=ARM_COLORS.get(name), label=label(name, len(idx)))
    ax1.set_xlabel("rows taken, j (greedy order for uniform, file order for baselines)")
    ax1.set_ylabel(f"h of the first j rows ({metric} distance)")
    ax1.set_yscale("log")
    ax1.set_title("radius trace: min pairwise distance so far (higher = more spread)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    # 2. nearest-neighbour distance histograms
    hist_sets = {k: v for k, v in sets.items() if k in ("uniform", "random")}
    hist_sets["full"] = np.arange(len(x))
    values = {name: _nn_distances(x[idx], metric) for name, idx in hist_sets.items() if len(idx) > 1}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()]) if values else np.zeros(1)
    bins = np.linspace(0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0, 50)
    for name, v in values.items():
        ax2.hist(v[np.isfinite(v)], bins=bins, density=True, histtype="step", lw=1.6,
                 color=ARM_COLORS.get(name), label=label(name, len(hist_sets[name])))
    ax2.set_xlabel(f"distance to the nearest other row of the same set ({metric})")
    ax2.set_ylabel("density")
    ax2.set_title("nearest-neighbour distances (mass near 0 = near-duplicates)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    # 3. PCA map
    xc = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
        xc = x / np.where(norms > 0, norms, 1.0)
        xc = xc - xc.mean(axis=0)
    _, sv, vt = np.linalg.svd(xc[:: max(1, len(xc) // 20000)], full_matrices=False)
    var = sv ** 2 / max(float((sv ** 2).sum()), 1e-300)
    p = xc @ vt[:2].T
    ax3.scatter(p[:, 0], p[:, 1], s=2, c="#dddddd", linewidths=0, label=f"pool (n={len(x)})")
    for name in ("random", "uniform"):
        if name in sets:
            idx = sets[name]
            ax3.scatter(p[idx, 0], p[idx, 1], s=4, linewidths=0, alpha=0.8, color=ARM_COLORS.get(name),
                        label=label(name, len(idx)))
    ax3.set_xlabel(f"PC1 ({100 * var[0]:.1f}% of variance)")
    ax3.set_ylabel(f"PC2 ({100 * var[1]:.1f}% of variance)" if len(var) > 1 else "PC2")
    ax3.set_title("PCA map of the pool (2 of many dimensions)")
    ax3.legend(fontsize=8, markerscale=3)
    hu, hr = hs.get("uniform"), hs.get("random")
    if hu is not None and hr is not None and np.isfinite(hu) and np.isfinite(hr):
        fig.suptitle(f"uniform subset: h = {hu:.4g} vs random {hr:.4g} ({metric} distance, k={len(sets['uniform'])} "
                     f"of n={len(x)})")
    fig.tight_layout()
    return _save(fig, path)


# ----------------------------------------------------------------------------- study figures (Figures 4–8, 11)

ARM_COLORS = {"uniform": "#1f77b4", "random": "#ff7f0e", "mixed": "#2ca02c", "full": "#7f7f7f",
              "length_matched": "#9467bd", "longest": "#8c564b"}


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
        raise missing_extra("plots need matplotlib", "eval") from err
    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    from .io import atomic_path

    plt = _pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
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
    window: int | None = None,
    min_updates: int = 0,
) -> Path:
    """Loss curves per arm, raw (left) and smoothed (right), one line per seed (the paper's Figures 4–8).

    Args:
        curves: arm -> list of ``(x, loss)`` pairs, one per seed (x: step or seconds).
        path: output PNG.
        xlabel: label of the x axis.
        ylabel: label of the y axis.
        title: figure title.
        smoothing: EMA weight of the right panel (see :func:`ema_smooth`).
        thresholds: loss thresholds drawn as dashed horizontal lines.
        window: smooth the right panel with the crossing rule instead: the trailing mean over ``window``
            points, drawn only where the window is full and starts after ``min_updates`` updates (x must be
            steps), so the smoothed line is what threshold crossings see.
        min_updates: see ``window``.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> c = {"uniform": [([1, 2, 3], [2.0, 1.5, 1.2])], "random": [([1, 2, 3], [2.0, 1.7, 1.4])]}
        >>> loss_curves_plot(c, d + "/loss.png", thresholds=[1.5]).name
        'loss.png'
    """
    plt = _pyplot()
    if not curves:
        raise UniformError("no loss curves to plot")
    smooths = (0.0, smoothing) if (smoothing or window) else (0.0,)  # nothing to smooth: one raw panel
    fig, axes = plt.subplots(1, len(smooths), figsize=(5.5 * len(smooths) + 0.5, 4), sharey=True, squeeze=False)
    axes = axes[0]
    for panel, (ax, smooth) in enumerate(zip(axes, smooths, strict=True)):
        for i, (arm, runs) in enumerate(curves.items()):
            color = ARM_COLORS.get(arm, f"C{i + 4}")
            for j, (x, y) in enumerate(runs):
                if len(y) == 0:
                    continue
                xx = np.asarray(x, dtype=np.float64)
                if panel and window:
                    yy = np.convolve(np.asarray(y, dtype=np.float64), np.ones(window) / window, mode="valid")
                    xx = xx[window - 1:]
                    keep = xx - window + 1 > min_updates  # the window's first step comes after min_updates
                    xx, yy = xx[keep], yy[keep]
                else:
                    yy = ema_smooth(y, smooth) if panel and smooth else np.asarray(y, dtype=np.float64)
                ax.plot(xx, yy, color=color, lw=1.2, alpha=0.85 if j == 0 else 0.5, label=arm if j == 0 else None)
        for t in thresholds:
            ax.axhline(t, color="black", ls="--", lw=0.8, alpha=0.6)
        ax.set_xlabel(xlabel)
        ax.set_title("raw" if not panel else (f"trailing mean over {window} steps (the crossing rule)" if window
                                              else (f"smoothed (EMA {smooth:g})" if smooth else "raw")))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(loc="upper right")
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
    A value may carry ``(mean, std, reached, of)``: a bar whose mean leaves out censored seeds (seeds that
    never crossed) is marked "reached/of".

    Args:
        values: threshold label -> arm -> ``(mean, std)`` or ``(mean, std, reached, of)``.
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
    finite = [v[0] for g in groups for v in values[g].values() if np.isfinite(v[0])]
    top = max(finite) if finite else 1.0
    for i, arm in enumerate(arms):
        xs = np.arange(len(groups)) + (i - (len(arms) - 1) / 2) * width
        means = np.array([values[g].get(arm, (np.nan, np.nan))[0] for g in groups], dtype=np.float64)
        stds = np.array([values[g].get(arm, (np.nan, np.nan))[1] for g in groups], dtype=np.float64)
        ok = np.isfinite(means)
        color = ARM_COLORS.get(arm, f"C{i + 4}")
        ax.bar(xs[ok], means[ok], width, yerr=np.nan_to_num(stds[ok]), color=color, label=arm, capsize=3)
        for x, g, m, sd in zip(xs, groups, means, stds, strict=True):
            v = values[g].get(arm, ())
            if len(v) >= 4 and np.isfinite(m) and v[2] < v[3]:  # censored seeds left out of the mean
                ax.text(x, m + np.nan_to_num(sd) + top * 0.02, f"{v[2]}/{v[3]}", ha="center", va="bottom",
                        fontsize=7)
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
