"""Supervised fine-tuning on a uniform subset (or a paper baseline, or the full pool), timed to loss thresholds.

Run from the repository root::

    # CPU smoke run (tiny random LLaMA, 256 uniform rows of the Alpaca 9k pool, < 3 min on 2 cores)
    hf-uniform sft --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke
    accelerate launch recipes/sft.py --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke  # the same
    # under DeepSpeed ZeRO-3 (CPU offload), in the paper's ℓ2-SGD regime
    accelerate launch --config_file recipes/configs/accelerate_zero3_cpu.yaml -m hf_uniform.scripts.sft \\
        --config recipes/configs/smoke_cpu.yaml --output_dir runs/smoke_z3 \\
        --optim l2_sgd --learning_rate 5 --threshold_metric l2_over_floor --loss_thresholds 2.0 1.0

Every field of ``UniformSFTConfig`` (TRL's ``SFTConfig``; ``--optim`` also takes ``l2_sgd``, the paper's
ℓ2-SGD regime), ``ModelConfig`` and ``UniformSFTArguments`` (data, selection, regime, thresholds) can be set
in the YAML or on the command line (the command line wins); ``--help`` lists them. :func:`main` is the whole
run: data → model → trainer → ``train()`` → save → push, with the components of :mod:`hf_uniform.train`; the
steps that are more than one call follow it here. The comparison study (:mod:`hf_uniform.scripts.compare`)
trains every arm by calling :func:`main`.

>>> resume_value("true"), resume_value("no"), resume_value("out/checkpoint-3")
(True, None, 'out/checkpoint-3')
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate import PartialState
from trl import ModelConfig, TrlParser, get_peft_config

from ..arguments import script_parser
from ..errors import UniformError
from ..io import package_versions
from ..records import RUN_INFO_FILE, RunInfo
from ..train import (
    TimeToThresholdCallback,
    UniformSFTArguments,
    UniformSFTConfig,
    UniformSFTTrainer,
    check_deepspeed_optimizer,
    load_model_and_tokenizer,
    parse_sft_args,
    write_provenance,
)
from ..train.args import optimizer_name
from ..train.callbacks import mean_train_loss
from ..train.data import TrainingData, example_texts, load_training_data
from ..train.loss import L2Loss, l2_floor
from ..train.optim import L2SGD, optimizer_chain, unwrap_optimizer
from ..train.sft import deepspeed_config
from . import SCRIPTS, run_script, short_help

logger = logging.getLogger(__name__)


def main(training_args: UniformSFTConfig, model_args: ModelConfig, script_args: UniformSFTArguments,
         callbacks: list[Any] | None = None) -> dict[str, Any]:
    """One fine-tune; returns the record it also writes to ``OUTPUT_DIR/run_info.json``.

    ``callbacks`` are added to the trainer (the comparison study adds its held-out schedule). Argument
    combinations that cannot work are refused before any data or model is loaded.

    Example:
        >>> main(UniformSFTConfig(output_dir="o", use_cpu=True, bf16=False), ModelConfig(),
        ...      UniformSFTArguments(threshold_metric="ce_loss"))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: threshold_metric ce_loss is logged only by l2 runs (--optim l2_sgd or --loss l2); use threshold_metric loss
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


# ------------------------------------------------------------------------------ the steps of main


def check_run_args(training_args: Any, uargs: UniformSFTArguments) -> None:
    """Refuse argument combinations that would fail (or mislead) only after the data and model are loaded.

    Raises:
        UniformError: an ℓ2 threshold metric without an ℓ2 run.

    Example:
        >>> from hf_uniform.train.args import UniformSFTConfig
        >>> check_run_args(UniformSFTConfig(output_dir="o", use_cpu=True, bf16=False, optim="l2_sgd"),
        ...                UniformSFTArguments(threshold_metric="l2_over_floor"))
        >>> check_run_args(UniformSFTConfig(output_dir="o", use_cpu=True, bf16=False),
        ...                UniformSFTArguments(threshold_metric="ce_loss"))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: threshold_metric ce_loss is logged only by l2 runs (--optim l2_sgd or --loss l2); use threshold_metric loss
    """
    if uargs.threshold_metric in ("l2_over_floor", "ce_loss") and uargs.resolved_loss(training_args.optim) != "l2":
        raise UniformError(f"threshold_metric {uargs.threshold_metric} is logged only by l2 runs (--optim l2_sgd or "
                           "--loss l2); use threshold_metric loss")


