"""hf_uniform.convert: WizardLM `conversations` rows to Alpaca rows, offline, on a made-up file of that shape."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("datasets")

from conftest import ROOT  # noqa: E402

from hf_uniform.convert import conversation_pair, conversations_to_alpaca, convert_wizardlm  # noqa: E402

main = runpy.run_path(str(ROOT / "recipes" / "convert_wizardlm.py"))["main"]
from hf_uniform.errors import UniformError  # noqa: E402


def turn(role, text):
    return {"from": role, "value": text}


# The shapes met in WizardLM_evol_instruct_V2_196k, plus the broken ones a converter must survive.
ROWS = [
    {"idx": "w0", "conversations": [turn("human", "Explain tides."), turn("gpt", "The moon pulls water.")]},
    {"idx": "w1", "conversations": [turn("human", "  Name a prime. "), turn("gpt", "7\n")]},
    {"idx": "w2", "conversations": [turn("human", "First?"), turn("gpt", "One."), turn("human", "Next?"),
                                    turn("gpt", "Two.")]},
    {"idx": "w3", "conversations": [turn("system", "Be brief."), turn("human", "Hi"), turn("gpt", "Hello")]},
    {"idx": "w4", "conversations": [turn("gpt", "I start."), turn("human", "Odd.")]},
    {"idx": "w5", "conversations": [turn("human", "Only a question")]},
    {"idx": "w6", "conversations": [turn("human", "Empty answer"), turn("gpt", "   ")]},
    {"idx": "w7", "conversations": [{"role": "user", "content": "Chat layout?"},
                                    {"role": "assistant", "content": "Also fine."}]},
]
# (idx, instruction, output) a careful hand conversion gives: first human turn -> its gpt answer, stripped
EXPECTED_FIRST = [("w0", "Explain tides.", "The moon pulls water."), ("w1", "Name a prime.", "7"),
                  ("w2", "First?", "One."), ("w3", "Hi", "Hello"), ("w7", "Chat layout?", "Also fine.")]


@pytest.fixture
def wizard_file(tmp_path):
    path = tmp_path / "WizardLM_evol_instruct_V2_sample.json"
    path.write_text(json.dumps(ROWS))  # the Hub file is one JSON array
    return path


def test_conversation_pairs():
    assert conversation_pair(ROWS[2]["conversations"], "skip") is None
    assert conversation_pair(ROWS[2]["conversations"], "first") == ("First?", "One.")
    assert conversation_pair([]) is None
    with pytest.raises(UniformError, match="multi_turn"):
        conversation_pair(ROWS[0]["conversations"], "all")
    with pytest.raises(UniformError, match="'from' and 'value'"):
        conversation_pair([{"speaker": "human", "text": "x"}])


def test_conversion_keeps_other_columns_and_drops_unusable_rows(wizard_file):
    from hf_uniform.io import load_input

    ds = load_input(wizard_file)
    out = conversations_to_alpaca(ds)
    assert out.column_names == ["idx", "instruction", "input", "output"]
    assert [(r["idx"], r["instruction"], r["output"]) for r in out] == EXPECTED_FIRST
    assert set(out["input"][:]) == {""}
    skip = conversations_to_alpaca(ds, multi_turn="skip")
    assert [r["idx"] for r in skip] == ["w0", "w1", "w3", "w7"]
    with pytest.raises(UniformError, match="no 'messages' column"):
        conversations_to_alpaca(ds, column="messages")
    with pytest.raises(UniformError, match="none of the 2"):
        conversations_to_alpaca(ds.select([4, 5]))


def test_convert_shuffles_with_the_seed_and_takes_n(wizard_file, tmp_path):
    out = tmp_path / "wizard_4.jsonl"
    rec = convert_wizardlm(str(wizard_file), out, n=4, seed=3)
    assert (rec["rows_in"], rec["rows_converted"], rec["rows_out"]) == (8, 5, 4)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    order = np.random.default_rng(3).permutation(5)[:4]  # numpy's permutation of the converted rows
    assert [(r["idx"], r["instruction"], r["output"]) for r in rows] == [EXPECTED_FIRST[i] for i in order]
    assert all(set(r) == {"idx", "instruction", "input", "output"} for r in rows)
    # the same seed gives the same file; the first rows of a longer draw are the same rows (first_k is stable)
    again = convert_wizardlm(str(wizard_file), tmp_path / "again.jsonl", n=4, seed=3)
    assert (tmp_path / "again.jsonl").read_text() == out.read_text() and again["rows_out"] == 4
    convert_wizardlm(str(wizard_file), tmp_path / "all.jsonl", n=None, seed=3)
    assert (tmp_path / "all.jsonl").read_text().splitlines()[:4] == out.read_text().splitlines()
    # the converted file trains as Alpaca data
    from hf_uniform.train.data import load_training_data

    data = load_training_data(str(out), uniform_k=2, subset_method="first_k", measure_h=False)
    assert data.provenance["prompt_format"] == "alpaca"
    assert data.train["completion"][:] == [r["output"] for r in rows[:2]]
    with pytest.raises(UniformError, match="exists"):
        convert_wizardlm(str(wizard_file), out, n=4)
    with pytest.raises(UniformError, match="only 5 of 8 rows convert"):
        convert_wizardlm(str(wizard_file), tmp_path / "big.jsonl", n=6)


@pytest.mark.slow
def test_cli_and_recipe_script(wizard_file, tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    assert main([str(wizard_file), "-o", str(out), "--n", "3", "--seed", "1"]) == 0
    assert "wrote 3 rows (5 of 8 converted)" in capsys.readouterr().out
    assert main([str(wizard_file), "-o", str(out), "--n", "3"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([str(wizard_file), "-o", str(tmp_path / "x.json")]) == 2
    script = tmp_path / "script.jsonl"
    proc = subprocess.run([sys.executable, "recipes/convert_wizardlm.py", str(wizard_file), "-o", str(script),
                           "--n", "3", "--seed", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert script.read_text() == out.read_text()
