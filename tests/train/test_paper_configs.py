"""recipes/configs/paper/: one YAML per experiment of the paper, with its values (paper-setup: Tables 1-3,
Figure 11, the authors' scripts), the DeepSpeed JSONs of Tables 2 and 3, and the accelerate configs whose
process count gives the paper's global batch."""

from __future__ import annotations

import itertools
import json
import re

import pytest
import yaml

pytest.importorskip("trl")

from conftest import ROOT  # noqa: E402

from hf_uniform.errors import UniformError  # noqa: E402
from hf_uniform.train.args import SFT_ARGUMENT_CLASSES, optimizer_name, parse_sft_args  # noqa: E402
from hf_uniform.train.sft import check_deepspeed_optimizer  # noqa: E402

PAPER = ROOT / "recipes" / "configs" / "paper"
# The paper's experiments, typed out from its setup (independently of the files under test):
# model -> (Hub id, GPUs, Figure 11 thresholds); pool -> (file, k, the paper's baseline)
MODELS = {"7b": ("huggyllama/llama-7b", 1, [0.65, 0.34]), "13b": ("huggyllama/llama-13b", 2, [0.6, 0.31])}
POOLS = {"teamsrl9k": ("data/teamsrl_9k.jsonl", 4500, "mixed"),
         "wizardlm20k": ("data/wizardlm_evol_instruct_v2_20k.jsonl", 10000, "first_k")}
# epochs of the authors' scripts: CE 9k 4, CE 20k 2 (dp_wizard_llama1_7b_20k_constant.sh), l2 9k 2, l2 20k 1
EPOCHS = {("teamsrl9k", "adamw"): 4, ("wizardlm20k", "adamw"): 2, ("teamsrl9k", "l2sgd"): 2,
          ("wizardlm20k", "l2sgd"): 1}
EXPERIMENTS = list(itertools.product(MODELS, POOLS, ("adamw", "l2sgd")))


def load_json(name):
    return json.loads((PAPER / name).read_text())


def test_one_yaml_per_experiment_and_nothing_else():
    names = {p.stem for p in PAPER.glob("llama*.yaml")}
    assert names == {f"llama{m}_{d}_{o}" for m, d, o in EXPERIMENTS}


@pytest.mark.parametrize(("size", "pool", "opt"), EXPERIMENTS)
def test_paper_yaml_values(size, pool, opt):
    path = PAPER / f"llama{size}_{pool}_{opt}.yaml"
    text = path.read_text()
    raw = yaml.safe_load(text)
    parser = __import__("trl").TrlParser(SFT_ARGUMENT_CLASSES)
    assert parser.set_defaults_with_config(**dict(raw)) == []  # every key is a known argument
    model_id, gpus, thresholds = MODELS[size]
    data_file, k, baseline = POOLS[pool]
    assert raw["model_name_or_path"] == model_id
    assert (raw["learning_rate"], raw["lr_scheduler_type"], raw["max_grad_norm"]) == (2e-5, "constant", 0.0)
    assert (raw["per_device_train_batch_size"], raw["gradient_accumulation_steps"], raw["max_length"]) == (64, 1, 512)
    assert raw["fp16"] is True and raw["bf16"] is False and raw["gradient_checkpointing"] is True
    assert raw["logging_steps"] == 1 and raw["eval_strategy"] == "no" and raw["weight_decay"] == 0.0
    assert raw["save_strategy"] == "steps" and raw["save_steps"] > 0  # resumable
    assert raw["num_train_epochs"] == EPOCHS[(pool, opt)]
    assert (raw["dataset_name"], raw["uniform_k"], raw["subset_method"]) == (data_file, k, "uniform")
    assert raw["prompt_format"] == "alpaca" and raw["uniform_embedder"] == "w2v"
    assert f"--subset_method {baseline}" in text  # the header names the paper's baseline for this pool
    if opt == "adamw":
        assert (raw["adam_beta1"], raw["adam_beta2"], raw["adam_epsilon"]) == (0.9, 0.999, 1e-8)
        assert raw["loss_thresholds"] == thresholds and raw["threshold_metric"] == "loss"
    else:
        assert raw["optim"] == "l2_sgd" and raw["sgd_momentum"] == 0.0
        assert raw["threshold_metric"] == "l2_over_floor" and max(raw["loss_thresholds"]) <= 1.0
    # the global batch: per-device x processes (of the accelerate config the header launches) x accumulation
    launch = re.search(r"--config_file (\S+)", text).group(1)
    acc = yaml.safe_load((ROOT / launch).read_text())
    global_batch = raw["per_device_train_batch_size"] * acc["num_processes"] * raw["gradient_accumulation_steps"]
    assert acc["num_processes"] == gpus and global_batch == 64 * gpus  # 64 for 7B on 1 GPU, 128 for 13B on 2
    assert f"= {global_batch}" in text  # the arithmetic is written in the comment
    ds_file = acc["deepspeed_config"]["deepspeed_config_file"]
    assert ds_file == f"recipes/configs/paper/ds_zero3_offload_{opt}.json" and (ROOT / ds_file).is_file()
    # parsed as the recipe parses it (CPU and no fp16 here, to build the arguments without a GPU)
    sft, model, uargs = parse_sft_args(["--config", str(path), "--fp16", "false", "--use_cpu"])
    assert sft.learning_rate == 2e-5 and sft.lr_scheduler_type.value == "constant" and sft.max_grad_norm == 0.0
    assert model.model_name_or_path == model_id and uargs.uniform_k == k
    optim, loss = optimizer_name(sft.optim), uargs.resolved_loss(sft.optim)
    assert (optim, loss) == (("l2_sgd", "l2") if opt == "l2sgd" else ("adamw_torch", "ce"))


