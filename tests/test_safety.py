"""Issue 20: nothing lost, nothing leaked. Paths resolved before they are checked, records validated when
read, every check before the first write, our temporary files only, a resume guard that covers the data."""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

import numpy as np
import pytest

from hf_uniform.cli import main
from hf_uniform.errors import UniformError

# huggingface_hub gives its loggers a stderr handler the first time one is used: let that be now (the session's
# stderr), not inside a test whose captured stderr is closed afterwards (later tests would log to it)
huggingface_hub_logging = pytest.importorskip("huggingface_hub.utils.logging")
huggingface_hub_logging.get_logger("huggingface_hub")


def _pool(path: Path, n: int = 12, **extra_rows) -> Path:
    """n rows with instruction/output text and a stored 2-d vector column ``emb``."""
    rng = np.random.default_rng(0)
    rows = [{"id": i, "instruction": f"task {i} alpha beta", "output": f"answer {i}",
             "emb": [float(v) for v in rng.normal(size=2)]} for i in range(n)]
    for i, row in extra_rows.items():
        rows[int(i.lstrip("r"))].update(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _select(tmp_path: Path, out: str | Path, *args: str, pool: Path | None = None) -> int:
    pool = pool or _pool(tmp_path / "pool.jsonl")
    return main(["select", str(pool), "-k", "4", "-o", str(out), "--embedding-column", "emb", "-q", "--no-plot",
                 *args])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("hf-uniform: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and fragment in err, err
    return err


# -- 1. paths are resolved before they are checked; nothing we did not write is removed ----------------------


def test_push_dry_run_to_a_dotdot_path_never_deletes_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _select(tmp_path, "out") == 0
    keep = tmp_path / "X"
    (keep / "sub").mkdir(parents=True)
    (keep / "precious.txt").write_text("mine")
    (keep / "sub" / "deep.txt").write_text("mine too")
    before = _snapshot(keep)
    code = main(["push", "out", "--repo-id", "alice/x", "--dry-run", "--to", "nothere/../X", "-q"])
    assert code == 2
    _one_line_error(capsys, "is not empty")
    assert _snapshot(keep) == before
    assert not (tmp_path / "nothere").exists()  # nothing created on the way either


def test_push_checkpoint_dry_run_to_a_dotdot_path_never_deletes_a_folder(tmp_path, monkeypatch):
    from hf_uniform.hub import push_checkpoint

    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "llama"}')
    keep = tmp_path / "X"
    keep.mkdir()
    (keep / "precious.txt").write_text("mine")
    with pytest.raises(UniformError, match="is not empty"):
        push_checkpoint(ckpt, "alice/m", dry_run_to="nothere/../X")
    assert (keep / "precious.txt").read_text() == "mine" and not (tmp_path / "nothere").exists()
    res = push_checkpoint(ckpt, "alice/m", dry_run_to="nothere/../Y")  # a new folder: written where it resolves
    assert res.folder == tmp_path / "Y" and (tmp_path / "Y" / "config.json").is_file()
    assert not (tmp_path / "nothere").exists()


def test_atomic_dir_never_removes_a_folder_holding_files_it_did_not_write(tmp_path):
    from hf_uniform.io import atomic_dir

    target = tmp_path / "t"
    target.mkdir()
    (target / "user.txt").write_text("mine")
    with pytest.raises(UniformError, match="is not empty"), atomic_dir(target):
        pass
    # a file that appears while the block runs is not removed either: the new folder is dropped instead
    empty = tmp_path / "e"
    empty.mkdir()
    with pytest.raises(UniformError, match="is not empty"), atomic_dir(empty) as tmp:
        (tmp / "ours.txt").write_text("x")
        (empty / "late.txt").write_text("theirs")
    assert [p.name for p in empty.iterdir()] == ["late.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "t"]  # no temporary folder left
    with atomic_dir(target, replace=True) as tmp:  # the caller's own folder, said so explicitly
        (tmp / "new.txt").write_text("y")
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_a_failed_write_leaves_no_folder_it_created(tmp_path, monkeypatch, capsys):
    from hf_uniform.io import atomic_path

    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a" / "b" / "f.txt") as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()  # an existing parent is never removed, only the ones this write created
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "kept" / "new" / "f.txt"):
        raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and list((tmp_path / "kept").iterdir()) == []
    monkeypatch.chdir(tmp_path)
    assert _select(tmp_path, "out") == 0
    (tmp_path / "bad.md").write_text("---\n{{ card_data }}\n---\n{{ nope }}")
    code = main(["push", "out", "--repo-id", "alice/x", "--dry-run", "--to", "new/deep/dir", "--template", "bad.md",
                 "-q"])
    assert code == 2
    _one_line_error(capsys, "'nope' is undefined")
    assert not (tmp_path / "new").exists()


def test_select_to_a_dotdot_path_does_not_replace_a_finished_selection(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _select(tmp_path, "Y", "--baselines") == 0
    before = _snapshot(tmp_path / "Y")
    assert _select(tmp_path, "nothere/../Y") == 2
    _one_line_error(capsys, "already holds a selection; pass --overwrite")
    assert _snapshot(tmp_path / "Y") == before and not (tmp_path / "nothere").exists()
    # with --overwrite it is replaced as a whole: the old baselines do not linger beside the new subset
    assert _select(tmp_path, "nothere/../Y", "--overwrite") == 0
    assert sorted(p.name for p in (tmp_path / "Y").iterdir()) == ["selection.json", "subset.jsonl"]


def test_overwrite_removes_only_files_select_writes_and_never_writes_through_a_link(tmp_path):
    out = tmp_path / "o"
    assert _select(tmp_path, out) == 0
    (out / "notes.txt").write_text("mine")
    _rewrite(out, files={"subset": "subset.jsonl", "notes": "notes.txt"})  # a record naming the user's file
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text("precious\n")
    (out / "subset.jsonl").unlink()
    (out / "subset.jsonl").symlink_to(outside)
    assert _select(tmp_path, out, "--overwrite") == 0
    assert (out / "notes.txt").read_text() == "mine" and outside.read_text() == "precious\n"
    assert not (out / "subset.jsonl").is_symlink() and len((out / "subset.jsonl").read_text().splitlines()) == 4


def test_checkpoint_path_that_is_a_file_is_refused_before_embedding(tmp_path, capsys):
    cache = Path(os.environ["HF_UNIFORM_CACHE"])
    (tmp_path / "ck").write_text("a file")
    code = main(["select", str(_pool(tmp_path / "p.jsonl")), "-k", "3", "-o", str(tmp_path / "o"), "-q",
                 "--checkpoint", str(tmp_path / "ck")])
    assert code == 2
    _one_line_error(capsys, "--checkpoint")
    assert not (tmp_path / "o").exists() and not cache.exists()  # nothing embedded (the cache is untouched)


# -- 2. records are validated when read; push and training never read a file outside the folder --------------


@pytest.fixture
def selection_folder(tmp_path):
    out = tmp_path / "sel"
    assert _select(tmp_path, out, "--baselines") == 0
    return out


def _rewrite(folder: Path, **changes) -> dict:
    record = json.loads((folder / "selection.json").read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            record[outer][inner] = value
        else:
            record[key] = value
    (folder / "selection.json").write_text(json.dumps(record))
    return record


@pytest.mark.parametrize(("change", "message"), [
    ({"files.subset": "../private.jsonl"}, "files.subset '../private.jsonl' is not a file name inside"),
    ({"files.subset": "/etc/hostname"}, "files.subset '/etc/hostname' is not a file name inside"),
    ({"files.coverage_plot": "../secret.png"}, "files.coverage_plot '../secret.png'"),
    ({"files.random": "sub/../../x.jsonl"}, "files.random"),
    ({"subset_file": "~/data.jsonl"}, "subset_file '~/data.jsonl'"),
    ({"metric": "bogus"}, "'metric' must be 'cosine' or 'euclidean', got 'bogus'"),
    ({"h": "high"}, "'h' must be a finite number >= 0 or null, got 'high'"),
    ({"h": -1.0}, "'h' must be a finite number >= 0"),
    ({"indices": "0,1,2"}, "'indices' must be a list of row numbers >= 0, got '0,1,2'"),
    ({"indices": [0, 1, 2, -3]}, "'indices' must be a list of row numbers >= 0"),
    ({"k": "4"}, "'k' must be a whole number >= 1, got '4'"),
    ({"k": True}, "'k' must be a whole number >= 1"),
    ({"n": 2}, "'k' must be at most n=2"),
    ({"files": ["subset.jsonl"]}, "'files' must be an object"),
    ({"seed": 1.5}, "'seed' must be a whole number or null"),
])
def test_push_refuses_a_crafted_or_corrupted_selection_record(selection_folder, tmp_path, change, message, capsys):
    (tmp_path / "private.jsonl").write_text('{"secret": 1}\n')
    _rewrite(selection_folder, **change)
    dry = tmp_path / "dry"
    assert main(["push", str(selection_folder), "--repo-id", "alice/x", "--dry-run", "--to", str(dry), "-q"]) == 2
    err = _one_line_error(capsys, message)
    assert str(selection_folder / "selection.json") in err  # names the file
    assert not dry.exists()


def test_push_refuses_a_truncated_selection_json(selection_folder, tmp_path, capsys):
    text = (selection_folder / "selection.json").read_text()
    (selection_folder / "selection.json").write_text(text[: len(text) // 2])
    assert main(["push", str(selection_folder), "--repo-id", "alice/x", "--dry-run", "--to",
                 str(tmp_path / "dry"), "-q"]) == 2
    _one_line_error(capsys, "is not valid JSON")


def test_push_never_uploads_a_file_linked_from_outside_the_folder(selection_folder, tmp_path, capsys):
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"PRIVATE KEY")
    (selection_folder / "uniformity.png").symlink_to(secret)
    _rewrite(selection_folder, **{"files.coverage_plot": "uniformity.png"})
    dry = tmp_path / "dry"
    assert main(["push", str(selection_folder), "--repo-id", "alice/x", "--dry-run", "--to", str(dry), "-q"]) == 2
    _one_line_error(capsys, "outside the selection folder")
    assert not dry.exists()
    (selection_folder / "uniformity.png").unlink()
    (selection_folder / "random.jsonl").unlink()
    (selection_folder / "random.jsonl").symlink_to(tmp_path / "pool.jsonl")  # another data file as a baseline
    assert main(["push", str(selection_folder), "--repo-id", "alice/x", "--dry-run", "--to", str(dry), "-q"]) == 2
    _one_line_error(capsys, "outside the selection folder")


def test_training_refuses_an_invalid_record_and_files_outside_the_folder(selection_folder, tmp_path):
    from hf_uniform.train.data import load_training_data

    (tmp_path / "other.jsonl").write_text('{"instruction": "x", "output": "y"}\n')
    _rewrite(selection_folder, **{"files.subset": "../other.jsonl"})
    with pytest.raises(UniformError, match="files.subset '../other.jsonl' is not a file name inside"):
        load_training_data(str(selection_folder))
    _rewrite(selection_folder, **{"files.subset": "subset.jsonl", "h": "high"})
    with pytest.raises(UniformError, match="'h' must be a finite number"):
        load_training_data(str(selection_folder))


def test_push_checkpoint_refuses_truncated_or_invalid_records_in_the_folder(tmp_path):
    from hf_uniform.hub import push_checkpoint

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "llama"}')
    (ckpt / "selection.json").write_text('{"k": 3, "n": 10, "metric": "cos')  # truncated
    with pytest.raises(UniformError, match="selection.json is not valid JSON"):
        push_checkpoint(ckpt, "alice/m", dry_run_to=tmp_path / "dry")
    (ckpt / "selection.json").write_text('{"k": 3, "n": 10, "metric": "cosine", "indices": [1, 2, 3]}')
    (ckpt / "run_info.json").write_text('{"global_step": "ten"}')
    with pytest.raises(UniformError, match="'global_step' must be a whole number >= 0"):
        push_checkpoint(ckpt, "alice/m", dry_run_to=tmp_path / "dry")
    (ckpt / "run_info.json").write_text('{"global_step": 10}')
    (ckpt / "provenance.json").write_text('{"data": ')
    with pytest.raises(UniformError, match="provenance.json is not valid JSON"):
        push_checkpoint(ckpt, "alice/m", dry_run_to=tmp_path / "dry")
    (ckpt / "provenance.json").write_text('{"data": {}}')
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x")
    (ckpt / "model.safetensors").symlink_to(secret)
    with pytest.raises(UniformError, match="outside the folder"):
        push_checkpoint(ckpt, "alice/m", dry_run_to=tmp_path / "dry")
    (ckpt / "model.safetensors").unlink()
    res = push_checkpoint(ckpt, "alice/m", dry_run_to=tmp_path / "dry")
    assert res.files == ["README.md", "config.json", "provenance.json", "run_info.json", "selection.json"]
    assert not (tmp_path / "dry" / "model.safetensors").exists()


def test_run_info_is_checked_when_read_and_written_as_it_reads(tmp_path):
    from hf_uniform.records import RunInfo

    # the writer never fails a finished training run: a diverged loss and numpy counts are written as JSON values
    path = RunInfo.from_dict({"global_step": np.int64(30), "train_loss": float("nan"), "train_tokens": 1200,
                              "args": {"output_dir": tmp_path}}).to_json(tmp_path)
    info = RunInfo.from_json(path)
    assert (info.global_step, info.train_loss, info.args) == (30, None, {"output_dir": str(tmp_path)})
    for text, message in [('{"global_step": "30"}', "'global_step' must be a whole number >= 0 or null, got '30'"),
                          ('{"train_loss": "low"}', "'train_loss' must be a finite number or null"),
                          ('{"optimizer_chain": "AdamW"}', "'optimizer_chain' must be a list of strings"),
                          ('{"data": [1]}', "'data' must be an object"), ('{"global_step": 3', "is not valid JSON")]:
        path.write_text(text)
        with pytest.raises(UniformError, match=message.replace("(", r"\(")) as err:
            RunInfo.from_json(tmp_path)
        assert str(err.value).startswith(str(path))


def test_read_json_record_gives_one_line_errors(tmp_path):
    from hf_uniform.errors import MissingFileError
    from hf_uniform.records import read_json_record

    p = tmp_path / "arm.json"
    with pytest.raises(MissingFileError, match="arm.json does not exist"):
        read_json_record(p, what="study record")
    for text, message in [('{"arm": "uniform", "lo', "is not valid JSON"), ("[1, 2]", "holds list, not a study record"),
                          ('{"arm": "uniform"}', "lacks 'loss': not a complete study record"),
                          ('{"arm": "uniform", "loss": "1.5"}', "'loss' must be float, got '1.5'"),
                          ('{"arm": 3, "loss": 1.5}', "'arm' must be str, got 3"),
                          ("[" * 100_000 + "]" * 100_000, "nested too deeply")]:
        p.write_text(text)
        with pytest.raises(UniformError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
            read_json_record(p, {"arm": str, "loss": float}, what="study record")
        assert "\n" not in str(info.value)
    p.write_text('{"arm": "uniform", "loss": 2}')
    assert read_json_record(p, {"arm": str, "loss": float}) == {"arm": "uniform", "loss": 2}


def test_selection_record_file_stays_inside_its_folder(tmp_path):
    from hf_uniform.records import SelectionRecord

    rec = SelectionRecord(k=1, n=2, metric="cosine", files={"subset": "subset.jsonl"})
    assert rec.file("subset", tmp_path) == tmp_path / "subset.jsonl"
    (tmp_path / "subset.jsonl").symlink_to("/etc/hostname")
    with pytest.raises(UniformError, match="outside the selection folder"):
        rec.file("subset", tmp_path)
    rec.files["subset"] = "../x.jsonl"  # set after reading: still refused when used
    with pytest.raises(UniformError, match="not a file name inside the selection folder"):
        rec.file("subset", tmp_path)


# -- 3. every check before the first write ------------------------------------------------------------------


def test_heldout_is_written_only_after_every_check(tmp_path, capsys):
    pool = _pool(tmp_path / "pool.jsonl", n=12, r5={"instruction": "", "output": ""})
    out = tmp_path / "o"
    code = main(["select", str(pool), "-k", "4", "-o", str(out), "--heldout", "2", "--seed", "1", "-q", "--no-plot"])
    assert code == 2
    _one_line_error(capsys, "have empty text")
    assert not out.exists()  # no heldout.jsonl left behind by a refused input
    # over a finished selection with --overwrite: a refused input leaves that selection whole
    good = _pool(tmp_path / "good.jsonl", n=12)
    assert main(["select", str(good), "-k", "4", "-o", str(out), "--heldout", "2", "-q", "--no-plot"]) == 0
    before = _snapshot(out)
    assert set(before) == {"heldout.jsonl", "selection.json", "subset.jsonl"}
    code = main(["select", str(pool), "-k", "4", "-o", str(out), "--heldout", "2", "--seed", "1", "-q", "--no-plot",
                 "--overwrite"])
    assert code == 2
    assert _snapshot(out) == before


def test_too_small_max_memory_is_refused_before_embedding(tmp_path, capsys):
    pytest.importorskip("numba")
    cache = Path(os.environ["HF_UNIFORM_CACHE"])
    pool = _pool(tmp_path / "pool.jsonl", n=50)
    code = main(["select", str(pool), "-k", "5", "-o", str(tmp_path / "o"), "-q", "--max-memory", "1KB"])
    assert code == 2
    _one_line_error(capsys, "max_memory=0.0MB is below what the lazy engine needs for 50 rows of 300 dims")
    assert not (tmp_path / "o").exists() and not cache.exists()  # refused before the Word2Vec embedding


def _rank(rank: int, init: str, fail_rank: int, results) -> None:
    import torch.distributed as dist

    from hf_uniform.pipeline import _all_ranks_agree

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        _all_ranks_agree(UniformError(f"rank {rank}: bad input") if rank == fail_rank else None)
        results.put((rank, "ok"))
    except UniformError as err:
        results.put((rank, str(err)))
    finally:
        dist.destroy_process_group()


def test_all_ranks_agree_before_rank_0_writes(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [ctx.Process(target=_rank, args=(r, init, 1, results)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert got == {0: "another rank refused the input (its message names the problem); nothing was written",
                   1: "rank 1: bad input"}


# -- 4. our temporary files only ------------------------------------------------------------------------------


def test_only_our_temporary_files_are_removed_from_the_embedding_cache(tmp_path):
    from hf_uniform.cache import STALE_TMP_SECONDS, load_embeddings, save_embeddings

    cache = tmp_path / "emb"
    cache.mkdir()
    stale = cache / ".ab12.npy.k3j9x_2q.hfu-tmp.npy"  # a killed write, hours ago
    fresh = cache / ".cd34.npy.p0o9i8u7.hfu-tmp.npy"  # another run writing right now
    user = cache / ".notes.tmp"
    for p in (stale, fresh, user):
        p.write_bytes(b"partial")
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(user, (old, old))
    save_embeddings("ef56", np.ones((2, 3), np.float32), cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == [".cd34.npy.p0o9i8u7.hfu-tmp.npy", ".notes.tmp", "ef56.json",
                                                       "ef56.npy"]
    os.utime(fresh, (old, old))  # the other run was killed too: the next read (a hit) removes it
    assert load_embeddings("ef56", n_rows=2, cache_dir=cache).shape == (2, 3)
    assert sorted(p.name for p in cache.iterdir()) == [".notes.tmp", "ef56.json", "ef56.npy"]


def test_a_killed_checkpoint_save_leaves_no_temporary_file_for_good(tmp_path):
    from hf_uniform.checkpoint import Checkpointer

    ck = tmp_path / "ck"
    ck.mkdir()
    names = [".maxmin-state.step100.npz.abcd_123.hfu-tmp",  # this run's, killed: removed
             ".maxmin-state.rank1-of-2.step5.npz.abcd_123.hfu-tmp",  # another rank's layout: not this one's
             ".notes.tmp", "maxmin-state.step50.npz.bak"]  # the user's
    for name in names:
        (ck / name).write_bytes(b"x")
    Checkpointer(ck, {"n": 3}, every=1)
    assert sorted(p.name for p in ck.iterdir()) == sorted(names[1:])


def test_temp_files_follow_one_pattern(tmp_path):
    from hf_uniform.checkpoint import Checkpointer
    from hf_uniform.io import TMP_PATTERN, atomic_path

    seen = []
    with atomic_path(tmp_path / "subset.jsonl") as tmp:
        seen.append(tmp.name)
        tmp.write_text("x")
    ck = Checkpointer(tmp_path / "ck", {"n": 3}, every=1)
    import tempfile as tf

    real = tf.mkstemp

    def spy(*a, **kw):
        fd, name = real(*a, **kw)
        seen.append(Path(name).name)
        return fd, name

    tf.mkstemp = spy
    try:
        ck.save(1, np.array([0]), np.array([np.inf]), np.zeros(3, np.float32), np.ones(3, np.int64))
    finally:
        tf.mkstemp = real
    assert len(seen) == 2 and all(TMP_PATTERN.match(name) for name in seen), seen
    assert not TMP_PATTERN.match(".env.tmp") and not TMP_PATTERN.match(".subset.jsonl.tmp")


# -- 5. the smaller items ---------------------------------------------------------------------------------------


def test_one_line_columnar_json_is_read_as_columns(tmp_path):
    from hf_uniform.io import read_source

    p = tmp_path / "cols.json"
    p.write_text(json.dumps({"instruction": ["a", "b", "c"], "output": ["x", "y", "z"]}))
    assert read_source(p).rows == [{"instruction": "a", "output": "x"}, {"instruction": "b", "output": "y"},
                                   {"instruction": "c", "output": "z"}]
    p.write_text(json.dumps({"instruction": "a", "output": "x"}))  # one row written with json.dump(row)
    assert read_source(p).rows == [{"instruction": "a", "output": "x"}]
    q = tmp_path / "one.jsonl"  # JSON Lines: one line is one row, whatever it holds
    q.write_text(json.dumps({"instruction": ["a", "b"], "output": ["x", "y"]}) + "\n")
    assert read_source(q).n == 1


def test_a_number_too_large_for_a_float_is_written_back_as_written(tmp_path):
    from hf_uniform.io import read_source

    p = tmp_path / "big.jsonl"
    p.write_text('{"id": 0, "big": 1e400, "neg": -2.5E+999, "ok": 1.5}\n{"id": 1, "big": 3, "ok": 2.5}\n')
    src = read_source(p)
    assert src.rows[0]["big"] == float("inf") and src.raw_rows == frozenset({0})
    src.write_rows([0, 1], tmp_path / "o.jsonl", extra={"r": [0, 1]})
    assert (tmp_path / "o.jsonl").read_text() == ('{"id": 0, "big": 1e400, "neg": -2.5E+999, "ok": 1.5, "r": 0}\n'
                                                  '{"id": 1, "big": 3, "ok": 2.5, "r": 1}\n')
    src.write_rows([0], tmp_path / "o.csv", "csv")
    assert (tmp_path / "o.csv").read_text().splitlines()[1] == "0,1e400,-2.5E+999,1.5"
    doc = tmp_path / "big.json"  # a whole-file document too
    doc.write_text('[{"x": 1e400}, {"x": 1}]')
    src = read_source(doc)
    src.write_rows([0, 1], tmp_path / "d.jsonl")
    assert (tmp_path / "d.jsonl").read_text() == '{"x": 1e400}\n{"x": 1}\n'


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "line 1 is nested too deeply"),
    ('{"a": 1}\n{"a": ' + "7" * 5000 + "}\n", "line 2 holds a number Python cannot read"),
])
def test_deep_nesting_and_huge_integers_are_one_line_errors(tmp_path, text, message, capsys):
    p = tmp_path / "bad.jsonl"
    p.write_text(text)
    assert main(["select", str(p), "-k", "1", "-o", str(tmp_path / "o"), "-q"]) == 2
    _one_line_error(capsys, message)
    doc = tmp_path / "bad.json"
    doc.write_text("[" + text.splitlines()[-1] + "]")
    assert main(["select", str(doc), "-k", "1", "-o", str(tmp_path / "o"), "-q"]) == 2
    _one_line_error(capsys, "the document")
    assert not (tmp_path / "o").exists()


def test_split_on_a_file_is_refused(tmp_path, capsys):
    assert main(["select", str(_pool(tmp_path / "p.jsonl")), "-k", "3", "-o", str(tmp_path / "o"), "-q",
                 "--split", "test"]) == 2
    _one_line_error(capsys, "--split test applies to Hub datasets and save_to_disk folders")
    assert not (tmp_path / "o").exists()


def test_heldout_rows_are_not_recorded_as_dropped_empty_rows(tmp_path):
    from hf_uniform.pipeline import run_selection

    pool = _pool(tmp_path / "pool.jsonl", n=12, r3={"instruction": "", "output": ""})
    rec = run_selection(pool, 4, tmp_path / "o", heldout=2, drop_empty=True, plot=False, progress=False, seed=5,
                        embedder="w2v")
    held = rec.heldout["indices"]
    assert 3 not in held  # the seed keeps the empty row in the pool
    assert rec.engine["dropped_empty_rows"] == [3] and rec.embedded["dropped_empty_rows"] == 1
    assert rec.engine["pool_rows"] == 12 - 2 - 1


def test_heldout_one_point_zero_records_a_command_the_cli_accepts(tmp_path):
    from hf_uniform.cli import build_parser
    from hf_uniform.pipeline import run_selection

    rec = run_selection(_pool(tmp_path / "pool.jsonl"), 4, tmp_path / "o", heldout=1.0, embedding_column="emb",
                        plot=False, progress=False)
    assert rec.heldout["rows"] == 1 and rec.heldout["size"] == 1
    argv = shlex.split(rec.command)[1:]
    assert argv[argv.index("--heldout") + 1] == "1"
    assert build_parser().parse_args(argv).heldout == 1


def test_a_conversation_with_roles_but_no_text_is_empty(tmp_path, capsys):
    rows = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"a {i}"}]}
            for i in range(6)]
    rows[2] = {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "  "}]}
    p = tmp_path / "chat.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["select", str(p), "-k", "2", "-o", str(tmp_path / "o"), "-q", "--no-plot"]) == 2
    _one_line_error(capsys, "1 of 6 rows have empty text in columns ['messages'] (rows [2])")


