"""The demo dataset shipped inside the package, and Hub ids that fail fast offline."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hf_uniform.cli import main
from hf_uniform.data import SAMPLE_NAME, load_sample, resolve_builtin, sample_path
from hf_uniform.errors import UniformError
from hf_uniform.io import load_hub_dataset, read_source

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_file_is_what_the_committed_generator_writes():
    """The file is byte-identical to a fresh run of benchmarks/make_sample_data.py (no hand edits, no copy)."""
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_sample_data.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_sample_rows_are_alpaca_layout_distinct_and_correct():
    rows = [json.loads(line) for line in sample_path().read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1200
    assert all(list(r) == ["instruction", "input", "output"] for r in rows)
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == 1200
    # answers are computed, not templated: recompute every addition and every sort independently
    adds = [r for r in rows if r["instruction"] == "Add the two numbers."]
    assert len(adds) > 50
    for r in adds:
        a, b = (int(x) for x in r["input"].split(" and "))
        assert r["output"] == f"{a} + {b} = {a + b}."
    sorts = [r for r in rows if r["instruction"].startswith("Sort the list of numbers")]
    for r in sorts:
        xs = [int(x) for x in r["input"].split(", ")]
        assert [int(y) for y in r["output"].split(", ")] == sorted(xs, reverse="descending" in r["instruction"])
    families = {r["instruction"].split()[0] for r in rows}
    assert len(families) >= 12


def test_the_card_states_license_and_that_it_is_a_demo():
    card = (sample_path().parent / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlicense: cc0-1.0\n")
    assert "not a training set" in card and "make_sample_data.py" in card


def test_sample_name_resolves_unless_a_local_path_of_that_name_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_builtin(SAMPLE_NAME) == sample_path()
    src = read_source("sample")
    assert src.n == 1200 and src.kind == "jsonl" and src.columns == ["instruction", "input", "output"]
    assert len(load_sample()) == 1200
    (tmp_path / "sample").write_text("x")  # the user's own file wins
    assert resolve_builtin("sample") == "sample"


def test_readme_command_one_selects_from_the_shipped_sample(tmp_path, monkeypatch, capsys):
    """README's first command (its select part, with a smaller k) runs offline from any folder."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cmd = next(line for line in readme.splitlines() if "hf-uniform select" in line)
    argv = cmd.split("hf-uniform ", 1)[1].split()
    assert argv[:2] == ["select", "sample"], cmd
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(["select", "sample", "-k", "40", "-o", str(out), "--baselines", "-q"]) == 0
    rec = json.loads((out / "selection.json").read_text())
    chosen = [json.loads(line) for line in (out / "subset.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in sample_path().read_text(encoding="utf-8").splitlines()]
    assert len(chosen) == 40 and len(rec["indices"]) == 40
    for i, row in zip(rec["indices"], chosen, strict=True):  # the subset rows are the pool rows, unchanged
        assert {k: row[k] for k in ("instruction", "input", "output")} == rows[i]
    assert (out / "random.jsonl").exists() and (out / "mixed.jsonl").exists()


def test_hub_id_with_hf_hub_offline_fails_in_one_line_naming_the_fix(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UniformError, match=r"offline .*pass a local file or folder .*unset HF_HUB_OFFLINE"):
        load_hub_dataset("nobody/not-cached-anywhere")
    assert main(["select", "nobody/not-cached-anywhere", "-k", "3", "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "offline" in err and "Traceback" not in err


def test_hub_id_with_an_unreachable_endpoint_fails_before_any_retry(monkeypatch):
    """Online mode, but the endpoint refuses connections (a closed port on this machine): one connect, no retries."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(UniformError, match=rf"offline, http://127.0.0.1:{port} is unreachable .*check the network"):
        load_hub_dataset("nobody/anything")
