"""Prompt formats, response-only labels, subsets and their provenance."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

from datasets import Dataset  # noqa: E402

from hf_uniform.errors import UniformError  # noqa: E402
from hf_uniform.train.data import (  # noqa: E402
    ALPACA_PROMPT_INPUT,
    ALPACA_PROMPT_NO_INPUT,
    detect_prompt_format,
    format_alpaca,
    load_training_data,
    prepare_sft_dataset,
    write_provenance,
)

# Typed out from Llama-X's src/train.py (PROMPT_DICT), independently of the module under test.
LLAMA_X_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                 "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
                 "{instruction}\n\n### Input:\n{input}\n\n### Response:")
LLAMA_X_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately "
                    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:")


def test_alpaca_prompt_is_the_llama_x_text():
    assert ALPACA_PROMPT_INPUT == LLAMA_X_INPUT
    assert ALPACA_PROMPT_NO_INPUT == LLAMA_X_NO_INPUT
    assert format_alpaca("Sum {a}.", "1 and 2") == LLAMA_X_INPUT.replace("{instruction}", "Sum {a}.").replace(
        "{input}", "1 and 2")  # braces in the data survive (format_map, not a second format)
    assert format_alpaca("Name a colour.", "") == LLAMA_X_NO_INPUT.replace("{instruction}", "Name a colour.")
    assert format_alpaca("Name a colour.", None) == format_alpaca("Name a colour.")


def test_prepare_alpaca_with_and_without_input_column():
    ds = Dataset.from_dict({"instruction": ["A", "B"], "input": ["x", ""], "output": ["1", "2"], "id": [0, 1]})
    out = prepare_sft_dataset(ds)
    assert out.column_names == ["prompt", "completion"]
    assert out["prompt"][:] == [format_alpaca("A", "x"), format_alpaca("B")]
    assert out["completion"][:] == ["1", "2"]
    no_input = prepare_sft_dataset(Dataset.from_dict({"instruction": ["A"], "output": ["1"]}), "alpaca")
    assert no_input["prompt"][:] == [format_alpaca("A")]


def test_prepare_chat_splits_the_last_assistant_turn():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
            {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"},
            {"role": "assistant", "content": "a2"}]
    out = prepare_sft_dataset(Dataset.from_dict({"messages": [msgs]}))
    assert out[0]["prompt"] == msgs[:-1]
    assert out[0]["completion"] == [{"role": "assistant", "content": "a2"}]
    with pytest.raises(UniformError, match="assistant"):
        prepare_sft_dataset(Dataset.from_dict({"messages": [msgs[:2]]}))


def test_prompt_format_errors():
    with pytest.raises(UniformError, match="columns"):
        detect_prompt_format(["question", "answer"])
    with pytest.raises(UniformError, match="prompt_format"):
        prepare_sft_dataset(Dataset.from_dict({"a": [1]}), "vicuna")
    with pytest.raises(UniformError, match="instruction and output"):
        prepare_sft_dataset(Dataset.from_dict({"messages": [[{"role": "user", "content": "x"}]]}), "alpaca")
    assert prepare_sft_dataset(Dataset.from_dict({"prompt": ["p"], "completion": ["c"], "z": [1]})).column_names \
        == ["prompt", "completion"]


@pytest.fixture(scope="module")
def tiny(tiny_llama):
    """The session's tiny LLaMA (tests/conftest.py) and its tokenizer."""
    from transformers import AutoTokenizer

    return tiny_llama, AutoTokenizer.from_pretrained(tiny_llama)


def expected_labels(tok, prompt_ids, full_ids):
    """Response-only labels: -100 on the common prefix of prompt and prompt+completion, ids after it."""
    n = 0
    while n < min(len(prompt_ids), len(full_ids)) and prompt_ids[n] == full_ids[n]:
        n += 1
    return [-100] * n + full_ids[n:]


def make_trainer(path, tok, ds, tmp_path):
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig

    from hf_uniform.train import UniformSFTTrainer

    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, max_length=256, report_to=[],
                     dataset_num_proc=1, shuffle_dataset=False)
    return UniformSFTTrainer(model=AutoModelForCausalLM.from_pretrained(path), args=args, train_dataset=ds,
                             processing_class=tok)


