"""The hf-uniform CLI end to end, and its handling of bad input (exit 2, one line, nothing written)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from hf_uniform.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("hf-uniform") or ""
    cmd = [exe] if exe else [sys.executable, "-m", "hf_uniform.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_UNIFORM_CACHE": str((cwd or Path.cwd()) / ".cache")}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


def test_select_end_to_end_on_alpaca_9k(shared_data, tmp_path):
    src = shared_data("instruct/alpaca_9k.jsonl")
    out = tmp_path / "out"
    res = run_cli("select", str(src), "-k", "4500", "-o", str(out), "--baselines", "--quiet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (out / "subset.jsonl").read_text().splitlines()]
    assert len(rows) == 4500 and rows[0]["uniform_rank"] == 0
    record = json.loads((out / "selection.json").read_text())
    assert record["k"] == 4500 and record["n"] == 9229 and record["metric"] == "cosine"
    assert record["report"]["subset"]["h"] > record["report"]["random"]["h"]
    assert record["report"]["subset"]["coverage_radius"] < record["report"]["random"]["coverage_radius"]
    assert record["h"] == pytest.approx(record["report"]["subset"]["h"], abs=1e-5)
    assert len(record["indices"]) == len(record["min_distances"]) == 4500
    assert record["embedder"]["embedder"] == "Word2VecEmbedder"
    assert {"torch", "datasets"} <= set(record["versions"])
    for name in ("random.jsonl", "mixed.jsonl", "coverage.png"):
        assert (out / name).exists(), name
    # the subset rows are the pool rows at the recorded indices, in greedy order
    pool = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    assert [r["instruction"] for r in rows[:50]] == [pool[i]["instruction"] for i in record["indices"][:50]]
    assert "h (min pairwise)" in res.stdout and "subset" in res.stdout
    assert not list(out.glob(".*tmp*"))  # no temporary files left behind


def test_select_with_embedding_column_and_stats(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    src = tmp_path / "vecs.jsonl"
    src.write_text("".join(json.dumps({"id": i, "vec": v}) + "\n" for i, v in enumerate(x.tolist())))
    out = tmp_path / "o"
    assert main(["select", str(src), "-k", "12", "-o", str(out), "--embedding-column", "vec",
                 "--metric", "euclidean", "--format", "parquet", "-q", "--start", "4"]) == 0
    import pandas as pd

    sub = pd.read_parquet(out / "subset.parquet")
    assert sub["id"].tolist()[0] == 4 and len(sub) == 12
    h = pdist(x[sub["id"].to_numpy()]).min()
    record = json.loads((out / "selection.json").read_text())
    assert record["h"] == pytest.approx(h, abs=1e-5)
    capsys.readouterr()
    assert main(["stats", str(src), "--embedding-column", "vec", "--metric", "euclidean",
                 "--subset", str(out / "subset.parquet"), "-q"]) == 0
    printed = capsys.readouterr().out
    subset_line = next(line for line in printed.splitlines() if line.startswith("subset"))
    assert float(subset_line.split()[2]) == pytest.approx(h, abs=1e-5)
    # a second run refuses to overwrite
    assert main(["select", str(src), "-k", "12", "-o", str(out), "--embedding-column", "vec", "-q",
                 "--format", "parquet"]) == 2


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty.jsonl").write_text("")
    (tmp / "broken.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": oops}\n')
    (tmp / "ok.jsonl").write_text("".join(json.dumps({"instruction": f"task {i}", "output": f"answer {i}",
                                                      "vec": [float(i), 1.0], "ragged": [1.0] * (1 + i % 2),
                                                      "nanvec": [float("nan") if i == 2 else 1.0, 0.5],
                                                      "zero": [0.0, 0.0] if i == 1 else [1.0, 2.0]})
                                          + "\n" for i in range(6)))
    ok = str(tmp / "ok.jsonl")
    return {
        "empty": ([str(tmp / "empty.jsonl"), "-k", "1"], "empty"),
        "missing file": ([str(tmp / "nope.jsonl"), "-k", "1"], "does not exist"),
        "malformed": ([str(tmp / "broken.jsonl"), "-k", "1"], "broken.jsonl: line 2 is not valid JSON"),
        "k zero": ([ok, "-k", "0"], "k must be at least 1"),
        "k too big": ([ok, "-k", "7"], "n=6"),
        "missing text column": ([ok, "-k", "2", "--text-columns", "body"], "available columns"),
        "missing embedding column": ([ok, "-k", "2", "--embedding-column", "emb"], "available columns"),
        "ragged": ([ok, "-k", "2", "--embedding-column", "ragged"], "unequal lengths"),
        "nan": ([ok, "-k", "2", "--embedding-column", "nanvec"], "NaN or inf at rows [2]"),
        "zero vector": ([ok, "-k", "2", "--embedding-column", "zero"], "zero vector(s) under the cosine metric at rows [1]"),
    }


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    for name, (args, needle) in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        code = main(["select", *args, "-o", str(out), "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 2, name
        assert needle in err, (name, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (name, err)
        assert not out.exists() or not any(out.iterdir()), name


def test_console_script_reports_bad_input_without_traceback(tmp_path):
    (tmp_path / "broken.jsonl").write_text('{"a": 1}\nnot json\n')
    res = run_cli("select", str(tmp_path / "broken.jsonl"), "-k", "1", "-o", str(tmp_path / "o"), "-q",
                  cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == ("hf-uniform: error: " + str(tmp_path / "broken.jsonl")
                                  + ": line 2 is not valid JSON (Expecting value); fix or remove it")
    assert not (tmp_path / "o").exists()


def test_drop_zero_vectors_flag(tmp_path):
    rows = [{"instruction": "alpha beta", "output": "gamma"}, {"instruction": "?!", "output": "..."},  # no word
            {"instruction": "delta", "output": "epsilon zeta"}, {"instruction": "beta", "output": "delta"}]
    src = tmp_path / "z.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["select", str(src), "-k", "2", "-o", str(tmp_path / "a"), "-q"]) == 2
    assert main(["select", str(src), "-k", "2", "-o", str(tmp_path / "b"), "-q", "--drop-zero-vectors"]) == 0
    record = json.loads((tmp_path / "b" / "selection.json").read_text())
    assert record["engine"]["dropped_rows"] == [1] and 1 not in record["indices"]
