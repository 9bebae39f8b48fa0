"""Resumable runs: kill -9 mid-run, resume, get exactly the uninterrupted result; mismatches are refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hf_uniform import UniformError, maxmin_select
from hf_uniform.checkpoint import Checkpointer

CHILD = r"""
import sys, time
import numpy as np
from hf_uniform import checkpoint as C
from hf_uniform import maxmin_select

_save = C.Checkpointer.save
def slow_save(self, *a, **k):  # test only: make the run last long enough to be killed mid-way
    out = _save(self, *a, **k)
    time.sleep(0.25)
    return out
C.Checkpointer.save = slow_save
x = np.load(sys.argv[1])
maxmin_select(x, int(sys.argv[4]), seed=11, method=sys.argv[3], checkpoint_dir=sys.argv[2], checkpoint_every=100)
print("finished", flush=True)
"""


def data(path: Path, n: int = 4000, d: int = 32) -> np.ndarray:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(15, d))
    x = (centres[rng.integers(15, size=n)] + 0.5 * rng.normal(size=(n, d))).astype(np.float32)
    np.save(path, x)
    return x


def saved_steps(folder: Path) -> list[int]:
    """Steps of the checkpoints saved under their real names; our temp files (``.NAME.xxxxxxxx.hfu-tmp.npz``,
    a save in progress) also end in ``.npz`` and name the step, so they are left out: seeing one as saved made
    the kill land before that checkpoint existed (a CI failure under load)."""
    return sorted(int(m.group(1)) for p in folder.glob("*.npz")
                  if not p.name.startswith(".") and (m := re.search(r"step(\d+)", p.name)))


@pytest.mark.parametrize("method", ["lazy", "sweep", "plain"])
@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path, method):
    k = 1500 if method == "lazy" else 700
    x = data(tmp_path / "x.npy")
    ck = tmp_path / "ck"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "x.npy"), str(ck), method, str(k)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if ck.exists() and saved_steps(ck) and saved_steps(ck)[-1] >= 300:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail("the child never wrote a checkpoint")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert b"finished" not in proc.stdout.read()
    # a kill mid-write may leave our temp file; files under real names are whole (saved_steps reads them)
    last = saved_steps(ck)[-1]
    assert 300 <= last < k

    resumed = maxmin_select(x, k, seed=11, method=method, checkpoint_dir=ck, checkpoint_every=100, resume=True)
    assert resumed.info["resumed_from_step"] == last
    assert not list(ck.glob(".*.hfu-tmp*"))  # the next checkpointer removed what the killed write left
    full = maxmin_select(x, k, seed=11, method=method)
    assert resumed.indices.tolist() == full.indices.tolist()
    np.testing.assert_array_equal(resumed.min_distances, full.min_distances)
    assert resumed.coverage_radius == full.coverage_radius


def test_resume_refuses_a_different_run(tmp_path):
    x = data(tmp_path / "x.npy", n=600, d=8)
    ck = tmp_path / "ck"
    maxmin_select(x, 50, seed=1, checkpoint_dir=ck, checkpoint_every=10)
    with pytest.raises(UniformError, match=r"different run \(k: 50 vs 60\)"):
        maxmin_select(x, 60, seed=1, checkpoint_dir=ck, resume=True)
    with pytest.raises(UniformError, match="seed"):
        maxmin_select(x, 50, seed=2, checkpoint_dir=ck, resume=True)
    with pytest.raises(UniformError, match="metric"):
        maxmin_select(x, 50, seed=1, metric="euclidean", checkpoint_dir=ck, resume=True)
    with pytest.raises(UniformError, match="method"):
        maxmin_select(x, 50, seed=1, method="plain", checkpoint_dir=ck, resume=True)
    y = x.copy()
    y[0] += 1.0  # same shape, different rows
    with pytest.raises(UniformError, match="rows"):
        maxmin_select(y, 50, seed=1, checkpoint_dir=ck, resume=True)
    with pytest.raises(UniformError, match=r"\bn\b"):
        maxmin_select(x[:500], 50, seed=1, checkpoint_dir=ck, resume=True)
    # the matching run resumes from the finished checkpoint
    again = maxmin_select(x, 50, seed=1, checkpoint_dir=ck, resume=True)
    assert again.info["resumed_from_step"] == 50
    assert again.indices.tolist() == maxmin_select(x, 50, seed=1).indices.tolist()


def test_damaged_newest_checkpoint_falls_back_and_fresh_start(tmp_path):
    x = data(tmp_path / "x.npy", n=800, d=8)
    ck = tmp_path / "ck"
    maxmin_select(x, 200, seed=3, checkpoint_dir=ck, checkpoint_every=40, method="plain")
    steps = saved_steps(ck)
    assert steps == [160, 200]  # the two newest are kept
    newest = next(p for p in ck.glob("*.npz") if "step200" in p.name)
    newest.write_bytes(b"garbage")
    sel = maxmin_select(x, 200, seed=3, checkpoint_dir=ck, resume=True, method="plain")
    assert sel.info["resumed_from_step"] == 160
    assert sel.indices.tolist() == maxmin_select(x, 200, seed=3, method="plain").indices.tolist()
    empty = maxmin_select(x, 20, seed=3, checkpoint_dir=tmp_path / "new", resume=True)
    assert "resumed_from_step" not in empty.info
    with pytest.raises(UniformError, match="checkpoint_every"):
        Checkpointer(tmp_path, {}, every=0)
    with pytest.raises(UniformError, match="checkpoint_seconds"):
        maxmin_select(x, 5, checkpoint_dir=tmp_path / "s", checkpoint_seconds=-1)


def test_time_based_checkpoints(tmp_path):
    x = data(tmp_path / "x.npy", n=500, d=8)
    ck = tmp_path / "ck"
    sel = maxmin_select(x, 120, seed=0, method="plain", checkpoint_dir=ck, checkpoint_seconds=1e-9)
    assert saved_steps(ck)[-1] == 120 and len(saved_steps(ck)) == 2
    assert sel.k == 120


def _as_format_1(path: Path) -> None:
    """Rewrite a checkpoint as the old writer did: no ``format`` field in its metadata."""
    import json

    with np.load(path, allow_pickle=False) as z:
        arrays = {key: z[key] for key in z.files}
    meta = json.loads(str(arrays["meta"]))
    assert meta.pop("format") == 2
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("method", ["lazy", "plain"])
def test_old_format_cosine_checkpoint_is_refused_with_the_fix(tmp_path, method):
    x = data(tmp_path / "x.npy", n=600, d=8)
    ck = tmp_path / "ck"
    maxmin_select(x, 40, seed=1, method=method, checkpoint_dir=ck, checkpoint_every=10)
    for p in ck.glob("*.npz"):
        _as_format_1(p)
    with pytest.raises(UniformError) as err:
        maxmin_select(x, 40, seed=1, method=method, checkpoint_dir=ck, resume=True)
    msg = str(err.value)
    assert "\n" not in msg and "format 1" in msg and "rerun without --resume" in msg
    # a fresh run in the same folder (resume=False) overwrites it and then resumes normally
    fresh = maxmin_select(x, 40, seed=1, method=method, checkpoint_dir=ck, checkpoint_every=10)
    again = maxmin_select(x, 40, seed=1, method=method, checkpoint_dir=ck, resume=True)
    assert again.info["resumed_from_step"] == 40 and again.indices.tolist() == fresh.indices.tolist()


def test_old_format_euclidean_checkpoint_resumes_and_newer_format_is_refused(tmp_path):
    import json

    x = data(tmp_path / "x.npy", n=600, d=8)
    ck = tmp_path / "ck"
    maxmin_select(x, 60, seed=2, metric="euclidean", checkpoint_dir=ck, checkpoint_every=20)
    newest = max(ck.glob("*.npz"), key=lambda p: int(re.search(r"step(\d+)", p.name).group(1)))
    newest.unlink()  # resume from a mid-run state
    for p in ck.glob("*.npz"):
        _as_format_1(p)
    resumed = maxmin_select(x, 60, seed=2, metric="euclidean", checkpoint_dir=ck, resume=True)
    assert resumed.info["resumed_from_step"] == 40
    full = maxmin_select(x, 60, seed=2, metric="euclidean")
    assert resumed.indices.tolist() == full.indices.tolist()
    np.testing.assert_array_equal(resumed.min_distances, full.min_distances)
    # a format from the future is refused too
    p = max(ck.glob("*.npz"), key=lambda q: int(re.search(r"step(\d+)", q.name).group(1)))
    with np.load(p, allow_pickle=False) as z:
        arrays = {key: z[key] for key in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["format"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    with open(p, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(UniformError, match="format 99, newer"):
        maxmin_select(x, 60, seed=2, metric="euclidean", checkpoint_dir=ck, resume=True)
