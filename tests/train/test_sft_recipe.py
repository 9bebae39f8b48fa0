"""hf-uniform sft (hf_uniform.scripts.sft, recipes/sft.py): argument parsing, the shipped configs, and end-to-end
runs under accelerate (CPU)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("trl")

from conftest import ROOT, shared_path  # noqa: E402

from hf_uniform.errors import UniformError  # noqa: E402
from hf_uniform.scripts import sft as sft_script  # noqa: E402
from hf_uniform.scripts.sft import regime_loss, regime_optimizer  # noqa: E402
from hf_uniform.train import L2SGD, parse_sft_args  # noqa: E402
from hf_uniform.train.sft import (  # noqa: E402
    check_deepspeed_optimizer,
    find_smollm2_gguf,
    resolve_model_source,
)

CONFIGS = ROOT / "recipes" / "configs"
CPU = ["--use_cpu", "--bf16", "false", "--fp16", "false"]


def recipe_main(*args):
    """hf_uniform.scripts.sft.main, run in this process (what the comparison study calls for every arm)."""
    return sft_script.main(*args)


# ---- arguments ------------------------------------------------------------------------------------------
def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_yaml_then_command_line(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"learning_rate": 0.5, "uniform_k": 100, "loss_thresholds": [2.0, 1.0],
                                           "output_dir": "x", "use_cpu": True, "bf16": False})
    sft, model, u = parse_sft_args(["--config", str(cfg), "--uniform_k", "0.1", "--model_name_or_path", "m"])
    assert sft.learning_rate == 0.5 and u.uniform_k == 0.1 and u.loss_thresholds == [2.0, 1.0]
    assert model.model_name_or_path == "m" and sft.optim.value == "adamw_torch_fused"
    assert u.resolved_loss(sft.optim) == "ce"
    _, _, u = parse_sft_args(["--config", str(cfg), "--loss_thresholds", "3", "0.5"])
    assert u.loss_thresholds == [3.0, 0.5]


def test_optim_l2_sgd_from_yaml_or_command_line(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"optim": "l2_sgd", "output_dir": "x", "use_cpu": True, "bf16": False,
                                           "learning_rate": 5.0})
    sft, _, u = parse_sft_args(["--config", str(cfg)])
    assert sft.optim == "l2_sgd" and u.resolved_loss(sft.optim) == "l2"
    # what the trainer is given: L2SGD with the run's rate, and the l2 loss
    assert regime_optimizer(sft, u) == (L2SGD, {"lr": 5.0, "momentum": 0.0, "weight_decay": 0.0})
    assert regime_loss(sft, u).variant == "logits"
    sft, _, u = parse_sft_args(["--config", str(cfg), "--optim", "adamw_torch"])  # the command line wins
    assert sft.optim.value == "adamw_torch" and u.resolved_loss(sft.optim) == "ce"
    assert regime_optimizer(sft, u) is None and regime_loss(sft, u) is None
    sft, _, u = parse_sft_args(["--output_dir", "x", *CPU, "--optim", "sgd"])
    assert sft.optim.value == "sgd" and regime_optimizer(sft, u) is None
    sft, _, u = parse_sft_args(["--output_dir", "x", *CPU, "--optim=l2_sgd", "--loss", "ce"])
    assert sft.optim == "l2_sgd" and u.resolved_loss(sft.optim) == "ce" and regime_loss(sft, u) is None
    assert regime_optimizer(sft, u)[0] is L2SGD
    assert sft.to_dict()["optim"] == "l2_sgd"  # run_info.json records the regime by its name
    # a trainer handed this config without L2SGD fails loudly instead of training with another optimizer
    from transformers import Trainer

    with pytest.raises(ValueError, match="unsupported optimizer: l2_sgd"):
        Trainer.get_optimizer_cls_and_kwargs(sft)
    with pytest.raises(UniformError, match="unknown recipe arguments.*custom_optimizer"):
        parse_sft_args(["--output_dir", "x", *CPU, "--custom_optimizer", "l2_sgd"])  # one way: --optim


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(UniformError, match="unknown recipe arguments.*uniform_kk"):
        parse_sft_args(["--output_dir", "x", *CPU, "--uniform_kk", "3"])
    for bad in ("2.5", "-3", "1.0"):  # the one k rule (selection.parse_k, as -k), refused while parsing
        with pytest.raises(UniformError, match=rf"k={float(bad)} is neither a whole number of rows nor a fraction"):
            parse_sft_args(["--output_dir", "x", *CPU, "--uniform_k", bad])
    with pytest.raises(UniformError, match="k must be at least 1, got 0"):
        parse_sft_args(["--output_dir", "x", *CPU, "--uniform_k", "0"])
    assert parse_sft_args(["--output_dir", "x", *CPU, "--uniform_k", "4500"])[2].uniform_k == 4500
    cfg = write_yaml(tmp_path / "c.yaml", {"output_dir": "x", "use_cpu": True, "bf16": False, "tiny_modle": True})
    with pytest.raises(UniformError, match="tiny_modle"):
        parse_sft_args(["--config", str(cfg)])
    cfg = write_yaml(tmp_path / "d.yaml", {"output_dir": "x", "use_cpu": True, "bf16": False,
                                           "prompt_format": "vicuna"})
    with pytest.raises(UniformError, match="prompt_format"):
        parse_sft_args(["--config", str(cfg)])


# ---- the shipped configs --------------------------------------------------------------------------------
def test_cpu_deepspeed_config_keeps_the_trainers_optimizer():
    """The ZeRO-3 CPU JSON (smoke runs) has no optimizer block; the paper's JSONs: tests/train/test_paper_configs.py."""
    sgd = json.loads((CONFIGS / "ds_zero3_offload_sgd.json").read_text())
    z = sgd["zero_optimization"]
    assert z["stage"] == 3 and z["offload_param"]["device"] == "cpu" and z["offload_optimizer"]["device"] == "cpu"
    assert "optimizer" not in sgd and sgd["zero_allow_untested_optimizer"] is True
    assert sgd["zero_force_ds_cpu_optimizer"] is False
    assert check_deepspeed_optimizer(dict(sgd), "l2_sgd") == []
    assert check_deepspeed_optimizer({"optimizer": {"type": "AdamW"}}, "none") == []  # AdamW regime: wanted
    bare = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}
    assert check_deepspeed_optimizer(bare, "l2_sgd") == ["zero_allow_untested_optimizer",
                                                         "zero_force_ds_cpu_optimizer"]
    assert bare["zero_allow_untested_optimizer"] is True and bare["zero_force_ds_cpu_optimizer"] is False


