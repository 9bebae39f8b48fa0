"""The steps of one fine-tune, as components.

``recipes/sft.py`` shows the run in its ``main``: data → model → trainer → ``train()`` → save → push. The
steps that are more than one call live here, so that the recipe stays readable (the comparison study trains
every arm by calling that ``main`` in-process):

* :func:`check_run_args`: refuse argument combinations before any heavy work.
* :func:`load_recipe_data`: the training (and evaluation) split, with the subset selected on the fly.
* :func:`training_model`: the model to train: the given one, or a tiny LLaMA built from the data.
* :func:`regime_optimizer` / :func:`regime_loss`: ``optimizer_cls_and_kwargs`` and ``loss_fn`` of the regime
  (L2SGD and the ℓ2 loss for ``--optim l2_sgd``; ``None`` = the trainer's own).
* :func:`describe_regime`, :func:`run_record`, :func:`write_run_info`: what ``run_info.json`` holds.

>>> resume_value("true"), resume_value("no"), resume_value("out/checkpoint-3")
(True, None, 'out/checkpoint-3')
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import UniformError
from ..io import package_versions
from ..records import RUN_INFO_FILE, RunInfo
from .args import UniformSFTArguments, optimizer_name
from .callbacks import mean_train_loss
from .data import TrainingData, example_texts, load_training_data
from .loss import L2Loss, l2_floor
from .optim import L2SGD, optimizer_chain, unwrap_optimizer

logger = logging.getLogger(__name__)


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
    """The training data of a run: :func:`~hf_uniform.train.load_training_data` with the recipe's arguments.

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
    from .tiny import build_tiny_llama

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
    from .sft import deepspeed_config

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
