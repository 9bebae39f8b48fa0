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


@pytest.mark.slow
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
    assert record["h"] == record["report"]["subset"]["h"]  # one value of h everywhere
    assert len(record["indices"]) == len(record["min_distances"]) == 4500
    assert record["embedder"]["embedder"] == "Word2VecEmbedder"
    assert {"torch", "datasets"} <= set(record["engine"]["versions"])
    assert record["embedded"]["columns"] == ["instruction", "input", "output"]
    assert record["meaning"]["h"].endswith("higher is better: the subset is more spread out. The greedy max-min "
                                           "selection maximises it") or "higher is better" in record["meaning"]["h"]
    for name in ("random.jsonl", "mixed.jsonl", "uniformity.png"):
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


@pytest.mark.slow
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


# ------------------------------------------------------------------ errors first, work later; safe outputs


def _small(tmp: Path, name: str = "s.jsonl", n: int = 8) -> Path:
    words = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta", "iota kappa", "lambda mu", "nu xi",
             "omicron pi", "rho sigma", "tau upsilon"]
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps({"instruction": words[i % 10] + f" {i}", "output": "ok"}) + "\n"
                         for i in range(n)))
    return p


def test_every_bad_argument_is_refused_before_reading_the_data(tmp_path, monkeypatch, capsys):
    import hf_uniform.io as hio

    def no_read(*a, **k):
        raise AssertionError("the data was read before the arguments were checked")

    monkeypatch.setattr(hio, "read_source", no_read)
    src = str(_small(tmp_path))
    (tmp_path / "afile").write_text("x")
    cases = {
        "empty field": (["--template", "{instruction} {}"], "without a column name"),
        "open brace": (["--template", "{instruction"], "malformed"),
        "huge width": (["--template", "{x:>99999999999}"], "more than 10000 characters"),
        "negative seed": (["--seed=-1"], "seed must be a whole number 0 or more"),
        "tpu": (["--device", "tpu"], "unknown device 'tpu'"),
        "k 1.0": (["-k", "1.0"], "neither a whole number"),
        "k zero": (["-k", "0"], "k must be at least 1"),
        "k nan": (["-k", "nan"], "neither a whole number"),
        "bad embedder": (["--embedder", "bogus"], "unknown embedder"),
        "both text options": (["--text-columns", "a", "--template", "{a}"], "not both"),
        "resume alone": (["--resume"], "resume needs checkpoint"),
        "bad method": (["--method", "fast"], "invalid choice"),
    }
    import torch

    if not torch.cuda.is_available():
        cases["cuda"] = (["--device", "cuda"], "no CUDA device")
    for name, (extra, needle) in cases.items():
        args = ["select", src, "-o", str(tmp_path / "o"), "-q", *extra]
        if "-k" not in extra:
            args += ["-k", "2"]
        code = main(args)  # argparse errors are returned too, not raised
        err = capsys.readouterr().err.strip()
        assert code == 2, name
        assert needle in err, (name, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (name, err)
    for out, needle in ((tmp_path / "afile", "is not a folder"), (tmp_path / "afile" / "sub", "under the file"),
                        (Path("/dev/full"), "is not a folder"), (tmp_path, "holds the input")):
        assert main(["select", src, "-k", "2", "-o", str(out), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_fraction_rounding_to_zero_is_refused_before_embedding(tmp_path, monkeypatch, capsys):
    import hf_uniform.integration as integ

    monkeypatch.setattr(integ, "embed", lambda *a, **k: (_ for _ in ()).throw(AssertionError("embedded")))
    assert main(["select", str(_small(tmp_path)), "-k", "1e-7", "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "rounds to 0 rows" in capsys.readouterr().err
    assert main(["select", str(_small(tmp_path)), "-k", "9", "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "exceeds the number of rows n=8" in capsys.readouterr().err


def test_ctrl_c_exits_130_in_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    from hf_uniform.io import SourceData

    real = SourceData.write_rows

    def interrupted(self, indices, path, fmt=None, extra=None):
        from hf_uniform.io import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt

    monkeypatch.setattr(SourceData, "write_rows", interrupted)
    out = tmp_path / "o"
    assert main(["select", str(_small(tmp_path)), "-k", "3", "-o", str(out), "-q", "--no-plot"]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "interrupted" in err
    assert sorted(p.name for p in out.iterdir()) == []  # no .tmp, no subset, no selection.json
    monkeypatch.setattr(SourceData, "write_rows", real)
    assert main(["select", str(_small(tmp_path)), "-k", "3", "-o", str(out), "-q", "--no-plot"]) == 0


def test_overwrite_removes_every_earlier_file_and_selection_json_is_the_commit_marker(tmp_path):
    src = _small(tmp_path, n=10)
    out = tmp_path / "o"
    assert main(["select", str(src), "-k", "4", "-o", str(out), "-q", "--baselines", "--no-plot"]) == 0
    assert {"random.jsonl", "mixed.jsonl", "subset.jsonl", "selection.json"} <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("mine")  # not ours: kept
    assert main(["select", str(src), "-k", "3", "-o", str(out), "-q", "--no-plot"]) == 2  # finished: refused
    assert main(["select", str(src), "-k", "3", "-o", str(out), "-q", "--no-plot", "--overwrite",
                 "--format", "parquet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "selection.json", "subset.parquet"]
    # a run killed before selection.json: its files are an unfinished selection, replaced by a rerun
    (out / "selection.json").unlink()
    (out / "random.jsonl").write_text("stale\n")
    (out / ".subset.jsonl.x1y2ab_9.hfu-tmp.jsonl").write_text("partial")  # ours: removed
    (out / ".env.tmp").write_text("SECRET=1")  # the user's own, though its name holds ".tmp": kept
    (out / ".subset.jsonl.tmp").write_text("mine")  # not our pattern: kept
    assert main(["select", str(src), "-k", "2", "-o", str(out), "-q", "--no-plot"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".env.tmp", ".subset.jsonl.tmp", "notes.txt", "selection.json",
                                                    "subset.jsonl"]
    assert (out / ".env.tmp").read_text() == "SECRET=1"
    assert json.loads((out / "selection.json").read_text())["k"] == 2


def test_overwrite_cannot_destroy_an_input_inside_the_output_folder(tmp_path, capsys):
    out = tmp_path / "o"
    src = _small(tmp_path)
    assert main(["select", str(src), "-k", "4", "-o", str(out), "-q", "--no-plot"]) == 0
    before = (out / "subset.jsonl").read_bytes()
    assert main(["select", str(out / "subset.jsonl"), "-k", "2", "-o", str(out), "-q", "--overwrite"]) == 2
    assert "holds the input" in capsys.readouterr().err
    assert (out / "subset.jsonl").read_bytes() == before


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        out = tmp_path / "o"
        assert main(["select", str(_small(tmp_path)), "-k", "3", "-o", str(out), "-q", "--baselines"]) == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes and all(m == 0o640 for m in modes.values()), modes


@pytest.mark.slow
def test_stdout_on_a_full_disk_is_one_line_not_a_traceback(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    src = tmp_path / "v.jsonl"
    src.write_text("".join(json.dumps({"v": [float(i), 1.0]}) + "\n" for i in range(5)))
    with open("/dev/full", "w") as full:
        exe = shutil.which("hf-uniform")
        cmd = [exe] if exe else [sys.executable, "-m", "hf_uniform.cli"]
        res = subprocess.run([*cmd, "stats", str(src), "--embedding-column", "v", "-q"], stdout=full,
                             stderr=subprocess.PIPE, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("hf-uniform: error:") and len(res.stderr.strip().splitlines()) == 1


def test_stats_on_a_subset_reuses_the_cached_pool_and_never_refits(tmp_path, monkeypatch, capsys):
    from hf_uniform.embedders import Word2VecEmbedder

    src = _small(tmp_path, n=10)
    out = tmp_path / "o"
    assert main(["select", str(src), "-k", "4", "-o", str(out), "-q", "--no-plot"]) == 0
    record = json.loads((out / "selection.json").read_text())
    capsys.readouterr()
    fits = []
    monkeypatch.setattr(Word2VecEmbedder, "fit", lambda self, data: fits.append(1) or self)
    assert main(["stats", str(src), "--subset", str(out / "subset.jsonl"), "-q"]) == 0
    assert fits == []  # the cache hit serves pool and subset: nothing is trained after "cache hit"
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("subset"))
    assert float(line.split()[2]) == pytest.approx(record["h"], abs=5e-7)


@pytest.mark.slow
def test_help_imports_neither_torch_nor_the_training_stack():
    """`hf-uniform --help` stays quick: building the parser loads no torch, transformers, TRL or gensim (only
    ``datasets``, which ``import hf_uniform`` imports to add ``Dataset.filter_uniform``)."""
    code = ("import sys, hf_uniform.cli as c; c.build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'gensim', 'transformers', 'trl', 'accelerate') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    help_run = subprocess.run([sys.executable, "-m", "hf_uniform.cli", "select", "--help"], capture_output=True,
                              text=True, timeout=120)
    assert help_run.returncode == 0 and "--drop-empty" in help_run.stdout


def test_top_level_help_lists_the_scripts_without_markup(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and all(f"    {name} " in out for name in ("sft", "eval", "compare"))


def test_main_leaves_the_callers_logging_as_it_was(caplog):
    import logging

    lg = logging.getLogger("hf_uniform")
    before = (lg.handlers[:], lg.propagate, lg.level, logging.getLogger().level)
    assert main(["select", "missing.jsonl", "-k", "3", "-o", "out", "-q"]) == 2
    assert (lg.handlers[:], lg.propagate, lg.level, logging.getLogger().level) == before
    with caplog.at_level("WARNING"):
        logging.getLogger("hf_uniform.train.callbacks").warning("still captured")
    assert "still captured" in caplog.text


@pytest.mark.parametrize("library", ["datasets", "huggingface_hub", "transformers"])
def test_quiet_silences_library_warnings_and_puts_their_levels_back(library):
    """-q prints the result only: the libraries are imported before -q is read (their *_VERBOSITY env vars were
    already read), so their loggers are set to ERROR for the command and put back after it."""
    import logging

    from hf_uniform.cli import _configure_output

    class Keep(logging.Handler):  # on the library's own logger: transformers does not propagate to the root
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    lib, keep = logging.getLogger(library), Keep()
    before = lib.level
    lib.addHandler(keep)
    try:
        restore = _configure_output(True)
        try:
            lib.warning("a library warning that -q must not print")
            lib.error("an error still shows")
        finally:
            restore()
        assert keep.messages == ["an error still shows"]
        assert lib.level == before
        keep.messages.clear()
        restore = _configure_output(False)
        try:
            lib.warning("a library warning shown without -q")
        finally:
            restore()
        assert keep.messages == ["a library warning shown without -q"]
    finally:
        lib.removeHandler(keep)
