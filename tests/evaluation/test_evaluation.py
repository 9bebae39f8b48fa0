"""hf-uniform eval (hf_uniform.scripts.eval, recipes/eval.py) and hf_uniform.evaluation: lm-eval on the local ARC/TruthfulQA files, held-out loss."""

from __future__ import annotations

import doctest
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_uniform.errors import UniformError
from hf_uniform.evaluation import (
    convert_truthfulqa_mc,
    local_task_overrides,
    parse_tasks,
    prepare_tasks,
    tokenize_prompt_response,
)

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               HF_UNIFORM_LOG_LEVEL="WARNING", OMP_NUM_THREADS="2")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def tiny_model(tiny_llama):
    """The session's tiny random LLaMA (tests/conftest.py)."""
    return tiny_llama


def test_parse_tasks_defaults_and_overrides():
    assert [(t.name, t.num_fewshot) for t in parse_tasks(None)] == [
        ("arc_challenge", 25), ("truthfulqa_mc1", 0), ("truthfulqa_mc2", 0)]
    assert [(t.name, t.num_fewshot) for t in parse_tasks("arc_challenge:5, hellaswag")] == [
        ("arc_challenge", 5), ("hellaswag", None)]
    for bad in ("", "arc_challenge:x", "arc_challenge:-1", "arc_challenge,arc_challenge", ":3"):
        with pytest.raises(UniformError):
            parse_tasks(bad)


def test_truthfulqa_conversion_matches_hub_layout(shared_data, tmp_path):
    src = shared_data("eval/truthfulqa/mc_task.json")
    raw = json.loads(src.read_text(encoding="utf-8"))
    out = convert_truthfulqa_mc(src, tmp_path / "tqa.jsonl")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(raw) == 817
    for src_row, row in zip(raw, rows, strict=True):
        assert row["question"] == src_row["question"]
        for key in ("mc1_targets", "mc2_targets"):
            assert sorted(row[key]["choices"]) == sorted(src_row[key])
            assert dict(zip(row[key]["choices"], row[key]["labels"], strict=True)) == src_row[key]
        assert row["mc1_targets"]["labels"][0] == 1 and sum(row["mc1_targets"]["labels"]) == 1
    bad = tmp_path / "bad.json"
    bad.write_text('[{"question": "q", "mc1_targets": {}}]')
    with pytest.raises(UniformError, match="mc1_targets"):
        convert_truthfulqa_mc(bad, tmp_path / "x.jsonl")


def test_local_overrides_and_missing_files(shared_data, tmp_path):
    data_dir = shared_data("eval")
    arc = local_task_overrides("arc_challenge", data_dir, tmp_path)
    assert arc["dataset_path"] == "json" and arc["fewshot_split"] == "train"
    assert Path(arc["dataset_kwargs"]["data_files"]["test"]).name == "ARC-Challenge-Test.jsonl"
    paths, builtin = prepare_tasks(parse_tasks(None), tmp_path, data_dir=data_dir)
    assert not builtin and sorted(paths) == ["arc_challenge", "truthfulqa_mc1", "truthfulqa_mc2"]
    assert "num_fewshot: 25" in Path(paths["arc_challenge"]).read_text()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UniformError, match="ARC-Challenge"):
        local_task_overrides("arc_challenge", tmp_path / "empty", tmp_path)
    with pytest.raises(UniformError, match="TruthfulQA"):
        local_task_overrides("truthfulqa_mc2", tmp_path / "empty", tmp_path)
    with pytest.raises(UniformError, match="no local layout"):
        local_task_overrides("hellaswag", tmp_path / "empty", tmp_path)


def test_heldout_loss_equals_masked_cross_entropy(tiny_model):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_uniform.evaluation import format_pairs, heldout_loss

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    ds = Dataset.from_dict({"instruction": ["Name a colour.", "Add 2 and 3."], "input": ["", ""],
                            "output": ["Red is a colour.", "5"]})
    pairs = format_pairs(ds)
    ids, labels = tokenize_prompt_response(tok, *pairs[0])
    prompt_len = len(tok(pairs[0][0])["input_ids"])
    assert labels[:prompt_len] == [-100] * prompt_len and labels[prompt_len:] == ids[prompt_len:]
    assert ids[-1] == tok.eos_token_id
    res = heldout_loss(model, tok, pairs, batch_size=2)
    # reference: the model's own loss per example, weighted by its number of response tokens
    total, count = 0.0, 0
    for p, r in pairs:
        i, lab = tokenize_prompt_response(tok, p, r)
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([i]), labels=torch.tensor([lab])).loss.item()
        n = sum(1 for x in lab[1:] if x != -100)
        total, count = total + loss * n, count + n
    assert res.tokens == count
    assert res.loss == pytest.approx(total / count, rel=1e-5)
    assert 0.5 * math.log(len(tok)) < res.loss < 1.5 * math.log(len(tok))  # a random model: about ln(vocab)
    with pytest.raises(UniformError):
        heldout_loss(model, tok, [])


