"""Error kinds (issue 13 item 4): a missing optional package is an ImportError, a missing path a
FileNotFoundError, both still a UniformError (a ValueError) with a one-line hint, and causes are chained.
Item 3's one k rule: the study's subset size is ``check_k`` plus its own "at least 2 rows"."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from hf_uniform.cli import main
from hf_uniform.errors import MissingExtraError, MissingFileError, UniformError

ROOT = Path(__file__).resolve().parents[1]


def _assert_missing_extra(err: BaseException, extra: str) -> None:
    assert isinstance(err, ImportError) and isinstance(err, ValueError) and isinstance(err, UniformError)
    assert str(err).endswith(f"; pip install 'hf-uniform[{extra}]'"), str(err)
    assert "\n" not in str(err)


def test_missing_matplotlib_is_an_import_error_with_the_eval_extra(monkeypatch, tmp_path):
    from hf_uniform.plots import loss_curves_plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    with pytest.raises(ImportError) as info:
        loss_curves_plot({"uniform": [([0, 1], [2.0, 1.0])]}, tmp_path / "loss.png")
    _assert_missing_extra(info.value, "eval")
    assert str(info.value).startswith("plots need matplotlib")
    assert isinstance(info.value.__cause__, ImportError) and "matplotlib" in str(info.value.__cause__)
    assert not isinstance(info.value.__cause__, UniformError)  # the original error, not ours
    assert not (tmp_path / "loss.png").exists()


def test_missing_faiss_and_ray_name_their_extras_and_keep_the_cause(monkeypatch):
    from hf_uniform.metrics import nearest_distances
    from hf_uniform.ray._common import _ray

    x = np.eye(3)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(MissingExtraError) as info:
        nearest_distances(x, x, backend="faiss")
    _assert_missing_extra(info.value, "faiss")
    assert isinstance(info.value.__cause__, ImportError) and "faiss" in str(info.value.__cause__)

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError) as info:
        _ray()
    _assert_missing_extra(info.value, "ray")
    assert str(info.value) == "the Ray backend needs Ray Data; pip install 'hf-uniform[ray]'"
    assert isinstance(info.value.__cause__, ImportError)


def test_missing_lm_eval_and_numba(monkeypatch, tmp_path):
    import hf_uniform.engine
    from hf_uniform.evaluation.lm_eval import run_lm_eval
    from hf_uniform.selection import maxmin_select

    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(ImportError) as info:
        run_lm_eval(tmp_path / "ckpt", "arc_challenge", work_dir=tmp_path / "work")
    _assert_missing_extra(info.value, "eval")
    assert isinstance(info.value.__cause__, ImportError)

    monkeypatch.setattr(hf_uniform.engine, "numba_available", lambda: False)  # numba is a core dependency
    with pytest.raises(ImportError, match=r"method='lazy' needs numba; pip install numba") as info:
        maxmin_select(np.eye(4), 2, method="lazy", metric="euclidean")
    assert isinstance(info.value, UniformError)


def test_missing_input_path_is_a_file_not_found_error(tmp_path):
    from hf_uniform.io import load_input, read_source
    from hf_uniform.records import SelectionRecord

    missing = tmp_path / "nope.jsonl"
    for call in (lambda: read_source(missing), lambda: load_input(missing)):
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert str(info.value) == f"input file {missing} does not exist"
        assert isinstance(info.value, UniformError) and isinstance(info.value, MissingFileError)
    with pytest.raises(FileNotFoundError, match="does not exist: pass the"):
        SelectionRecord.from_json(tmp_path / "nowhere")


def test_missing_paths_exit_2_with_one_line_in_the_cli(tmp_path, capsys):
    ok = tmp_path / "ok.jsonl"
    ok.write_text("".join(json.dumps({"t": f"row {i}", "vec": [float(i), 1.0]}) + "\n" for i in range(4)))
    cases = [
        (["select", str(tmp_path / "nope.jsonl"), "-k", "1", "-o", str(tmp_path / "o1")],
         f"hf-uniform: error: input file {tmp_path / 'nope.jsonl'} does not exist"),
        (["stats", str(ok), "--embedding-column", "vec", "--subset", str(tmp_path / "sub.jsonl")],
         f"hf-uniform: error: subset file {tmp_path / 'sub.jsonl'} does not exist"),
        (["push", str(tmp_path / "missing"), "--repo-id", "alice/x"],
         f"hf-uniform: error: {tmp_path / 'missing'} is not a folder: pass the folder written by"),
    ]
    for argv, head in cases:
        assert main([*argv, "-q"]) == 2, argv
        captured = capsys.readouterr()
        assert captured.err.startswith(head), (argv, captured.err)
        assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
        assert "cannot read or write" not in captured.err  # our hint, not the OSError fallback
    assert not (tmp_path / "o1").exists()


def test_causes_are_chained(tmp_path):
    from hf_uniform.io import read_source
    from hf_uniform.selection import parse_k

    with pytest.raises(UniformError, match="k must be a number of rows") as info:
        parse_k("half")
    assert isinstance(info.value.__cause__, ValueError)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": oops}\n')
    with pytest.raises(UniformError, match="line 2 is not valid JSON") as info:
        read_source(bad)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_no_cause_is_dropped_without_a_reason():
    """``raise ... from None`` hides the cause; allowed only with a ``# cause hidden: why`` comment."""
    hits = []
    for path in [*(ROOT / "hf_uniform").rglob("*.py"), *(ROOT / "recipes").rglob("*.py")]:
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bfrom None\b", line) and "# cause hidden:" not in line:
                hits.append(f"{path.relative_to(ROOT)}:{no}")
    assert hits == []


def test_study_k_rule_is_check_k_plus_at_least_two_rows():
    from hf_uniform.selection import check_k
    from hf_uniform.study import resolve_k

    fractions = [0.05, 0.1, 0.25, 0.3, 0.333, 0.5, 0.55, 0.75, 0.9, 0.999]
    for n in (2, 3, 7, 9, 10, 12, 100, 4500):
        for k in [*fractions, *range(0, 14), 4500, 4501, 6.0, 12.0, 4.5]:
            try:  # the one k rule: an int a count, a float a fraction (6.0 and 12.0 are refused, as -k 6.0)
                want = check_k(k, n)
            except UniformError:
                want = None
            if want is not None and want >= 2:
                assert resolve_k(k, n) == want, (k, n)
                if isinstance(k, float) and k < 1:  # the nearest row count (not floor(k * n) as before)
                    assert abs(want - k * n) <= 0.5, (k, n)
            else:
                with pytest.raises(UniformError):
                    resolve_k(k, n)
    assert resolve_k(0.3, 9) == check_k(0.3, 9) == 3  # was floor(2.7) = 2 before the one k rule
    assert resolve_k(0.999, 10) == 10 and resolve_k(6, 12) == 6
    with pytest.raises(UniformError, match="needs 2"):
        resolve_k(0.1, 9)  # check_k gives 1 row: the study refuses it
