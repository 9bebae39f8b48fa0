"""select_uniform against an independent float64 greedy max-min, and every adapter against select_uniform."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset

import hf_uniform
from hf_uniform import SelectConfig, UniformError, maxmin_select, select_uniform


def greedy_ref(x: np.ndarray, k: int, start: int, metric: str) -> tuple[list[int], list[float]]:
    """Brute-force greedy max-min in float64 on the float32 rows (ties to the lowest row)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    if metric == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1.0 - u @ u.T
    else:
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    chosen, radii = [start], [np.inf]
    mind = d[start].copy()
    mind[start] = -np.inf
    for _ in range(k - 1):
        j = int(np.argmax(mind))
        chosen.append(j)
        radii.append(float(mind[j]))
        mind = np.minimum(mind, d[j])
        mind[chosen] = -np.inf
    return chosen, radii


def _pool(n: int = 60, d: int = 5, seed: int = 0) -> tuple[np.ndarray, Dataset]:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x, Dataset.from_dict({"id": list(range(n)), "emb": x.tolist(), "text": [f"row {i}" for i in range(n)]})


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_select_uniform_equals_the_float64_reference(metric):
    x, ds = _pool()
    sel = select_uniform(ds, 12, embedding_column="emb", metric=metric, start=7)
    ref, radii = greedy_ref(x, 12, 7, metric)
    assert sel.indices.tolist() == ref
    np.testing.assert_allclose(sel.min_distances[1:], radii[1:], rtol=1e-5, atol=1e-6)
    # the seeded start: the same greedy from the row it drew, and that row is the one maxmin_select draws
    seeded = select_uniform(ds, 12, embedding_column="emb", metric=metric, seed=4)
    first = int(seeded.indices[0])
    assert seeded.indices.tolist() == greedy_ref(x, 12, first, metric)[0]
    assert first == int(maxmin_select(x, 12, metric=metric, seed=4).indices[0])


def test_filter_uniform_is_select_uniform_as_a_dataset_and_rows_are_unchanged():
    x, ds = _pool()
    sel = select_uniform(ds, 10, embedding_column="emb", seed=2)
    sub = ds.filter_uniform(k=10, embedding_column="emb", seed=2, progress=False)
    assert isinstance(sub, Dataset)
    assert sub["id"][:] == sel.indices.tolist()
    assert sub.column_names == ["id", "emb", "text", "uniform_rank", "uniform_min_distance"]
    assert sub["uniform_rank"][:] == list(range(10))
    for row in sub:  # rows out are rows in
        assert row["text"] == f"row {row['id']}"
        np.testing.assert_array_equal(np.asarray(row["emb"], dtype=np.float32), x[row["id"]])
    radii = sub["uniform_min_distance"][:]
    assert radii[0] is None
    np.testing.assert_allclose(radii[1:], sel.min_distances[1:])
    # a fraction: round(k * n) rows, the greedy prefix of the same run
    half = select_uniform(ds, 0.5, embedding_column="emb", seed=2)
    assert half.k == 30 and half.indices[:10].tolist() == sel.indices.tolist()


def test_text_path_filter_and_select_agree_and_map_empty_rows_back():
    rows = [f"item {i} " + " ".join(f"w{(i * j) % 13}" for j in range(1, 6)) for i in range(30)]
    rows[4] = rows[11] = ""
    ds = Dataset.from_dict({"text": rows, "id": list(range(30))})
    with pytest.raises(UniformError, match=r"2 of 30 rows have empty text.*drop_empty=True"):
        select_uniform(ds, 5, cache=False, progress=False)
    sel = select_uniform(ds, 5, drop_empty=True, cache=False, progress=False, embedder="w2v")
    sub = ds.filter_uniform(k=5, drop_empty=True, cache=False, progress=False)
    assert sub["id"][:] == sel.indices.tolist()
    assert not {4, 11} & set(sel.indices.tolist()) and sel.n == 30
    assert {4, 11} <= set(sel.info["dropped_rows"])
    with pytest.raises(UniformError, match="start row has empty text"):
        select_uniform(ds, 5, drop_empty=True, start=4, cache=False, progress=False)


def test_numpy_integer_starts_are_accepted_everywhere():
    x, ds = _pool()
    for start in (np.int64(3), np.int32(3), [np.int64(3)], np.array([3])):
        assert select_uniform(ds, 4, embedding_column="emb", start=start).indices[0] == 3
        assert ds.filter_uniform(k=4, embedding_column="emb", start=start, progress=False)["id"][0] == 3
        assert maxmin_select(x, 4, start=start).indices[0] == 3
    assert SelectConfig(k=2, start=np.int64(3), seed=np.int64(1)).start == (3,)


