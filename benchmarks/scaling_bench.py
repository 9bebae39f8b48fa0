"""Scaling curve of the exact engine: time and peak memory over n and k, with the plain loop alongside.

Synthetic clustered data on the sphere (1000 Gaussian blobs in d = 384, rows normalised), cosine metric,
``n in {10^4, 10^5, 10^6}``, ``k in {1%, 10%, 50%} of n``. Each combination runs in a fresh child process
(so peak RSS is that run's: data + engine); combinations whose estimated time exceeds ``--cap`` seconds
(fitted from the ones already measured, ``t ~ (n k)^b``) are skipped and reported as skipped. The plain
torch loop (``1 - x @ c``, float32, one thread) is timed for ``--plain-steps`` steps per ``n`` and
extrapolated to ``k`` (its cost per step does not depend on the step).

Usage::

    python benchmarks/scaling_bench.py                  # table, benchmarks/results/scaling.json + .png
    python benchmarks/scaling_bench.py --ns 1e4,1e5 --cap 30
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def blobs_on_sphere(n: int, d: int, seed: int = 0, blobs: int = 1000, sigma: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(blobs, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for a in range(0, n, 65536):
        b = min(n, a + 65536)
        x = centres[rng.integers(blobs, size=b - a)] + sigma * rng.normal(size=(b - a, d)).astype(np.float32)
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def data_path(cache: Path, n: int, d: int) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"blobs_n{n}_d{d}.npy"
    if not path.exists():
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, blobs_on_sphere(n, d))
        os.replace(tmp, path)
    return path


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    x = np.load(args.path)  # in memory: the run owns its copy, as a user's would
    if args.plain:
        import torch

        torch.set_num_threads(1)
        X = torch.from_numpy(x)
        m = torch.full((X.shape[0],), math.inf)
        i = 0
        t0 = time.perf_counter()
        for _ in range(args.plain):
            d = 1.0 - X @ X[i]
            torch.minimum(m, d, out=m)
            m[i] = -math.inf
            i = int(torch.argmax(m))
        print(json.dumps({"plain_step_s": (time.perf_counter() - t0) / args.plain}))
        return
    from hf_uniform import maxmin_select

    maxmin_select(x[:2000], 50)  # load compiled kernels outside the timing
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    sel = maxmin_select(x, args.k, seed=0)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": secs, "peak_rss": peak, "rss_before": base * 1024, "h": sel.h,
                      "stats": sel.info.get("engine_stats", {})}))


def run_child(path: Path, k: int = 0, plain: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--child", "--path", str(path), "--k", str(k), "--plain", str(plain)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def estimate(done: list[dict], n: int, k: int) -> float | None:
    """Linear-in-(n k) extrapolation from the largest measured run (conservative: measured growth is lower)."""
    pts = [r for r in done if r.get("seconds")]
    if not pts:
        return None
    anchor = max(pts, key=lambda r: r["n"] * r["k"])
    return anchor["seconds"] * (n * k) / (anchor["n"] * anchor["k"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="1e4,1e5,1e6")
    ap.add_argument("--fracs", default="0.01,0.1,0.5")
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--cap", type=float, default=120.0, help="skip combinations estimated above this (s)")
    ap.add_argument("--plain-steps", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "hf_uniform_bench")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scaling.json")
    ap.add_argument("--replot", action="store_true", help="only redraw the PNG from the JSON in --out")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--plain", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.replot:
        plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
        return
    ns = [int(float(v)) for v in args.ns.split(",")]
    fracs = [float(v) for v in args.fracs.split(",")]
    combos = sorted(((n, f, max(1, int(round(f * n)))) for n in ns for f in fracs), key=lambda c: c[0] * c[2])
    rows: list[dict] = []
    plain_step: dict[int, float] = {}
    for n, frac, k in combos:
        path = data_path(args.cache, n, args.d)
        if n not in plain_step:
            plain_step[n] = run_child(path, plain=min(args.plain_steps, n - 1))["plain_step_s"]
        row = {"n": n, "k": k, "frac": frac, "data_bytes": n * args.d * 4,
               "plain_est_s": plain_step[n] * k}
        est = estimate(rows, n, k)
        if est is not None and est > args.cap:
            row.update(skipped=True, est_seconds=est)
            print(f"n={n:>8} k={k:>7} ({frac:.0%}): skipped, estimated {est:.0f}s > cap {args.cap:.0f}s", flush=True)
        else:
            res = run_child(path, k=k)
            row.update(res)
            row["speedup_vs_plain_est"] = row["plain_est_s"] / res["seconds"]
            print(f"n={n:>8} k={k:>7} ({frac:.0%}): {res['seconds']:.2f}s, peak {res['peak_rss'] / 2**30:.2f} GiB, "
                  f"plain est. {row['plain_est_s']:.0f}s", flush=True)
        rows.append(row)
    done = [r for r in rows if not r.get("skipped")]
    xs = np.log([r["n"] * r["k"] for r in done])
    ys = np.log([r["seconds"] for r in done])
    slope = float(np.polyfit(xs, ys, 1)[0]) if len(done) > 1 and np.ptp(xs) > 0 else float("nan")
    big = [r for r in done if r["k"] >= 1000]
    slope_big = float(np.polyfit(np.log([r["n"] * r["k"] for r in big]), np.log([r["seconds"] for r in big]), 1)[0]) \
        if len(big) > 1 else float("nan")
    res = {"d": args.d, "metric": "cosine", "rows": rows, "growth_exponent_nk": slope,
           "growth_exponent_nk_k_ge_1000": slope_big, "cap_seconds": args.cap,
           "load_avg": os.getloadavg(), "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print()
    print("| n | k | time (s) | ms/step | peak RSS (GiB) | data (GiB) | plain loop est. (s) | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("skipped"):
            print(f"| {r['n']:,} | {r['k']:,} | skipped (est. {r['est_seconds']:.0f}) | | | "
                  f"{r['data_bytes'] / 2**30:.2f} | {r['plain_est_s']:.0f} | |")
        else:
            print(f"| {r['n']:,} | {r['k']:,} | {r['seconds']:.2f} | {r['seconds'] / r['k'] * 1e3:.3f} | "
                  f"{r['peak_rss'] / 2**30:.2f} | {r['data_bytes'] / 2**30:.2f} | {r['plain_est_s']:.0f} | "
                  f"{r['speedup_vs_plain_est']:.0f}x |")
    print(f"\nobserved growth: time ~ (n*k)^{slope:.2f} over all measured points "
          f"(^{slope_big:.2f} for k >= 1000); the plain loop is ~ (n*k)^1 by construction")
    plot(res, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(res: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        print("matplotlib not installed: no plot")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    fracs = sorted({r["frac"] for r in res["rows"]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, f in enumerate(fracs):
        col = colours[i % len(colours)]
        pts = [r for r in res["rows"] if r["frac"] == f and not r.get("skipped")]
        if pts:
            ax1.loglog([r["n"] for r in pts], [r["seconds"] for r in pts], "o-", color=col, label=f"lazy, k={f:.0%} n")
        pl = [r for r in res["rows"] if r["frac"] == f]
        ax1.loglog([r["n"] for r in pl], [r["plain_est_s"] for r in pl], "x:", color=col, alpha=0.6,
                   label=f"plain loop (est.), k={f:.0%} n")
    ax1.set_xlabel("n")
    ax1.set_ylabel("seconds")
    ax1.set_title(f"exact max-min, d={res['d']}, cosine (2 CPU cores)")
    ax1.legend(fontsize=7)
    for i, f in enumerate(fracs):
        pts = [r for r in res["rows"] if r["frac"] == f and not r.get("skipped")]
        if pts:
            ax2.loglog([r["n"] for r in pts], [r["peak_rss"] / 2**30 for r in pts], "o-", color=colours[i % len(colours)],
                       label=f"k={f:.0%} n")
    ns = sorted({r["n"] for r in res["rows"]})
    ax2.loglog(ns, [n * res["d"] * 4 / 2**30 for n in ns], "k--", label="float32 data")
    ax2.set_xlabel("n")
    ax2.set_ylabel("peak RSS (GiB)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
