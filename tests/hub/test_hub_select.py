"""``hf-uniform select USER/REPO``: a dataset loaded by its Hub id, from the local fake Hub.

The Hub is the only thing replaced: ``tests/hub/hub_server.py`` serves the repo over HTTP on 127.0.0.1 and
records every request; ``datasets.load_dataset`` and ``huggingface_hub`` run unchanged against it. Both libraries
read ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and their cache folders once, at import (and ``tests/conftest.py`` sets
``HF_HUB_OFFLINE=1`` before that), so the fixture patches the module-level copies as well as the environment;
``monkeypatch`` restores them after each test. Name lookups of any other host are refused (and recorded), so
nothing in these tests can reach the real Hub or any other service.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_server import FakeHub, commit_id  # noqa: E402

from hf_uniform.cli import main  # noqa: E402

REPO = "someuser/tiny-instruct"
DATA_FILE = "data/train-00000-of-00001.jsonl"
OUR_COLUMNS = {"uniform_rank", "uniform_min_distance"}  # what select adds to each row it writes
WORDS = ("add subtract list explain write translate summarize name describe compare poem story code python "
         "sort number colour river mountain city recipe bread music piano history war science atom cell "
         "planet star ocean fish tree bird law tax market price health sleep exercise").split()


def _rows(n: int = 40, seed: int = 1) -> list[dict]:
    """``n`` instruction rows with distinct texts (every column differs between rows)."""
    rng = np.random.default_rng(seed)
    return [{"instruction": " ".join(rng.choice(WORDS, size=int(rng.integers(4, 9)))) + f" (task {i})",
             "input": f"case {i}: " + " ".join(rng.choice(WORDS, size=3)),
             "output": " ".join(rng.choice(WORDS, size=5)) + f" [{i}]"} for i in range(n)]


@pytest.fixture
def hub_online(monkeypatch, tmp_path):
    """The fake Hub, online, with ``datasets`` and ``huggingface_hub`` pointed at it and caching under tmp_path.

    Yields ``(server, refused)``: ``refused`` lists every other host a name lookup was attempted for.
    """
    import datasets
    from huggingface_hub import constants

    refused: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("127.0.0.1", "localhost"):
            refused.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: refused by the test (only the fake Hub is reachable)")
        return real_getaddrinfo(host, *args, **kwargs)

    home = tmp_path / "hf_home"
    with FakeHub(token="hf_unusedWriteToken") as server:
        monkeypatch.setattr(socket, "getaddrinfo", local_only)
        # the environment, for anything that reads it at call time (hf_uniform's own offline check does)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)  # anonymous: a public repo reads without a token
        monkeypatch.setenv("HF_HOME", str(home))
        monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
        # ... and the copies both libraries took at import
        for name, value in {"ENDPOINT": server.url, "HF_HUB_OFFLINE": False,
                            "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
                            "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
                            "HF_ASSETS_CACHE": str(home / "assets"), "HF_XET_CACHE": str(home / "xet"),
                            "HF_TOKEN_PATH": str(home / "token"),
                            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens")}.items():
            monkeypatch.setattr(constants, name, value)
        for name, value in {"HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": False, "HF_DATASETS_OFFLINE": False,
                            "HUB_DATASETS_URL": server.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
                            "HF_CACHE_HOME": str(home), "HF_DATASETS_CACHE": home / "datasets",
                            "HF_MODULES_CACHE": home / "modules",
                            "DOWNLOADED_DATASETS_PATH": home / "datasets" / "downloads",
                            "EXTRACTED_DATASETS_PATH": home / "datasets" / "downloads" / "extracted"}.items():
            monkeypatch.setattr(datasets.config, name, value)
        yield server, refused


def _hub_requests(server: FakeHub) -> list:
    return [r for r in server.requests if r.path != "/api/agent-harnesses"]  # huggingface_hub's own telemetry


def _host(server: FakeHub, rows: list[dict]) -> None:
    files = {DATA_FILE: "".join(json.dumps(r) + "\n" for r in rows).encode(),
             "README.md": b"# tiny-instruct\n\n40 instruction rows for a test.\n"}
    server.add_repo("dataset", REPO, files)


def test_select_by_hub_id_loads_the_repo_from_the_hub_and_writes_its_rows(hub_online, tmp_path, capsys):
    server, refused = hub_online
    rows = _rows()
    _host(server, rows)
    out = tmp_path / "out"

    assert main(["select", REPO, "-k", "5", "-o", str(out), "-q", "--no-plot"]) == 0, capsys.readouterr().err

    # rows out are rows in: the source row at each selected index, unchanged, plus select's own columns only
    record = json.loads((out / "selection.json").read_text())
    chosen = [json.loads(line) for line in (out / "subset.jsonl").read_text().splitlines()]
    indices = record["indices"]
    assert len(chosen) == len(indices) == len(set(indices)) == 5 and all(0 <= i < len(rows) for i in indices)
    for rank, (i, row) in enumerate(zip(indices, chosen, strict=True)):
        assert set(row) == {"instruction", "input", "output"} | OUR_COLUMNS
        assert {k: row[k] for k in ("instruction", "input", "output")} == rows[i]
        assert row["uniform_rank"] == rank
    assert record["input"] == REPO and record["n"] == 40 and record["k"] == 5

    # the data came from the fake Hub: anonymous reads at the commit of main, the data file fetched in full
    sha = commit_id(server.files("dataset", REPO))
    assert record["input_revision"] == sha  # which version of the repo the rows are
    requests = _hub_requests(server)
    seen = {f"{r.method} {r.path}" for r in requests}
    assert f"GET /datasets/{REPO}/resolve/{sha}/{DATA_FILE}" in seen
    assert f"HEAD /datasets/{REPO}/resolve/{sha}/{DATA_FILE}" in seen
    asked = [r for r in requests if r.path == f"/api/datasets/{REPO}"]  # the revision was fixed from main:
    assert len(asked) == 1 and asked[0].query.get("expand") == ["sha"]  # its commit id alone, asked once
    assert not any("/resolve/main/" in path for path in seen), sorted(seen)  # then everything read at that id
    assert all(r.route is not None for r in requests), [f"{r.method} {r.path}" for r in requests if r.route is None]
    assert all(r.method in ("GET", "HEAD") for r in requests)
    assert not any("authorization" in r.headers for r in requests)
    assert not any("huggingface.co" in host for host in refused), refused  # no library default endpoint left
    # ... into the caches under tmp_path, nowhere else
    assert (tmp_path / "hf_home" / "hub" / f"datasets--{REPO.replace('/', '--')}").is_dir()


def test_a_hub_dataset_once_downloaded_selects_again_offline_without_a_request(hub_online, tmp_path,
                                                                              monkeypatch, capfd):
    """``load_hub_dataset``'s promise: with ``HF_HUB_OFFLINE=1`` a Hub dataset already in the cache loads as usual."""
    server, _ = hub_online
    _host(server, _rows())
    argv = ["select", REPO, "-k", "5", "-q", "--no-plot", "--no-cache"]
    assert main([*argv, "-o", str(tmp_path / "online")]) == 0
    asked = len(server.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # hf_uniform hands this on to both libraries for the call

    assert main([*argv, "-o", str(tmp_path / "offline")]) == 0
    assert len(server.requests) == asked  # served from the cache alone
    online, offline = tmp_path / "online", tmp_path / "offline"
    assert (offline / "subset.jsonl").read_text() == (online / "subset.jsonl").read_text()
    records = [json.loads((d / "selection.json").read_text()) for d in (online, offline)]
    assert records[0]["indices"] == records[1]["indices"] and records[1]["input"] == REPO
    # offline the commit is that of the cached copy the rows came from
    sha = commit_id(server.files("dataset", REPO))
    assert records[0]["input_revision"] == records[1]["input_revision"] == sha

    # datasets reads the latest cached copy offline whatever the revision: another commit id is refused
    other = "0123456789" * 4
    assert main([*argv, "--revision", other, "-o", str(tmp_path / "other")]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and other[:12] in err and sha[:12] in err and "HF_HUB_OFFLINE" in err, err
    assert not (tmp_path / "other").exists() and len(server.requests) == asked
    assert main([*argv, "--revision", sha, "-o", str(tmp_path / "same")]) == 0  # the cached commit itself
    assert json.loads((tmp_path / "same" / "selection.json").read_text())["input_revision"] == sha


def test_select_of_a_hub_id_the_hub_does_not_have_is_one_line_exit_2(hub_online, tmp_path, capfd):
    server, refused = hub_online
    server.add_repo("dataset", REPO, {DATA_FILE: b'{"instruction": "a", "input": "", "output": "b"}\n'})
    missing = "someuser/not-on-this-hub"
    out = tmp_path / "out"

    assert main(["select", missing, "-k", "5", "-o", str(out), "-q", "--no-plot"]) == 2
    err = capfd.readouterr().err.strip()  # file-descriptor level: library log lines would show here too
    assert len(err.splitlines()) == 1 and missing in err and "Traceback" not in err, err
    assert "offline" not in err  # the Hub answered; it is not a network failure
    assert not out.exists()
    # the Hub was asked, and only about that id
    requests = _hub_requests(server)
    assert requests and all(f"/{missing}/" in r.path + "/" for r in requests), [r.path for r in requests]
    assert not any("huggingface.co" in host for host in refused), refused


@pytest.mark.parametrize("status", [403, 500])
def test_a_hub_that_answers_with_an_error_is_not_called_offline(hub_online, tmp_path, capfd, status):
    server, _ = hub_online
    _host(server, _rows())
    server.fail_with = status  # reachable, but every answer is an HTTP error
    out = tmp_path / "out"
    assert main(["select", REPO, "-k", "5", "-o", str(out), "-q", "--no-plot"]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and REPO in err and "Traceback" not in err, err
    assert "offline" not in err and "HF_HUB_OFFLINE" not in err, err  # the Hub answered: not a network failure
    assert _hub_requests(server) and not out.exists()


def _push(server: FakeHub, rows: list[dict]) -> str:
    """A new commit on main replacing the data file (an ordinary upload with the write token); its commit id."""
    from huggingface_hub import HfApi

    HfApi(endpoint=server.url, token=server.token).upload_file(
        path_or_fileobj="".join(json.dumps(r) + "\n" for r in rows).encode(), path_in_repo=DATA_FILE,
        repo_id=REPO, repo_type="dataset", commit_message="new rows")
    return commit_id(server.files("dataset", REPO))


def _selected(out: Path) -> tuple[dict, list[dict]]:
    record = json.loads((out / "selection.json").read_text())
    rows = [json.loads(line) for line in (out / "subset.jsonl").read_text().splitlines()]
    return record, [{k: v for k, v in r.items() if k not in OUR_COLUMNS} for r in rows]


def test_select_at_a_revision_reads_that_commit_after_main_moved_on(hub_online, tmp_path, capfd):
    from huggingface_hub import HfApi

    from hf_uniform.records import SelectionRecord

    server, _ = hub_online
    old_rows, new_rows = _rows(40, seed=1), _rows(30, seed=2)
    _host(server, old_rows)
    old_sha = commit_id(server.files("dataset", REPO))
    HfApi(endpoint=server.url, token=server.token).create_branch(REPO, branch="v1", repo_type="dataset")  # = main
    new_sha = _push(server, new_rows)  # main moves on; v1 still names the first commit
    assert new_sha != old_sha
    argv = ["-k", "5", "-q", "--no-plot", "--no-cache"]

    assert main(["select", REPO, *argv, "-o", str(tmp_path / "main")]) == 0, capfd.readouterr().err
    assert main(["select", REPO, "--revision", "v1", *argv, "-o", str(tmp_path / "v1")]) == 0, capfd.readouterr().err
    assert main(["select", REPO, "--revision", old_sha, *argv, "-o", str(tmp_path / "sha")]) == 0

    now, now_rows = _selected(tmp_path / "main")
    assert now["input_revision"] == new_sha and now["n"] == 30
    assert now_rows == [new_rows[i] for i in now["indices"]]
    for name in ("v1", "sha"):  # a branch name and a commit id: both read the first commit, and record its id
        record, chosen = _selected(tmp_path / name)
        assert record["input_revision"] == old_sha and record["n"] == 40, name
        assert chosen == [old_rows[i] for i in record["indices"]], name
        assert record["command"].endswith(f"--revision {'v1' if name == 'v1' else old_sha} -k 5 -q --no-plot "
                                          "--no-cache -o " + str(tmp_path / name))
        assert SelectionRecord.from_json(tmp_path / name).input_revision == old_sha  # reads back (schema check)
    assert _selected(tmp_path / "sha")[0]["indices"] == _selected(tmp_path / "v1")[0]["indices"]
    seen = {f"{r.method} {r.path}" for r in _hub_requests(server)}
    assert f"GET /datasets/{REPO}/resolve/{old_sha}/{DATA_FILE}" in seen  # the old file, fetched at its commit
    assert f"GET /api/datasets/{REPO}/revision/v1" in seen

    # the card of the subset names that commit, and its reproduce command and code read it (not the branch)
    from hf_uniform.hub import render_dataset_card

    card = render_dataset_card(tmp_path / "v1", "alice/tiny-uniform", license="mit", language="en",
                               coverage_plot=None).text
    assert f"| Source | [{REPO}](https://huggingface.co/datasets/{REPO}) at commit [`{old_sha[:12]}`]" in card
    assert f'load_dataset("{REPO}", split="train", revision="{old_sha}")' in card
    assert f"--revision {old_sha} -k 5" in card and "--revision v1" not in card


def test_select_at_a_revision_the_hub_does_not_have_is_one_line_exit_2(hub_online, tmp_path, capfd):
    server, _ = hub_online
    _host(server, _rows())
    out = tmp_path / "out"
    assert main(["select", REPO, "--revision", "no-such-branch", "-k", "5", "-o", str(out), "-q", "--no-plot"]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-branch" in err and "Traceback" not in err, err
    assert "offline" not in err and not out.exists()


def test_a_commit_id_the_hub_does_not_give_is_recorded_as_unknown_not_a_failure(hub_online, tmp_path, capfd,
                                                                                monkeypatch):
    from huggingface_hub import HfApi

    server, _ = hub_online
    _host(server, _rows())

    real = HfApi.dataset_info

    def flaky(self, *args, **kwargs):  # fails hf_uniform's question (the commit id alone), not datasets' own
        if kwargs.get("expand") == ["sha"]:
            raise RuntimeError("the Hub API is having a bad day")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(HfApi, "dataset_info", flaky)
    out = tmp_path / "out"
    assert main(["select", REPO, "-k", "5", "-o", str(out), "--no-plot", "--no-cache"]) == 0
    record = json.loads((out / "selection.json").read_text())
    assert "input_revision" not in record and record["n"] == 40  # unknown, and the selection is complete
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("WARNING")]
    assert any("input_revision" in line and "bad day" in line for line in warnings), warnings


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_revision_with_a_local_input_is_one_line_exit_2(tmp_path, capfd, kind):
    rows = _rows(6)
    if kind == "file":
        src = tmp_path / "pool.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        from datasets import Dataset

        src = tmp_path / "pool"
        Dataset.from_list(rows).save_to_disk(str(src))
    out = tmp_path / "out"
    assert main(["select", str(src), "--revision", "v1", "-k", "2", "-o", str(out), "-q", "--no-plot"]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"--revision v1 applies to Hub dataset ids only; {src} is a local {kind}" in err
    assert "drop --revision" in err and not out.exists()
    assert main(["stats", str(src), "--revision", "v1", "-q"]) == 2  # stats reads its input the same way
    assert "drop --revision" in capfd.readouterr().err
