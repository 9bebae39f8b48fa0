"""The Ray backend on a local Ray instance (2 CPUs): core-set selection equal to ``coreset_select``, embedding
equal to ``ds.map(embedder)``, the ``--ray`` CLI, and its errors. One Ray instance serves the whole file."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from hf_uniform import coreset_select
from hf_uniform.errors import UniformError


def _import_ray():
    return pytest.importorskip("ray", reason="the Ray backend needs `pip install 'hf-uniform[ray]'`")


def _blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, d))
    x = centres[rng.integers(12, size=n)] + 0.3 * rng.normal(size=(n, d))
    return x.astype(np.float32)


def _f64_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if metric == "cosine":
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return np.clip(1.0 - a @ b.T, 0.0, None)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def _table(x: np.ndarray):
    import pyarrow as pa

    flat = pa.array(x.reshape(-1), type=pa.float32())
    return pa.table({"id": pa.array(np.arange(len(x)) * 10, pa.int64()),
                     "embedding": pa.FixedSizeListArray.from_arrays(flat, x.shape[1])})


def test_ray_import_is_the_real_package_and_missing_ray_is_one_line(monkeypatch):
    import hf_uniform.ray as hr

    ray = _import_ray()
    assert hr._ray() is ray and "hf_uniform" not in ray.__file__  # hf_uniform.ray does not shadow ray
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UniformError, match=r"pip install 'hf-uniform\[ray\]'"):
        hr._ray()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_select_equals_coreset_select_and_float64_evidence(local_ray, metric):
    from hf_uniform.ray import select_uniform_ray

    x = _blobs(1500, 12, seed=3)
    # 7 blocks, 3 shards: shard boundaries fall inside blocks
    ds = local_ray.data.from_arrow(_table(x), override_num_blocks=7)
    res = select_uniform_ray(ds, 25, shards=3, k_per_shard=40, metric=metric, seed=5, coverage_sample=None,
                             progress=False)
    ref = coreset_select(x, 25, shards=3, k_prime=40, metric=metric, seed=5)
    sel = res.selection
    assert sel.indices.tolist() == ref.indices.tolist()
    np.testing.assert_array_equal(sel.min_distances, ref.min_distances)
    assert sel.coverage_radius == ref.coverage_radius and sel.n == 1500
    assert sel.info["union_size"] == ref.info["union_size"] == 120

    # independent float64 evidence: h is the subset's min pairwise distance, coverage the pool's k-center radius
    chosen = x[sel.indices]
    pair = _f64_distances(chosen, chosen, metric)
    np.fill_diagonal(pair, np.inf)
    assert math.isclose(sel.h, pair.min(), rel_tol=1e-4, abs_tol=1e-6)
    cov = _f64_distances(x, chosen, metric).min(axis=1).max()
    assert math.isclose(res.record["coverage_radius"], cov, rel_tol=1e-9, abs_tol=1e-12)
    assert res.record["coverage_radius_over"] == "pool"
    assert res.record["shard_rows"] == [500, 500, 500] and res.record["vectors_to_round2"] == 120
    assert res.record["cluster"]["cpus"] == 2 and res.record["cluster"]["nodes"] == 1

    # rows in greedy order, rows unchanged plus uniform_rank / uniform_min_distance
    rows = res.table()
    assert rows.column("id").to_pylist() == (sel.indices * 10).tolist()
    assert rows.column("uniform_rank").to_pylist() == list(range(25))
    radii = rows.column("uniform_min_distance").to_pylist()
    assert radii[0] is None and radii[1:] == sel.min_distances[1:].tolist()
    np.testing.assert_array_equal(np.asarray(rows.column("embedding").to_pylist(), dtype=np.float32), chosen)


def test_coverage_sample_is_seeded_lower_bound(local_ray):
    from hf_uniform.ray import select_uniform_ray

    x = _blobs(800, 8, seed=1)
    ds = local_ray.data.from_numpy(x)
    res = select_uniform_ray(ds, 10, shards=2, embedding_column="data", coverage_sample=100, seed=2,
                             progress=False)
    sample = np.sort(np.random.default_rng(2).choice(800, 100, replace=False))
    chosen = x[res.selection.indices]
    expect = _f64_distances(x[sample], chosen, "cosine").min(axis=1).max()
    assert math.isclose(res.record["coverage_radius"], expect, rel_tol=1e-9, abs_tol=1e-12)
    assert res.record["coverage_radius"] <= _f64_distances(x, chosen, "cosine").min(axis=1).max() + 1e-12
    assert "sample of 100 rows" in res.record["coverage_radius_over"]
    # a Ray tensor column becomes a fixed-size float list in datasets
    hf = res.to_huggingface()
    assert hf.features["data"].length == 8 and hf["uniform_rank"][:] == list(range(10))


def test_bad_arguments_raise_one_line_errors(local_ray):
    from hf_uniform.ray import select_uniform_ray

    ds = local_ray.data.from_numpy(_blobs(30, 4))
    with pytest.raises(UniformError, match="embedding column 'embedding' not found; available columns: \\['data'\\]"):
        select_uniform_ray(ds, 3, shards=2, progress=False)
    with pytest.raises(UniformError, match="shards must be between 1 and n=30"):
        select_uniform_ray(ds, 3, shards=31, embedding_column="data", progress=False)
    with pytest.raises(UniformError, match="the shards hold only 4 rows together; raise k_per_shard"):
        select_uniform_ray(ds, 5, shards=2, k_per_shard=2, embedding_column="data", progress=False)
    with pytest.raises(UniformError, match="shards must be a positive number"):
        select_uniform_ray(ds, 3, shards=0, embedding_column="data")
    with pytest.raises(UniformError, match="does not take \\['resume'\\]"):
        select_uniform_ray(ds, 3, shards=2, embedding_column="data", resume=True)
    with pytest.raises(UniformError, match="unknown metric"):
        select_uniform_ray(ds, 3, metric="manhattan", embedding_column="data")
    from hf_uniform.ray import embed_ray

    with pytest.raises(UniformError, match="concurrency must be a number of actors"):
        embed_ray(ds, "w2v", concurrency=0)  # refused before fitting anything
    with pytest.raises(UniformError, match="cannot tell which columns hold the text"):
        embed_ray(ds, "w2v")


def _text_rows(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)] + ["add", "name", "colour", "write", "poem", "sum", "list"]
    rows = []
    for i in range(n):
        ins = " ".join(rng.choice(words, size=int(rng.integers(3, 9))))
        rows.append({"instruction": ins, "input": "" if i % 3 else f"x{i % 7}", "output": " ".join(
            rng.choice(words, size=int(rng.integers(2, 6)))), "id": i})
    return rows


@pytest.mark.slow  # starts an actor pool: ~10-35 s on 2 busy cores
@pytest.mark.parametrize("max_restarts", [None, 0])
def test_embed_ray_equals_dataset_map(local_ray, max_restarts, recwarn):
    from datasets import Dataset

    from hf_uniform import Word2VecEmbedder
    from hf_uniform.ray import embed_ray, from_dataset

    hf = Dataset.from_list(_text_rows(240))
    ref = Word2VecEmbedder(vector_size=16, seed=1).fit(hf)
    expected = hf.map(ref, batched=True, features=ref.features(hf))
    # an unfitted embedder: fitted on the driver from the Ray dataset, then shipped to 2 actors
    out = embed_ray(from_dataset(hf, blocks=5), Word2VecEmbedder(vector_size=16, seed=1), batch_size=32,
                    concurrency=2, max_restarts=max_restarts).materialize()
    # max_restarts=0 (the CLI's on its own local instance) goes through without Ray's deprecation warning
    assert not [w for w in recwarn if "ray_remote_args" in str(w.message)]
    table = out.to_arrow_refs()
    import pyarrow as pa

    got = pa.concat_tables(local_ray.get(table))
    assert str(got.schema.field("embedding").type) == "fixed_size_list<item: float>[16]"
    assert got.column("id").to_pylist() == list(range(240))  # same rows, same order
    np.testing.assert_array_equal(np.asarray(got.column("embedding").to_pylist(), dtype=np.float32),
                                  np.asarray(expected["embedding"][:], dtype=np.float32))
    assert np.abs(np.asarray(expected["embedding"][:])).sum() > 0


@pytest.mark.slow  # starts an actor pool: ~10-35 s on 2 busy cores
def test_cli_ray_local_equals_coreset_select(local_ray, tmp_path):
    from datasets import Dataset

    from hf_uniform import Word2VecEmbedder
    from hf_uniform.cli import main
    from hf_uniform.integration import embed

    rows = _text_rows(300)
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    rc = main(["select", str(src), "-k", "12", "-o", str(out), "--ray", "local", "--ray-shards", "3", "-q",
               "--no-plot"])
    assert rc == 0
    x = embed(Dataset.from_list([{c: r[c] for c in ("instruction", "input", "output")} for r in rows]),
              Word2VecEmbedder(), progress=False, cache=False)
    ref = coreset_select(x, 12, shards=3)
    record = json.loads((out / "selection.json").read_text())
    assert record["indices"] == ref.indices.tolist()
    assert record["k"] == 12 and record["n"] == 300 and record["shards"] == 3 and record["k_per_shard"] == 12
    assert record["cluster"]["nodes"] == 1 and record["backend"] == "ray"
    assert {"load_s", "embed_and_materialize_s", "round1_s", "round2_s", "coverage_s"} <= set(record["timings"])
    assert math.isclose(record["h"], ref.h, rel_tol=0, abs_tol=0)
    cov = _f64_distances(x, x[ref.indices], "cosine").min(axis=1).max()
    assert math.isclose(record["coverage_radius"], cov, rel_tol=1e-9, abs_tol=1e-12)
    subset = [json.loads(line) for line in (out / "subset.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if not k.startswith("uniform_")} for r in subset] == \
        [rows[i] for i in ref.indices]
    assert [r["uniform_rank"] for r in subset] == list(range(12))
    assert subset[0]["uniform_min_distance"] is None
    assert [r["uniform_min_distance"] for r in subset[1:]] == ref.min_distances[1:].tolist()


def test_cli_ray_parquet_folder_keeps_rows(local_ray, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hf_uniform.cli import main

    x = _blobs(400, 6, seed=7)
    folder = tmp_path / "pool"
    folder.mkdir()
    t = _table(x).append_column("note", pa.array([f"row {i}" for i in range(400)]))
    pq.write_table(t.slice(0, 150), folder / "part-000.parquet")
    pq.write_table(t.slice(150), folder / "part-001.parquet")
    out = tmp_path / "out"
    rc = main(["select", str(folder), "-k", "9", "-o", str(out), "--ray", "--ray-shards", "2",
               "--embedding-column", "embedding", "--metric", "euclidean", "-q", "--no-plot"])
    assert rc == 0
    ref = coreset_select(x, 9, shards=2, metric="euclidean")
    got = pq.read_table(out / "subset.parquet")
    assert got.column("id").to_pylist() == (ref.indices * 10).tolist()
    assert got.schema.field("embedding").type == t.schema.field("embedding").type  # types unchanged
    assert got.column("note").to_pylist() == [f"row {i}" for i in ref.indices]


def test_read_input_jsonl_folder_in_sorted_file_order(local_ray, tmp_path):
    from hf_uniform.ray import read_input

    folder = tmp_path / "pool"
    (folder / "b").mkdir(parents=True)
    (folder / "b" / "part-1.jsonl").write_text("".join(json.dumps({"i": i, "t": f"x{i}"}) + "\n" for i in range(3, 6)))
    (folder / "a.jsonl").write_text("".join(json.dumps({"i": i, "t": f"x{i}"}) + "\n" for i in range(3)))
    (folder / ".hidden.jsonl").write_text('{"i": 99}\n')
    assert [r["i"] for r in read_input(folder).take_all()] == list(range(6))
    (folder / "c.parquet").write_bytes(b"")
    with pytest.raises(UniformError, match="both Parquet and JSON files"):
        read_input(folder)


def test_cli_ray_refuses_exact_only_options_before_work(tmp_path, capsys):
    from hf_uniform.cli import main

    src = tmp_path / "p.jsonl"
    src.write_text('{"text": "a"}\n')
    assert main(["select", str(src), "-k", "1", "-o", str(tmp_path / "o"), "--ray", "--baselines"]) == 2
    assert "--baselines cannot be combined with --ray" in capsys.readouterr().err
    assert main(["select", str(src), "-k", "1", "-o", str(tmp_path / "o"), "--ray-shards", "2"]) == 2
    err = capsys.readouterr().err
    assert "shards applies to the core-set" in err and "(CLI: --ray)" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
