"""Every instruction-data layout is detected and rendered in full; selection.json says what was embedded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_uniform import TextRenderer, UniformError
from hf_uniform.cli import main

TOPICS = ["add two numbers", "name a colour", "write a haiku about rain", "translate hello to French",
          "sort a list of integers", "explain photosynthesis", "list three prime numbers", "summarise a story"]
ANSWERS = ["3", "red", "drops on the pond", "bonjour", "use sorted()", "plants turn light into sugar",
           "2, 3, 5", "a hero returns home"]

# layout name -> (row builder, expected rendered text of row 0, columns recorded in selection.json)
SHAPES = {
    "alpaca": (lambda q, a: {"instruction": q, "input": "", "output": a},
               "add two numbers\n3", ["instruction", "input", "output"]),
    "instruction": (lambda q, a: {"instruction": q, "input": "ctx", "response": a},
                    "add two numbers\nctx\n3", ["instruction", "input", "response"]),
    "prompt/response": (lambda q, a: {"prompt": q, "response": a}, "add two numbers\n3", ["prompt", "response"]),
    "prompt/completion": (lambda q, a: {"prompt": q, "completion": a}, "add two numbers\n3",
                          ["prompt", "completion"]),
    "question/answer": (lambda q, a: {"id": 7, "question": q, "answer": a}, "add two numbers\n3",
                        ["question", "answer"]),
    "messages": (lambda q, a: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                 "user: add two numbers\nassistant: 3", ["messages"]),
    "conversations": (lambda q, a: {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]},
                      "human: add two numbers\ngpt: 3", ["conversations"]),
    "history": (lambda q, a: {"instruction": q, "output": a, "history": [["hi there", "hello"], ["how are you", "fine"]]},
                "hi there\nhello\nhow are you\nfine\nadd two numbers\n3", ["history", "instruction", "output"]),
    "text": (lambda q, a: {"text": f"{q} {a}", "meta": 1}, "add two numbers 3", ["text"]),
}


def _rows(shape: str) -> list[dict]:
    build = SHAPES[shape][0]
    return [build(q, a) for q, a in zip(TOPICS, ANSWERS, strict=True)]


def _batch(rows: list[dict]) -> dict[str, list]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: [r.get(k) for r in rows] for k in keys}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_renderer_detects_and_renders_each_shape(shape):
    rows = _rows(shape)
    r = TextRenderer()
    texts = r(_batch(rows))
    assert texts[0] == SHAPES[shape][1]
    assert len(set(texts)) == len(rows)  # nothing collapses to the same string (the ShareGPT h = 0 bug)
    info = r.describe(list(_batch(rows)))
    assert info["columns"] == SHAPES[shape][2]
    assert info["layout"] == shape


def test_conversations_with_role_content_and_content_parts():
    row = {"conversations": [{"role": "user", "content": [{"type": "text", "text": "look"}]},
                             {"role": "assistant", "content": "seen"}]}
    assert TextRenderer()(_batch([row])) == ["user: look\nassistant: seen"]


@pytest.mark.parametrize("shape", ["instruction", "conversations", "history", "question/answer"])
def test_cli_embeds_every_field_and_records_the_columns(shape, tmp_path):
    src = tmp_path / "data.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows(shape)), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["select", str(src), "-k", "3", "-o", str(out), "-q", "--no-plot"]) == 0
    record = json.loads((out / "selection.json").read_text())
    assert record["embedded"]["layout"] == shape
    assert record["embedded"]["columns"] == SHAPES[shape][2]
    assert record["embedded"]["template"] is None and record["embedder"]["embedder"] == "Word2VecEmbedder"
    assert record["h"] > 0


def test_unknown_layout_fails_in_one_line_naming_columns_and_options(tmp_path, capsys):
    src = tmp_path / "odd.jsonl"
    src.write_text("".join(json.dumps({"foo": t, "bar": a}) + "\n" for t, a in zip(TOPICS, ANSWERS, strict=True)))
    assert main(["select", str(src), "-k", "2", "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "['foo', 'bar']" in err and "--text-columns" in err and "--template" in err
    assert not (tmp_path / "o").exists()
    # the same data with a template works, and the template is recorded
    assert main(["select", str(src), "-k", "2", "-o", str(tmp_path / "t"), "-q", "--no-plot",
                 "--template", "{foo} => {bar}"]) == 0
    record = json.loads((tmp_path / "t" / "selection.json").read_text())
    assert record["embedded"]["template"] == "{foo} => {bar}" and record["embedded"]["columns"] == ["foo", "bar"]


def test_empty_texts_are_counted_and_refused_unless_drop_empty(tmp_path, capsys):
    rows = _rows("alpaca")
    rows[2] = {"instruction": "", "input": "", "output": ""}
    rows[5] = {"instruction": "  ", "input": None, "output": "\n"}
    src = tmp_path / "e.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["select", str(src), "-k", "3", "-o", str(tmp_path / "a"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "2 of 8 rows have empty text" in err and "[2, 5]" in err and "--drop-empty" in err
    assert main(["select", str(src), "-k", "3", "-o", str(tmp_path / "b"), "-q", "--no-plot", "--drop-empty"]) == 0
    record = json.loads((tmp_path / "b" / "selection.json").read_text())
    assert record["n"] == 6 and not {2, 5} & set(record["indices"])
    assert record["engine"]["dropped_empty_rows"] == [2, 5]
    # the subset rows are the source rows at the recorded indices
    sub = [json.loads(line) for line in (tmp_path / "b" / "subset.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if not k.startswith("uniform_")} for r in sub] == \
        [rows[i] for i in record["indices"]]
    with pytest.raises(UniformError, match="empty text"):
        from datasets import Dataset

        Dataset.from_list(rows).filter_uniform(k=2, progress=False)


def _write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_pretty_printed_columnar_json_list_json_and_bom_are_read(tmp_path):
    from hf_uniform.io import read_source

    cols = {"instruction": TOPICS[:4], "output": ANSWERS[:4]}
    expect = [{"instruction": q, "output": a} for q, a in zip(TOPICS[:4], ANSWERS[:4], strict=True)]
    assert read_source(_write(tmp_path / "c.json", json.dumps(cols, indent=2))).rows == expect
    assert read_source(_write(tmp_path / "l.json", json.dumps(expect, indent=4))).rows == expect
    assert read_source(_write(tmp_path / "w.json", json.dumps({"data": expect}, indent=1))).rows == expect
    lines = "".join(json.dumps(r) + "\n" for r in expect)
    assert read_source(_write(tmp_path / "b.jsonl", lines, bom=True)).rows == expect
    assert read_source(_write(tmp_path / "b.csv", "instruction,output\nadd,3\n", bom=True)).rows == \
        [{"instruction": "add", "output": "3"}]
    out = tmp_path / "o"
    assert main(["select", str(tmp_path / "c.json"), "-k", "2", "-o", str(out), "-q", "--no-plot"]) == 0
    assert len((out / "subset.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_each_shape_read_from_a_made_up_file_renders_in_full(shape, suffix, tmp_path):
    from hf_uniform.io import read_source

    rows = _rows(shape)
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    src = read_source(path)
    assert src.rows == rows
    r = TextRenderer()
    info = r.describe(src.columns)
    assert info["layout"] == shape and info["columns"] == SHAPES[shape][2]
    ds = src.to_dataset(info["columns"])
    texts = [t for b in ds.iter(batch_size=3) for t in r(b)]
    assert texts[0] == SHAPES[shape][1] and len(set(texts)) == len(rows)
    assert r.empty_rows(ds) == []
