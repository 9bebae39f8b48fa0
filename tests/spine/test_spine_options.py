"""Every bad option is one UniformError line, the same from SelectConfig, select_uniform, filter_uniform and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset

from hf_uniform import SelectConfig, UniformError, select_uniform
from hf_uniform.cli import main

# option -> (Python value, CLI arguments or None when argparse's choices refuse it, text of the message)
BAD = {
    "tpu": ({"device": "tpu"}, ["--device", "tpu"], "unknown device 'tpu'"),
    "negative seed": ({"seed": -1}, ["--seed=-1"], "seed must be a whole number 0 or more, got -1"),
    "float seed": ({"seed": 1.5}, ["--seed", "1.5"], "seed must be a whole number"),
    "float start": ({"start": 2.7}, None, "start must be a row index (an int) or a list of them"),
    "text start": ({"start": "3"}, None, "start must be a row index (an int) or a list of them"),
    "negative start": ({"start": [-1]}, ["--start=-1"], "start rows must be 0 or more"),
    "repeated start": ({"start": [2, 2]}, ["--start", "2,2"], "start rows repeat a row"),
    "k 1.0": ({"k": 1.0}, ["-k", "1.0"], "k=1.0 is neither a whole number of rows nor a fraction"),
    "k 0": ({"k": 0}, ["-k", "0"], "k must be at least 1"),
    "k bool": ({"k": True}, None, "k must be an int or a fraction"),
    "metric": ({"metric": "manhattan"}, None, "unknown metric 'manhattan'"),
    "resume alone": ({"resume": True}, ["--resume"], "resume needs checkpoint"),
    "quotas alone": ({"quotas": {"a": 1}}, ["--quotas", "a=1"], "quotas needs group_by"),
    "negative radius": ({"radius": -1.0}, ["--radius=-1"], "radius must be a finite distance 0 or more"),
    "coreset start": ({"backend": "coreset", "start": 1}, ["--backend", "coreset", "--start", "1"],
                      "runs the composable core-set, which takes no start"),
    "both text options": ({"text_columns": "a", "template": "{a}"}, ["--text-columns", "a", "--template", "{a}"],
                          "pass either text_columns or template, not both"),
    "max memory": ({"max_memory": "lots"}, ["--max-memory", "lots"], "max_memory 'lots'"),
    "bad embedder": ({"embedder": "bogus"}, ["--embedder", "bogus"], "unknown embedder"),
}


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text.strip()
    return text


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_option_is_one_uniform_error_line_from_every_python_entry_point(name):
    options, _, needle = BAD[name]
    ds = Dataset.from_dict({"e": np.eye(5).tolist(), "text": [f"t{i}" for i in range(5)]})
    options = {"k": 2, **options}
    with pytest.raises(UniformError) as err:
        SelectConfig(**options)
    assert needle in _one_line(err.value)
    k = options.pop("k")
    with pytest.raises(UniformError) as err:
        select_uniform(ds, k, **options)
    assert needle in _one_line(err.value)
    with pytest.raises(UniformError) as err:
        ds.filter_uniform(k=k, progress=False, **options)
    assert needle in _one_line(err.value)
    with pytest.raises(UniformError) as err:
        ds.add_uniform_rank(k, progress=False, **options)
    assert needle in _one_line(err.value)


@pytest.mark.parametrize("name", sorted(n for n, v in BAD.items() if v[1] is not None))
def test_bad_option_exits_2_with_one_line_and_no_traceback(name, tmp_path, capsys):
    _, argv, needle = BAD[name]
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(6)))
    args = ["select", str(src), "-o", str(tmp_path / "o"), "-q", *argv]
    if "-k" not in argv:
        args += ["-k", "2"]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in captured.err, err
    assert needle.replace("k=1.0 is", "-k 1.0 is") in err or needle in err, err
    assert not (tmp_path / "o").exists()


def test_k_rule_is_the_same_for_recipes_and_the_cli():
    from hf_uniform.train.data import _k_value

    for bad in (1.0, "1.0", 4500.0):
        with pytest.raises(UniformError, match="neither a whole number of rows nor a fraction"):
            _k_value(bad)
    assert (_k_value("4500"), _k_value(4500), _k_value("0.5"), _k_value(0.5), _k_value("none")) == \
        (4500, 4500, 0.5, 0.5, None)


def test_unknown_option_and_missing_k_are_refused():
    ds = Dataset.from_dict({"e": np.eye(3).tolist()})
    with pytest.raises(UniformError, match=r"unknown selection option\(s\) \['return_selection'\]"):
        ds.filter_uniform(k=2, embedding_column="e", return_selection=True)
    with pytest.raises(UniformError, match="pass k"):
        select_uniform(ds, embedding_column="e")
    with pytest.raises(UniformError, match="exceeds the number of rows n=3"):
        select_uniform(ds, 4, embedding_column="e")
    with pytest.raises(UniformError, match=r"start rows \[3\] are out of range for n=3"):
        select_uniform(ds, 2, embedding_column="e", start=3)


def test_config_normalises_and_is_frozen():
    cfg = SelectConfig(k=3, start=[np.int64(2), 0], text_columns="a, b", device=None, dtype="float16")
    assert (cfg.start, cfg.text_columns, cfg.device, cfg.dtype) == ((2, 0), ("a", "b"), "auto", "float16")
    with pytest.raises(AttributeError):
        cfg.k = 4  # type: ignore[misc]
    assert cfg.replace(k=5).k == 5 and cfg.k == 3
    assert SelectConfig(k=2, ray_address="local").backend == "ray"


def test_cli_select_options_are_the_config_fields():
    import dataclasses

    from hf_uniform.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["select"]
    dests = {a.dest for a in sub._actions}
    exposed = {f.name for f in dataclasses.fields(SelectConfig) if f.metadata.get("flag", True)}
    assert exposed <= dests
    help_of = {a.dest: a.help for a in sub._actions}
    for f in dataclasses.fields(SelectConfig):
        if f.name in exposed and f.name != "cache":
            assert help_of[f.name] == f.metadata["help"]
    assert help_of["cache"] == "do not reuse or store embeddings"
