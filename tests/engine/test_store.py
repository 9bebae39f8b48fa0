"""Out-of-core selection (max_memory=): streamed from a memmap / Arrow column, same result as in memory."""

from __future__ import annotations

import numpy as np
import pytest

from hf_uniform import UniformError, maxmin_select
from hf_uniform.engine.store import InMemorySource, StreamSource, parse_bytes


def blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, d))
    return (centres[rng.integers(12, size=n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_streamed_memmap_equals_in_memory(tmp_path, dtype, metric):
    x = blobs(4000, 32).astype(dtype)
    path = tmp_path / "x.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    ref = maxmin_select(x, 900, metric=metric, seed=4)
    out = maxmin_select(mm, 900, metric=metric, seed=4, max_memory="1MB")  # in memory needs > 8MB
    assert out.info["streamed"] and not ref.info["streamed"]
    assert out.indices.tolist() == ref.indices.tolist()
    assert np.array_equal(out.min_distances, ref.min_distances)
    assert out.coverage_radius == ref.coverage_radius
    # a budget that fits keeps the in-memory path
    assert not maxmin_select(mm, 10, metric=metric, max_memory="1GB").info["streamed"]


@pytest.mark.parametrize("method", ["sweep", "plain"])
def test_streamed_plain_and_sweep_equal_in_memory(tmp_path, method):
    x = blobs(1500, 16, seed=1)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ref = maxmin_select(x, 60, seed=2, method=method)
    out = maxmin_select(mm, 60, seed=2, method=method, max_memory=20_000, chunk_size=256)
    assert out.info["streamed"]
    assert out.indices.tolist() == ref.indices.tolist()
    np.testing.assert_allclose(out.min_distances[1:], ref.min_distances[1:], atol=1e-6)


def test_arrow_column_source():
    pa = pytest.importorskip("pyarrow")
    x = blobs(800, 8, seed=3)
    col = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 8)
    ref = maxmin_select(x, 50, seed=1)
    out = maxmin_select(col, 50, seed=1, max_memory="300KB")
    assert out.info["streamed"] and out.indices.tolist() == ref.indices.tolist()


def test_stream_and_memory_sources_prepare_rows_identically():
    x = blobs(300, 24, seed=5).astype(np.float16)
    ids = np.array([299, 0, 150, 7])
    a = InMemorySource(x, "cosine").rows(ids)
    b = StreamSource(x, "cosine", chunk_rows=7).rows(ids)
    assert np.array_equal(a, b)


def test_streamed_validation_and_sizes(tmp_path):
    x = blobs(100, 4)
    x[57] = np.nan
    with pytest.raises(UniformError, match=r"NaN or inf at rows \[57\]"):
        maxmin_select(x, 3, max_memory="300KB")
    x[57] = 0.0
    with pytest.raises(UniformError, match=r"zero vector.*rows \[57\]"):
        maxmin_select(x, 3, max_memory="300KB")
    # datasets' convert_file_size_to_int semantics: GB = 10**9, GiB = 2**30; units are bytes in any case
    assert parse_bytes("1.5 KiB") == 1536 and parse_bytes("3GB") == 3 * 10**9 and parse_bytes("3GiB") == 3 << 30
    assert parse_bytes("3gb") == 3 * 10**9 and parse_bytes("2G") == 2 * 10**9
    with pytest.raises(UniformError):
        parse_bytes("-2GB")
