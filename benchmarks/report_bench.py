"""How much of `hf-uniform select` is spent outside the selection, at n = 1e5 x 128, k = 1e4 (issue 11).

Side by side, in fresh processes, best of N each:

* ``baseline``: read the file + ``embedding_matrix`` + ``maxmin_select`` (what any user must pay);
* ``cli``: the whole ``hf-uniform select FILE --embedding-column emb -k K -o OUT --no-plot -q`` (wall clock),
  with the per-phase seconds it records in ``selection.json``;
* optionally ``cli+plot`` (the uniformity.png drawing, owned by the plots module).

Goal: cli <= 1.3 x baseline, i.e. at most 30 % of the command outside the selection.

Usage::

    python benchmarks/report_bench.py                   # n=100000 d=128 k=10000, N=2
    python benchmarks/report_bench.py --n 20000 --k 2000 --repeats 1 --plot
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "report_bench.json"

BASELINE = """
import sys, time, json
t0 = time.perf_counter()
from hf_uniform.io import read_source
from hf_uniform.integration import embedding_matrix
from hf_uniform import maxmin_select
src = read_source(sys.argv[1])
x = embedding_matrix(src.to_dataset(["emb"]), "emb")
t1 = time.perf_counter()
sel = maxmin_select(x, int(sys.argv[2]), seed=0)
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "select_s": t2 - t1, "total_s": t2 - t0}))
"""


def make_pool(path: Path, n: int, d: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, d))
    x = (centres[rng.integers(1000, size=n)] + 0.6 * rng.normal(size=(n, d))).astype(np.float32)
    col = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)
    pq.write_table(pa.table({"id": np.arange(n), "emb": col}), path)


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(res.stderr[-2000:])
    return wall, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--plot", action="store_true", help="also time the command with uniformity.png")
    args = ap.parse_args()
    env = {**os.environ}
    with tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool.parquet"
        make_pool(pool, args.n, args.d)
        base, cli, plot = [], [], []
        for r in range(args.repeats):  # interleaved, so that load changes hit both sides
            wall, out = run([sys.executable, "-c", BASELINE, str(pool), str(args.k)], env)
            base.append({"wall_s": wall, **json.loads(out.strip().splitlines()[-1])})
            o = Path(tmp) / f"out{r}"
            wall, _ = run([sys.executable, "-m", "hf_uniform.cli", "select", str(pool), "--embedding-column", "emb",
                           "-k", str(args.k), "-o", str(o), "--no-plot", "-q"], env)
            rec = json.loads((o / "selection.json").read_text())
            cli.append({"wall_s": wall, "timings": rec["engine"]["timings"],
                        "estimated": {k: v.get("estimated") for k, v in rec["report"].items()}})
            if args.plot:
                o = Path(tmp) / f"plot{r}"
                wall, _ = run([sys.executable, "-m", "hf_uniform.cli", "select", str(pool), "--embedding-column",
                               "emb", "-k", str(args.k), "-o", str(o), "-q"], env)
                plot.append({"wall_s": wall, "timings": json.loads((o / "selection.json").read_text())
                             ["engine"]["timings"]})
    b = min(base, key=lambda v: v["wall_s"])
    c = min(cli, key=lambda v: v["wall_s"])
    result = {"n": args.n, "d": args.d, "k": args.k, "repeats": args.repeats, "baseline": base, "cli": cli,
              "cli_plot": plot, "ratio_cli_over_baseline": c["wall_s"] / b["wall_s"],
              "outside_selection_fraction": 1 - b["wall_s"] / c["wall_s"],
              "threads": os.environ.get("OMP_NUM_THREADS", "default"), "load_avg": os.getloadavg()}
    if plot:
        result["ratio_cli_plot_over_baseline"] = min(p["wall_s"] for p in plot) / b["wall_s"]
    print(f"{'side':<28}{'best wall s':>12}")
    print(f"{'load + maxmin_select':<28}{b['wall_s']:>12.1f}   (select {b['select_s']:.1f})")
    print(f"{'hf-uniform select --no-plot':<28}{c['wall_s']:>12.1f}   phases {json.dumps(c['timings'])}")
    if plot:
        print(f"{'hf-uniform select (plot)':<28}{min(p['wall_s'] for p in plot):>12.1f}")
    print(f"ratio {result['ratio_cli_over_baseline']:.2f}x; outside the selection: "
          f"{100 * result['outside_selection_fraction']:.0f} % (goal <= 30 %)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
