"""Held-out loss: mean per-token cross-entropy on the response tokens of a split, prompt tokens masked.

The quantity the study's held-out thresholds are measured on, computed on exactly the tokens training
scores: :func:`format_pairs` renders a split with the training recipe's formatter, and
:func:`tokenize_prompt_response` tokenizes a pair as TRL's ``SFTTrainer`` does.

* :func:`heldout_loss`: a loaded model and tokenizer on ``(prompt, response)`` pairs → :class:`HeldoutLoss`.
* :func:`checkpoint_heldout_loss`: the same for a checkpoint folder and a data file, as a dict.
* :func:`load_model`: a checkpoint folder (or Hub id) → ``(model, tokenizer)``.

>>> HeldoutLoss(2.0, 10, 2).loss
2.0
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UniformError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class HeldoutLoss:
    """Mean per-token cross-entropy over the response tokens of a split.

    Attributes:
        loss: total response-token cross-entropy divided by the number of response tokens (nats/token).
        tokens: response tokens scored.
        examples: examples scored (those whose response was truncated away count as 0 tokens).
        truncated: examples cut at ``max_length``.

    Example:
        >>> HeldoutLoss(2.0, 10, 2).perplexity > 7.38
        True
    """

    loss: float
    tokens: int
    examples: int
    truncated: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def perplexity(self) -> float:
        """``exp(loss)``."""
        return math.exp(self.loss) if math.isfinite(self.loss) else math.inf


def _ids(out: Any) -> list[int]:
    if isinstance(out, Mapping) or hasattr(out, "keys"):
        out = out["input_ids"]
    out = list(out)
    if out and isinstance(out[0], list):  # a batch of one
        out = out[0]
    return [int(i) for i in out]


def tokenize_prompt_response(
    tokenizer: Any, prompt: str | list[dict[str, Any]], response: str | list[dict[str, Any]]
) -> tuple[list[int], list[int]]:
    """Token ids of prompt + response and labels with the prompt masked (-100), as TRL's SFT builds them.

    Mirrors ``SFTTrainer`` on prompt/completion data, so held-out loss scores the same tokens training does:
    text prompts are tokenized alone and followed by the response plus the EOS token; chat prompts go
    through the chat template (with the generation prompt alone, without it followed by the response). The
    response starts where the two token sequences diverge.

    Example:
        >>> class Tok:  # one token per character
        ...     eos_token = "$"
        ...     def __call__(self, text): return {"input_ids": [ord(c) for c in text]}
        >>> ids, labels = tokenize_prompt_response(Tok(), "ab", "c")
        >>> ids, labels
        ([97, 98, 99, 36], [-100, -100, 99, 36])
    """
    if isinstance(prompt, list):
        p = _ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
        full = _ids(tokenizer.apply_chat_template(prompt + list(response), tokenize=True))
    else:
        eos = getattr(tokenizer, "eos_token", None) or ""
        text = str(response)
        if eos and not text.endswith(eos):
            text += eos
        p = _ids(tokenizer(prompt))
        full = _ids(tokenizer(prompt + text))
    n = 0
    for a, b in zip(p, full, strict=False):
        if a != b:
            break
        n += 1
    return full, [IGNORE_INDEX] * n + full[n:]


def format_pairs(ds: Any, prompt_format: str = "auto") -> list[tuple[Any, Any]]:
    """``(prompt, response)`` pairs of a split, rendered by the training recipe's formatter.

    Uses :func:`hf_uniform.train.data.prepare_sft_dataset` (the paper's Alpaca/Llama-X prompt, chat
    messages, or prompt/completion columns), so the held-out loss sees the exact training prompt.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"instruction": ["Say hi."], "input": [""], "output": ["hi"]})
        >>> p, r = format_pairs(ds)[0]
        >>> p.endswith("### Response:"), r
        (True, 'hi')
    """
    from ..train.data import prepare_sft_dataset

    if {"prompt", "completion"} <= set(ds.column_names) and prompt_format == "auto":
        prepared = ds.select_columns(["prompt", "completion"])
    else:
        prepared = prepare_sft_dataset(ds, prompt_format)
    return list(zip(prepared["prompt"][:], prepared["completion"][:], strict=True))


def row_losses(
    model: Any,
    tokenizer: Any,
    pairs: Iterable[tuple[str, str]],
    *,
    max_length: int | None = 512,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = False,
) -> tuple[list[float], list[int], int]:
    """Per-row summed response-token cross-entropy and response-token counts, scored in batches.

    Returns ``(loss_sums, token_counts, truncated)`` in the order of ``pairs``. Rows are batched by length
    (less padding); a row is scored exactly as it would be alone (right padding, attention-masked), so the
    per-row sums equal batch-of-one scoring up to float rounding. A row whose response was truncated away
    contributes ``0.0`` and ``0`` tokens.

    Example:
        >>> row_losses(model, tok, [("Q: 2+2?\\nA:", " 4")])  # doctest: +SKIP
        ([5.8], [2], 0)
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    encoded = [tokenize_prompt_response(tokenizer, p, r) for p, r in pairs]
    truncated = 0
    if max_length is not None:
        truncated = sum(len(ids) > max_length for ids, _ in encoded)
        encoded = [(ids[:max_length], lab[:max_length]) for ids, lab in encoded]
    dev = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums, counts = [0.0] * len(encoded), [0] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # length-sorted batches pad less
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc="held-out loss", disable=not progress):
                rows = order[start:start + batch_size]
                width = max(len(encoded[i][0]) for i in rows)
                ids = torch.full((len(rows), width), pad, dtype=torch.long)
                lab = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
                att = torch.zeros((len(rows), width), dtype=torch.long)
                for j, i in enumerate(rows):
                    a, b = encoded[i]
                    ids[j, :len(a)] = torch.tensor(a)
                    lab[j, :len(b)] = torch.tensor(b)
                    att[j, :len(a)] = 1
                logits = model(input_ids=ids.to(dev), attention_mask=att.to(dev)).logits.float()
                shift_labels = lab[:, 1:].to(dev)
                per_token = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                            shift_labels.reshape(-1), ignore_index=IGNORE_INDEX,
                                            reduction="none").view(len(rows), -1)
                row_sum = per_token.double().sum(dim=1).tolist()
                row_n = (shift_labels != IGNORE_INDEX).sum(dim=1).tolist()
                for j, i in enumerate(rows):
                    sums[i], counts[i] = float(row_sum[j]), int(row_n[j])
    finally:
        model.train(was_training)
    return sums, counts, truncated


