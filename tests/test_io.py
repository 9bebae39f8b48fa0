"""Rows out are rows in: every written row equals its source row (json.loads equality, types and keys kept)
plus uniform_rank / uniform_min_distance on the subset, on real files and on made-up tricky ones."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hf_uniform.cli import main
from hf_uniform.io import read_source

EXTRA = ("uniform_rank", "uniform_min_distance")

TRICKY = [
    {"instruction": "add 1 and 2", "output": "3", "score": 1, "weight": 1.0},
    {"instruction": "name a colour", "output": "red", "tags": ["a", "b"], "meta": {"src": "x", "n": None}},
    {"instruction": "big number", "output": "ok", "id": 12345678901234567890, "score": 2.5},
    {"output": "no instruction key in this row", "instruction": "ünïcödé ✓ 漢字", "extra": None},
    {"instruction": "sort numbers", "input": "3 1 2", "output": "1 2 3", "flag": True, "weight": 0.1},
    {"instruction": "quote \"this\"", "output": "line\nbreak\ttab", "score": -0.0},
    {"instruction": "empty input", "input": "", "output": "fine", "score": 1e-300},
    {"instruction": "last row", "output": "end", "nested": [[1, 2], {"k": [None]}]},
]


def _jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _check_same(out_rows: list[dict], src_rows: list[dict], indices: list[int], with_extra: bool) -> None:
    assert len(out_rows) == len(indices)
    for j, (row, i) in enumerate(zip(out_rows, indices, strict=True)):
        if with_extra:
            assert row["uniform_rank"] == j
            row = {k: v for k, v in row.items() if k not in EXTRA}
        assert row == src_rows[i], (i, row, src_rows[i])
        assert list(row) == list(src_rows[i])  # key order kept, no key added
        for key, value in row.items():  # 1 stays 1, 1.0 stays 1.0
            assert type(value) is type(src_rows[i][key]), (i, key)


def test_tricky_jsonl_rows_come_back_unchanged(tmp_path):
    src = tmp_path / "tricky.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in TRICKY), encoding="utf-8")
    out = tmp_path / "o"
    assert main(["select", str(src), "-k", "5", "-o", str(out), "-q", "--baselines", "--no-plot"]) == 0
    record = json.loads((out / "selection.json").read_text())
    _check_same(_jsonl_rows(out / "subset.jsonl"), TRICKY, record["indices"], with_extra=True)
    for name in ("random", "mixed"):
        rows = _jsonl_rows(out / f"{name}.jsonl")
        assert len(rows) == 5
        for row in rows:  # baselines: the source rows exactly, nothing added
            assert row in TRICKY and not set(EXTRA) & set(row)
    first = _jsonl_rows(out / "subset.jsonl")[0]
    assert first["uniform_min_distance"] is None and list(first)[-2:] == list(EXTRA)


def test_csv_fields_stay_text_and_empty_fields_stay_empty(tmp_path):
    src = tmp_path / "t.csv"
    rows = [["instruction", "input", "output", "n"], ["add 1 and 2", "", "3", "1"],
            ["name a colour", "", "red", ""], ["multi\nline, quoted", "x", "y", "1.0"], ["sort", "3 1", "1 3", "007"]]
    with open(src, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    expect = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    out = tmp_path / "o"
    assert main(["select", str(src), "-k", "3", "-o", str(out), "-q", "--no-plot"]) == 0
    record = json.loads((out / "selection.json").read_text())
    with open(out / "subset.csv", newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert [r["uniform_rank"] for r in got] == ["0", "1", "2"]
    _check_same([{k: v for k, v in r.items() if k not in EXTRA} for r in got], expect, record["indices"], False)
    # JSON Lines output of CSV input: the fields as written in the file (text), "" stays ""
    out2 = tmp_path / "o2"
    assert main(["select", str(src), "-k", "3", "-o", str(out2), "-q", "--no-plot", "--format", "jsonl"]) == 0
    _check_same(_jsonl_rows(out2 / "subset.jsonl"), expect, record["indices"], with_extra=True)


def test_parquet_schema_is_kept(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"instruction": [f"task number {i} about {w}" for i, w in enumerate("abcdefgh")],
                      "output": [f"answer {i}" for i in range(8)], "n": pa.array(range(8), pa.int16()),
                      "score": pa.array([0.5 * i for i in range(8)], pa.float32())})
    src = tmp_path / "t.parquet"
    pq.write_table(table, src)
    out = tmp_path / "o"
    assert main(["select", str(src), "-k", "4", "-o", str(out), "-q", "--no-plot"]) == 0
    got = pq.read_table(out / "subset.parquet")
    assert got.schema.field("n").type == pa.int16() and got.schema.field("score").type == pa.float32()
    record = json.loads((out / "selection.json").read_text())
    assert got.drop_columns(list(EXTRA)).to_pylist() == table.take(record["indices"]).to_pylist()


@pytest.mark.parametrize("name", ["instruct/dolly_3k.jsonl", "instruct/evol_instruct_1k_chat.jsonl",
                                  "instruct/code_alpaca_2k.jsonl", "instruct/alpaca_9k.jsonl"])
def test_real_files_written_rows_equal_source_rows(name, shared_data, tmp_path):
    path = shared_data(name)
    src_rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    source = read_source(path)
    assert source.rows == src_rows and source.n == len(src_rows)
    idx = np.random.default_rng(0).choice(len(src_rows), size=min(500, len(src_rows)), replace=False).tolist()
    out = source.write_rows(idx, tmp_path / "s.jsonl", extra={"uniform_rank": list(range(len(idx))),
                                                              "uniform_min_distance": [None] * len(idx)})
    _check_same(_jsonl_rows(out), src_rows, idx, with_extra=True)
    assert source.write_rows(idx[:50], tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines() == \
        [json.dumps(src_rows[i], ensure_ascii=False) for i in idx[:50]]