def test_accelerate_configs_point_at_existing_files():
    expect = {"accelerate_zero3_cpu.yaml": ("DEEPSPEED", "ds_zero3_offload_sgd.json"),
              "accelerate_single_gpu.yaml": ("NO", None)}
    for name, (kind, ds_file) in expect.items():
        cfg = yaml.safe_load((CONFIGS / name).read_text())
        assert cfg["distributed_type"] == kind
        if ds_file:
            assert cfg["deepspeed_config"]["deepspeed_config_file"] == f"recipes/configs/{ds_file}"
            assert (ROOT / cfg["deepspeed_config"]["deepspeed_config_file"]).exists()
            assert cfg["deepspeed_config"]["zero3_init_flag"] is True
    assert yaml.safe_load((CONFIGS / "accelerate_zero3_cpu.yaml").read_text())["num_processes"] == 1
    for name in ("smoke_cpu.yaml", "smollm2_cpu.yaml"):  # the paper's schedule and no clipping
        raw = yaml.safe_load((CONFIGS / name).read_text())
        assert raw["lr_scheduler_type"] == "constant" and raw["max_grad_norm"] == 0.0


def test_every_config_path_named_in_the_docs_exists():
    """README, the recipes' docstrings and usage lines, the configs' headers and the library's docstrings name
    only configs that exist (the NAME placeholder aside)."""
    import re

    texts = [ROOT / "README.md", *sorted((ROOT / "recipes").rglob("*.py")), *sorted(CONFIGS.rglob("*.yaml")),
             *sorted((ROOT / "hf_uniform").rglob("*.py"))]
    named = {m for p in texts for m in re.findall(r"recipes/configs/[\w./-]*\w", p.read_text(encoding="utf-8"))}
    named = {n for n in named if "NAME" not in n}
    assert {"recipes/configs/smoke_cpu.yaml", "recipes/configs/paper/llama7b_teamsrl9k_adamw.yaml"} <= named
    assert sorted(n for n in named if not (ROOT / n).exists()) == []
    sft_doc = (ROOT / "recipes" / "sft.py").read_text(encoding="utf-8")
    assert "recipes/configs/smoke_cpu.yaml" in sft_doc and "recipes/configs/paper/" in sft_doc