def load_recipe_data(training_args: Any, uargs: UniformSFTArguments) -> TrainingData:
    """The training data of a run: :func:`~hf_uniform.train.load_training_data` with the script's arguments.

    Raises:
        UniformError: ``threshold_metric eval_loss`` without evaluation data (and every error of
            :func:`~hf_uniform.train.load_training_data`).

    Example:
        >>> import json, tempfile, os
        >>> from hf_uniform.train.args import UniformSFTConfig
        >>> path = os.path.join(tempfile.mkdtemp(), "d.jsonl")
        >>> with open(path, "w") as f:
        ...     _ = f.write("".join(json.dumps({"instruction": f"q{i}", "output": "a"}) + "\\n" for i in range(6)))
        >>> data = load_recipe_data(UniformSFTConfig(output_dir="o", use_cpu=True, bf16=False),
        ...                         UniformSFTArguments(dataset_name=path, uniform_k=3, subset_method="first_k"))
        >>> len(data.train), data.provenance["subset"]
        (3, 'first_k')
    """
    data = load_training_data(
        uargs.dataset_name, split=uargs.dataset_split, dataset_config=uargs.dataset_config,
        prompt_format=uargs.prompt_format, uniform_k=uargs.uniform_k, subset_method=uargs.subset_method,
        embedder=uargs.uniform_embedder, text_columns=uargs.uniform_text_columns,
        template=uargs.uniform_template, embedding_column=uargs.uniform_embedding_column,
        metric=uargs.uniform_metric, seed=uargs.uniform_seed, measure_h=uargs.measure_h,
        eval_size=uargs.eval_size, eval_dataset_name=uargs.eval_dataset_name,
        num_proc=training_args.dataset_num_proc, progress=False)
    logger.info("training rows: %d (%s), eval rows: %d", len(data.train), data.provenance.get("subset"),
                0 if data.eval is None else len(data.eval))
    if uargs.threshold_metric == "eval_loss" and data.eval is None:
        raise UniformError("threshold_metric eval_loss needs evaluation data; set eval_size or eval_dataset_name "
                           "and eval_strategy steps")
    return data


def training_model(training_args: Any, model_args: Any, uargs: UniformSFTArguments,
                   data: TrainingData) -> tuple[str, str | None]:
    """``(model folder or Hub id, GGUF file or None)`` to train: the given model, or with ``tiny_model`` a tiny
    random LLaMA whose BPE tokenizer is trained on the training texts (built in ``tiny_model_dir``, default
    ``OUTPUT_DIR/tiny_model``).

    Example:
        >>> from trl import ModelConfig
        >>> training_model(None, ModelConfig(model_name_or_path="org/model"), UniformSFTArguments(), None)
        ('org/model', None)
    """
    if not uargs.tiny_model:
        return model_args.model_name_or_path, uargs.gguf_file
    from ..train.tiny import build_tiny_llama

    out = Path(uargs.tiny_model_dir) if uargs.tiny_model_dir else Path(training_args.output_dir) / "tiny_model"
    path = build_tiny_llama(out, example_texts(data.train), vocab_size=uargs.tiny_vocab_size,
                            hidden_size=uargs.tiny_hidden_size, intermediate_size=2 * uargs.tiny_hidden_size,
                            num_hidden_layers=uargs.tiny_layers, seed=training_args.seed)
    return str(path), None