def test_an_embedding_array_is_a_valid_input_and_equals_the_dataset_path():
    x, ds = _pool()
    assert select_uniform(x, 8, start=1).indices.tolist() == select_uniform(ds, 8, embedding_column="emb",
                                                                            start=1).indices.tolist()


def test_config_and_options_combine():
    _, ds = _pool()
    cfg = SelectConfig(k=6, embedding_column="emb", metric="euclidean", seed=3)
    a = select_uniform(ds, config=cfg)
    b = select_uniform(ds, 6, embedding_column="emb", metric="euclidean", seed=3)
    c = select_uniform(ds, 4, config=cfg)  # k overrides the config's
    assert a.indices.tolist() == b.indices.tolist() and c.indices.tolist() == a.indices[:4].tolist()
    f = ds.filter_uniform(config=cfg, progress=False)
    assert f["id"][:] == a.indices.tolist()


def test_coreset_backend_equals_coreset_select():
    x, ds = _pool(80)
    sel = select_uniform(ds, 9, embedding_column="emb", backend="coreset", shards=3, seed=1)
    ref = hf_uniform.coreset_select(x, 9, shards=3, seed=1)
    assert sel.indices.tolist() == ref.indices.tolist()


def test_maxmin_select_takes_arrow_columns_in_memory_and_streamed():
    import pyarrow as pa

    x, _ = _pool(50, 4)
    col = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4)
    chunked = pa.chunked_array([col.slice(0, 20), col.slice(20)])
    ref = greedy_ref(x, 7, 2, "cosine")[0]
    assert maxmin_select(col, 7, start=2).indices.tolist() == ref
    assert maxmin_select(chunked, 7, start=2).indices.tolist() == ref
    streamed = maxmin_select(chunked, 7, start=2, max_memory="1KB", method="sweep")
    assert streamed.indices.tolist() == ref and streamed.info["streamed"]
    assert hf_uniform.uniform_rank(col, 7, start=2)[ref].tolist() == list(range(7))


def test_embedding_column_streams_under_max_memory_without_a_copy(tmp_path):
    import pyarrow as pa
    from datasets import Features, List, Value

    from hf_uniform.steps import stored_vectors

    x, ds = _pool(200, 6)
    ds = ds.cast(Features({"id": Value("int64"), "emb": List(Value("float32"), length=6), "text": Value("string")}))
    ds.save_to_disk(tmp_path / "d")
    disk = Dataset.load_from_disk(tmp_path / "d")
    col = stored_vectors(disk, "emb", stream=True)
    assert isinstance(col, pa.ChunkedArray)  # the Arrow column over the memory-mapped file, not a numpy copy
    streamed = select_uniform(disk, 15, embedding_column="emb", max_memory="2KB", method="sweep", start=0)
    assert streamed.info["streamed"] is True
    assert streamed.indices.tolist() == greedy_ref(x, 15, 0, "cosine")[0]
    assert disk.filter_uniform(k=15, embedding_column="emb", max_memory="2KB", method="sweep", start=0,
                               progress=False)["id"][:] == streamed.indices.tolist()


def test_every_adapter_gives_the_rows_of_select_uniform(tmp_path):
    from hf_uniform.cli import main
    from hf_uniform.pipeline import run_selection
    from hf_uniform.study.arms import build_arm_indices
    from hf_uniform.train.data import load_training_data

    x, ds = _pool(40, 4, seed=5)
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps({"id": i, "instruction": f"q{i}", "output": f"a{i}",
                                       "emb": x[i].tolist()}) + "\n" for i in range(40)))
    want = select_uniform(ds, 8, embedding_column="emb", seed=3).indices.tolist()

    assert ds.filter_uniform(k=8, embedding_column="emb", seed=3, progress=False)["id"][:] == want
    ranked = ds.add_uniform_rank(embedding_column="emb", seed=3, progress=False)
    assert sorted(ranked.filter(lambda r: 0 <= r["uniform_rank"] < 8)["id"][:]) == sorted(want)
    rec = run_selection(src, 8, tmp_path / "py", embedding_column="emb", seed=3, plot=False, progress=False)
    assert rec.indices == want
    assert main(["select", str(src), "-k", "8", "-o", str(tmp_path / "cli"), "--embedding-column", "emb",
                 "--seed", "3", "--no-plot", "-q"]) == 0
    assert json.loads((tmp_path / "cli" / "selection.json").read_text())["indices"] == want
    data = load_training_data(str(src), uniform_k=8, embedding_column="emb", seed=3, measure_h=False)
    assert data.selection["indices"] == want
    assert data.train["completion"][:] == [f"a{i}" for i in want]
    assert build_arm_indices(x, "uniform", 8, 3).tolist() == select_uniform(
        x, 8, seed=3, drop_zero_vectors=True).indices.tolist()