@pytest.mark.slow
def test_eval_recipe_end_to_end(tiny_model, shared_data, tmp_path, capsys):
    data_dir = shared_data("eval")
    heldout = tmp_path / "heldout.jsonl"
    pool = shared_data("instruct/alpaca_9k.jsonl")
    heldout.write_text("".join(line for _, line in zip(range(12), pool.open(encoding="utf-8"), strict=False)))
    out = tmp_path / "eval"
    from hf_uniform.cli import main

    code = main(["eval", "--model", str(tiny_model), "--output_dir", str(out), "--data_dir", str(data_dir),
                 "--limit", "8", "--batch_size", "8", "--device", "cpu", "--heldout", str(heldout),
                 "--heldout_max_length", "256", "--num_threads", "2"])
    stdout = capsys.readouterr().out
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    scores = result["lm_eval"]["scores"]
    assert set(scores) == {"arc_challenge", "truthfulqa_mc1", "truthfulqa_mc2"}
    assert set(scores["arc_challenge"]) >= {"acc", "acc_norm", "acc_stderr", "acc_norm_stderr"}
    assert set(scores["truthfulqa_mc1"]) >= {"acc"} and set(scores["truthfulqa_mc2"]) >= {"acc"}
    for task, metrics in scores.items():
        for name in ("acc", "acc_norm"):
            if name in metrics:
                assert 0.0 <= metrics[name] <= 1.0, (task, name, metrics[name])
    assert result["lm_eval"]["n_samples"] == {"arc_challenge": 8, "truthfulqa_mc1": 8, "truthfulqa_mc2": 8}
    assert result["lm_eval"]["n_shot"] == {"arc_challenge": 25, "truthfulqa_mc1": 0, "truthfulqa_mc2": 0}
    ho = result["heldout"]
    assert ho["examples"] == 8 and ho["rows_in_split"] == 12  # --limit bounds the held-out loss too
    assert ho["tokens"] > 50 and math.isfinite(ho["loss"]) and ho["loss"] > 0
    summary = (out / "summary.md").read_text()
    assert summary.startswith("| task | shots | metric | value | stderr | n |")
    assert "| arc_challenge | 25 | acc_norm |" in summary and "held-out split" in summary
    assert "arc_challenge" in stdout  # the table is printed too


def test_eval_recipe_main_heldout_only_matches_heldout_loss(tiny_model, shared_data, tmp_path, capsys):
    """hf_uniform.scripts.eval.main in-process, held-out loss only: the number is heldout_loss on the same pairs."""
    from datasets import Dataset

    from hf_uniform.evaluation import EvalArguments, format_pairs, heldout_loss, load_model
    from hf_uniform.scripts import eval as eval_script

    rows = [json.loads(line) for _, line in zip(range(6), shared_data("instruct/alpaca_9k.jsonl").open(
        encoding="utf-8"), strict=False)]
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = EvalArguments(model=str(tiny_model), output_dir=str(tmp_path / "eval"), heldout=str(heldout),
                         skip_lm_eval=True, heldout_limit=4, heldout_max_length=128, no_progress=True)
    result = eval_script.main(args)
    model, tok = load_model(tiny_model)
    ref = heldout_loss(model, tok, format_pairs(Dataset.from_list(rows[:4])), max_length=128)
    assert result["heldout"]["loss"] == pytest.approx(ref.loss, rel=1e-6)
    assert (result["heldout"]["examples"], result["heldout"]["rows_in_split"]) == (4, 6)
    assert json.loads((tmp_path / "eval" / "results.json").read_text()) == json.loads(json.dumps(result))
    assert "lm_eval" not in result and "held-out split" in capsys.readouterr().out
    with pytest.raises(UniformError, match="nothing to evaluate"):
        eval_script.main(EvalArguments(model=str(tiny_model), skip_lm_eval=True))


