"""The tables ``hf-uniform select`` and ``stats`` print (the command's results, so ``print``)."""

from __future__ import annotations

from typing import Any


def _print_lengths(block: dict[str, Any] | None) -> None:
    """The length table (characters) under the uniformity report: shorter rows make cheaper training steps."""
    if not block:
        return
    sets = {k: v for k, v in block.items() if isinstance(v, dict)}
    measures = [m for m in ("text_chars", "response_chars") if any(m in v for v in sets.values())]
    if not sets or not measures:
        return
    print("length in characters (mean / median / p90)" + ("; text = what the embedder saw" if
                                                           "text_chars" in measures else ""))
    print(f"{'set':<8} {'rows':>8} " + " ".join(f"{m.replace('_chars', ''):>24}" for m in measures))
    for name, rec in sets.items():
        rows = next(iter(rec.values()))["rows"]
        cells = [f"{rec[m]['mean']:>8.1f} /{rec[m]['median']:>6.0f} /{rec[m]['p90']:>6.0f}" if m in rec else
                 f"{'-':>24}" for m in measures]
        print(f"{name:<8} {rows:>8} " + " ".join(f"{c:>24}" for c in cells))



def _print_report(report: dict[str, dict[str, float]], k: int, n: int, metric: str) -> None:
    print(f"uniformity ({metric} distance), k={k} of n={n}; h: higher is better, coverage radius: lower is better")
    print(f"{'set':<8} {'rows':>8} {'h (min pairwise)':>18} {'coverage radius':>16} {'mean NN dist':>13}")
    for name, row in report.items():
        print(f"{name:<8} {row['k']:>8} {row['h']:>18.6f} {row['coverage_radius']:>16.6f} "
              f"{row['mean_nn_distance']:>13.6f}")
