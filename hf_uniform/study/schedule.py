"""Held-out losses on a fixed step schedule during training, outside the training clock.

The study's primary outcome is measured here: every ``every`` optimizer steps (and at the last step) the
model in training is scored on each held-out set (the in-source split and a second source) with
:func:`hf_uniform.evaluation.row_losses`, token-weighted. The wall and CPU seconds each evaluation takes are
recorded, so the training clock can exclude them (:func:`exclude_eval_time`).

Example:
    >>> exclude_eval_time([1, 2, 3], [1.0, 5.0, 6.0], [{"step": 2, "eval_seconds": 3.0}])
    [1.0, 2.0, 3.0]
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import TrainerCallback

__all__ = ["HeldoutScheduleCallback", "exclude_eval_time", "schedule_steps"]


def schedule_steps(max_steps: int, every: int) -> list[int]:
    """The steps the schedule evaluates at: every ``every`` steps, plus the last step.

    Example:
        >>> schedule_steps(20, 8)
        [8, 16, 20]
    """
    steps = list(range(every, max_steps + 1, every)) if every > 0 else []
    if max_steps > 0 and (not steps or steps[-1] != max_steps):
        steps.append(max_steps)
    return steps


def exclude_eval_time(steps: Sequence[int], seconds: Sequence[float | None],
                      points: Sequence[Mapping[str, Any]], key: str = "eval_seconds") -> list[float | None]:
    """Training-clock ``seconds`` at each logged step minus the scheduled evaluations up to that step.

    An evaluation at step ``s`` runs in ``on_step_end``, before the training loss of step ``s`` is logged, so
    it is inside that step's clock reading: it is subtracted from step ``s`` on.

    Example:
        >>> exclude_eval_time([1, 2], [2.0, 4.0], [{"step": 1, "eval_seconds": 1.5}])
        [0.5, 2.5]
    """
    out: list[float | None] = []
    for s, t in zip(steps, seconds, strict=True):
        if t is None:
            out.append(None)
            continue
        out.append(float(t) - math.fsum(float(p[key]) for p in points if int(p["step"]) <= int(s)))
    return out


class HeldoutScheduleCallback(TrainerCallback):
    """Score the model on held-out sets every ``every`` steps and at the end of training.

    Args:
        sets: ``{name: [(prompt, response), ...]}`` (e.g. from :func:`hf_uniform.evaluation.format_pairs`).
        every: evaluate when ``global_step % every == 0`` and at the last step.
        max_length: truncate as training does.
        batch_size: sequences per forward pass.

    ``points`` holds one record per evaluation: ``{"step", "eval_seconds", "eval_cpu_seconds", name: {"loss",
    "tokens"}}``.

    Example:
        >>> cb = HeldoutScheduleCallback({"heldout": [("Q:", "A")]}, every=8)
        >>> cb.points, cb.every
        ([], 8)
    """

    def __init__(self, sets: Mapping[str, Sequence[tuple[Any, Any]]], *, every: int, max_length: int | None = 512,
                 batch_size: int = 8) -> None:
        self.sets = {name: list(pairs) for name, pairs in sets.items() if pairs}
        self.every = int(every)
        self.max_length = max_length
        self.batch_size = batch_size
        self.points: list[dict[str, Any]] = []

    def _due(self, state: Any) -> bool:
        step = int(state.global_step)
        if step <= 0 or any(p["step"] == step for p in self.points):
            return False
        return step % self.every == 0 or (state.max_steps and step >= int(state.max_steps))

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                    **kwargs: Any) -> None:
        """Evaluate when the schedule says so (before the step's loss is logged)."""
        if model is None or not self._due(state):
            return
        from ..evaluation import row_losses

        tok = processing_class if processing_class is not None else kwargs.get("tokenizer")
        t0, c0 = time.perf_counter(), time.process_time()
        point: dict[str, Any] = {"step": int(state.global_step)}
        for name, pairs in self.sets.items():
            sums, counts, _ = row_losses(model, tok, pairs, max_length=self.max_length, batch_size=self.batch_size)
            n = sum(counts)
            point[name] = {"loss": math.fsum(sums) / n if n else None, "tokens": int(n)}
        point["eval_seconds"] = time.perf_counter() - t0
        point["eval_cpu_seconds"] = time.process_time() - c0
        self.points.append(point)
