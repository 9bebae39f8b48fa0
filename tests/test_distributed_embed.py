"""Sharded embedding under torchrun (2 gloo processes on CPU) equals single-process embedding, and so does
the selection on the gathered matrix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from datasets import Dataset

from hf_uniform import Word2VecEmbedder, filter_uniform, maxmin_select
from hf_uniform.distributed import DistContext, gather_rows, shard_dataset
from hf_uniform.embedders import Model2VecEmbedder
from hf_uniform.integration import embed
from hf_uniform.io import load_input

RANK_SCRIPT = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    import torch.distributed as dist
    from datasets import load_from_disk
    from hf_uniform import Word2VecEmbedder, filter_uniform, maxmin_select
    from hf_uniform.distributed import distributed_context, gather_rows
    from hf_uniform.embedders import Model2VecEmbedder
    from hf_uniform.integration import embed

    class Counting(Word2VecEmbedder):
        calls = 0
        def encode(self, texts):
            Counting.calls += len(texts)
            return super().encode(texts)

    out, data, m2v = sys.argv[1], sys.argv[2], sys.argv[3]
    ds = load_from_disk(data)
    assert not dist.is_initialized()  # embed() initialises the group from torchrun's environment
    x = embed(ds, Counting(vector_size=32), progress=False, cache=False)
    ctx = distributed_context()
    r = ctx.rank
    res = {"rank": r, "world": ctx.world_size, "backend": str(dist.get_backend()),
           "w2v_rows_encoded": Counting.calls}
    np.save(f"{out}/w2v_{r}.npy", x)
    res["w2v_sel"] = maxmin_select(x, 60, seed=0).indices.tolist()
    y = embed(ds, Model2VecEmbedder(model=m2v), progress=False, cache=False)
    np.save(f"{out}/m2v_{r}.npy", y)
    res["m2v_sel"] = maxmin_select(y, 60, seed=0).indices.tolist()
    res["filter_rows"] = filter_uniform(ds, 40, embedder=Word2VecEmbedder(vector_size=32), cache=False,
                                        progress=False)["row"][:]
    Counting.calls = 0
    a = embed(ds, Counting(vector_size=32), progress=False)  # miss: embeds, local rank 0 writes
    miss_calls, Counting.calls = Counting.calls, 0
    b = embed(ds, Counting(vector_size=32), progress=False)  # hit on every rank
    res["cache"] = [miss_calls, Counting.calls, bool(np.array_equal(a, b)), bool(np.array_equal(a, x))]
    g = gather_rows(np.full((3 * r, 4), r + 1, np.float32), ctx)  # rank 0 contributes no row
    res["uneven"] = g[:, 0].tolist()
    res["one_row"] = embed(ds.select([0]), Word2VecEmbedder(vector_size=8), progress=False,
                           cache=False).tolist()
    with open(f"{out}/rank{r}.json", "w") as f:
        json.dump(res, f)
''')


@pytest.fixture(scope="module")
def m2v_folder(distilled_minilm):
    return distilled_minilm[1]


@pytest.mark.slow
def test_two_process_embedding_and_selection_equal_single_process(tmp_path, shared_data, m2v_folder):
    n = 601  # odd: the two shards differ in length
    ds = load_input(shared_data("instruct/alpaca_9k.jsonl")).select(range(n))
    ds = ds.add_column("row", list(range(n)))
    ds.save_to_disk(str(tmp_path / "data"))
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "HF_UNIFORM_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(out), str(tmp_path / "data"), str(m2v_folder)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]

    # single-process references, computed here without any process group
    x = embed(ds, Word2VecEmbedder(vector_size=32), progress=False, cache=False, distributed=False)
    y = embed(ds, Model2VecEmbedder(model=str(m2v_folder)), progress=False, cache=False, distributed=False)
    ref_w2v = maxmin_select(x, 60, seed=0).indices.tolist()
    ref_m2v = maxmin_select(y, 60, seed=0).indices.tolist()
    ref_filter = filter_uniform(ds, 40, embedder=Word2VecEmbedder(vector_size=32), cache=False,
                                progress=False)["row"][:]
    one = Word2VecEmbedder(vector_size=8).fit(ds.select([0]))
    for r in range(2):
        assert res[r]["rank"] == r and res[r]["world"] == 2 and "gloo" in res[r]["backend"]
        np.testing.assert_array_equal(np.load(out / f"w2v_{r}.npy"), x)
        np.testing.assert_array_equal(np.load(out / f"m2v_{r}.npy"), y)
        assert res[r]["w2v_sel"] == ref_w2v and res[r]["m2v_sel"] == ref_m2v
        assert res[r]["filter_rows"] == ref_filter
        assert res[r]["uneven"] == [2.0, 2.0, 2.0]
        np.testing.assert_array_equal(np.array(res[r]["one_row"], dtype=np.float32),
                                      one.encode(one.texts(ds.select([0])[:])))
    # each rank encoded only its shard (plus an 8-row probe that checks the ranks agree)
    assert [res[r]["w2v_rows_encoded"] for r in range(2)] == [301 + 8, 300 + 8]
    # cache under torchrun: the first call embeds (and rank 0 writes), the second is a hit on both ranks
    assert [res[r]["cache"] for r in range(2)] == [[301 + 8, 0, True, True], [300 + 8, 0, True, True]]
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1


def test_contiguous_shards_concatenate_to_the_dataset():
    ds = Dataset.from_dict({"i": list(range(11))})
    shards = [shard_dataset(ds, DistContext(r, 3, r))["i"][:] for r in range(3)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert shard_dataset(ds, DistContext()) is ds
    tiny = ds.select([0, 1])
    assert [shard_dataset(tiny, DistContext(r, 3, r))["i"][:] for r in range(3)] == [[0], [1], []]
    np.testing.assert_array_equal(gather_rows(np.eye(2, dtype=np.float32)), np.eye(2))
