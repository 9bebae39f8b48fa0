"""The paper's ℓ2 (squared-error) loss on causal-LM logits, without the one-hot tensor.

The authors' ℓ2 regime trains with the mean squared error between the raw logits ``z`` and the one-hot
encoding ``e_y`` of the next token, over the response tokens, averaged over tokens × vocabulary. Expanding
the square gives, per token, ``||z - e_y||² = Σ_v z_v² − 2 z_y + 1``, which needs one reduction and one
gather instead of a ``(tokens, vocab)`` one-hot tensor, so the memory matches cross-entropy.

``variant="softmax"`` applies the same formula to ``softmax(z)`` (the Brier score the authors also tried).

>>> import torch
>>> logits = torch.zeros(1, 3, 4)          # batch 1, 3 positions, vocabulary 4
>>> labels = torch.tensor([[-100, 1, 2]])   # unshifted, as the model receives them
>>> float(l2_loss(logits, labels))          # each target token: (0 - 2*0 + 1) / 4
0.25
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UniformError

VARIANTS = ("logits", "softmax")


def _shift(labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Next-token targets, as transformers' ``ForCausalLMLoss`` builds them: pad right, drop the first."""
    return torch.nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]


def l2_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    variant: str = "logits",
    *,
    num_items_in_batch: int | torch.Tensor | None = None,
    shift: bool = True,
) -> torch.Tensor:
    """Mean squared error between the logits (or probabilities) and one-hot next-token targets.

    ``labels`` come unshifted, exactly as a causal LM receives them (``-100`` on prompt and padding
    positions); the function shifts them like transformers' causal-LM loss. The result is
    ``Σ_tokens ||f(z) − e_y||² / (tokens × vocab)`` with ``f`` the identity (``"logits"``, the paper's ℓ2
    loss) or the softmax (``"softmax"``, the Brier score), computed as ``Σ f(z)² − 2 f(z)_y + 1`` per token
    without building the one-hot tensor. Arithmetic is float32 even for half-precision logits.

    Args:
        logits: ``(..., seq, vocab)`` raw model outputs.
        labels: ``(..., seq)`` token ids, ``ignore_index`` where no loss is taken.
        ignore_index: label value that is skipped.
        variant: ``"logits"`` or ``"softmax"``.
        num_items_in_batch: divide by this token count instead of the batch's own (what ``Trainer`` passes
            under gradient accumulation, so the accumulated loss is the mean over the whole batch).
        shift: shift the labels by one position (``False`` when they are already next-token targets).

    Returns:
        A scalar tensor (zero, with a gradient, when no token counts).

    Example:
        >>> import torch
        >>> z = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
        >>> float(l2_loss(z, torch.tensor([[5, 0]])))   # target 0 at position 0: ((2-1)^2 + 0^2) / 2
        0.5
    """
    if variant not in VARIANTS:
        raise UniformError(f"unknown l2_loss variant {variant!r}; use one of {VARIANTS}")
    if logits.shape[:-1] != labels.shape:
        raise UniformError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree; "
                           "pass logits (..., seq, vocab) and labels (..., seq)")
    vocab = logits.shape[-1]
    targets = _shift(labels, ignore_index) if shift else labels
    z = logits.reshape(-1, vocab)  # a view: no copy of the logits
    targets = targets.reshape(-1).to(z.device)
    mask = targets != ignore_index
    safe = torch.where(mask, targets, torch.zeros_like(targets))
    acc = torch.promote_types(z.dtype, torch.float32)  # float32 for half logits, float64 stays float64
    count = mask.sum() if num_items_in_batch is None else num_items_in_batch
    denom = torch.as_tensor(count, device=z.device, dtype=acc).clamp(min=1) * vocab
    if variant == "logits":
        return _L2Logits.apply(z, safe, mask, denom)
    p = torch.softmax(z.to(acc), dim=-1)  # saved for backward, like cross-entropy's log-softmax
    sq = torch.linalg.vector_norm(p, ord=2, dim=-1).square()
    py = p.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return ((sq - 2.0 * py + 1.0) * mask).sum() / denom


