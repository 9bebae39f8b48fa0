"""Training with uniform subsets: TRL SFT recipes, the paper's ℓ2-SGD regime and time-to-threshold.

The components that ``hf-uniform sft`` (:func:`hf_uniform.scripts.sft.main`, which builds the trainer and
calls ``train()`` itself) puts together live here, so other code can reuse them:

* :func:`l2_loss` / :class:`L2Loss`: the paper's squared-error loss on logits (or probabilities), computed
  without a one-hot tensor; :class:`L2SGD`: the SGD optimizer of that regime.
* :class:`TimeToThresholdCallback`: step, wall and CPU seconds and training tokens at which the moving
  average of the loss first reaches (``<=``) each threshold, raw crossings beside, plus the whole curve,
  resumable; :func:`first_crossings` applies the same rule to any curve (the comparison study uses it).
* :func:`l2_floor`, :func:`token_cross_entropy`: the ℓ2 regime's diagnostics (its 1/V floor, cross-entropy
  of the same logits).
* :func:`build_tiny_llama`: a tiny random LLaMA with a byte-level BPE tokenizer trained on your texts, for
  offline smoke runs and tests.
* :func:`format_alpaca`, :func:`prepare_sft_dataset`, :func:`load_training_data`: the paper's Alpaca prompt
  (the Llama-X text) or the chat template, with the loss on the response tokens only, and uniform/random
  subsets (and the paper's ``mixed`` / ``first_k`` baselines) with their provenance.
* :func:`parse_sft_args`: ``TrlParser`` over :class:`UniformSFTConfig` (``SFTConfig`` that also takes
  ``--optim l2_sgd``), ``ModelConfig`` and :class:`UniformSFTArguments`.
* :func:`load_model_and_tokenizer`, :class:`UniformSFTTrainer` (``SFTTrainer`` with the ℓ2 loss in one
  forward pass), :func:`check_deepspeed_optimizer` (a DeepSpeed JSON must not replace L2SGD).

Names load lazily, so ``from hf_uniform.train import l2_loss`` needs only ``torch``:

>>> from hf_uniform.train import l2_loss, L2SGD
>>> L2SGD.__mro__[1].__name__
'Optimizer'
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "l2_loss": "loss",
    "L2Loss": "loss",
    "L2SGD": "optim",
    "unwrap_optimizer": "optim",
    "optimizer_chain": "optim",
    "l2_floor": "loss",
    "token_cross_entropy": "loss",
    "TimeToThresholdCallback": "callbacks",
    "first_crossings": "callbacks",
    "moving_average": "callbacks",
    "mean_train_loss": "callbacks",
    "build_tiny_llama": "tiny",
    "ALPACA_PROMPT_INPUT": "data",
    "ALPACA_PROMPT_NO_INPUT": "data",
    "format_alpaca": "data",
    "prepare_sft_dataset": "data",
    "load_training_data": "data",
    "TrainingData": "data",
    "write_provenance": "data",
    "UniformSFTConfig": "args",
    "UniformSFTArguments": "args",
    "parse_sft_args": "args",
    "check_deepspeed_optimizer": "sft",
    "UniformSFTTrainer": "sft",
    "load_model_and_tokenizer": "sft",
    "find_smollm2_gguf": "sft",
}
_ALIASES: dict[str, tuple[str, str]] = {}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS or name in _ALIASES:
        module_name, attr = _ALIASES.get(name, (_EXPORTS.get(name), name))
        value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