def test_constant_schedule_uses_the_full_rate_from_the_first_step():
    import torch
    from transformers import get_scheduler

    raw = yaml.safe_load((PAPER / "llama7b_teamsrl9k_adamw.yaml").read_text())
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=raw["learning_rate"])
    sched = get_scheduler(raw["lr_scheduler_type"], opt, num_warmup_steps=raw["warmup_steps"], num_training_steps=10)
    lrs = []
    for _ in range(3):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == [2e-5, 2e-5, 2e-5]  # constant_with_warmup would have given 0 at the first step


def test_deepspeed_jsons_are_tables_2_and_3():
    adamw, l2 = load_json("ds_zero3_offload_adamw.json"), load_json("ds_zero3_offload_l2sgd.json")
    for cfg in (adamw, l2):
        z = cfg["zero_optimization"]
        assert z["stage"] == 3
        assert z["offload_param"] == {"device": "cpu", "pin_memory": True} == z["offload_optimizer"]
        assert z["overlap_comm"] is True and z["contiguous_gradients"] is True
        assert (z["sub_group_size"], z["stage3_max_live_parameters"], z["stage3_max_reuse_distance"]) == (0, 0, 0)
        assert z["stage3_gather_16bit_weights_on_model_save"] is True
        fp16 = cfg["fp16"]
        assert (fp16["loss_scale"], fp16["initial_scale_power"], fp16["loss_scale_window"], fp16["hysteresis"]) == (
            0, 32, 1000, 2)
        assert fp16["min_loss_scale"] == 1
        assert "gradient_clipping" not in cfg  # no clipping: DeepSpeed's default is 0
        assert "scheduler" not in cfg  # the trainer's constant schedule
        for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
            assert cfg[key] == "auto"
    assert adamw["optimizer"] == {"type": "AdamW", "params": {"lr": "auto", "betas": [0.9, 0.999], "eps": 1e-8,
                                                              "weight_decay": 0}}
    # Table 3: no optimizer block, which would silently replace L2SGD (SGD, momentum 0, weight decay 0)
    assert "optimizer" not in l2 and l2["zero_allow_untested_optimizer"] is True
    assert l2["zero_force_ds_cpu_optimizer"] is False
    assert check_deepspeed_optimizer(dict(l2), "l2_sgd") == []
    with pytest.raises(UniformError, match="'optimizer' block"):
        check_deepspeed_optimizer(dict(adamw), "l2_sgd")


def test_accelerate_configs():
    for procs, opt in itertools.product((1, 2), ("adamw", "l2sgd")):
        cfg = yaml.safe_load((PAPER / f"accelerate_{procs}gpu_{opt}.yaml").read_text())
        assert cfg["distributed_type"] == "DEEPSPEED" and cfg["num_processes"] == procs
        assert cfg["num_machines"] == 1 and cfg["use_cpu"] is False
        assert cfg["deepspeed_config"]["zero3_init_flag"] is True
        assert cfg["deepspeed_config"]["deepspeed_config_file"] == f"recipes/configs/paper/ds_zero3_offload_{opt}.json"


def test_readme_has_no_placeholder_and_uses_the_paper_configs():
    readme = (ROOT / "README.md").read_text()
    assert "ETA" not in readme.split()
    assert "--learning_rate ETA" not in readme
    assert "recipes/configs/paper/" in readme
    for gone in ("table1_alpaca.yaml", "accelerate_zero3_offload_adamw.yaml", "accelerate_zero3_offload_sgd.yaml"):
        assert gone not in readme
