"""Publishing to the Hub: the dry-run folder, the real upload path against a local fake Hub, no token leaks,
and clear errors before any upload.

The Hub is the only thing replaced: ``tests/hub/hub_server.py`` serves its HTTP API on 127.0.0.1 and records
every request, and ``huggingface_hub`` is pointed at it (``HF_ENDPOINT`` in a subprocess, or
``huggingface_hub.constants.ENDPOINT`` in-process). Selection, staging, cards and the upload calls are real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_server import FakeHub  # noqa: E402

from hf_uniform import hub  # noqa: E402
from hf_uniform.cli import main  # noqa: E402
from hf_uniform.errors import UniformError  # noqa: E402

TOKEN = "hf_FAKEtoken123abcdefghijklmnopqrstuvwxyzAB"  # shaped like a real token; must never leak
REPO = "alice/pool-uniform"
WORDS = ("add subtract list explain write translate summarize name describe compare poem story code python "
         "sort number colour river mountain city recipe bread music piano history war science atom cell "
         "planet star ocean fish tree bird law tax market price health sleep exercise").split()


def _pool_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(4, 9)))
        rows.append({"instruction": " ".join(words) + f" #{i}", "input": "",
                     "output": " ".join(rng.choice(WORDS, size=5))})
    return rows


@pytest.fixture(scope="module")
def select_out(tmp_path_factory) -> Path:
    """A real ``hf-uniform select --baselines`` folder: 24 of 150 rows, Word2Vec, cosine."""
    root = tmp_path_factory.mktemp("select")
    pool = root / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in _pool_rows(150)))
    out = root / "out"
    cwd = os.getcwd()
    os.chdir(root)  # the embedding cache and the recorded command use relative paths
    try:
        assert main(["select", "pool.jsonl", "-k", "24", "-o", "out", "--baselines", "-q", "--no-cache"]) == 0
    finally:
        os.chdir(cwd)
    assert {"subset.jsonl", "selection.json", "random.jsonl", "mixed.jsonl"} <= {p.name for p in out.iterdir()}
    return out


def _copy_out(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    if changes:
        record = json.loads((dst / "selection.json").read_text())
        record.update(changes)
        (dst / "selection.json").write_text(json.dumps(record, indent=2) + "\n")
    return dst


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_no_token(*texts: str, roots: tuple[Path, ...] = (), blobs: tuple[bytes, ...] = ()) -> None:
    for text in texts:
        assert TOKEN not in text
    for blob in blobs:
        assert TOKEN.encode() not in blob
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), f"token written to {path}"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def fake_hub(monkeypatch):
    """The fake Hub, with this process's huggingface_hub pointed at it and HF_TOKEN set."""
    from huggingface_hub import constants

    with FakeHub(TOKEN) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield server


def _hub_requests(server: FakeHub) -> list:
    return [r for r in server.requests if r.path != "/api/agent-harnesses"]  # huggingface_hub's own telemetry


# -- the dry-run folder ---------------------------------------------------------------------------------


