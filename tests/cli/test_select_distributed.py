"""`torchrun --nproc_per_node 2 hf-uniform select --embedding-column` distributes and equals one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--method", "plain", "--max-memory", "4KB"]], ids=["auto", "plain-streamed"])
def test_torchrun_two_ranks_select_embedding_column(tmp_path, extra):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16))
    x = (centres[rng.integers(8, size=600)] + 0.3 * rng.normal(size=(600, 16))).astype(np.float32)
    x[100:110] = x[0]  # duplicates: ties at radius 0 must break the same way
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": i, "emb": [float(v) for v in r]}) + "\n" for i, r in enumerate(x)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["select", str(data), "--embedding-column", "emb", "-k", "600", "-q", "--no-plot", *extra]
    with socket.socket() as sock:  # a free port (torchrun's static rendezvous does not take 0)
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", port, "-m", "hf_uniform.cli", *common, "-o", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "hf_uniform.cli", *common, "-o", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "selection.json").read_text())
    b = json.loads((tmp_path / "two" / "selection.json").read_text())
    assert a["engine"]["world_size"] == 1 and b["engine"]["world_size"] == 2
    assert b["engine"]["shard_sizes"] == [300, 300]
    assert b["indices"] == a["indices"] and b["min_distances"] == a["min_distances"]
    assert b["indices"][-9:] == list(range(101, 110))  # duplicates of row 0 come last, by index, at radius 0
    assert b["min_distances"][-9:] == [0.0] * 9
    # rank 0 alone wrote: one subset file, one report on stdout
    assert (tmp_path / "two" / "subset.jsonl").read_text() == (tmp_path / "one" / "subset.jsonl").read_text()
    assert two.stdout.count("wrote ") == 1