def heldout_loss(
    model: Any,
    tokenizer: Any,
    pairs: Iterable[tuple[str, str]],
    *,
    max_length: int | None = 512,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = False,
) -> HeldoutLoss:
    """Mean per-token cross-entropy on response tokens (prompt tokens masked) over ``(prompt, response)`` pairs.

    Token-weighted: the sum of response-token losses divided by the number of response tokens, so long
    responses weigh more (the quantity a per-token training loss estimates). Per-row sums come from
    :func:`row_losses`.

    Args:
        model: a causal LM (``transformers`` ``PreTrainedModel``).
        tokenizer: its tokenizer.
        pairs: ``(prompt, response)`` strings, e.g. from the training template
            (:func:`hf_uniform.evaluation.format_pairs`).
        max_length: cut longer sequences on the right (as training does).
        batch_size: sequences per forward pass.
        device: where to run (default: the model's device).
        progress: show a progress bar.

    Raises:
        UniformError: no pairs, or no response token survives truncation.

    Example:
        >>> from hf_uniform.evaluation import heldout_loss  # doctest: +SKIP
        >>> heldout_loss(model, tok, [("Q: 2+2?\\nA:", " 4")]).loss  # doctest: +SKIP
        5.8
    """
    pairs = list(pairs)
    if not pairs:
        raise UniformError("held-out loss needs at least one example; the held-out split is empty")
    sums, counts, truncated = row_losses(model, tokenizer, pairs, max_length=max_length, batch_size=batch_size,
                                         device=device, progress=progress)
    count = sum(counts)
    if count == 0:
        raise UniformError("no response token left to score; raise max_length or check the response column")
    return HeldoutLoss(math.fsum(sums) / count, count, len(pairs), truncated)


# --------------------------------------------------------------------------------------------- checkpoint


def load_model(path: str | os.PathLike, *, device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a checkpoint folder (or a Hub id).

    Raises:
        UniformError: the folder has no ``config.json`` or the model cannot be loaded.

    Example:
        >>> model, tok = load_model("out/uniform/seed0/model")  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if p.exists() and not (p / "config.json").exists():
        raise UniformError(f"{p} has no config.json: not a save_pretrained checkpoint folder")
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    except OSError as err:
        raise UniformError(f"cannot load a model from {path}: {str(err).splitlines()[0]}") from err
    return model.to(device), tok


def checkpoint_heldout_loss(
    model: str | os.PathLike | Any,
    heldout: Any,
    *,
    tokenizer: Any = None,
    device: str = "cpu",
    dtype: str = "float32",
    max_length: int | None = 512,
    prompt_format: str = "auto",
    batch_size: int = 8,
    limit: int | float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Held-out loss of a checkpoint folder (or a loaded model + ``tokenizer``) on a split, as a dict.

    The split is rendered into ``(prompt, response)`` pairs with the training recipe's formatter, so the
    prompt template matches training. ``limit`` scores only the first rows (a count, or a fraction < 1 of
    the split); ``progress`` shows a bar.

    Example:
        >>> checkpoint_heldout_loss("ckpt", "heldout.jsonl")["loss"]  # doctest: +SKIP
        2.41
    """
    from ..io import load_input

    if isinstance(model, (str, os.PathLike)):
        model, tokenizer = load_model(model, device=device, dtype=dtype)
    elif tokenizer is None:
        raise UniformError("pass the tokenizer with a loaded model")
    ds = load_input(heldout) if isinstance(heldout, (str, os.PathLike)) else heldout
    total = len(ds)
    if limit is not None:
        if isinstance(limit, bool) or not limit > 0:
            raise UniformError(f"held-out limit must be a positive count or a fraction in (0, 1), got {limit!r}")
        rows = int(limit) if limit >= 1 else max(1, round(float(limit) * total))
        ds = ds.select(range(min(rows, total)))
    pairs = format_pairs(ds, prompt_format=prompt_format)
    t0 = time.perf_counter()
    res = heldout_loss(model, tokenizer, pairs, max_length=max_length, batch_size=batch_size, progress=progress)
    return {"loss": res.loss, "perplexity": res.perplexity, "tokens": res.tokens, "examples": res.examples,
            "rows_in_split": total, "truncated": res.truncated, "max_length": max_length,
            "seconds": time.perf_counter() - t0}