def test_dry_run_folder_is_the_dataset_with_its_card(select_out, tmp_path, capsys):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    dry = tmp_path / "dry"
    code = main(["push", str(select_out), "--repo-id", REPO, "--dry-run", "--to", str(dry),
                 "--license", "cc-by-nc-4.0", "--language", "en", "-q"])
    assert code == 0
    files = _files(dry)
    assert sorted(files) == ["README.md", "baselines/mixed/train-00000-of-00001.parquet",
                             "baselines/random/train-00000-of-00001.parquet",
                             "data/train-00000-of-00001.parquet", "selection.json", "uniformity.png"]
    assert "data/train-00000-of-00001.parquet" in capsys.readouterr().out

    # the card: metadata parsed by huggingface_hub
    card = DatasetCard.load(dry / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-nc-4.0" and meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"] and meta["task_categories"] == ["text-generation"]
    assert {"uniform-subset", "data-selection"} <= set(meta["tags"])
    assert [c["config_name"] for c in meta["configs"]] == ["default", "random", "mixed"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert infos["default"]["splits"] == [{"name": "train", "num_bytes": infos["default"]["splits"][0]["num_bytes"],
                                           "num_examples": 24}]
    assert "source_datasets" not in meta  # a local file: no Hub source to name

    # the body: method, k of n, h and coverage of subset / random / full, plot, record, command, citation
    record = json.loads((select_out / "selection.json").read_text())
    body = card.text
    rep = record["report"]
    assert "k = 24 of n = 150" in body and "| Distance | cosine |" in body and "Word2VecEmbedder" in body
    for name, label in (("subset", "**uniform (this subset)**"), ("random", "random, same size"), ("full", "full pool")):
        row = f"| {label} | {rep[name]['k']} | {rep[name]['h']:.4g} | {rep[name]['coverage_radius']:.4g} |"
        assert row in body, row
    assert rep["subset"]["h"] > rep["random"]["h"]  # the subset this card describes is the more uniform one
    assert "](uniformity.png)" in body and "[`selection.json`](selection.json)" in body
    assert record["command"] in body and "ds.filter_uniform(k=24, metric=\"cosine\", seed=0, text_columns=" in body
    assert "arXiv:2506.24120" in body and hub.PAPER_TITLE in body
    assert "the other half added by greedy min-min" in body and "by greedy max-min; same size" not in body

    # load_dataset on the folder returns the subset, in greedy order; the baselines are configs
    ds = load_dataset(str(dry), split="train")
    subset = _jsonl(select_out / "subset.jsonl")
    assert len(ds) == 24 and ds["instruction"][:] == [r["instruction"] for r in subset]
    assert ds["uniform_rank"][:] == list(range(24))
    rnd = load_dataset(str(dry), "random", split="train")
    assert rnd["instruction"][:] == [r["instruction"] for r in _jsonl(select_out / "random.jsonl")]

    # the image and the record are the ones `select` wrote
    assert files["uniformity.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert files["uniformity.png"] == (select_out / "uniformity.png").read_bytes()
    assert files["selection.json"] == (select_out / "selection.json").read_bytes()


def test_license_language_and_tasks_inherited_from_a_save_to_disk_source(tmp_path):
    from datasets import Dataset, DatasetInfo

    src = tmp_path / "pool_saved"
    Dataset.from_dict({"instruction": ["a", "b", "c"]}, info=DatasetInfo(license="CC BY-SA 3.0")).save_to_disk(str(src))
    record = {"input": str(src), "k": 2, "n": 3, "metric": "cosine", "h": 0.5}
    card = hub.render_dataset_card(record, REPO, language="en", coverage_plot=None)
    assert card.data.license == "cc-by-sa-3.0"
    assert "`cc-by-sa-3.0`, inherited from the source's dataset_info.json" in card.text
    assert str(tmp_path) not in card.text.split("## Reproduce")[0]  # no local paths in the description
    assert "![" not in card.text  # no plot, no image
    # an explicit licence wins; an unknown one is not guessed
    assert hub.render_dataset_card(record, REPO, license="mit", coverage_plot=None).data.license == "mit"
    unknown = hub.render_dataset_card({**record, "input": str(tmp_path / "x.jsonl")}, REPO, coverage_plot=None)
    assert unknown.data.license is None and "not recorded for the source" in unknown.text
    # a file of a downloaded Hub dataset: its dataset card counts; a project README does not
    snap = tmp_path / "snapshot"
    snap.mkdir()
    (snap / "train.jsonl").write_text('{"instruction": "a"}\n')
    (snap / "README.md").write_text("---\nlicense: cc-by-nc-4.0\nlanguage: [en]\ntask_categories: [text-generation]\n"
                                    "---\n# Alpaca\n")
    card = hub.render_dataset_card({**record, "input": str(snap / "train.jsonl")}, REPO, coverage_plot=None)
    assert card.data.license == "cc-by-nc-4.0" and card.data.language == ["en"]
    (snap / "README.md").write_text("---\nlicense: mit\n---\n# my project\n")
    card = hub.render_dataset_card({**record, "input": str(snap / "train.jsonl")}, REPO, coverage_plot=None)
    assert card.data.license is None


def test_dataset_card_reads_every_selection_record_shape(select_out):
    from hf_uniform.records import SelectionRecord

    current = hub.render_dataset_card(select_out, REPO, license="mit", language="en")
    rec = SelectionRecord.from_json(select_out)
    assert str(hub.render_dataset_card(rec, REPO, license="mit", language="en")) == str(current)
    # the schema-less first version: versions at the top level; training's {"input", **Selection.to_dict()}
    old = {"input": "pool.jsonl", "k": 2, "n": 9, "metric": "euclidean", "h": 0.5, "seed": 3,
           "versions": {"numpy": "1.26.4"}, "timings": {"select_s": 0.1}}
    body = hub.render_dataset_card(old, REPO, license="mit", language="en", coverage_plot=None).text
    assert "| Versions | numpy 1.26.4 |" in body and "k = 2 of n = 9" in body
    assert "hf-uniform select pool.jsonl -k 2 -o out --metric euclidean --seed 3" in body
    trained = {"input": "pool.jsonl", "k": 2, "n": 9, "metric": "cosine", "h": 0.0, "indices": [4, 7],
               "duplicates_selected": True}
    assert "**Note:** h = 0" in hub.render_dataset_card(trained, REPO, license="mit", language="en",
                                                        coverage_plot=None).text
    assert "**Note:** h = 0" not in body
    with pytest.raises(UniformError, match="the selection record lacks n"):
        hub.render_dataset_card({"k": 2, "metric": "cosine"}, REPO)


# -- the real upload path, against the local fake Hub ---------------------------------------------------


def _run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("hf-uniform")
    cmd = [exe] if exe else [sys.executable, "-m", "hf_uniform.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_cli_push_commits_exactly_the_dry_run_folder(select_out, tmp_path):
    from huggingface_hub import DatasetCard

    out = _copy_out(select_out, tmp_path / "out", input="acme/instructions")  # a selection of a Hub dataset
    source_card = {"license": "cc-by-sa-3.0", "language": ["en"], "task_categories": ["question-answering"]}
    with FakeHub(TOKEN, {"acme/instructions": source_card}) as server:
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
               "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(tmp_path / "hf_home")}
        common = ["push", str(out), "--repo-id", REPO, "--private"]
        dry = _run_cli([*common, "--dry-run", "--to", str(tmp_path / "dry")], env, tmp_path)
        assert dry.returncode == 0, dry.stderr
        assert not server.commits and not any(r.method in ("PUT", "POST") for r in server.requests)
        res = _run_cli(common, env, tmp_path)
        assert res.returncode == 0, res.stderr
    assert f"pushed 6 files to {server.url}/datasets/{REPO}" in res.stdout

    requests = _hub_requests(server)
    create = [r for r in requests if r.path == "/api/repos/create"]
    assert len(create) == 1 and json.loads(create[0].body) == {"name": "pool-uniform", "organization": "alice",
                                                              "type": "dataset", "visibility": "private"}
    paths = [f"{r.method} {r.path}" for r in requests]
    assert paths.index("POST /api/repos/create") < paths.index(f"POST /api/datasets/{REPO}/commit/main")
    assert f"POST /api/datasets/{REPO}/preupload/main" in paths
    assert f"POST /datasets/{REPO}.git/info/lfs/objects/batch" in paths
    for r in requests:  # the token travels only as the Authorization header of Hub API calls
        if r.path.startswith("/api/repos") or "/commit/" in r.path or "/preupload/" in r.path:
            assert r.headers["authorization"] == f"Bearer {TOKEN}"
        assert TOKEN.encode() not in r.body

    # one commit, holding exactly the dry-run folder, byte for byte; binaries went through LFS
    (commit,) = server.commits
    dry_files = _files(tmp_path / "dry")
    assert commit.added == dry_files and commit.deleted == []
    assert commit.lfs == {p for p in dry_files if p.endswith((".parquet", ".png"))}
    assert commit.summary == "Upload uniform subset (k=24 of n=150, cosine) with hf-uniform"
    assert set(server.files("dataset", REPO)) == {".gitattributes", *dry_files}

    # the card inherited the source's licence, language and task from its card on the Hub
    card = DatasetCard(commit.added["README.md"].decode())
    assert card.data.license == "cc-by-sa-3.0" and card.data.language == ["en"]
    assert card.data.source_datasets == ["acme/instructions"]
    assert card.data.task_categories == ["question-answering"]
    assert "inherited from the card of acme/instructions" in card.text
    assert "[acme/instructions](https://huggingface.co/datasets/acme/instructions)" in card.text

    _assert_no_token(dry.stdout, dry.stderr, res.stdout, res.stderr, roots=(tmp_path,),
                     blobs=tuple(commit.added.values()))


def test_repush_replaces_stale_shards_in_one_commit(select_out, tmp_path, fake_hub, caplog, capsys):
    caplog.set_level("DEBUG")
    stale = {"data/train-00000-of-00002.parquet": b"old", "data/train-00001-of-00002.parquet": b"old",
             "notes.md": b"kept"}
    fake_hub.add_repo("dataset", REPO, stale)
    result = hub.push_subset(select_out, REPO, selection=select_out / "selection.json", license="mit",
                             language="en", commit_message="refresh", revision="v1")
    assert result.url == f"{fake_hub.url}/datasets/{REPO}" and result.commit_url.startswith(result.url + "/commit/")
    (commit,) = fake_hub.commits
    assert commit.summary == "refresh" and commit.revision == "v1"
    assert sorted(commit.deleted) == ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    now = fake_hub.files("dataset", REPO, "v1")  # the branch was created from main, then updated
    assert now["notes.md"] == b"kept" and ".gitattributes" in now
    assert sorted(p for p in now if p.startswith("data/")) == ["data/train-00000-of-00001.parquet"]
    assert sorted(now) == sorted([".gitattributes", "notes.md", *result.files])
    assert fake_hub.files("dataset", REPO, "main") == {".gitattributes": fake_hub.files("dataset", REPO)[".gitattributes"],
                                                       **stale}  # main is untouched
    assert 'load_dataset("alice/pool-uniform", split="train", revision="v1")' in now["README.md"].decode()
    create = [r for r in fake_hub.requests if r.path == "/api/repos/create"]
    assert "visibility" not in json.loads(create[0].body)  # private=None: the Hub's default
    captured = capsys.readouterr()
    _assert_no_token(caplog.text, captured.out, captured.err, roots=(tmp_path,), blobs=tuple(commit.added.values()))


def _fake_checkpoint(root: Path) -> Path:
    ckpt = root / "sft-out"
    (ckpt / "checkpoint-10").mkdir(parents=True)
    (ckpt / "runs").mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    (ckpt / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    (ckpt / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 8 + np.random.default_rng(0).bytes(4096))
    (ckpt / "training_args.bin").write_bytes(b"pickle..." + TOKEN.encode())  # Trainer pickles hub_token here
    (ckpt / "checkpoint-10" / "optimizer.pt").write_bytes(b"\x00state")
    (ckpt / "runs" / "events.out").write_bytes(b"\x00tb")
    return ckpt


def test_push_checkpoint_with_model_card(select_out, tmp_path, fake_hub, caplog, capsys):
    from huggingface_hub import ModelCard

    caplog.set_level("DEBUG")
    ckpt = _fake_checkpoint(tmp_path)
    ttt = tmp_path / "time_to_threshold.json"
    ttt.write_text(json.dumps({"metric": "train loss", "thresholds": {"0.65": {"step": 120, "seconds": 95.2},
                                                                      "0.5": {"step": None, "seconds": None}}}))
    evals = {"results": {"arc_challenge": {"alias": "arc_challenge", "acc,none": 0.28125, "acc_stderr,none": 0.0401,
                                           "acc_norm,none": 0.3125, "acc_norm_stderr,none": 0.041}},
             "n-shot": {"arc_challenge": 0}, "config": {"limit": 64}}
    config = {"regime": "l2-sgd", "learning_rate": 1e-4, "per_device_train_batch_size": 8, "hub_token": TOKEN,
              "pad_token": "<pad>", "command": "python recipes/sft.py --regime l2-sgd --data alice/pool-uniform"}
    kwargs = dict(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", selection=select_out / "selection.json",
                  subset_repo=REPO, training_config=config, time_to_threshold=ttt, eval_results=evals,
                  license="apache-2.0")
    dry = hub.push_checkpoint(ckpt, "alice/smollm2-uniform-sft", dry_run_to=tmp_path / "dry", **kwargs)
    assert dry.dry_run and not fake_hub.requests  # a dry run sends nothing
    result = hub.push_checkpoint(ckpt, "alice/smollm2-uniform-sft", **kwargs)

    (commit,) = fake_hub.commits
    expected = [".eval_results/arc_challenge.yaml", "README.md", "config.json", "eval_results.json",
                "generation_config.json", "model.safetensors", "selection.json", "time_to_threshold.json",
                "tokenizer.json", "training_config.json"]
    assert sorted(commit.added) == expected == result.files == dry.files
    assert commit.added == _files(tmp_path / "dry")  # the dry run is exactly what was pushed
    assert commit.added["model.safetensors"] == (ckpt / "model.safetensors").read_bytes()
    assert commit.lfs == {"model.safetensors"} and commit.repo_type == "model"
    assert json.loads(commit.added["training_config.json"]) == {  # hub_token dropped, pad_token kept
        "regime": "l2-sgd", "learning_rate": 1e-4, "per_device_train_batch_size": 8, "pad_token": "<pad>",
        "command": config["command"]}
    assert json.loads(commit.added["selection.json"])["indices"] == json.loads(
        (select_out / "selection.json").read_text())["indices"]

    card = ModelCard(commit.added["README.md"].decode())
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.datasets == [REPO]
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    assert {"uniform-subset", "l2-sgd"} <= set(card.data.tags)
    body = card.text
    record = json.loads((select_out / "selection.json").read_text())
    assert f"[{REPO}](https://huggingface.co/datasets/{REPO})" in body
    assert f"| **uniform (this subset)** | 24 | {record['report']['subset']['h']:.4g} |" in body
    assert "**ℓ2-SGD: plain SGD on the squared-error (ℓ2) loss between the logits" in body and "| `learning_rate` | 0.0001 |" in body
    assert "| 0.65 | 120 | 95.2 s |" in body and "| 0.5 | not reached | – |" in body and "train loss" in body
    assert "| arc_challenge | 0 | acc | 0.2812 | 0.0401 | – |" in body
    assert "| arc_challenge | 0 | acc_norm | 0.3125 | 0.041 | – |" in body and "at most 64 examples per task" in body
    # the same scores as model-index metadata, naming the benchmark's Hub dataset (from the shipped task YAML)
    meta = card.data.to_dict()
    assert "eval_results" not in meta and meta["model-index"][0]["name"] == "smollm2-uniform-sft"
    (result,) = meta["model-index"][0]["results"]
    assert result["task"] == {"type": "text-generation"}
    assert result["dataset"] == {"name": "arc_challenge", "type": "allenai/ai2_arc", "config": "ARC-Challenge",
                                 "split": "test", "args": {"num_few_shot": 0, "limit": 64}}
    assert result["metrics"] == [{"type": "acc", "value": 0.28125}, {"type": "acc_norm", "value": 0.3125}]
    assert config["command"] in body and record["command"] in body
    assert "hub_token" not in body
    # and in huggingface_hub 1.x's .eval_results format, read back with its own parser
    import yaml
    from huggingface_hub import parse_eval_result_entries

    entries = parse_eval_result_entries(yaml.safe_load(commit.added[".eval_results/arc_challenge.yaml"]))
    assert [(e.dataset_id, e.task_id, e.value) for e in entries] == [
        ("allenai/ai2_arc", "ARC-Challenge", 0.28125), ("allenai/ai2_arc", "ARC-Challenge", 0.3125)]
    assert all("limit=64" in e.notes and "0-shot" in e.notes for e in entries)

    captured = capsys.readouterr()
    _assert_no_token(caplog.text, captured.out, captured.err, roots=(tmp_path / "dry",),
                     blobs=tuple(commit.added.values()))


def test_model_card_reads_other_record_layouts():
    card = hub.render_model_card(
        "alice/m", base_model="/local/path/model", training_config={"regime": "adamw-ce", "lr": 2e-5},
        time_to_threshold=[{"threshold": 0.8, "step": 10, "seconds": 3600.0}],
        eval_results={"truthfulqa_mc2": {"acc": 0.41}})
    assert card.data.base_model is None  # a local path is not a Hub id
    assert "`/local/path/model`" in card.text and "AdamW-CE: AdamW on the token-level cross-entropy" in card.text
    assert "| 0.8 | 10 | 60.0 min |" in card.text and "| truthfulqa_mc2 | – | acc | 0.41 | – | – |" in card.text
    (result,) = card.data.eval_results  # model-index: TruthfulQA's Hub dataset, no shots recorded
    assert (result.dataset_type, result.dataset_config, result.dataset_split) == (
        "truthfulqa/truthful_qa", "multiple_choice", "validation")
    assert (result.metric_type, result.metric_value, result.dataset_args) == ("acc", 0.41, None)
    # the results.json of recipes/eval.py (hf_uniform.evaluation.evaluate_checkpoint)
    evals = {"model": "ckpt", "lm_eval": {"scores": {"arc_challenge": {"acc": 0.25, "acc_stderr": 0.16}},
                                          "n_shot": {"arc_challenge": 25}, "n_samples": {"arc_challenge": 8},
                                          "limit": 8},
             "heldout": {"loss": 2.5, "perplexity": 12.18, "tokens": 100, "examples": 4}}
    text = hub.render_model_card("alice/m", eval_results=evals).text
    assert "| arc_challenge | 25 | acc | 0.25 | 0.16 | 8 |" in text and "at most 8 examples per task" in text
    assert "| held-out split | – | response-token loss (nats) | 2.5 | – | 4 examples, 100 tokens |" in text
    # the held-out loss has no Hub dataset to name: table only; a task we do not ship keeps its own name
    card = hub.render_model_card("alice/m", eval_results={**evals, "lm_eval": {"scores": {"hellaswag": {"acc": 0.3}}}})
    assert [(r.dataset_type, r.dataset_config, r.metric_value) for r in card.data.eval_results] == [
        ("hellaswag", None, 0.3)]
    assert hub.render_model_card("alice/m", eval_results={"heldout": {"loss": 2.5}}).data.eval_results is None


# -- bad input: a clear one-line error, and nothing sent ------------------------------------------------


def test_bad_input_is_refused_before_any_request(select_out, tmp_path, fake_hub, capsys):
    no_subset = tmp_path / "no_subset"
    no_subset.mkdir()
    shutil.copy(select_out / "selection.json", no_subset)
    no_selection = tmp_path / "no_selection"
    no_selection.mkdir()
    shutil.copy(select_out / "subset.jsonl", no_selection)
    wrong_k = _copy_out(select_out, tmp_path / "wrong_k", k=25)
    crafted = _copy_out(select_out, tmp_path / "crafted", files={"subset": "../pool.jsonl"})
    linked = _copy_out(select_out, tmp_path / "linked")
    (linked / "uniformity.png").unlink(missing_ok=True)
    (linked / "uniformity.png").symlink_to(select_out.parent / "pool.jsonl")
    corrupt = _copy_out(select_out, tmp_path / "corrupt", metric="bogus")
    short = _copy_out(select_out, tmp_path / "short")
    lines = (short / "subset.jsonl").read_text().splitlines(keepends=True)
    (short / "subset.jsonl").write_text("".join(lines[:-1]))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    templates = {"syntax": "---\n{{ card_data }}\n---\n{% if %}", "undefined": "---\n{{ card_data }}\n---\n{{ nope }}",
                 "no_yaml": "# {{ pretty_name }}\n"}
    for name, text in templates.items():
        (tmp_path / f"{name}.md").write_text(text)
    out = str(select_out)
    cases = [
        (["push", out, "--repo-id", "no-namespace"], "invalid repo id 'no-namespace': use USER/NAME"),
        (["push", out, "--repo-id", "a/b/c"], "invalid repo id 'a/b/c'"),
        (["push", out, "--repo-id", "alice/bad name"], "invalid repo id 'alice/bad name'"),
        (["push", out, "--repo-id", "alice/x--y"], "invalid repo id 'alice/x--y' (Cannot have -- or .."),
        (["push", str(no_subset), "--repo-id", REPO], "has no subset.jsonl"),
        (["push", str(no_selection), "--repo-id", REPO], "has no selection.json"),
        (["push", str(tmp_path / "missing"), "--repo-id", REPO], "is not a folder"),
        (["push", str(wrong_k), "--repo-id", REPO], "'indices' must be a list of k=25 row numbers (it has 24)"),
        (["push", str(short), "--repo-id", REPO], "the subset has 23 rows but the selection record says k=24"),
        (["push", str(crafted), "--repo-id", REPO], "files.subset '../pool.jsonl' is not a file name inside"),
        (["push", str(linked), "--repo-id", REPO], "outside the selection folder"),
        (["push", str(corrupt), "--repo-id", REPO], "'metric' must be 'cosine' or 'euclidean', got 'bogus'"),
        (["push", out, "--repo-id", REPO, "--template", str(tmp_path / "syntax.md")], "failed to render"),
        (["push", out, "--repo-id", REPO, "--template", str(tmp_path / "undefined.md")], "'nope' is undefined"),
        (["push", out, "--repo-id", REPO, "--template", str(tmp_path / "no_yaml.md")], "lost the metadata"),
        (["push", out, "--repo-id", REPO, "--template", str(tmp_path / "absent.md")], "does not exist"),
        (["push", out, "--repo-id", REPO, "--dry-run"], "--dry-run needs --to DIR"),
        (["push", out, "--repo-id", REPO, "--to", str(tmp_path / "d")], "--to is only used with --dry-run"),
        (["push", out, "--repo-id", REPO, "--dry-run", "--to", str(tmp_path / "full")], "is not empty"),
    ]
    for argv, message in cases:
        assert main([*argv, "-q"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("hf-uniform: error: ") and message in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err
    ckpt = _fake_checkpoint(tmp_path)
    (tmp_path / "empty_ckpt").mkdir()
    with pytest.raises(FileNotFoundError, match="has no model files"):
        hub.push_checkpoint(tmp_path / "empty_ckpt", "alice/m")
    with pytest.raises(UniformError, match="invalid repo id"):
        hub.push_checkpoint(ckpt, "alice")
    with pytest.raises(UniformError, match="invalid repo id 'alice/x.git'") as info:
        hub.validate_repo_id("alice/x.git")  # huggingface_hub's validator decides, and is kept as the cause
    assert type(info.value.__cause__).__name__ == "HFValidationError"
    with pytest.raises(UniformError, match="failed to render"):
        hub.push_checkpoint(ckpt, "alice/m", template=tmp_path / "undefined.md")
    with pytest.raises(FileNotFoundError, match="time to threshold file .*nope.json does not exist"):
        hub.push_checkpoint(ckpt, "alice/m", time_to_threshold=tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="card template .*absent.md does not exist"):
        hub.render_dataset_card(select_out, REPO, template=tmp_path / "absent.md")
    with pytest.raises(UniformError, match="contains a Hugging Face token"):
        (ckpt / "notes.txt").write_text(f"login with {TOKEN}")
        hub.push_checkpoint(ckpt, "alice/m")
    assert _hub_requests(fake_hub) == [] and not fake_hub.repos  # nothing was created or uploaded
    assert not (tmp_path / "d").exists() and sorted(p.name for p in (tmp_path / "full").iterdir()) == ["x"]


def test_interrupted_dry_run_leaves_no_folder(select_out, tmp_path, monkeypatch):
    from hf_uniform.hub import push as push_module

    ckpt = _fake_checkpoint(tmp_path)
    copied, copyfile = [], shutil.copyfile

    def copy_then_fail(src, dst):
        if copied:
            raise KeyboardInterrupt
        copied.append(copyfile(src, dst))

    monkeypatch.setattr(push_module.shutil, "copyfile", copy_then_fail)
    with pytest.raises(KeyboardInterrupt):
        hub.push_checkpoint(ckpt, "alice/m", dry_run_to=tmp_path / "dry")
    assert copied and sorted(p.name for p in tmp_path.iterdir()) == ["sft-out"]  # no dry/, no temporary folder
    # a subset whose card fails after the parquet files were written: nothing either
    (tmp_path / "bad.md").write_text("---\n{{ card_data }}\n---\n{{ nope }}")
    with pytest.raises(UniformError, match="'nope' is undefined"):
        hub.stage_subset(select_out, REPO, tmp_path / "repo", template=tmp_path / "bad.md", license="mit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.md", "sft-out"]


def test_unreachable_hub_is_one_line_exit_2(select_out, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(select_out), "--repo-id", REPO, "--license", "mit", "--language", "en", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hf-uniform: error: push to {REPO} failed: ") and err.count("\n") == 1
    assert "Traceback" not in err and TOKEN not in err


def test_model_card_reads_the_time_to_threshold_file_of_the_training_callback(tmp_path):
    callbacks = pytest.importorskip("hf_uniform.train.callbacks", reason="needs transformers ([train] extra)")
    from transformers import TrainerControl, TrainerState, TrainingArguments

    # the clock reads the time of the step being logged, however often the callback asks for it
    seconds_at_step = {0: 0.0, 60: 30.0, 120: 95.2, 300: 400.0}
    state = TrainerState()
    cb = callbacks.TimeToThresholdCallback(thresholds=(0.65, 0.34),
                                           clock=lambda: seconds_at_step[state.global_step])
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    cb.on_train_begin(args, state, TrainerControl())
    for step, loss in [(60, 0.9), (120, 0.6), (300, 0.5)]:
        state.global_step = step
        cb.on_log(args, state, TrainerControl(), logs={"loss": loss})
    path = cb.write(tmp_path, state)
    (tmp_path / "config.json").write_text("{}")
    res = hub.push_checkpoint(tmp_path, "alice/m", dry_run_to=tmp_path / "dry")  # picks up the file by default
    assert "time_to_threshold.json" in res.files
    body = (tmp_path / "dry" / "README.md").read_text()
    assert "| 0.65 | 120 | 95.2 s |" in body and "| 0.34 | not reached | – |" in body
    assert "until the training loss first reached" in body and "the run took 300 steps" in body
    assert json.loads((tmp_path / "dry" / "time_to_threshold.json").read_text()) == json.loads(path.read_text())
