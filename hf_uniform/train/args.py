"""The recipe's arguments: ``UniformSFTConfig`` (``SFTConfig`` that also takes ``optim: l2_sgd``),
:class:`UniformSFTArguments` (data, selection, regime, time-to-threshold) and :func:`parse_sft_args`.

``hf-uniform sft`` (:mod:`hf_uniform.scripts.sft`) parses ``(UniformSFTConfig, ModelConfig, UniformSFTArguments)`` with TRL's
``TrlParser``: the YAML of ``--config`` gives defaults, the command line wins.

The paper's ℓ2-SGD regime is chosen like any optimizer, ``--optim l2_sgd`` (or ``optim: l2_sgd`` in the
YAML): :class:`UniformSFTConfig` adds ``l2_sgd`` to the choices of ``optim`` and keeps it as that plain
string. The recipe then passes :class:`~hf_uniform.train.L2SGD` to the trainer through
``optimizer_cls_and_kwargs`` (which DeepSpeed keeps, unlike ``optimizers=``), and with ``loss: auto`` uses
:func:`~hf_uniform.train.l2_loss`. A trainer built from such a config *without* that optimizer fails
loudly ("unsupported optimizer: l2_sgd") instead of silently training with another one.

>>> sft, model, uargs = parse_sft_args(["--output_dir", "out", "--use_cpu", "--bf16", "false", "--optim", "l2_sgd"])
>>> sft.optim, uargs.resolved_loss(sft.optim)
('l2_sgd', 'l2')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from transformers.training_args import OptimizerNames
from trl import ModelConfig, SFTConfig, TrlParser

from ..arguments import parse_config_args
from ..errors import UniformError
from .callbacks import DEFAULT_WINDOW
from .data import PROMPT_FORMATS, SUBSET_METHODS
from .loss import VARIANTS

#: Optimizers of ours that ``--optim`` accepts beside transformers' ``OptimizerNames``.
CUSTOM_OPTIMIZERS = ("l2_sgd",)
LOSSES = ("auto", "ce", "l2")


def optimizer_name(optim: Any) -> str:
    """The ``optim`` value of a config as a plain string (``OptimizerNames`` members give their value).

    Example:
        >>> optimizer_name(OptimizerNames.SGD), optimizer_name("l2_sgd")
        ('sgd', 'l2_sgd')
    """
    return str(getattr(optim, "value", optim))


@dataclass
class UniformSFTConfig(SFTConfig):
    """``trl.SFTConfig`` whose ``optim`` also accepts ``l2_sgd``, the paper's ℓ2-SGD regime.

    Every other value is transformers' (``OptimizerNames``), converted as ``SFTConfig`` does; ``l2_sgd`` stays
    a plain string, which only a trainer given ``optimizer_cls_and_kwargs`` can train with. Training tokens
    are always counted (``include_num_input_tokens_seen`` ``"no"`` becomes ``"non_padding"``): the
    time-to-threshold record reports the tokens to each threshold.

    Example:
        >>> UniformSFTConfig(output_dir="o", use_cpu=True, bf16=False, optim="l2_sgd").optim
        'l2_sgd'
        >>> UniformSFTConfig(output_dir="o", use_cpu=True, bf16=False, optim="sgd").optim.value
        'sgd'
    """

    optim: str = field(
        default=next(f.default for f in fields(SFTConfig) if f.name == "optim"),
        metadata={"help": "The optimizer: one of transformers' OptimizerNames, or l2_sgd (the paper's SGD, "
                          "hf_uniform.train.L2SGD, with the l2 loss unless --loss says otherwise)",
                  "choices": [*(o.value for o in OptimizerNames), *CUSTOM_OPTIMIZERS]})

    def __post_init__(self) -> None:
        if self.include_num_input_tokens_seen in ("no", False, None):
            self.include_num_input_tokens_seen = "non_padding"  # the tokens to each loss threshold
        custom = optimizer_name(self.optim) if optimizer_name(self.optim) in CUSTOM_OPTIMIZERS else None
        if custom is not None:
            self.optim = OptimizerNames.SGD.value  # transformers validates optim against its own names
        super().__post_init__()
        if custom is not None:
            self.optim = custom


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
    uniform_k: str | None = field(default=None, metadata={
        "help": "select a subset of this many rows (a whole number) or this fraction (in (0, 1)) on the fly, as "
                "hf-uniform select -k; unset or none = the whole pool"})
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
    sgd_momentum: float = field(default=0.0, metadata={"help": "L2SGD momentum (paper: 0)"})
    loss: str = field(default="auto", metadata={
        "help": "ce, l2, or auto (l2 with --optim l2_sgd, else ce)", "choices": LOSSES})
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
                  "loss": LOSSES, "l2_variant": VARIANTS,
                  "uniform_metric": ("cosine", "euclidean")}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise UniformError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        from .data import _k_value

        self.uniform_k = _k_value(self.uniform_k)  # the one k rule (text as -k; 1.0 refused), form only
        if isinstance(self.loss_thresholds, (int, float)):
            self.loss_thresholds = [float(self.loss_thresholds)]

    def resolved_loss(self, optim: Any = None) -> str:
        """``"l2"`` or ``"ce"``: ``loss``, with ``auto`` meaning l2 exactly when ``optim`` is ``l2_sgd``.

        Example:
            >>> UniformSFTArguments().resolved_loss("l2_sgd"), UniformSFTArguments(loss="l2").resolved_loss()
            ('l2', 'l2')
        """
        if self.loss != "auto":
            return self.loss
        return "l2" if optimizer_name(optim) == "l2_sgd" else "ce"


#: The recipe's dataclasses, in the order :func:`parse_sft_args` returns them.
SFT_ARGUMENT_CLASSES = (UniformSFTConfig, ModelConfig, UniformSFTArguments)


def parse_sft_args(argv: Sequence[str] | None = None, parser: TrlParser | None = None,
                   ) -> tuple[UniformSFTConfig, ModelConfig, UniformSFTArguments]:
    """Parse ``[--config FILE.yaml] [--key value ...]`` into ``(UniformSFTConfig, ModelConfig, UniformSFTArguments)``.

    ``parser`` is a ``TrlParser`` over :data:`SFT_ARGUMENT_CLASSES` (built here when not given); ``argv``
    defaults to ``sys.argv[1:]``.

    Raises:
        UniformError: an argument nobody knows (YAML or command line) or a bad value; the message names it.

    Example:
        >>> sft, model, uargs = parse_sft_args(["--output_dir", "o", "--use_cpu", "--bf16", "false",
        ...                                     "--uniform_k", "0.5", "--max_length", "64"])
        >>> sft.max_length, uargs.uniform_k
        (64, 0.5)
    """
    parser = parser if parser is not None else TrlParser(SFT_ARGUMENT_CLASSES)
    sft_args, model_args, uargs = parse_config_args(parser, argv, "recipe")
    return sft_args, model_args, uargs
