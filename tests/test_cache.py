"""Embedding cache: hits skip embedding and training, keys change with data/text/model, files are atomic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hf_uniform import UniformError, Word2VecEmbedder, filter_uniform, maxmin_select, select_uniform
from hf_uniform.cache import (
    embedding_cache_dir,
    embedding_cache_key,
    load_embeddings,
    path_signature,
    save_embeddings,
)
from hf_uniform.embedders import SentenceTransformerEmbedder
from hf_uniform.integration import embed
from hf_uniform.io import load_input


class CountingW2V(Word2VecEmbedder):
    """Word2Vec that counts its fit and encode calls (observation only; the vectors are unchanged)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fits = self.encodes = 0

    def fit(self, data):
        self.fits += 1
        return super().fit(data)

    def encode(self, texts):
        self.encodes += 1
        return super().encode(texts)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path))
    return tmp_path / "embeddings"


@pytest.fixture
def pool(shared_data):
    return load_input(shared_data("instruct/code_alpaca_2k.jsonl"))


def _fresh_vectors(ds, **kwargs) -> np.ndarray:
    emb = Word2VecEmbedder(vector_size=64, **kwargs).fit(ds)
    return emb.encode(emb.texts(ds[:]))


def test_second_run_with_other_k_metric_seed_neither_embeds_nor_trains(cache, pool):
    first = CountingW2V(vector_size=64)
    sel1 = select_uniform(pool, 100, embedder=first, progress=False)
    assert first.fits == 1 and first.encodes >= 2
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npy")
    meta = json.loads((cache / files[0]).read_text())
    assert meta["fingerprint"] == pool._fingerprint and meta["shape"] == [len(pool), 64]
    assert meta["embedder"]["vector_size"] == 64 and meta["embedder"]["versions"]["gensim"]

    x = _fresh_vectors(pool)  # independent: a new model trained and applied without the cache
    np.testing.assert_array_equal(np.load(cache / files[1]), x)

    again = CountingW2V(vector_size=64)
    sub2 = filter_uniform(pool, 0.1, embedder=again, metric="euclidean", seed=7, progress=False)
    sel2 = select_uniform(pool, 0.1, embedder=again, metric="euclidean", seed=7, progress=False)
    assert (again.fits, again.encodes) == (0, 0)
    ref = maxmin_select(x, 0.1, metric="euclidean", seed=7)
    assert sel2.indices.tolist() == ref.indices.tolist() and len(sub2) == ref.k
    assert sel1.indices.tolist() == maxmin_select(x, 100, seed=0).indices.tolist()

    # the embedder is still usable after a hit: it is fitted on the pool when first asked to encode
    rows = pool.select(range(5))
    np.testing.assert_array_equal(again.encode(again.texts(rows[:])), x[:5])
    assert again.fits == 1


@pytest.mark.parametrize("change", ["template", "columns", "model", "data"])
def test_changed_text_model_or_data_misses(cache, pool, change):
    emb = CountingW2V(vector_size=64)
    embed(pool, emb, progress=False)
    kwargs, data = {}, pool
    if change == "template":
        kwargs["template"] = "{instruction}\n{output}"
    elif change == "columns":
        kwargs["text_columns"] = ["instruction"]
    elif change == "model":
        kwargs["seed"] = 1
    else:
        data = pool.select(range(len(pool) - 1))
    other = CountingW2V(**{"vector_size": 64, **kwargs})
    y = embed(data, other, progress=False)
    assert other.fits == 1 and other.encodes >= 1
    np.testing.assert_array_equal(y, _fresh_vectors(data, **kwargs))
    assert len(list(cache.glob("*.npy"))) == 2
    hit = CountingW2V(**{"vector_size": 64, **kwargs})  # and the new entry is reused
    np.testing.assert_array_equal(embed(data, hit, progress=False), y)
    assert (hit.fits, hit.encodes) == (0, 0)


def test_no_cache_neither_reads_nor_writes(cache, pool):
    embed(pool, CountingW2V(vector_size=64), progress=False)
    emb = CountingW2V(vector_size=64)
    embed(pool, emb, progress=False, cache=False)
    assert emb.fits == 1 and emb.encodes >= 1
    before = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    filter_uniform(pool, 10, embedder=CountingW2V(vector_size=32), cache=False, progress=False)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == before


