"""Issue 21 items 1-2: cosine exact on the rows as given, and storage dtypes that are exact or refused.

Cosine distances are normalisation-free (``1 - <a, b> / sqrt(<a, a> <b, b>)`` in float64 on the float32 rows
as given), so rows pointing the same way are at distance exactly 0 and exact ties go to the lowest index; the
oracle (:mod:`hf_uniform.engine.reference`) uses the same definition and is itself checked against scipy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from test_exact import replay

from hf_uniform import UniformError, maxmin_select
from hf_uniform.engine.reference import reference_distances, reference_rows, reference_select

VARIANTS = [("lazy", {}), ("lazy", {"max_memory": 400_000, "chunk_size": 97}), ("plain", {}),
            ("plain", {"max_memory": 256, "chunk_size": 97}), ("sweep", {}), ("plain", {"dtype": torch.float16}),
            ("sweep", {"dtype": torch.bfloat16})]
IDS = ["lazy", "lazy-streamed", "plain", "plain-streamed", "sweep", "plain-f16", "sweep-bf16"]


@pytest.fixture(params=["bfloat16", "float32"])
def filter_dtype(request, monkeypatch):
    monkeypatch.setenv("HF_UNIFORM_FILTER_DTYPE", request.param)
    return request.param


def test_the_oracle_is_scipy_cosine_and_same_direction_rows_are_at_zero():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 7)).astype(np.float32)
    rows = reference_rows(x, "cosine")
    for i in (0, 17, 49):
        want = cdist(rows, rows[i:i + 1], "cosine")[:, 0]
        np.testing.assert_allclose(reference_distances(rows, i, "cosine"), np.maximum(want, 0), rtol=1e-7,
                                   atol=1e-12)
    scaled = reference_rows(np.array([[1, 0], [1, 3], [3, 9], [-2, -6], [0.5, 1.5]], np.float32), "cosine")
    want = float(np.float32(1 - 1 / math.sqrt(10)))
    assert reference_distances(scaled, 1, "cosine").tolist() == [want, 0.0, 0.0, 2.0, 0.0]


@pytest.mark.parametrize(("method", "kw"), VARIANTS, ids=IDS)
def test_issue_reproducer_same_direction_rows(method, kw, filter_dtype):
    # [1, 3] and [3, 9] point the same way: an exact tie from row 0 (lowest index wins), then radius 0
    x = np.array([[1, 0], [1, 3], [3, 9]], dtype=np.float32)
    two = maxmin_select(x, 2, start=0, method=method, **kw)
    assert two.indices.tolist() == [0, 1]
    assert two.min_distances[1] == pytest.approx(1 - 1 / math.sqrt(10), rel=1e-7)
    assert two.coverage_radius == 0.0  # row 2 duplicates row 1's direction
    three = maxmin_select(x, 3, start=0, method=method, **kw)
    assert three.indices.tolist() == [0, 1, 2] and three.min_distances[2] == 0.0
    assert three.to_dict()["duplicates_selected"] is True


def _scaled_lattice() -> np.ndarray:
    sphere = np.array(list(itertools.product([-1, 0, 1], repeat=4)), dtype=np.float32)
    sphere = sphere[(sphere != 0).any(axis=1)]
    return np.concatenate([sphere, sphere[::5] * 3, sphere[::7] * 0.5, sphere[::9] * np.float32(1e20),
                           sphere[::11] * np.float32(1e-20)]).astype(np.float32)


@pytest.mark.parametrize(("method", "kw"), VARIANTS, ids=IDS)
def test_scaled_lattice_replays_with_exact_ties_and_zero_radii(method, kw, filter_dtype):
    x = _scaled_lattice()
    sel = maxmin_select(x, len(x), start=[3], method=method, **kw)
    replay(x, "cosine", sel.indices, sel.min_distances, 1, sel.coverage_radius)
    ref, radii = reference_select(x, len(x), start=[3])
    assert sel.indices.tolist() == ref
    assert (sel.min_distances[1:] == 0).sum() == (radii[1:] == 0).sum() > 0


@pytest.mark.parametrize(("method", "kw"), VARIANTS, ids=IDS)
def test_rows_of_wildly_different_norms_replay(method, kw, filter_dtype):
    # the filters see raw rows scaled by 1/|x| (lazy) or unit copies (plain/sweep): norms 1e-30 .. 1e30
    rng = np.random.default_rng(5)
    x = rng.normal(size=(700, 24)) * 10.0 ** rng.uniform(-30, 30, size=(700, 1))
    x = x.astype(np.float32)
    x[50:90] = x[0:40] * np.float32(4.0)  # same direction, other scale
    sel = maxmin_select(x, 400, start=[2], method=method, **kw)
    replay(x, "cosine", sel.indices, sel.min_distances, 1, sel.coverage_radius)


@pytest.mark.parametrize("method", ["plain", "sweep"])
def test_float16_storage_is_exact_in_its_subnormal_range(method):
    # issue 21: values near 1e-6 are float16 subnormals (absolute rounding 2^-25): the bound is absolute there
    x = (np.random.default_rng(0).normal(size=(500, 16)) * 1e-6).astype(np.float32)
    sel = maxmin_select(x, 200, metric="euclidean", start=0, method=method, dtype=torch.float16)
    replay(x, "euclidean", sel.indices, sel.min_distances, 1, sel.coverage_radius)
    ref = maxmin_select(x, 200, metric="euclidean", start=0, method="lazy")
    assert sel.indices.tolist() == ref.indices.tolist()


@pytest.mark.parametrize("method", ["plain", "sweep"])
def test_float16_beyond_its_range(method):
    x = np.array([[0, 0], [70000, 0], [0, 1]], dtype=np.float32)
    with pytest.raises(UniformError, match="float16") as err:  # euclidean: refused, one line
        maxmin_select(x, 3, metric="euclidean", start=0, method=method, dtype=torch.float16)
    assert "\n" not in str(err.value)
    with pytest.raises(UniformError, match="float16"):  # also streamed
        maxmin_select(x, 3, metric="euclidean", start=0, method=method, dtype=torch.float16, max_memory=64)
    y = x + 1  # cosine: the filter stores unit rows, so large values are fine and exact
    sel = maxmin_select(y, 3, start=0, method=method, dtype=torch.float16)
    assert sel.indices.tolist() == maxmin_select(y, 3, start=0, method="lazy").indices.tolist()
    assert np.isfinite(sel.min_distances[1:]).all()


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.bool, torch.complex64])
@pytest.mark.parametrize("method", ["plain", "sweep", "lazy"])
def test_non_float_storage_dtypes_are_refused(method, dtype):
    with pytest.raises(UniformError, match="not a storage dtype") as err:
        maxmin_select(np.eye(4, dtype=np.float32), 2, method=method, dtype=dtype)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method", ["plain", "sweep", "lazy"])
def test_bfloat16_and_requires_grad_tensors_are_accepted(method):
    x = np.random.default_rng(1).normal(size=(300, 12)).astype(np.float32)
    bf = torch.from_numpy(x).to(torch.bfloat16)
    want = maxmin_select(bf.float().numpy(), 40, start=0, method=method)
    got = maxmin_select(bf, 40, start=0, method=method)
    assert got.indices.tolist() == want.indices.tolist()
    grad = torch.from_numpy(x).requires_grad_(True)
    got = maxmin_select(grad, 40, start=0, method=method, max_memory=10**6 if method == "lazy" else 4096)
    assert got.indices.tolist() == maxmin_select(x, 40, start=0, method=method).indices.tolist()
    assert got.info["streamed"]

