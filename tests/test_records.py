"""Typed records (selection.json, run_info.json), run_selection and the one k rule."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from hf_uniform.errors import UniformError
from hf_uniform.records import Provenance, RunInfo, SelectionRecord


def _pool(tmp_path, n=12):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 4))
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": f"row {i}", "emb": x[i].tolist()}) + "\n" for i in range(n)))
    return src, x


def test_cli_selection_json_round_trips_and_matches_run_selection(tmp_path):
    from hf_uniform.cli import main
    from hf_uniform.pipeline import run_selection

    src, x = _pool(tmp_path)
    argv = ["select", str(src), "-k", "4", "-o", str(tmp_path / "cli"), "--embedding-column", "emb", "--metric",
            "euclidean", "--heldout", "2", "--baselines", "--no-plot", "-q"]
    assert main(argv) == 0
    written = json.loads((tmp_path / "cli" / "selection.json").read_text())
    rec = SelectionRecord.from_json(tmp_path / "cli")  # the folder
    assert rec.to_dict() == written and list(rec.to_dict()) == list(written)  # same keys, same order
    assert rec.command == "hf-uniform " + shlex.join(argv)
    assert rec.input_fingerprint and rec.input_fingerprint.startswith("hfu-")
    assert rec.provenance.versions["numpy"] == np.__version__
    assert rec.file("heldout", tmp_path / "cli") == tmp_path / "cli" / "heldout.jsonl"
    assert rec.stats("random") == written["report"]["random"]

    py = run_selection(src, 4, tmp_path / "py", embedding_column="emb", metric="euclidean", heldout=2,
                       baselines=True, plot=False, progress=False)
    assert py == SelectionRecord.from_json(tmp_path / "py" / "selection.json")
    assert (py.indices, py.h, py.heldout["indices"]) == (rec.indices, rec.h, rec.heldout["indices"])
    # independent check of the record's h: float64 min pairwise euclidean distance of the chosen rows
    chosen = x.astype(np.float32).astype(np.float64)[py.indices]  # the column is read as float32
    d = np.sqrt(((chosen[:, None, :] - chosen[None, :, :]) ** 2).sum(-1))
    assert py.h == pytest.approx(d[np.triu_indices(len(chosen), 1)].min(), rel=1e-6)  # engine trace value
    # the recorded command reproduces the same selection through the CLI
    cmd = shlex.split(py.command)
    assert cmd[0] == "hf-uniform"
    assert main([a if a != str(tmp_path / "py") else str(tmp_path / "again") for a in cmd[1:]] + ["-q"]) == 0
    assert SelectionRecord.from_json(tmp_path / "again").indices == py.indices


def test_reads_the_first_schema_less_version():
    # the shape `hf-uniform select` wrote before schema 2 (versions and timings at the top level)
    old = {"input": "pool.jsonl", "command": "hf-uniform select pool.jsonl -k 2 -o out", "metric": "cosine",
           "n": 5, "k": 2, "h": 0.75, "coverage_radius": 1.1, "duplicates_selected": False, "seed": 0,
           "start": [3], "embedder": {"name": "w2v"}, "report": {"subset": {"k": 2, "h": 0.75}}, "files": {"subset":
           "subset.jsonl"}, "subset_file": "subset.jsonl", "engine": {"method": "plain"},
           "versions": {"torch": "2.0"}, "timings": {"select_s": 0.5}, "indices": [3, 0], "min_distances": [None, 0.75]}
    rec = SelectionRecord.from_dict(old)
    assert (rec.k, rec.n, rec.h, rec.indices, rec.start) == (2, 5, 0.75, [3, 0], [3])
    assert rec.engine == {"method": "plain", "versions": {"torch": "2.0"}, "timings": {"select_s": 0.5}}
    assert rec.extra == {"duplicates_selected": False}
    assert rec.provenance == Provenance(input="pool.jsonl", command=old["command"], seed=0, start=[3],
                                        embedder={"name": "w2v"}, versions={"torch": "2.0"})
    assert SelectionRecord.from_dict(rec.to_dict()) == rec


def test_reads_the_training_record_and_the_ray_record():
    from hf_uniform.selection import maxmin_select

    x = np.random.default_rng(0).normal(size=(20, 3))
    sel = maxmin_select(x, 5, start=[2])
    rec = SelectionRecord.from_dict({"input": "pool.jsonl", **sel.to_dict()})  # what train/data writes
    assert rec.indices == sel.indices.tolist() and rec.k == 5 and rec.n == 20 and rec.h == pytest.approx(sel.h)
    assert rec.stats()["h"] == pytest.approx(sel.h) and rec.stats("random") == {}
    ray_keys = {"coverage_radius_over": "pool", "backend": "ray", "shards": 2, "k_per_shard": 5,
                "cluster": {"nodes": 1, "cpus": 2, "gpus": 0}, "timings": {"round1_s": 0.1}}
    ray = SelectionRecord(k=5, n=20, metric="cosine", h=0.2, extra=ray_keys).to_dict()
    back = SelectionRecord.from_dict(json.loads(json.dumps(ray)))
    assert back.extra == ray_keys and back.to_dict() == ray


def test_input_revision_round_trips_and_a_wrong_type_is_refused(tmp_path):
    sha = "7711df7cc13614a7efa69fbc829ced737f8e5308"
    rec = SelectionRecord(k=2, n=5, metric="cosine", indices=[3, 1], input="someuser/data", input_revision=sha)
    written = rec.to_json(tmp_path)
    data = json.loads(written.read_text())
    assert data["input_revision"] == sha and list(data).index("input_revision") == list(data).index("input") + 1
    back = SelectionRecord.from_json(tmp_path)
    assert back == rec and back.to_dict() == data and back.provenance.revision == sha
    # a local input has none, and its record has no such key (as before the field existed)
    local = SelectionRecord(k=2, n=5, metric="cosine", input="pool.jsonl").to_dict()
    assert "input_revision" not in local and SelectionRecord.from_dict(local).input_revision is None
    for bad in (123, ["main"], {"sha": sha}, True):
        (tmp_path / "selection.json").write_text(json.dumps({**data, "input_revision": bad}))
        with pytest.raises(UniformError, match="field 'input_revision' must be a string"):
            SelectionRecord.from_json(tmp_path)


def test_missing_or_bad_record_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SelectionRecord.from_json(tmp_path)
    (tmp_path / "selection.json").write_text("{not json")
    with pytest.raises(UniformError, match="not valid JSON"):
        SelectionRecord.from_json(tmp_path)
    with pytest.raises(UniformError, match="lacks k, n"):
        SelectionRecord.from_dict({"metric": "cosine"})
    assert SelectionRecord.from_dict({"k": 2, "n": 4}).metric is None  # hand-made records may omit it


def test_run_info_round_trip_and_unknown_keys(tmp_path):
    info = {"regime": {"optimizer": "l2_sgd"}, "optimizer_chain": ["L2SGD"], "global_step": 30, "train_loss": 0.5,
            "time_to_threshold": {"0.65": None}, "seconds": {"train": 1.5}, "versions": {"trl": "1.0"},
            "a_later_key": [1, 2]}
    ri = RunInfo.from_dict(info)
    assert ri.global_step == 30 and ri.extra == {"a_later_key": [1, 2]}
    path = ri.to_json(tmp_path)
    assert path.name == "run_info.json" and json.loads(path.read_text()) == {**RunInfo().to_dict(), **info}
    assert RunInfo.from_json(tmp_path) == ri


@pytest.mark.parametrize(("k", "n", "rows"), [(3, 10, 3), (10, 10, 10), (0.5, 9, round(0.5 * 9)), (0.25, 8, 2),
                                              (0.999, 3, 3), (np.int64(4), 9, 4), (np.float32(0.5), 4, 2)])
def test_check_k_counts_and_fractions(k, n, rows):
    from hf_uniform.selection import check_k

    assert check_k(k, n) == rows and isinstance(check_k(k, n), int)


@pytest.mark.parametrize(("k", "n", "needle"), [(0, 5, "at least 1"), (6, 5, "exceeds the number of rows n=5"),
                                                (1.0, 5, "neither a whole number"), (3.0, 5, "neither"),
                                                (float("nan"), 5, "neither"), (0.01, 8, "rounds to 0 rows"),
                                                (True, 5, "must be an int"), ("2", 5, "must be an int")])
def test_check_k_refusals(k, n, needle):
    from hf_uniform.selection import check_k

    with pytest.raises(UniformError, match=needle):
        check_k(k, n)


def test_one_k_rule_for_cli_python_and_training():
    from hf_uniform.cli.args import _k_value
    from hf_uniform.selection import check_k, parse_k
    from hf_uniform.train.data import _k_value as train_k

    assert (parse_k("7"), parse_k("0.5"), _k_value("7"), _k_value("0.5")) == (7, 0.5, 7, 0.5)
    assert (train_k("7"), train_k(7), train_k(0.5), train_k(None), train_k("none")) == (7, 7, 0.5, None, None)
    for bad in (7.0, 1.0, "1.0"):  # a recipe's uniform_k: 1.0 is refused as -k 1.0 is (no whole floats)
        with pytest.raises(UniformError, match="neither a whole number"):
            train_k(bad)
    assert check_k(0.5) == 0.5 and check_k(7) == 7  # the form only, before n is known
    for bad in ("1.0", "0", "x"):
        with pytest.raises(UniformError):
            parse_k(bad)