def test_training_provenance_records_the_embedded_columns(tmp_path):
    from hf_uniform.train.data import load_training_data

    pool = _pool(tmp_path / "pool.jsonl", n=8)
    for method in ("uniform", "random"):
        data = load_training_data(str(pool), uniform_k=3, subset_method=method, measure_h=True)
        emb = data.provenance["embedder"]
        assert emb["columns"] == ["instruction", "output"] and emb["layout"] == "alpaca", (method, emb)


# -- 6. the resume fingerprint covers the data ----------------------------------------------------------------


def test_resume_refuses_a_checkpoint_of_data_changed_anywhere(tmp_path):
    from hf_uniform.selection import maxmin_select

    x = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    ck = tmp_path / "ck"
    maxmin_select(x, 20, seed=0, checkpoint_dir=ck, checkpoint_every=5, method="plain")
    changed = x.copy()
    changed[123, 4] += 1e-3  # a row that 8 evenly spaced samples never see
    with pytest.raises(UniformError, match="belongs to a different run"):
        maxmin_select(changed, 20, seed=0, checkpoint_dir=ck, checkpoint_every=5, resume=True, method="plain")
    again = maxmin_select(x, 20, seed=0, checkpoint_dir=ck, checkpoint_every=5, resume=True, method="plain")
    assert again.info["resumed_from_step"] == 20


@pytest.mark.slow
def test_torchrun_refused_input_writes_nothing_and_every_rank_exits_2(tmp_path):
    import socket
    import subprocess
    import sys

    pool = _pool(tmp_path / "pool.jsonl", n=40, r7={"instruction": "", "output": ""})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    out = tmp_path / "o"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                          "127.0.0.1", "--master_port", port, "-m", "hf_uniform.cli", "select", str(pool), "-k", "5",
                          "-o", str(out), "--heldout", "3", "--seed", "0", "-q", "--no-plot"],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode != 0
    assert run.stderr.count("hf-uniform: error: 1 of 40 rows have empty text") == 2, run.stderr[-2000:]
    assert not out.exists()
