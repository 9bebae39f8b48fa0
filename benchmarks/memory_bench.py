"""Peak memory of the engine above the loaded process, for several ``max_memory`` budgets (issue 11).

Each case runs in a fresh subprocess: import, open the data (a float32 ``.npy`` memmap, or the same rows
loaded into RAM for the in-memory cases), compile the kernels on a tiny warm-up run, then a sampler thread
reads ``RssAnon`` (anonymous resident memory: the engine's arrays and copies, not the file pages a memmap
maps in, which the kernel can drop) from ``/proc/self/status`` every 2 ms while ``maxmin_select`` runs.
Reported: peak RssAnon minus RssAnon just before the call. ``ru_maxrss`` (which counts mapped file pages) is
recorded too.

Usage::

    python benchmarks/memory_bench.py                    # n=300000 d=128 (146 MB), k=2000
    python benchmarks/memory_bench.py --n 50000 --k 500
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
OUT = ROOT / "benchmarks" / "results" / "memory_bench.json"

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
maxmin_select(np.asarray(x[:3000]), 50, method=method, max_memory="1MB" if budget_arg else None)  # compile
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
                  "seconds": secs, "streamed": sel.info["streamed"], "first": sel.indices[:5].tolist()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--budgets", default="16MB,64MB,256MB")
    ap.add_argument("--methods", default="lazy,plain,sweep")
    args = ap.parse_args()
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
        for method in args.methods.split(","):
            for budget in ["memory", *args.budgets.split(",")]:
                res = subprocess.run([sys.executable, "-c", CHILD, str(path), method, budget, str(args.k), str(ROOT)],
                                     capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                if res.returncode != 0:
                    rows.append({"method": method, "budget": budget, "error": res.stderr[-1500:]})
                    print(method, budget, "ERROR", res.stderr[-500:])
                    continue
                r = {"method": method, "budget": budget, **json.loads(res.stdout.strip().splitlines()[-1])}
                rows.append(r)
                print(f"{method:<6} {budget:>7} peak above loaded {r['peak_above_loaded_MB']:8.1f} MB  "
                      f"({r['seconds']:.1f} s, streamed={r['streamed']})", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"n": args.n, "d": args.d, "k": args.k, "data_MB": data_mb, "rows": rows,
                               "load_avg": os.getloadavg()}, indent=1))
    print(f"data: {data_mb:.0f} MB float32; wrote {OUT}")


if __name__ == "__main__":
    main()
