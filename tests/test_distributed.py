"""Two gloo processes on the CPU select exactly what one process selects."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hf_uniform import maxmin_select
from hf_uniform.baselines import minmin_select
from hf_uniform.coreset import coreset_select

CASES = [
    {"name": "lazy-cosine", "k": 700, "kw": {"seed": 3}},
    {"name": "lazy-euclidean", "k": 500, "kw": {"metric": "euclidean", "start": [5, 2999, 1700]}},
    {"name": "lazy-streamed", "k": 400, "kw": {"seed": 1, "max_memory": "1MB"}},  # holds the per-row state
    {"name": "plain", "k": 150, "kw": {"seed": 2, "method": "plain"}},
    {"name": "sweep", "k": 150, "kw": {"seed": 2, "method": "sweep"}},
    {"name": "mixed-min", "k": 60, "kw": {"start": [10, 2000, 1600]}, "fn": minmin_select},
]


def _data(path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 32))
    x = centres[rng.integers(10, size=3001)] + 0.4 * rng.normal(size=(3001, 32))
    np.save(path, x.astype(np.float32))


def _worker(rank: int, world: int, tmp: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    try:
        x = np.load(Path(tmp) / "x.npy", mmap_mode="r")
        out = {}
        for case in CASES:
            sel = case.get("fn", maxmin_select)(x, case["k"], distributed=True, **case["kw"])
            out[case["name"]] = {"indices": sel.indices.tolist(), "radii": sel.min_distances[1:].tolist(),
                                 "cov": sel.coverage_radius, "world": sel.info["world_size"],
                                 "shards": sel.info["shard_sizes"]}
        ck = Path(tmp) / f"ck{0}"
        a = maxmin_select(x, 300, seed=9, checkpoint_dir=ck, checkpoint_every=64, distributed=True)
        b = maxmin_select(x, 300, seed=9, checkpoint_dir=ck, resume=True, distributed=True)
        out["resume"] = {"same": a.indices.tolist() == b.indices.tolist(), "from": b.info.get("resumed_from_step")}
        cs = coreset_select(x, 100, k_prime=150, seed=0, distributed=True)
        out["coreset"] = {"indices": cs.indices.tolist(), "world": cs.info["world_size"]}
        local = maxmin_select(x, 50, seed=3)  # without distributed=True the selection stays in this process
        out["local"] = {"world": local.info["world_size"], "indices": local.indices.tolist()}
        (Path(tmp) / f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    _data(tmp / "x.npy")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(2, str(tmp)), nprocs=2, join=True)
    return tmp, [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.slow
def test_two_gloo_ranks_select_what_one_process_selects(two_ranks, case):
    tmp, results = two_ranks
    x = np.load(tmp / "x.npy")
    ref = case.get("fn", maxmin_select)(x, case["k"], **case["kw"])
    for res in results:
        got = res[case["name"]]
        assert got["world"] == 2 and got["shards"] == [1501, 1500]
        assert got["indices"] == ref.indices.tolist()
        # every method decides with one per-row exact kernel: bit for bit
        np.testing.assert_array_equal(np.array(got["radii"]), ref.min_distances[1:])
        assert got["cov"] == ref.coverage_radius


@pytest.mark.slow
def test_distributed_checkpoint_resume_and_coreset(two_ranks):
    tmp, results = two_ranks
    x = np.load(tmp / "x.npy")
    local = maxmin_select(x, 50, seed=3).indices.tolist()
    for res in results:
        assert res["resume"] == {"same": True, "from": 300}
        assert res["local"] == {"world": 1, "indices": local}
    assert sorted(p.name for p in (tmp / "ck0").glob("*.npz"))[-1].startswith("maxmin-state.rank")
    single = coreset_select(x, 100, k_prime=150, shards=2, seed=0)
    for res in results:
        assert res["coreset"]["world"] == 2
        assert res["coreset"]["indices"] == single.indices.tolist()
    assert torch.distributed.is_available()


def test_close_distributed_destroys_only_the_group_init_distributed_made(monkeypatch):
    """The CLI tears down the gloo group it set up (left alive at exit it can abort a rank in teardown); a group
    the caller made stays."""
    import socket

    import torch.distributed as dist

    from hf_uniform.distributed import close_distributed, init_distributed

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": "0", "WORLD_SIZE": "1",
                        "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    assert not dist.is_initialized()
    init_distributed()
    assert dist.is_initialized()
    close_distributed()
    assert not dist.is_initialized()

    dist.init_process_group("gloo", init_method="env://")  # the caller's own group
    try:
        close_distributed()
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()