def test_damaged_entry_is_ignored_and_rewritten(cache, pool, caplog):
    x = embed(pool, CountingW2V(vector_size=64), progress=False)
    (npy,) = cache.glob("*.npy")
    npy.write_bytes(b"not a numpy file")
    emb = CountingW2V(vector_size=64)
    with caplog.at_level("WARNING"):
        y = embed(pool, emb, progress=False)
    assert "damaged" in caplog.text and emb.fits == 1
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(np.load(npy), x)
    key = npy.stem
    assert load_embeddings(key, n_rows=len(pool) + 1) is None  # wrong length: a miss, not an error


@pytest.mark.slow
def test_hit_across_processes_like_two_cli_runs(cache, shared_data):
    """A fresh process loading the same file gets the same fingerprint, hence a hit."""
    path = shared_data("instruct/code_alpaca_2k.jsonl")
    code = textwrap.dedent(f"""
        from hf_uniform import Word2VecEmbedder
        from hf_uniform.integration import embed
        from hf_uniform.io import load_input
        class E(Word2VecEmbedder):
            calls = 0
            def encode(self, texts):
                E.calls += 1
                return super().encode(texts)
        x = embed(load_input({str(path)!r}), E(vector_size=16), progress=False)
        print(E.calls, x.shape[0], float(x.sum()))
    """)
    env = {**os.environ, "HF_UNIFORM_CACHE": str(cache.parent)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            .stdout.split() for _ in range(2)]
    assert int(runs[0][0]) > 0 and int(runs[1][0]) == 0
    assert runs[0][1:] == runs[1][1:]


def test_keys_and_identity(tmp_path):
    from datasets import Dataset

    ds = Dataset.from_dict({"text": ["a b", "c d"]})
    assert embedding_cache_key(ds, Word2VecEmbedder()) == embedding_cache_key(ds, Word2VecEmbedder())
    assert embedding_cache_key(ds, SentenceTransformerEmbedder(object())) is None  # in-memory model
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"1234")
    st = SentenceTransformerEmbedder(str(model))
    k1 = embedding_cache_key(ds, st)
    os.utime(model / "weights.bin", ns=(1, 1))  # "retrained in place": same path, new files
    assert embedding_cache_key(ds, st) != k1
    assert path_signature(model)["files"][0][:2] == ["weights.bin", 4]
    assert embedding_cache_dir(tmp_path) == tmp_path
    with pytest.raises(UniformError, match="invalid embedding cache key"):
        load_embeddings("../../etc/passwd", cache_dir=tmp_path)
    with pytest.raises(UniformError, match="2-D"):
        save_embeddings("ab", np.zeros(3, np.float32), cache_dir=tmp_path)


def test_edit_keeping_size_and_mtime_recomputes(tmp_path, monkeypatch):
    """The stale-row reproducer: edit a row keeping the file size, restore the mtime (as cp -p, rsync -a or
    tar x do), rerun: the new text is embedded and written, with and without --no-cache."""
    import json
    import os

    from hf_uniform.cli import main

    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    words = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta", "iota kappa", "lambda mu"]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"instruction": w, "output": "ok"}) + "\n" for w in words))
    st = src.stat()
    assert main(["select", str(src), "-k", "6", "-o", str(tmp_path / "a"), "-q", "--no-plot"]) == 0
    edited = src.read_text().replace("gamma delta", "GAMMA DELTA")
    src.write_text(edited)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert src.stat().st_size == st.st_size and src.stat().st_mtime_ns == st.st_mtime_ns
    for extra in ([], ["--no-cache"]):
        out = tmp_path / f"b{len(extra)}"
        assert main(["select", str(src), "-k", "6", "-o", str(out), "-q", "--no-plot", *extra]) == 0
        texts = [json.loads(line)["instruction"] for line in (out / "subset.jsonl").read_text().splitlines()]
        assert "GAMMA DELTA" in texts and "gamma delta" not in texts
    keys = sorted(p.name for p in (tmp_path / "cache" / "embeddings").glob("*.npy"))
    assert len(keys) == 2  # one entry per content, not per path/size/mtime


def test_content_hash_is_computed_while_reading_once(tmp_path, monkeypatch):
    """read_source opens the input once (hash while reading, no second pass)."""
    import builtins

    from hf_uniform.io import read_source

    src = tmp_path / "d.jsonl"
    src.write_text('{"text": "a"}\n{"text": "b"}\n')
    opened = []
    real_open = builtins.open

    def spy(file, *a, **k):
        if str(file) == str(src):
            opened.append(file)
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", spy)
    one = read_source(src)
    assert len(opened) == 1
    monkeypatch.undo()
    src.write_text('{"text": "a"}\n{"text": "c"}\n')
    assert read_source(src).fingerprint() != one.fingerprint()