class _L2Logits(torch.autograd.Function):
    """``Σ_masked (||z||² − 2 z_y + 1) / denom`` with a hand-written backward.

    The forward is a norm reduction and a gather (no ``(tokens, vocab)`` temporary). The backward writes
    ``2 (z − e_y) / denom`` on target rows into a single ``(tokens, vocab)`` buffer, the gradient itself, so
    the peak memory is that of cross-entropy's backward or less.
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                denom: torch.Tensor) -> torch.Tensor:
        acc = denom.dtype
        sq = torch.linalg.vector_norm(z, ord=2, dim=-1, dtype=acc).square()
        zy = z.gather(-1, targets.unsqueeze(-1)).squeeze(-1).to(acc)
        ctx.save_for_backward(z, targets, mask, denom)
        return ((sq - 2.0 * zy + 1.0) * mask).sum() / denom

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        z, targets, mask, denom = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        scale = (2.0 * grad_out / denom).to(torch.promote_types(z.dtype, torch.float32))
        row_scale = (mask.to(scale.dtype) * scale).to(z.dtype).unsqueeze(-1)  # 0 on ignored rows
        grad = z * row_scale  # the one (tokens, vocab) allocation
        grad.scatter_add_(-1, targets.unsqueeze(-1), -row_scale)
        return grad, None, None, None


class L2Loss:
    """``compute_loss_func`` for ``Trainer``/``SFTTrainer``: ``loss = l2_loss(outputs.logits, labels)``.

    Args:
        variant: ``"logits"`` (the paper's ℓ2 loss) or ``"softmax"`` (Brier score).
        ignore_index: label value that is skipped.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> out = SimpleNamespace(logits=torch.zeros(1, 2, 4))
        >>> float(L2Loss()(out, torch.tensor([[0, 3]])))
        0.25
    """

    def __init__(self, variant: str = "logits", ignore_index: int = -100):
        if variant not in VARIANTS:
            raise UniformError(f"unknown l2 loss variant {variant!r}; use one of {VARIANTS}")
        self.variant = variant
        self.ignore_index = ignore_index

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        """The loss of one (micro-)batch; ``outputs`` is a model output or a dict with ``logits``."""
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        return l2_loss(logits, labels, self.ignore_index, self.variant, num_items_in_batch=num_items_in_batch)

    def __repr__(self) -> str:
        return f"L2Loss(variant={self.variant!r})"


def l2_floor(vocab_size: int, variant: str = "logits") -> float:
    """The ℓ2 loss of the trivial predictor: all-zero logits (``1/V``) or uniform probabilities (``(1 − 1/V)/V``).

    A falling ℓ2 loss above this value can come from shrinking logits alone; ``loss / l2_floor(V)`` (the
    ``l2_over_floor`` the recipe logs) is below 1 only when the model predicts better than all-zero logits.

    Example:
        >>> l2_floor(4), l2_floor(4, "softmax")
        (0.25, 0.1875)
    """
    if variant not in VARIANTS:
        raise UniformError(f"unknown l2 loss variant {variant!r}; use one of {VARIANTS}")
    v = float(vocab_size)
    return 1.0 / v if variant == "logits" else (1.0 - 1.0 / v) / v


@torch.no_grad()
def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                        chunk_rows: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of next-token cross-entropy, number of tokens)`` over the labelled positions, no gradient.

    A diagnostic for runs trained with another loss: computed from logits already in memory, in chunks of
    ``chunk_rows`` labelled positions (float32), so the extra memory stays at ``chunk_rows × vocab`` floats.
    ``labels`` come unshifted, as for :func:`l2_loss`.

    Example:
        >>> import math
        >>> s, n = token_cross_entropy(torch.zeros(1, 3, 4), torch.tensor([[-100, 1, 2]]))
        >>> round(float(s) / int(n), 6) == round(math.log(4), 6), int(n)
        (True, 2)
    """
    vocab = logits.shape[-1]
    z = logits.reshape(-1, vocab)
    targets = _shift(labels, ignore_index).reshape(-1).to(z.device)
    rows = (targets != ignore_index).nonzero(as_tuple=True)[0]
    total = torch.zeros((), dtype=torch.float64, device=z.device)
    for start in range(0, rows.numel(), chunk_rows):
        idx = rows[start:start + chunk_rows]
        part = z.index_select(0, idx).float()
        total += (torch.logsumexp(part, dim=-1) - part.gather(-1, targets[idx].unsqueeze(-1)).squeeze(-1)).sum()
    return total, torch.as_tensor(rows.numel(), device=z.device)