def regime_optimizer(training_args: Any, uargs: UniformSFTArguments) -> tuple[type, dict[str, Any]] | None:
    """The trainer's ``optimizer_cls_and_kwargs``: ``(L2SGD, {...})`` for ``--optim l2_sgd``, else ``None``
    (the trainer builds ``optim`` itself). DeepSpeed keeps an optimizer given this way as long as its JSON
    has no ``"optimizer"`` block (:func:`~hf_uniform.train.check_deepspeed_optimizer`).

    Example:
        >>> from hf_uniform.train.args import UniformSFTConfig
        >>> cls, kw = regime_optimizer(UniformSFTConfig(output_dir="o", use_cpu=True, bf16=False, optim="l2_sgd",
        ...                                             learning_rate=5.0), UniformSFTArguments())
        >>> cls.__name__, kw
        ('L2SGD', {'lr': 5.0, 'momentum': 0.0, 'weight_decay': 0.0})
    """
    if optimizer_name(training_args.optim) != "l2_sgd":
        return None
    return L2SGD, {"lr": training_args.learning_rate, "momentum": uargs.sgd_momentum,
                   "weight_decay": training_args.weight_decay}


def regime_loss(training_args: Any, uargs: UniformSFTArguments) -> L2Loss | None:
    """The trainer's ``loss_fn``: :class:`~hf_uniform.train.L2Loss` for an ℓ2 run, else ``None`` (cross-entropy).

    Example:
        >>> from hf_uniform.train.args import UniformSFTConfig
        >>> regime_loss(UniformSFTConfig(output_dir="o", use_cpu=True, bf16=False, optim="l2_sgd"),
        ...             UniformSFTArguments()).variant
        'logits'
    """
    return L2Loss(uargs.l2_variant) if uargs.resolved_loss(training_args.optim) == "l2" else None


def describe_regime(trainer: Any, uargs: UniformSFTArguments) -> dict[str, Any]:
    """The regime of a built trainer: optimizer, loss, learning rate, DeepSpeed, world size, global batch, ...

    The global batch is the paper's "batch size" (64 for 7B on one GPU, 128 for 13B on two).

    Example:
        >>> describe_regime  # doctest: +ELLIPSIS
        <function describe_regime at ...>
    """
    args, world = trainer.args, trainer.accelerator.num_processes
    loss_fn = getattr(trainer, "loss_fn", None)
    regime = {"optimizer": optimizer_name(args.optim),
              "loss": "ce" if loss_fn is None else f"l2/{loss_fn.variant}",
              "learning_rate": args.learning_rate, "deepspeed": deepspeed_config(trainer) is not None,
              "world_size": world,
              "global_batch": args.per_device_train_batch_size * world * args.gradient_accumulation_steps,
              "per_device_train_batch_size": args.per_device_train_batch_size,
              "gradient_accumulation_steps": args.gradient_accumulation_steps,
              "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
              "max_grad_norm": args.max_grad_norm}
    if loss_fn is not None:
        vocab = int(trainer.model.config.vocab_size)  # not the weight's shape: ZeRO-3 partitions it
        regime.update({"vocab_size": vocab, "l2_floor": l2_floor(vocab, loss_fn.variant)})
    return regime


def resume_value(value: Any) -> Any:
    """``resume_from_checkpoint`` for ``Trainer.train``: ``"true"`` → ``True`` (the last checkpoint), ``"no"``
    / empty → ``None``, a path as it is.

    Example:
        >>> resume_value(None), resume_value("False")
        (None, None)
    """
    if isinstance(value, str) and value.lower() in ("true", "yes", "1"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "none", ""):
        return None
    return value