@pytest.mark.slow  # a fresh interpreter importing TRL: ~10 s idle, ~30 s on a busy machine
def test_sft_recipe_bad_input_exits_2_with_one_line(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_UNIFORM_LOG_LEVEL="WARNING")
    proc = subprocess.run([sys.executable, "recipes/sft.py", "--output_dir", str(tmp_path), *CPU,
                           "--dataset_name", str(tmp_path / "no_such_file.jsonl")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = [line for line in proc.stderr.splitlines() if line.startswith("sft: error:")]
    assert len(err) == 1 and "no_such_file.jsonl" in err[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run_info.json").exists()


def test_hf_uniform_sft_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from hf_uniform.cli import main

    args = ["--output_dir", str(tmp_path), *CPU, "--dataset_name", str(tmp_path / "no_such_file.jsonl")]
    assert main(["sft", *args]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and err[0].startswith("hf-uniform sft: error:") and "no_such_file.jsonl" in err[0]
    assert sft_script.cli([*args, "--no_such_option", "1"], prog="sft") == 2
    assert "sft: error: unknown recipe arguments ['--no_such_option', '1']" in capsys.readouterr().err
    assert sft_script.cli(["--config", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read the recipe config" in capsys.readouterr().err
    assert not (tmp_path / "run_info.json").exists()


def test_help_shows_config_and_the_no_flags_own_text(capsys):
    from hf_uniform.cli import main

    assert main(["sft", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: hf-uniform sft") and "--config FILE.yaml YAML file whose keys set the defaults" in out
    assert "--no_save_final_model, --no-save-final-model set save_final_model to false" in out
    assert "(default: False)" not in out.split("--no_save_final_model", 1)[1].split("--", 1)[0]


def test_help_is_short_and_help_all_lists_every_option_which_all_still_parse(capsys):
    """--help lists our options and the common training ones; --help_all the ~300 of TRL/transformers."""
    import dataclasses

    from hf_uniform.cli import main
    from hf_uniform.train.args import UniformSFTArguments

    assert main(["sft", "--help"]) == 0
    short = capsys.readouterr().out
    assert main(["sft", "--help_all"]) == 0
    full = capsys.readouterr().out
    assert len(short.splitlines()) < 250 < 600 < len(full.splitlines())
    for f in dataclasses.fields(UniformSFTArguments):  # every option of ours is in the short help
        assert f"--{f.name}" in short, f.name
    for name in ("--output_dir", "--learning_rate", "--max_steps", "--model_name_or_path", "--help_all"):
        assert name in short
    assert "--torch_compile_backend" not in short and "--torch_compile_backend" in full
    assert short.endswith("\n\n  hf-uniform sft --help_all\n") and "more options" in short
    # an option left out of the short help still parses
    sft, _, _ = parse_sft_args(["--output_dir", "o", *CPU, "--torch_compile_backend", "inductor"],
                               sft_script.make_parser(prog="sft"))
    assert sft.torch_compile_backend == "inductor"


def test_make_parser_takes_a_trl_subparsers():
    from trl import TrlParser

    sub = TrlParser(prog="tool").add_subparsers(dest="command")
    parser = sft_script.make_parser(sub)
    assert parser.prog == "tool sft" and "sft" in sub.choices
    sft, model, uargs = parse_sft_args(["--output_dir", "o", *CPU, "--uniform_k", "3"], parser)
    assert uargs.uniform_k == 3 and sft.output_dir == "o"


def test_model_specs(tmp_path):
    assert resolve_model_source("/m/x.gguf") == ("/m", "x.gguf")
    assert resolve_model_source("org/model") == ("org/model", None)
    (tmp_path / "a.gguf").write_bytes(b"")
    assert resolve_model_source(str(tmp_path), "a.gguf") == (str(tmp_path), "a.gguf")
    with pytest.raises(UniformError, match="not found"):
        resolve_model_source(str(tmp_path), "b.gguf")
    with pytest.raises(UniformError, match="not installed"):
        resolve_model_source("package:no_such_package_xyz")
    with pytest.raises(UniformError, match="no model"):
        resolve_model_source("")


# ---- end-to-end runs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """Run recipes/sft.py under `accelerate launch` in a fresh process; return the output folder's records."""
    cache = tmp_path_factory.mktemp("hfu_cache")
    base = tmp_path_factory.mktemp("runs")

    def run(name: str, config: str, *extra: str, accelerate_config: str | None = None,
            timeout: int = 600, expect_fail: bool = False) -> dict:
        out = base / name
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   PYTHONHASHSEED="0", HF_UNIFORM_CACHE=str(cache), OMP_NUM_THREADS="2")
        launch = ["--config_file", str(CONFIGS / accelerate_config)] if accelerate_config else [
            "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch, "recipes/sft.py",
               "--config", str(CONFIGS / config), "--output_dir", str(out), *extra]
        t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter() - t0
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        if expect_fail:
            assert proc.returncode != 0
            return {"out": out, "log": proc.stderr + proc.stdout}
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        rec = {"out": out, "wall": wall, "cpu": cpu, "log": proc.stderr}
        for key, fname in (("ttt", "time_to_threshold.json"), ("state", "trainer_state.json"),
                           ("info", "run_info.json"), ("prov", "provenance.json")):
            assert (out / fname).is_file(), f"{fname} missing in {out}"
            rec[key] = json.loads((out / fname).read_text())
        rec["losses"] = [h["loss"] for h in rec["state"]["log_history"] if "loss" in h]
        return rec

    run.cache = cache
    run.base = base
    return run


def alpaca_9k() -> str:
    return str(shared_path("instruct/alpaca_9k.jsonl"))


def assert_loss_falls(rec: dict, drop: float) -> None:
    losses = rec["losses"]
    assert len(losses) == rec["state"]["global_step"]  # logging every step
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert first - last > drop, f"loss {first:.4f} -> {last:.4f}"
    curve = rec["ttt"]["curve"]
    assert [e["loss"] for e in curve] == pytest.approx(losses)  # the callback saw what the trainer logged
    assert [e["step"] for e in curve] == list(range(1, len(losses) + 1))
    seconds = [e["seconds"] for e in curve]
    assert all(b > a for a, b in zip(seconds, seconds[1:], strict=False))


def assert_thresholds_consistent(rec: dict) -> None:
    """Each recorded crossing is the first step whose trailing mean over `window` logged losses is <= the
    threshold (brute force over the trainer's log); the raw crossing is the first raw loss <= it."""
    ttt = rec["ttt"]
    losses = [h[ttt["metric"]] for h in rec["state"]["log_history"] if ttt["metric"] in h]
    w = ttt["window"]
    means = [sum(losses[max(0, i - w + 1):i + 1]) / len(losses[max(0, i - w + 1):i + 1]) for i in range(len(losses))]
    for t in ttt["thresholds"]:
        key = f"{t:g}"
        first = next((i for i, v in enumerate(means) if v <= t), None)
        if first is None:
            assert ttt["time_to_threshold"][key] is None
        else:
            assert ttt["steps_to_threshold"][key] == first + 1
            assert ttt["time_to_threshold"][key] == ttt["curve"][first]["seconds"]
            assert ttt["reached"][key]["value"] == pytest.approx(means[first])
        first_raw = next((i for i, v in enumerate(losses) if v <= t), None)
        raw = ttt["reached_raw"][key]
        assert (raw and raw["step"]) == (None if first_raw is None else first_raw + 1)


@pytest.fixture(scope="module")
def smoke_plain(runner):
    return runner("smoke_plain", "smoke_cpu.yaml", "--dataset_name", alpaca_9k())


@pytest.fixture(scope="module")
def smoke_zero3(runner):
    return runner("smoke_zero3", "smoke_cpu.yaml", "--dataset_name", alpaca_9k(),
                  accelerate_config="accelerate_zero3_cpu.yaml")


@pytest.mark.slow
def test_smoke_cpu_runs_end_to_end(smoke_plain):
    rec = smoke_plain
    # "under 3 minutes on 2 cores": CPU seconds, so that other jobs sharing the cores do not make it flaky
    assert rec["cpu"] < 2 * 180, f"{rec['cpu']:.0f} CPU seconds ({rec['wall']:.0f} s wall)"
    assert rec["state"]["global_step"] == 100
    assert_loss_falls(rec, drop=0.8)  # from ln(1024) = 6.93 to about 5.5
    assert_thresholds_consistent(rec)
    assert rec["ttt"]["time_to_threshold"]["6"] is not None
    assert rec["info"]["optimizer_class"] == "AdamW" and rec["info"]["regime"]["deepspeed"] is False
    data = rec["prov"]["data"]
    selection = json.loads((rec["out"] / "selection.json").read_text())
    assert (data["subset"], data["k"], data["n"]) == ("uniform", 256, 9229)
    assert data["h"] == pytest.approx(selection["h"]) and data["h"] > 0
    assert data["embedder"]["embedder"] == "Word2VecEmbedder" and len(selection["indices"]) == 256
    logged = [h for h in rec["state"]["log_history"] if "time_to_threshold/6" in h]
    assert logged and logged[0]["time_to_threshold/6"] == rec["ttt"]["time_to_threshold"]["6"]
    # a successful run says nothing alarming: no warning, error or traceback from us or the libraries
    alarming = [line for line in rec["log"].splitlines() if any(
        word in line for word in ("WARNING", "Warning:", "ERROR", "Traceback", "[W "))]
    assert not alarming, alarming[:5]


@pytest.mark.slow
def test_smoke_cpu_under_deepspeed_zero3(smoke_zero3, smoke_plain):
    rec = smoke_zero3
    assert rec["state"]["global_step"] == 100
    assert_loss_falls(rec, drop=0.8)
    assert_thresholds_consistent(rec)
    info = rec["info"]
    assert info["regime"]["deepspeed"] is True
    assert "DeepSpeedZeroOptimizer_Stage3" in info["optimizer_chain"] and info["optimizer_class"] == "AdamW"
    # same model, data and seed: the first step's loss is the plain run's
    assert rec["losses"][0] == pytest.approx(smoke_plain["losses"][0], abs=1e-3)


def assert_l2_diagnostics(state: dict, vocab: int = 1024) -> list[dict]:
    """Each logged step carries the cross-entropy and the ℓ2 loss over its 1/V floor of the same batch."""
    import math

    logs = [h for h in state["log_history"] if "loss" in h]
    for h in logs:  # one process, no accumulation: the logged l2 loss is the batch mean the ratio is taken of
        assert h["l2_over_floor"] == pytest.approx(h["loss"] * vocab, rel=1e-4)
        assert 0.0 <= h["mean_token_accuracy"] <= 1.0
    # the logits shrink towards zero: cross-entropy stays at ln V (uniform prediction) all along
    assert all(abs(h["ce_loss"] - math.log(vocab)) < 0.05 for h in logs)
    return logs


@pytest.mark.slow
def test_l2_sgd_steps_with_l2sgd_under_deepspeed_zero3(runner):
    rec = runner("l2_zero3", "smoke_cpu.yaml", "--dataset_name", alpaca_9k(), "--optim", "l2_sgd",
                 "--learning_rate", "5", "--max_steps", "40", "--threshold_metric", "l2_over_floor",
                 "--loss_thresholds", "2.0", "1.0", accelerate_config="accelerate_zero3_cpu.yaml")
    info = rec["info"]
    assert info["optimizer_chain"][-2:] == ["DeepSpeedZeroOptimizer_Stage3", "L2SGD"]
    params = 205_120  # the tiny model (tiny_model.json in the run folder says the same)
    assert json.loads((rec["out"] / "tiny_model" / "tiny_llama.json").read_text())["parameters"] == params
    # DeepSpeed calls step() once per parameter sub-group; every step updates every parameter once
    assert info["l2sgd_steps"] >= 40 and info["l2sgd_steps"] % 40 == 0
    assert info["l2sgd_updated_elements"] == 40 * params
    assert info["regime"] == {**info["regime"], "optimizer": "l2_sgd", "loss": "l2/logits", "deepspeed": True,
                              "vocab_size": 1024, "l2_floor": 1 / 1024, "global_batch": 8}
    losses = rec["losses"]
    assert losses[0] == pytest.approx(0.0267, abs=0.003)  # ~mean z^2 + 1/V at initialisation
    assert sum(losses[-5:]) / 5 < 0.3 * losses[0]
    logs = assert_l2_diagnostics(rec["state"])
    # The old advertised thresholds (0.01, 0.005 on the raw l2 loss) are crossed although nothing is learned:
    assert min(losses) < 0.005 and sum(h["mean_token_accuracy"] for h in logs[-10:]) / 10 < 0.1
    # relative to the floor the picture is honest: 2x the floor is reached, the floor itself is not
    assert_thresholds_consistent(rec)
    assert rec["ttt"]["time_to_threshold"]["2"] is not None
    assert rec["ttt"]["time_to_threshold"]["1"] is None and min(h["l2_over_floor"] for h in logs) > 1.0
    curve = rec["ttt"]["curve"]
    assert all({"ce_loss", "l2_over_floor", "mean_token_accuracy"} <= set(e) for e in curve)


@pytest.mark.slow
def test_l2_sgd_refuses_a_deepspeed_json_with_an_optimizer_block(runner, tmp_path):
    """The Table 2 JSON's AdamW block would silently replace L2SGD: the recipe stops before training."""
    acc = yaml.safe_load((CONFIGS / "accelerate_zero3_cpu.yaml").read_text())
    acc["deepspeed_config"]["deepspeed_config_file"] = "recipes/configs/paper/ds_zero3_offload_adamw.json"
    cfg = tmp_path / "accelerate_adamw_cpu.yaml"
    cfg.write_text(yaml.safe_dump(acc))
    rec = runner("l2_adamw_json", "smoke_cpu.yaml", "--dataset_name", alpaca_9k(), "--optim", "l2_sgd",
                 "--learning_rate", "5", "--max_steps", "2", accelerate_config=str(cfg), expect_fail=True)
    assert "has an 'optimizer' block (AdamW), which would replace l2_sgd" in rec["log"]
    assert not (rec["out"] / "trainer_state.json").exists()


@pytest.mark.slow
def test_l2_sgd_without_deepspeed_in_process(runner, monkeypatch):
    """recipes/sft.py's main called in-process (as the comparison study does), without a launcher: L2SGD
    steps, ℓ2 loss falls."""
    monkeypatch.setenv("HF_UNIFORM_CACHE", str(runner.cache))
    out = runner.base / "l2_plain"
    sft, model, uargs = parse_sft_args([
        "--config", str(CONFIGS / "smoke_cpu.yaml"), "--output_dir", str(out), "--dataset_name", alpaca_9k(),
        "--optim", "l2_sgd", "--learning_rate", "5", "--max_steps", "30", "--threshold_metric", "l2_over_floor",
        "--loss_thresholds", "3.0", "--save_final_model", "false", "--disable_tqdm", "true"])
    info = recipe_main(sft, model, uargs)
    assert info["optimizer_chain"][-1] == "L2SGD" and info["l2sgd_steps"] == 30
    assert info["l2sgd_updated_elements"] == 30 * 205_120
    assert info["regime"]["loss"] == "l2/logits" and info["regime"]["deepspeed"] is False
    assert info["regime"]["global_batch"] == 8 and info["regime"]["max_grad_norm"] == 0.0
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < 0.3 * losses[0]
    logs = assert_l2_diagnostics(state)
    ttt = json.loads((out / "time_to_threshold.json").read_text())
    assert ttt["metric"] == "l2_over_floor"
    ratios = [h["l2_over_floor"] for h in logs]
    means = [sum(ratios[max(0, i - 9):i + 1]) / len(ratios[max(0, i - 9):i + 1]) for i in range(30)]
    assert ttt["steps_to_threshold"]["3"] == next(i for i, v in enumerate(means) if v <= 3.0) + 1
    run_info = json.loads((out / "run_info.json").read_text())
    assert run_info["l2sgd_steps"] == 30 and run_info["train_loss"] == pytest.approx(sum(losses) / 30)


def test_l2_thresholds_need_an_l2_run(tmp_path):
    args = parse_sft_args(["--output_dir", str(tmp_path), *CPU, "--threshold_metric", "l2_over_floor"])
    with pytest.raises(UniformError, match="logged only by l2 runs"):
        recipe_main(*args)


@pytest.mark.slow
def test_resume_keeps_clock_tokens_and_the_whole_runs_train_loss(runner, monkeypatch):
    """A real resume of the tiny model: run_info's train_loss is the mean over all steps (transformers' own
    value covers only the steps after the resume), and the resumed run matches an uninterrupted one."""
    monkeypatch.setenv("HF_UNIFORM_CACHE", str(runner.cache))
    common = ["--config", str(CONFIGS / "smoke_cpu.yaml"), "--dataset_name", alpaca_9k(), "--uniform_k", "64",
              "--subset_method", "first_k", "--measure_h", "false", "--save_final_model", "false",
              "--disable_tqdm", "true", "--loss_thresholds", "6.5", "--threshold_window", "2",
              "--tiny_model_dir", str(runner.base / "resume_tiny")]
    whole = recipe_main(*parse_sft_args([*common, "--output_dir", str(runner.base / "whole"), "--max_steps", "6"]))
    out = runner.base / "resumed"
    recipe_main(*parse_sft_args([*common, "--output_dir", str(out), "--max_steps", "3", "--save_strategy", "steps",
                             "--save_steps", "3"]))
    first = json.loads((out / "time_to_threshold.json").read_text())
    info = recipe_main(*parse_sft_args([*common, "--output_dir", str(out), "--max_steps", "6",
                                    "--resume_from_checkpoint", str(out / "checkpoint-3")]))
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert [h["step"] for h in state["log_history"] if "loss" in h] == list(range(1, 7))
    assert info["train_loss"] == pytest.approx(sum(losses) / 6)
    # transformers' own training_loss after a resume is not the run's mean (5.3: the resumed steps' sum / 6)
    assert info["train_loss_this_session"] != pytest.approx(info["train_loss"], rel=0.05)
    # the same data order and weights as the uninterrupted run
    assert info["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-3)
    assert whole["train_loss"] == pytest.approx(whole["train_loss_this_session"], rel=1e-5)
    assert info["train_tokens"] == whole["train_tokens"] > 0
    ttt = json.loads((out / "time_to_threshold.json").read_text())
    assert ttt["sessions"] == 2 and ttt["train_tokens"] == info["train_tokens"]
    assert ttt["curve"][:3] == first["curve"][:3]  # the first session's entries, clocks included
    assert ttt["train_seconds"] > first["train_seconds"] and ttt["train_cpu_seconds"] > first["train_cpu_seconds"]
    assert [e["tokens"] for e in ttt["curve"]] == [e["tokens"] for e in json.loads(
        (runner.base / "whole" / "time_to_threshold.json").read_text())["curve"]]


@pytest.mark.slow
def test_smollm2_ten_steps_on_alpaca_9k(runner):
    pytest.importorskip("gguf")
    try:
        find_smollm2_gguf()
    except UniformError as err:
        pytest.skip(str(err))
    # the shipped config, with shorter sequences to keep the CI time down
    rec = runner("smollm2", "smollm2_cpu.yaml", "--dataset_name", alpaca_9k(), "--save_final_model", "false",
                 "--max_length", "64")
    assert rec["state"]["global_step"] == 10 and len(rec["losses"]) == 10
    # a pretrained instruct model: far below a random model's ln(49152) = 10.8
    assert all(0.2 < v < 5.0 for v in rec["losses"])
    assert rec["info"]["regime"]["optimizer"] != "l2_sgd" and rec["prov"]["gguf_file"].endswith(".gguf")
    assert "using '<|im_end|>'" in rec["log"]  # the GGUF tokenizer's EOS is fixed to the model's
    assert rec["prov"]["data"]["k"] == 1000
    assert rec["ttt"]["global_step"] == 10


@pytest.mark.slow
def test_smollm2_gguf_tokenizer_is_byte_level_and_survives_save(tmp_path):
    pytest.importorskip("gguf")
    try:
        path = find_smollm2_gguf()
    except UniformError as err:
        pytest.skip(str(err))
    from transformers import AutoTokenizer

    from hf_uniform.train.sft import repair_gguf_tokenizer

    tok = repair_gguf_tokenizer(AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name))
    vocab = tok.get_vocab()
    text = "Hello world,\nGive three tips  for you."
    # independent reference: the GPT-2 byte-level pieces looked up in the GGUF vocabulary, no BOS added
    expected = [vocab[p] for p in ("Hello", "\u0120world", ",", "\u010a", "Give", "\u0120three", "\u0120tips", "\u0120",
                                    "\u0120for", "\u0120you", ".")]
    assert tok(text).input_ids == expected
    assert tok.decode(expected) == text
    tok.save_pretrained(str(tmp_path))
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert again(text).input_ids == expected and again.eos_token == tok.eos_token
