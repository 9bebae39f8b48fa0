"""Peak memory of the engine above the loaded process, for several ``max_memory`` budgets (issue 11).

Each case runs in a fresh subprocess: import, open the data (a float32 ``.npy`` memmap, or the same rows
loaded into RAM for the in-memory cases), compile the kernels on a tiny warm-up run, then a sampler thread
reads ``RssAnon`` (anonymous resident memory: the engine's arrays and copies, not the file pages a memmap
maps in, which the kernel can drop) from ``/proc/self/status`` every 2 ms while ``maxmin_select`` runs.
Reported: peak RssAnon minus RssAnon just before the call, in MiB (2^20 bytes; budgets are read as ``datasets``
reads sizes: 16MB = 16e6 bytes = 15.3 MiB), the smallest of ``--repeats`` runs and their largest. ``ru_maxrss`` (which counts mapped file pages) is
recorded too.

The lazy engine runs with the default filter dtype of the CPU it is on (``--filters default``; recorded per
row as ``filter_dtype``) or with each filter named (``--filters default,float32,bfloat16``: the others set
``HF_UNIFORM_FILTER_DTYPE``). The JSON records the CPU flags, the thread count and the load average.

Usage::

    python benchmarks/memory_bench.py                    # n=300000 d=128 (146 MB), k=2000
    python benchmarks/memory_bench.py --n 50000 --k 500
    python benchmarks/memory_bench.py --n 100000 --k 300 --methods lazy,plain --filters default,float32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "memory_bench.json"  # --out overrides

CHILD = r"""
import json, os, resource, sys, threading, time
import numpy as np
sys.path.insert(0, sys.argv[5])
from hf_uniform import maxmin_select

def anon():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0

path, method, budget, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = np.load(path, mmap_mode="r")
if budget == "memory":
    x = np.array(x)  # the loaded process holds the rows
budget_arg = None if budget == "memory" else budget
# compile the kernels and (bf16) the padded GEMM shapes on a run long enough to flush, wake and sleep rows
maxmin_select(np.asarray(x[:20000]), 1100, method=method, max_memory="12MB" if budget_arg else None)
peak = [0]
stop = [False]
def sample():
    while not stop[0]:
        peak[0] = max(peak[0], anon())
        time.sleep(0.002)
base = anon()
th = threading.Thread(target=sample, daemon=True)
th.start()
t0 = time.perf_counter()
sel = maxmin_select(x, k, method=method, seed=0, max_memory=budget_arg)
secs = time.perf_counter() - t0
stop[0] = True
th.join()
peak[0] = max(peak[0], anon())
print(json.dumps({"peak_above_loaded_MB": (peak[0] - base) / 2**20, "base_anon_MB": base / 2**20,
                  "ru_maxrss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": secs, "streamed": sel.info["streamed"], "first": sel.indices[:5].tolist(),
                  "filter_dtype": sel.info.get("filter_dtype", sel.info.get("dtype")),
                  "threads": sel.info.get("threads")}))
"""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def cpu_flags() -> list[str]:
    """The CPU's SIMD flags that decide the filter (avx2, avx512*, amx*, f16c, fma)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return sorted(f for f in line.split(":", 1)[1].split()
                                  if f.startswith(("avx", "amx")) or f in ("f16c", "fma"))
    except OSError:
        pass
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--budgets", default="16MB,64MB,256MB", help="comma-separated; 'none': in memory only")
    ap.add_argument("--methods", default="lazy,plain,sweep")
    ap.add_argument("--filters", default="default", help="lazy filter dtypes: default (the CPU's), float32, bfloat16")
    ap.add_argument("--repeats", type=int, default=1, help="runs per case; the smallest peak is kept")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from hf_uniform.engine.lazy import default_filter_dtype
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, args.d))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.n, args.d))
        for a in range(0, args.n, 50_000):
            b = min(args.n, a + 50_000)
            mm[a:b] = centres[rng.integers(1000, size=b - a)] + 0.6 * rng.normal(size=(b - a, args.d))
        mm.flush()
        del mm
        data_mb = args.n * args.d * 4 / 2**20
        budgets = ["memory"] + ([] if args.budgets in ("", "none") else args.budgets.split(","))
        cases = [(method, filt, budget) for method in args.methods.split(",")
                 for filt in (args.filters.split(",") if method == "lazy" else ["default"]) for budget in budgets]
        found: dict[tuple[str, str, str], list[dict]] = {c: [] for c in cases}
        for _ in range(args.repeats):  # cases alternate within each repeat (same load on every side)
            for method, filt, budget in cases:
                if found[(method, filt, budget)] and "error" in found[(method, filt, budget)][0]:
                    continue
                env = {k: v for k, v in os.environ.items() if k != "HF_UNIFORM_FILTER_DTYPE"}
                env["OMP_NUM_THREADS"] = "1"
                env.setdefault("HF_UNIFORM_THREADS", "1")
                if filt != "default":
                    env["HF_UNIFORM_FILTER_DTYPE"] = filt
                res = subprocess.run([sys.executable, "-c", CHILD, str(path), method, budget, str(args.k),
                                      str(ROOT)], capture_output=True, text=True, env=env)
                if res.returncode != 0:
                    found[(method, filt, budget)] = [{"method": method, "budget": budget, "filter": filt,
                                                      "error": res.stderr[-1500:]}]
                    print(method, budget, "ERROR", res.stderr[-500:])
                    continue
                found[(method, filt, budget)].append({"method": method, "budget": budget, "filter": filt,
                                                      **json.loads(res.stdout.strip().splitlines()[-1])})
        for case in cases:
            runs = found[case]
            if not runs or "error" in runs[0]:
                rows.extend(runs)
                continue
            peaks = [r["peak_above_loaded_MB"] for r in runs]
            best = dict(min(runs, key=lambda r: r["peak_above_loaded_MB"]))
            best["peaks_MiB"], best["peak_max_MiB"] = peaks, max(peaks)
            best["seconds_all"] = [r["seconds"] for r in runs]
            rows.append(best)
            method, filt, budget = case
            print(f"{method:<6} {filt:<8} ({best['filter_dtype']:<8}) {budget:>7} peak above loaded "
                  f"{best['peak_above_loaded_MB']:8.1f} MiB (max of {len(peaks)}: {max(peaks):.1f})  "
                  f"({min(best['seconds_all']):.1f} s, streamed={best['streamed']})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": args.n, "d": args.d, "k": args.k, "data_MB": data_mb, "rows": rows,
                               "load_avg": os.getloadavg(), "cpu_flags": cpu_flags(), "cpu_model": cpu_model(),
                               "cores": os.cpu_count(), "gemm_threads": int(os.environ.get("HF_UNIFORM_THREADS", "1")),
                               "default_filter_dtype": str(default_filter_dtype(args.d, args.k)).replace("torch.", ""),
                               "omp_threads": 1}, indent=1))
    print(f"data: {data_mb:.0f} MB float32; wrote {out}")


if __name__ == "__main__":
    main()
