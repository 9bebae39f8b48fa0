"""Lazy engine: bfloat16 vs float32 filter, side by side in one run (issue 21 item 3: choose bf16 only where
it is measured faster).

Each case selects ``k`` rows of clustered Gaussian data (cosine, in memory) with ``HF_UNIFORM_FILTER_DTYPE``
set to each filter in turn, alternating, best of ``--repeats`` on every side, one GEMM thread (the engine's
default), after a warm-up that compiles the kernels and the padded bf16 GEMM shapes. Both filters give the
same selection (asserted). Prints a table and writes JSON with the CPU flags, thread count and load average.

Usage::

    python benchmarks/filter_bench.py                       # the default cases
    python benchmarks/filter_bench.py --cases 100000x128x300,30000x384x15000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "filter_bench.json"
CASES = "100000x128x300,100000x128x5000,300000x128x300,100000x384x1000,30000x384x15000,50000x768x2000"


def data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 100), d))
    return (centres[rng.integers(len(centres), size=n)] + 0.6 * rng.normal(size=(n, d))).astype(np.float32)


def main() -> None:
    from memory_bench import cpu_flags

    from hf_uniform import maxmin_select
    from hf_uniform.engine.lazy import cpu_has_fast_bf16, default_filter_dtype

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=CASES, help="comma-separated NxDxK")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--npy", action="append", default=[],
                    help="also a real set: PATH[:K] of an .npy embedding matrix (K default n/2), e.g. "
                         "../shared/data/embeddings/alpaca_18k.all-MiniLM-L6-v2.f16.npy")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    warm = data(20_000, 64, 1)
    for f in ("float32", "bfloat16"):
        os.environ["HF_UNIFORM_FILTER_DTYPE"] = f
        maxmin_select(warm, 2000, start=0)
    rows = []
    print(f"{'n':>8} {'d':>4} {'k':>6} {'float32 s':>10} {'bfloat16 s':>11} {'bf16/f32':>9}  default")
    os.environ.pop("HF_UNIFORM_FILTER_DTYPE", None)  # the default column: the cost model, not the override
    cases = [c for c in args.cases.split(",") if c] + [f"npy:{p}" for p in args.npy]
    for case in cases:
        name = "synthetic"
        if case.startswith("npy:"):
            path, _, kk = case[4:].partition(":")
            x = np.load(path).astype(np.float32)
            n, d = x.shape
            k = int(kk) if kk else n // 2
            name = Path(path).name
        else:
            n, d, k = (int(v) for v in case.split("x"))
            x = data(n, d)
        best = {"float32": np.inf, "bfloat16": np.inf}
        picks = {}
        for _ in range(args.repeats):
            for f in ("float32", "bfloat16"):
                os.environ["HF_UNIFORM_FILTER_DTYPE"] = f
                t0 = time.perf_counter()
                sel = maxmin_select(x, k, start=0)
                best[f] = min(best[f], time.perf_counter() - t0)
                picks[f] = sel.indices
        os.environ.pop("HF_UNIFORM_FILTER_DTYPE", None)
        assert np.array_equal(picks["float32"], picks["bfloat16"]), "filters disagree"
        ratio = best["bfloat16"] / best["float32"]
        rows.append({"data": name, "n": n, "d": d, "k": k, "float32_s": best["float32"], "bfloat16_s": best["bfloat16"],
                     "bf16_over_f32": ratio, "path": sel.info["engine_stats"]["path"],
                     "default": str(default_filter_dtype(d, k)).replace("torch.", "")})
        print(f"{n:>8} {d:>4} {k:>6} {best['float32']:>10.2f} {best['bfloat16']:>11.2f} {ratio:>9.2f}  "
              f"{rows[-1]['default']}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "repeats": args.repeats, "cpu_flags": cpu_flags(),
                               "cpu_has_fast_bf16": cpu_has_fast_bf16(),
                               "threads": int(os.environ.get("HF_UNIFORM_THREADS", "1")),
                               "load_avg": os.getloadavg()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