def run_record(trainer: Any, result: Any, callback: Any, *, data: TrainingData, regime: dict[str, Any],
               seconds: dict[str, float], args: tuple[Any, Any, UniformSFTArguments]) -> dict[str, Any]:
    """The ``run_info.json`` record of a finished ``trainer.train()``: optimizer chain, L2SGD step count,
    loss, CPU seconds, tokens, time to threshold, timings, data provenance, arguments and versions.

    ``train_loss`` is the mean over the whole run's logged steps (transformers' own value covers only the
    steps after a resume; it is kept as ``train_loss_this_session``).

    Example:
        >>> run_record  # doctest: +ELLIPSIS
        <function run_record at ...>
    """
    training_args, model_args, uargs = args
    inner = unwrap_optimizer(trainer.optimizer)
    l2sgd = isinstance(inner, L2SGD)
    whole_loss = mean_train_loss(trainer.state.log_history)
    return {
        "regime": regime,
        "optimizer_chain": optimizer_chain(trainer.optimizer),
        "optimizer_class": type(inner).__name__,
        "l2sgd_steps": getattr(inner, "num_steps", None) if l2sgd else None,
        "l2sgd_updated_elements": getattr(inner, "num_updated", None) if l2sgd else None,
        "global_step": trainer.state.global_step,
        "train_loss": whole_loss if whole_loss is not None else result.training_loss,
        "train_loss_this_session": result.training_loss,
        "train_cpu_seconds": callback.cpu_elapsed(),
        "train_tokens": int(trainer.state.num_input_tokens_seen),
        "time_to_threshold": callback.result(trainer.state)["time_to_threshold"],
        "seconds": {**seconds, "train_measured_by_callback": callback.elapsed()},
        "train_rows": len(data.train),
        "data": {k: v for k, v in data.provenance.items() if k != "indices"},
        "args": {"sft": training_args.to_dict(), "model": asdict(model_args), "uniform": asdict(uargs)},
        "versions": package_versions("hf-uniform", "torch", "transformers", "trl", "accelerate", "deepspeed",
                                     "datasets"),
    }


def write_run_info(trainer: Any, info: dict[str, Any]) -> Path | None:
    """Write ``output_dir/run_info.json`` (a :class:`~hf_uniform.records.RunInfo`, atomically) on the main
    process; return its path there (``None`` on the other processes).

    Example:
        >>> write_run_info  # doctest: +ELLIPSIS
        <function write_run_info at ...>
    """
    if not trainer.is_world_process_zero():
        return None
    path = RunInfo.from_dict(info).to_json(Path(trainer.args.output_dir) / RUN_INFO_FILE)
    logger.info("done: %d steps, train loss %.4f, time_to_threshold %s", info["global_step"], info["train_loss"],
                info["time_to_threshold"])
    return path


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None) -> TrlParser:
    """``TrlParser`` over ``(UniformSFTConfig, ModelConfig, UniformSFTArguments)``: ``--config FILE.yaml`` gives
    defaults, the command line wins; with ``subparsers`` (a ``TrlParser``'s), the sub-command ``sft``.

    ``--help`` lists our options and the common training ones (:data:`HELP_KEEP`); ``--help_all`` lists all
    (TRL's ``SFTConfig`` and transformers' ``TrainingArguments`` add about 300), and every one of them parses.

    Example:
        >>> make_parser(prog="hf-uniform sft").prog
        'hf-uniform sft'
        >>> len(make_parser(prog="hf-uniform sft").format_help().splitlines()) < 300
        True
    """
    parser = script_parser((UniformSFTConfig, ModelConfig, UniformSFTArguments), prog=prog, subparsers=subparsers,
                           name="sft", help=SCRIPTS["sft"])
    return short_help(parser, [UniformSFTArguments, UniformSFTConfig], keep=HELP_KEEP)


#: the inherited options ``hf-uniform sft --help`` lists (the others: ``--help_all``)
HELP_KEEP = ("output_dir", "model_name_or_path", "dtype", "optim", "learning_rate", "lr_scheduler_type",
             "warmup_steps", "num_train_epochs", "max_steps", "per_device_train_batch_size",
             "gradient_accumulation_steps", "max_length", "seed", "bf16", "use_cpu", "logging_steps",
             "save_strategy", "save_steps", "report_to", "push_to_hub", "hub_model_id", "gradient_checkpointing",
             "resume_from_checkpoint")


def cli(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run :func:`main`; return the exit status (2 for bad input,
    with one line ``PROG: error: ...``).

    Example:
        >>> cli(["--output_dir", "o", "--use_cpu", "--bf16", "false", "--no_such_option", "1"])
        2
    """
    def run() -> None:
        main(*parse_sft_args(argv, make_parser(prog=prog)))

    return run_script(prog or "sft", run)


if __name__ == "__main__":
    sys.exit(cli())
