"""Issue 21 item 5: ``benchmarks/gpu_check.py`` in its tiny CPU mode (what CI can run): every phase writes the
JSON, both metrics and float16 edge data are replayed exactly, and a crash keeps the phases measured before it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_tiny_mode_runs_every_phase_and_is_exact(tmp_path, monkeypatch):
    gc = _gpu_check()
    monkeypatch.setattr(gc, "embed_throughput", lambda dev, n: {"skipped": "test"})
    res = gc.main([str(tmp_path), "--tiny"])
    saved = json.loads((tmp_path / "gpu_check_tiny.json").read_text())
    assert "error" not in saved and saved["phases_done"][-1] == "embedding"
    for metric in ("cosine", "euclidean"):
        for dt in ("float16", "float32"):
            assert saved[f"engine_{metric}_{dt}"]["ms_per_step"] > 0
            assert saved[f"engine_{metric}_{dt}"]["setup_seconds"] >= 0
            assert saved[f"exactness_{metric}_{dt}"]["exact"] is True
        assert saved[f"exactness_{metric}_same_picks_fp16_fp32"] is True
    edges = saved["float16_edges"]
    assert edges["subnormal_euclidean"]["exact"] and edges["subnormal_cosine"]["exact"]
    assert edges["same_direction_cosine"]["exact"] and edges["same_direction_cosine"]["radius_zero_steps"] == 10
    assert edges["near_limit_euclidean"]["exact"] and edges["near_limit_euclidean"]["abs_max"] > 31000
    assert edges["near_max_cosine"]["exact"] and edges["near_max_cosine"]["abs_max"] > 59000
    assert edges["beyond_float16_euclidean"].startswith("refused: dtype=torch.float16")
    assert res["phases_done"] == saved["phases_done"]


@pytest.mark.slow
def test_a_crash_keeps_the_phases_before_it(tmp_path, monkeypatch):
    gc = _gpu_check()

    def boom(dev, tiny):
        raise RuntimeError("device lost")

    monkeypatch.setattr(gc, "edge_checks", boom)
    monkeypatch.setattr(gc, "embed_throughput", lambda dev, n: {"skipped": "test"})
    gc.main([str(tmp_path), "--tiny"])
    saved = json.loads((tmp_path / "gpu_check_tiny.json").read_text())
    assert "device lost" in saved["error"]
    assert saved["exactness_euclidean_float32"]["exact"] is True and "float16_edges" not in saved
    assert saved["phases_done"][:2] == ["bandwidth", "engine_cosine_float16"]