def test_alpaca_labels_cover_the_response_and_eos_only(tiny, tmp_path):
    path, tok = tiny
    rows = {"instruction": ["Add 3 and 4.", "Add 10 and 11."], "input": ["", "quickly"],
            "output": ["The sum is 7.", "The sum is 21."]}
    trainer = make_trainer(path, tok, prepare_sft_dataset(Dataset.from_dict(rows)), tmp_path)
    for i, row in enumerate(trainer.train_dataset):
        prompt = format_alpaca(rows["instruction"][i], rows["input"][i])
        prompt_ids = tok(prompt)["input_ids"]
        full_ids = tok(prompt + rows["output"][i] + tok.eos_token)["input_ids"]
        assert row["input_ids"] == full_ids
        assert row["labels"] == expected_labels(tok, prompt_ids, full_ids)
        trained = [t for t in row["labels"] if t != -100]
        assert trained[-1] == tok.eos_token_id
        assert tok.decode(trained[:-1]).strip().endswith(rows["output"][i])
        assert len(trained) < len(full_ids) / 2  # the long prompt carries no loss


def test_chat_labels_cover_the_last_assistant_turn_only(tiny, tmp_path):
    path, tok = tiny
    msgs = [{"role": "user", "content": "Add 3 and 4."}, {"role": "assistant", "content": "7"},
            {"role": "user", "content": "And 5 and 6?"}, {"role": "assistant", "content": "The sum is 11."}]
    trainer = make_trainer(path, tok, prepare_sft_dataset(Dataset.from_dict({"messages": [msgs]})), tmp_path)
    row = trainer.train_dataset[0]
    prompt_ids = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=True, return_dict=True)
    full_ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
    assert row["labels"] == expected_labels(tok, prompt_ids["input_ids"], full_ids)
    trained = tok.decode([t for t in row["labels"] if t != -100])
    assert trained.startswith("The sum is 11.<|im_end|>") and "7" not in trained


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    topics = ["apple pie recipe", "prime numbers", "french grammar", "python lists", "ocean tides",
              "tax forms", "guitar chords", "mars rovers"]
    rows = [{"instruction": f"Explain {t} number {i}.", "input": "" if i % 2 else f"detail {i}",
             "output": f"{t} answer {i}"} for i in range(5) for t in topics]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_uniform_k_selects_like_filter_uniform_and_records_provenance(pool_file, tmp_path, monkeypatch):
    import hf_uniform
    from hf_uniform.io import load_input

    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    data = load_training_data(str(pool_file), uniform_k=6, seed=3)
    sub = hf_uniform.filter_uniform(load_input(pool_file), 6, seed=3, progress=False)
    sel = hf_uniform.select_uniform(load_input(pool_file), 6, seed=3, progress=False)
    assert data.train["prompt"][:] == [format_alpaca(r["instruction"], r["input"]) for r in sub]
    prov = data.provenance
    assert (prov["subset"], prov["k"], prov["n"]) == ("uniform", 6, 40)
    assert prov["h"] == pytest.approx(sel.h) and prov["coverage_radius"] == pytest.approx(sel.coverage_radius)
    assert prov["embedder"]["embedder"] == "Word2VecEmbedder"
    assert data.selection["indices"] == sel.indices.tolist()
    p = write_provenance(tmp_path / "out", data, {"regime": {"optimizer": "l2_sgd"}})
    written = json.loads(p.read_text())
    assert written["data"]["k"] == 6 and written["regime"]["optimizer"] == "l2_sgd"
    assert json.loads((tmp_path / "out" / "selection.json").read_text())["indices"] == sel.indices.tolist()


def test_random_subset_and_full_set(pool_file, tmp_path, monkeypatch):
    import numpy as np

    from hf_uniform.baselines import random_subset
    from hf_uniform.metrics import min_pairwise_distance

    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    rnd = load_training_data(str(pool_file), uniform_k=0.25, subset_method="random", seed=1)
    idx = random_subset(40, 10, seed=1)
    assert rnd.provenance["indices"] == idx.tolist() and len(rnd.train) == 10
    assert rnd.selection is None
    # h of the random rows, measured in the same (cached) embedding as the uniform selection's
    from hf_uniform.integration import embed
    from hf_uniform.io import load_input

    x = embed(load_input(pool_file), "w2v", progress=False)
    assert rnd.provenance["h"] == pytest.approx(min_pairwise_distance(x[np.asarray(idx)]))
    full = load_training_data(str(pool_file))
    assert len(full.train) == 40 and full.provenance["subset"] == "full" and full.provenance["h"] is None