@pytest.mark.slow
def test_eval_recipe_bad_input_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "recipes" / "eval.py"), "--model", str(tmp_path / "none")],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.startswith("eval: error:")]
    assert len(err) == 1 and "not found" in err[0]


def test_shipped_mc2_utils_docstring():
    import importlib.util

    from hf_uniform.evaluation import shipped_tasks_dir

    spec = importlib.util.spec_from_file_location("hfu_eval_utils", shipped_tasks_dir() / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert doctest.testmod(module).failed == 0
    doc = {"mc2_targets": {"choices": ["a", "b", "c"], "labels": [1, 1, 0]}}
    got = module.process_results_mc2(doc, [(math.log(0.2), False), (math.log(0.2), False), (math.log(0.6), True)])
    assert got["acc"] == pytest.approx(0.4)


def test_hub_mode_yamls_read_the_hub_and_keep_the_paper_settings(tmp_path):
    from lm_eval.tasks._yaml_loader import load_yaml

    paths, builtin = prepare_tasks(parse_tasks("arc_challenge:25,truthfulqa_mc1:0,truthfulqa_mc2:0"), tmp_path)
    assert not builtin
    arc = load_yaml(paths["arc_challenge"])
    assert (arc["dataset_path"], arc["dataset_name"], arc["num_fewshot"]) == ("allenai/ai2_arc", "ARC-Challenge", 25)
    assert [m["metric"] for m in arc["metric_list"]] == ["acc", "acc_norm"]
    mc2 = load_yaml(paths["truthfulqa_mc2"])
    assert mc2["dataset_path"] == "truthfulqa/truthful_qa" and mc2["num_fewshot"] == 0
    assert callable(mc2["process_results"]) and mc2["doc_to_choice"] == "{{mc2_targets.choices}}"
    ten = load_yaml(prepare_tasks(parse_tasks("arc_challenge:10"), tmp_path / "b")[0]["arc_challenge"])
    assert ten["num_fewshot"] == 10


def test_builtin_tasks_pass_through_or_get_their_shots(tmp_path):
    from lm_eval.tasks._yaml_loader import load_yaml

    paths, builtin = prepare_tasks(parse_tasks("arc_easy:3,hellaswag"), tmp_path)
    assert builtin and paths["hellaswag"] == "hellaswag"  # lm-eval's own task, its own defaults
    cfg = load_yaml(paths["arc_easy"])
    assert (cfg["task"], cfg["num_fewshot"], cfg["dataset_name"]) == ("hfu_arc_easy", 3, "ARC-Easy")
    with pytest.raises(UniformError, match="unknown lm-eval task"):
        prepare_tasks(parse_tasks("no_such_task_xyz:1"), tmp_path / "b")


def test_zero_shot_arc_needs_no_training_file(shared_data, tmp_path):
    data = tmp_path / "data" / "arc_challenge"
    data.mkdir(parents=True)
    test_file = shared_data("eval/arc_challenge/ARC-Challenge-Test.jsonl")
    (data / "ARC-Challenge-Test.jsonl").write_text(test_file.read_text(encoding="utf-8"))
    paths, _ = prepare_tasks(parse_tasks("arc_challenge:0"), tmp_path / "w", data_dir=tmp_path / "data")
    assert "fewshot_split: null" in Path(paths["arc_challenge"]).read_text()
    with pytest.raises(UniformError, match="few-shot"):
        prepare_tasks(parse_tasks("arc_challenge:25"), tmp_path / "w2", data_dir=tmp_path / "data")


@pytest.mark.parametrize("script", ["sft", "eval", "compare"])
def test_script_help_exits_0_with_config_and_no_flags(script, capsys):
    from hf_uniform.cli import main

    assert main([script, "--help"]) == 0
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert out.startswith(f"usage: hf-uniform {script}") and "error" not in captured.err
    assert "--config FILE.yaml YAML file whose keys set the defaults" in out
    if script == "compare":
        assert "--no_progress hides" in out and "show progress bars" not in out
        assert "--no_progress, --no-progress set progress to false (the same as --progress false)" in out
        assert out.count("progress bars are on by default") == 1  # --no_progress no longer repeats it


def test_hf_uniform_eval_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from hf_uniform.cli import main

    assert main(["eval", "--model", str(tmp_path / "none")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and err[0].startswith("hf-uniform eval: error:") and "not found" in err[0]
    assert main(["eval", "--limit", "8"]) == 2 and "no model given" in capsys.readouterr().err
