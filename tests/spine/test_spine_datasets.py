"""filter_uniform / add_uniform_rank behave as datasets methods: Dataset out, fingerprints, cache files, splits."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from test_spine_select import greedy_ref  # tests/spine is on sys.path (no __init__.py in test folders)

import hf_uniform
from hf_uniform import UniformError, select_uniform


def _disk_pool(tmp_path, n=40, d=4, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    Dataset.from_dict({"id": list(range(n)), "emb": x.tolist()}).save_to_disk(tmp_path / "pool")
    return x, Dataset.load_from_disk(tmp_path / "pool")


def test_fingerprint_is_deterministic_and_follows_the_options(tmp_path):
    _, ds = _disk_pool(tmp_path)
    a = ds.filter_uniform(k=5, embedding_column="emb", seed=1, progress=False)
    b = ds.filter_uniform(k=5, embedding_column="emb", seed=1, progress=False)
    c = ds.filter_uniform(k=5, embedding_column="emb", seed=2, progress=False)
    d = ds.filter_uniform(k=6, embedding_column="emb", seed=1, progress=False)
    assert a._fingerprint == b._fingerprint
    assert len({a._fingerprint, c._fingerprint, d._fingerprint, ds._fingerprint}) == 4
    named = ds.filter_uniform(k=5, embedding_column="emb", seed=1, progress=False, new_fingerprint="my-fp-1")
    assert named._fingerprint == "my-fp-1" and named["id"][:] == a["id"][:]


def test_a_cache_hit_neither_embeds_nor_selects(tmp_path, monkeypatch):
    import hf_uniform.steps as steps

    _, ds = _disk_pool(tmp_path)
    first = ds.filter_uniform(k=7, embedding_column="emb", seed=0, progress=False, desc="uniform subset")
    ranked = ds.add_uniform_rank(embedding_column="emb", seed=0, progress=False)
    assert first.cache_files and ranked.cache_files  # written by datasets, beside the input's files

    def boom(*a, **k):
        raise AssertionError("the selection ran again")

    monkeypatch.setattr(steps, "run_spine", boom)
    again = ds.filter_uniform(k=7, embedding_column="emb", seed=0, progress=False)
    assert again["id"][:] == first["id"][:] and again._fingerprint == first._fingerprint
    assert ds.add_uniform_rank(embedding_column="emb", seed=0, progress=False)["uniform_rank"][:] == \
        ranked["uniform_rank"][:]
    with pytest.raises(AssertionError, match="ran again"):
        ds.filter_uniform(k=7, embedding_column="emb", seed=0, progress=False, load_from_cache_file=False)


def test_add_uniform_rank_is_the_full_greedy_order_and_every_budget_is_a_filter():
    x = np.random.default_rng(3).normal(size=(30, 3)).astype(np.float32)
    ds = Dataset.from_dict({"id": list(range(30)), "emb": x.tolist()})
    out = ds.add_uniform_rank(embedding_column="emb", metric="euclidean", start=4, progress=False)
    assert out["id"][:] == list(range(30))  # every row, in the input's order, unchanged
    rank = np.asarray(out["uniform_rank"][:])
    order, radii = greedy_ref(x, 30, 4, "euclidean")
    assert np.argsort(rank).tolist() == order
    dist = np.asarray([np.inf if v is None else v for v in out["uniform_min_distance"][:]])
    np.testing.assert_allclose(dist[order][1:], radii[1:], rtol=1e-5)
    for b in (1, 5, 17, 30):
        sub = out.filter(lambda r, b=b: 0 <= r["uniform_rank"] < b)
        want = select_uniform(ds, b, embedding_column="emb", metric="euclidean", start=4).indices
        assert sorted(sub["id"][:]) == sorted(want.tolist())
    capped = ds.add_uniform_rank(6, embedding_column="emb", metric="euclidean", start=4, progress=False)
    assert sorted(capped["uniform_rank"][:]) == [-1] * 24 + list(range(6))


def test_add_uniform_rank_orders_duplicates_after_the_distinct_rows():
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    ds = Dataset.from_dict({"emb": x.tolist()})
    out = ds.add_uniform_rank(embedding_column="emb", metric="euclidean", start=0, progress=False)
    order, _ = greedy_ref(x, 3, 0, "euclidean")  # the three distinct points, then the duplicates at radius 0
    rank = out["uniform_rank"][:]
    assert [rank[i] for i in order] == [0, 1, 2] and sorted(rank) == [0, 1, 2, 3, 4]
    assert [out["uniform_min_distance"][i] for i in (2, 4)] == [0.0, 0.0]


def test_datasetdict_filters_train_only_and_rows_match_per_split():
    x = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    dd = DatasetDict({"train": Dataset.from_dict({"id": list(range(20)), "emb": x.tolist()}),
                      "test": Dataset.from_dict({"id": [100, 101], "emb": x[:2].tolist()})})
    out = dd.filter_uniform(k=4, embedding_column="emb", seed=5, progress=False, new_fingerprint={"train": "t-fp"})
    assert isinstance(out, DatasetDict) and out["test"]["id"][:] == [100, 101]
    assert out["train"]["id"][:] == select_uniform(dd["train"], 4, embedding_column="emb", seed=5).indices.tolist()
    assert out["train"]._fingerprint == "t-fp"
    ranked = dd.add_uniform_rank(embedding_column="emb", seed=5, progress=False, splits=["train", "test"])
    assert sorted(ranked["test"]["uniform_rank"][:]) == [0, 1]
    with pytest.raises(UniformError, match="select_uniform takes a Dataset"):
        select_uniform(dd, 2, embedding_column="emb")
    with pytest.raises(UniformError, match=r"new_fingerprint of a DatasetDict is a dict"):
        dd.filter_uniform(k=2, embedding_column="emb", new_fingerprint="x", progress=False)


def test_refiltering_replaces_the_rank_columns_and_indices_maps_are_honoured():
    x = np.random.default_rng(2).normal(size=(25, 3)).astype(np.float32)
    ds = Dataset.from_dict({"id": list(range(25)), "emb": x.tolist()})
    shuffled = ds.shuffle(seed=0)  # an indices mapping: rows are read in its order
    sel = select_uniform(shuffled, 6, embedding_column="emb", start=0)
    ref = greedy_ref(x[shuffled["id"][:]], 6, 0, "cosine")[0]
    assert sel.indices.tolist() == ref
    sub = shuffled.filter_uniform(k=6, embedding_column="emb", start=0, progress=False)
    assert sub["id"][:] == [shuffled["id"][i] for i in ref]
    twice = sub.filter_uniform(k=3, embedding_column="emb", start=0, progress=False)
    assert twice.column_names.count("uniform_rank") == 1 and twice["uniform_rank"][:] == [0, 1, 2]


def test_methods_are_registered_plainly():
    import hf_uniform.dataset_methods as dm

    assert Dataset.add_uniform_rank is dm._rank_method and DatasetDict.filter_uniform is dm._dataset_method
    assert hf_uniform.add_uniform_rank is hf_uniform.integration.add_uniform_rank