def pool_rows(pool_file):
    return [json.loads(line) for line in pool_file.read_text().splitlines()]


def test_eval_rows_are_held_out_before_selection(pool_file, tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    rows = pool_rows(pool_file)
    held = sorted(np.random.default_rng(0).permutation(40)[:8].tolist())  # the rule of `select --heldout`
    expected_eval = [rows[i]["output"] for i in held]
    arms = {m: load_training_data(str(pool_file), uniform_k=5, subset_method=m, eval_size=8, seed=0,
                                  measure_h=False) for m in ("uniform", "random", "mixed", "first_k")}
    for m, d in arms.items():  # every arm is scored on the same rows, none of which it trains on
        assert d.eval["completion"][:] == expected_eval, m
        assert not set(d.train["completion"][:]) & set(expected_eval), m
        assert d.provenance["n"] == 32 and len(d.train) == 5
    # the rest keeps the pool order: first_k is the first 5 rows of the pool that are not held out
    rest = [r["output"] for i, r in enumerate(rows) if i not in held]
    assert arms["first_k"].train["completion"][:] == rest[:5]
    with pytest.raises(UniformError, match="eval_size"):
        load_training_data(str(pool_file), eval_size=40)


def test_mixed_and_first_k_are_the_papers_baselines(pool_file, tmp_path, monkeypatch):
    import numpy as np

    from hf_uniform.baselines import mixed_subset
    from hf_uniform.integration import embed
    from hf_uniform.io import load_input
    from hf_uniform.metrics import coverage_radius, min_pairwise_distance

    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    rows = pool_rows(pool_file)
    first = load_training_data(str(pool_file), uniform_k=6, subset_method="first_k", seed=5, measure_h=False)
    assert first.train["completion"][:] == [r["output"] for r in rows[:6]]
    assert (first.provenance["subset"], first.provenance["indices"], first.provenance["h"]) == (
        "first_k", list(range(6)), None)
    mixed = load_training_data(str(pool_file), uniform_k=8, subset_method="mixed", seed=2)
    x = embed(load_input(pool_file), "w2v", progress=False)
    idx = mixed_subset(x, 8, seed=2)
    assert mixed.provenance["indices"] == idx.tolist() and len(set(idx.tolist())) == 8
    assert mixed.train["completion"][:] == [rows[i]["output"] for i in idx]
    assert mixed.provenance["h"] == pytest.approx(min_pairwise_distance(x[np.asarray(idx)]))
    assert mixed.provenance["coverage_radius"] == pytest.approx(coverage_radius(x[np.asarray(idx)], x))
    uni = load_training_data(str(pool_file), uniform_k=8, seed=2)
    # the half chosen to minimise distances packs the rows: h far below the uniform subset's
    assert mixed.provenance["h"] < uni.provenance["h"]


def make_select_folder(pool_file, out, k=6, heldout=(0, 1, 2, 3)):
    """An `hf-uniform select --heldout` folder, by hand: heldout.jsonl, subset.jsonl, random.jsonl."""
    rows = pool_rows(pool_file)
    out.mkdir(parents=True)
    rest = [i for i in range(len(rows)) if i not in heldout]
    sub, rnd = rest[::3][:k], rest[1::3][:k]
    for name, idx in (("heldout", heldout), ("subset", sub), ("random", rnd)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(rows[i]) + "\n" for i in idx))
    (out / "selection.json").write_text(json.dumps({
        "input": str(pool_file), "n": len(rest), "k": k, "h": 0.5, "coverage_radius": 0.9, "seed": 0,
        "indices": sub, "subset_file": "subset.jsonl", "embedder": {"embedder": "Word2VecEmbedder"},
        "files": {"subset": "subset.jsonl", "random": "random.jsonl", "heldout": "heldout.jsonl"},
        "report": {"random": {"h": 0.2, "coverage_radius": 1.0}}}))
    return [rows[i]["output"] for i in heldout], [rows[i]["output"] for i in sub], [rows[i]["output"] for i in rnd]


