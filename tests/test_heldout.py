"""Held-out rows set aside before selection: hf_uniform.heldout.split_heldout and `hf-uniform select --heldout`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_uniform.cli import main
from hf_uniform.errors import UniformError
from hf_uniform.heldout import heldout_count, split_heldout


def test_split_heldout_properties():
    for n, size, seed in ((100, 0.1, 0), (100, 25, 3), (7, 1, 9)):
        ho, rest = split_heldout(n, size, seed)
        m = heldout_count(size, n)
        assert len(ho) == m and len(rest) == n - m
        assert sorted(np.concatenate([ho, rest]).tolist()) == list(range(n))  # a partition
        # the definition: the first m entries of one seeded permutation
        assert ho.tolist() == sorted(np.random.default_rng(seed).permutation(n)[:m].tolist())
        assert split_heldout(n, size, seed)[0].tolist() == ho.tolist()  # deterministic
    # nested: the same seed with a larger size keeps every smaller held-out row
    assert set(split_heldout(50, 5, 1)[0]) <= set(split_heldout(50, 20, 1)[0])
    assert split_heldout(50, 5, 1)[0].tolist() != split_heldout(50, 5, 2)[0].tolist()
    for bad in (0, -1, 0.001, 50, 60, 2.5):
        with pytest.raises(UniformError):
            split_heldout(50, bad, 0)


def test_study_and_cli_use_the_same_split():
    import hf_uniform.study as study

    assert study.split_heldout is split_heldout


@pytest.fixture
def pool(tmp_path, shared_data):
    src = shared_data("instruct/alpaca_9k.jsonl")
    path = tmp_path / "pool.jsonl"
    lines = [line for _, line in zip(range(60), src.open(encoding="utf-8"), strict=False)]
    path.write_text("".join(lines), encoding="utf-8")
    return path, [line.rstrip("\n") for line in lines]


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.slow
def test_select_heldout_end_to_end(pool, tmp_path, capsys):
    path, src = pool
    runs = {}
    for k in (10, 20):
        out = tmp_path / f"sel{k}"
        assert main(["select", str(path), "-k", str(k), "-o", str(out), "--heldout", "12", "--seed", "5",
                     "--baselines", "-q", "--no-cache"]) == 0
        runs[k] = (out, json.loads((out / "selection.json").read_text()))
    out, rec = runs[10]
    ho = rec["heldout"]
    assert ho["rows"] == 12 and ho["file"] == "heldout.jsonl" and rec["files"]["heldout"] == "heldout.jsonl"
    assert ho["indices"] == split_heldout(60, 12, 5)[0].tolist()
    # heldout.jsonl holds the source rows unchanged, in source order
    assert _lines(out / "heldout.jsonl") == [src[i] for i in ho["indices"]]
    # the same seed gives the same held-out rows whatever k is
    assert runs[20][1]["heldout"]["indices"] == ho["indices"]
    assert _lines(runs[20][0] / "heldout.jsonl") == _lines(out / "heldout.jsonl")
    held = {src[i] for i in ho["indices"]}
    for k, (o, r) in runs.items():
        # indices are source row numbers; the subset never contains a held-out row, nor do the baselines
        assert not set(r["indices"]) & set(ho["indices"]) and len(r["indices"]) == k
        subset = [json.loads(line) for line in _lines(o / "subset.jsonl")]
        for i, row in zip(r["indices"], subset, strict=True):
            assert {c: v for c, v in row.items() if not c.startswith("uniform_")} == json.loads(src[i])
        for name in ("random", "mixed"):
            rows = _lines(o / f"{name}.jsonl")
            assert len(rows) == k and not set(rows) & held, name
        assert r["n"] == 48  # the pool the subset was chosen from: the 48 rows not held out
    # the lengths block: subset, random, mixed and the full pool, with text and response characters
    lengths = rec["lengths"]
    assert {"subset", "random", "mixed", "full"} <= set(lengths)
    assert lengths["full"]["text_chars"]["rows"] == 48 and lengths["subset"]["response_chars"]["rows"] == 10
    subset_rows = [json.loads(src[i]) for i in rec["indices"]]
    assert lengths["subset"]["response_chars"]["mean"] == pytest.approx(
        np.mean([len(r["output"]) for r in subset_rows]), abs=1e-3)
    assert "length in characters" in capsys.readouterr().out
    # the dataset card carries the same length table
    from hf_uniform.hub import render_dataset_card

    card = str(render_dataset_card(out, "user/subset", license="cc-by-4.0", language="en"))
    sub = lengths["subset"]
    row = next(line for line in card.splitlines() if line.startswith("| uniform subset | 10 |"))
    assert f"{sub['text_chars']['mean']:.1f} / {sub['text_chars']['median']:.0f}" in row
    assert f"{sub['response_chars']['mean']:.1f}" in row and "## Row lengths" in card


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "abc", "1.0"])
def test_select_bad_heldout_exits_2(pool, tmp_path, capsys, value):
    path, _ = pool
    assert main(["select", str(path), "-k", "5", "-o", str(tmp_path / "o"), "--heldout", value, "-q"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--heldout" in lines[0]
    assert not (tmp_path / "o").exists()


def test_select_heldout_too_large_fails_before_embedding(pool, tmp_path, capsys):
    path, _ = pool
    assert main(["select", str(path), "-k", "5", "-o", str(tmp_path / "o"), "--heldout", "60", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "held-out size 60 leaves 60 held-out and 0 remaining rows of 60" in err[0]
    assert main(["select", str(path), "-k", "55", "-o", str(tmp_path / "o2"), "--heldout", "10", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "55" in err[0] and "50" in err[0], err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o").exists()