def test_select_folder_with_heldout_evaluates_every_arm_on_it(pool_file, tmp_path):
    out = tmp_path / "sel"
    held, sub, rnd = make_select_folder(pool_file, out)
    for source, expected in ((out, sub), (out / "subset.jsonl", sub), (out / "random.jsonl", rnd)):
        data = load_training_data(str(source))
        assert data.train["completion"][:] == expected  # all k rows train: nothing split off the subset
        assert data.eval["completion"][:] == held
        assert data.provenance["eval_dataset"] == str(out / "heldout.jsonl")
        assert data.provenance["eval_rows"] == 4 and data.provenance["train_rows"] == 6
    with pytest.raises(UniformError, match=r"drop eval_size: its heldout.jsonl is the evaluation set") as err:
        load_training_data(str(out), eval_size=2)
    assert "\n" not in str(err.value)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"instruction": "q", "output": "elsewhere"}) + "\n")
    assert load_training_data(str(out), eval_dataset_name=str(other)).eval["completion"][:] == ["elsewhere"]


def test_select_folder_without_heldout_refuses_eval_size(pool_file, tmp_path):
    out = tmp_path / "sel"
    make_select_folder(pool_file, out)
    (out / "heldout.jsonl").unlink()
    assert load_training_data(str(out)).eval is None
    with pytest.raises(UniformError, match=r"hf-uniform select \.\.\. --heldout N"):
        load_training_data(str(out / "random.jsonl"), eval_size=0.25)


def test_hf_uniform_select_folder_is_used_with_its_selection_json(pool_file, tmp_path, monkeypatch):
    from hf_uniform.cli import main as cli

    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sel"
    assert cli(["select", str(pool_file), "-k", "7", "-o", str(out), "-q", "--baselines"]) == 0
    record = json.loads((out / "selection.json").read_text())
    subset_rows = [json.loads(line) for line in (out / "subset.jsonl").read_text().splitlines()]
    for source in (out, out / "subset.jsonl"):
        data = load_training_data(str(source))
        assert data.train["completion"][:] == [r["output"] for r in subset_rows]
        prov = data.provenance
        assert prov["source"] == "hf-uniform select" and prov["subset"] == "uniform"
        assert prov["k"] == 7 and prov["h"] == pytest.approx(record["h"])
        assert prov["embedder"] == record["embedder"]
        assert data.selection == record
    rnd = load_training_data(str(out / "random.jsonl"))
    assert rnd.provenance["subset"] == "random" and rnd.selection is None
    assert rnd.provenance["h"] == pytest.approx(record["report"]["random"]["h"])
    dst = tmp_path / "run"
    write_provenance(dst, load_training_data(str(out)))
    assert json.loads((dst / "selection.json").read_text()) == record
    with pytest.raises(UniformError, match="already a selection"):
        load_training_data(str(out), uniform_k=3)


def test_missing_dataset_is_a_one_line_error(tmp_path):
    with pytest.raises(UniformError, match="does not exist"):
        load_training_data(str(tmp_path / "nope.jsonl"))
    with pytest.raises(UniformError, match="no dataset"):
        load_training_data("")
    with pytest.raises(UniformError, match="subset_method"):
        load_training_data("x.jsonl", subset_method="kmeans")


def test_real_select_heldout_folder(pool_file, tmp_path, monkeypatch):
    """`hf-uniform select --heldout 8 --baselines`: every arm trains on all k rows, none held out, and is
    scored on the same heldout.jsonl."""
    from hf_uniform.cli import main as cli

    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sel"
    assert cli(["select", str(pool_file), "-k", "7", "-o", str(out), "-q", "--baselines", "--heldout", "8"]) == 0
    held = [json.loads(line)["output"] for line in (out / "heldout.jsonl").read_text().splitlines()]
    assert len(held) == 8
    for source in (out, out / "random.jsonl", out / "mixed.jsonl"):
        data = load_training_data(str(source))
        assert len(data.train) == 7 and data.eval["completion"][:] == held
        assert not set(data.train["completion"][:]) & set(held)
    with pytest.raises(UniformError, match="held-out rows of the selection"):
        load_training_data(str(out / "heldout.jsonl"))

