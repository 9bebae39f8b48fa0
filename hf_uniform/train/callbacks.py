"""Time to a loss threshold: the measurement behind the paper's training-speed claims.

:class:`TimeToThresholdCallback` watches the training loss (or ``eval_loss``) as the ``Trainer`` logs it,
optionally smoothed, and records the first optimizer step and the wall-clock seconds since training
began at which it falls below each threshold. It also keeps the whole ``(step, seconds, value)`` curve so
a report can plot loss against wall-clock time, and writes everything to ``time_to_threshold.json`` in
``output_dir`` (atomically). Its state travels in every checkpoint, so the clock keeps running across a
resume instead of restarting at zero.

>>> cb = TimeToThresholdCallback(thresholds=(1.0, 0.5))
>>> cb.threshold_keys
['1', '0.5']
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from ..errors import UniformError
from ..io import atomic_write_json

logger = logging.getLogger(__name__)

FILENAME = "time_to_threshold.json"


def threshold_key(t: float) -> str:
    """The text form of a threshold used in log keys and JSON (``0.65`` -> ``"0.65"``).

    Example:
        >>> threshold_key(0.34), threshold_key(2.0)
        ('0.34', '2')
    """
    return f"{float(t):g}"


class TimeToThresholdCallback(TrainerCallback, ExportableState):
    """Record when the (smoothed) loss first falls below each threshold, in steps and wall-clock seconds.

    The clock starts at ``on_train_begin`` (after model loading, data preparation and DeepSpeed set-up),
    so it measures training alone. Each log event with ``metric`` in it adds a point to the curve; the
    first time the (smoothed) value is strictly below a threshold, the step and seconds are stored, logged
    as ``time_to_threshold/<t>`` (and ``steps_to_threshold/<t>``) through the trainer's loggers and written
    to ``output_dir/time_to_threshold.json``. The file is also rewritten at every checkpoint save and at the
    end of training; only the world's main process writes. With ``logging_steps > 1`` the logged loss is
    the mean since the previous log, as ``Trainer`` reports it.

    Resume: the callback is an ``ExportableState``, so its records and the elapsed time are saved inside
    each checkpoint's ``trainer_state.json``; on ``on_train_begin`` of a resumed run it restores them from
    there (whatever ``restore_callback_states_from_checkpoint`` says), and the seconds continue from the
    checkpoint's value.

    Logging: call :meth:`attach` (or :meth:`bind` after ``trainer.add_callback``) so the records go
    through ``trainer.log`` to every logger and into ``trainer_state.json``'s log history; unbound, the
    callback adds them to the ``logs`` dict it receives, which reaches the loggers placed after it.

    Args:
        thresholds: loss values to reach, e.g. the paper's ``(0.65, 0.34)``.
        metric: the logged key to watch: ``"loss"`` (training) or ``"eval_loss"``.
        smoothing: exponential-moving-average factor ``β`` in ``[0, 1)``; the smoothed value is the
            bias-corrected EMA ``m_t / (1 − β^t)`` with ``m_t = β m_{t−1} + (1 − β) x_t``. ``0`` = raw values.
        stop_after_last: stop training once every threshold is reached.
        filename: name of the JSON file in ``output_dir``.
        clock: a seconds counter (default ``time.perf_counter``); tests pass a scripted one.

    Example:
        >>> from transformers import TrainingArguments, TrainerState, TrainerControl
        >>> import tempfile
        >>> ticks = iter(range(100))
        >>> cb = TimeToThresholdCallback(thresholds=(1.0,), clock=lambda: float(next(ticks)))
        >>> args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[])
        >>> state, control = TrainerState(), TrainerControl()
        >>> cb.on_train_begin(args, state, control)
        >>> for step, loss in [(1, 2.0), (2, 0.9)]:
        ...     state.global_step = step
        ...     cb.on_log(args, state, control, logs={"loss": loss})
        >>> cb.reached["1"]
        {'step': 2, 'seconds': 2.0, 'value': 0.9}
    """

    def __init__(
        self,
        thresholds: Sequence[float] = (0.65, 0.34),
        metric: str = "loss",
        smoothing: float = 0.0,
        stop_after_last: bool = False,
        filename: str = FILENAME,
        clock: Callable[[], float] | None = None,
    ):
        if isinstance(thresholds, (int, float)):
            thresholds = [thresholds]
        values = [float(t) for t in thresholds]
        if not values or any(not math.isfinite(t) for t in values):
            raise UniformError(f"thresholds must be a non-empty list of finite numbers, got {list(thresholds)}")
        if not 0.0 <= float(smoothing) < 1.0:
            raise UniformError(f"smoothing must be in [0, 1) (an EMA factor; 0 = raw loss), got {smoothing}")
        if not metric or not isinstance(metric, str):
            raise UniformError(f"metric must be a logged key such as 'loss' or 'eval_loss', got {metric!r}")
        self.thresholds = sorted(set(values), reverse=True)
        self.metric = metric
        self.smoothing = float(smoothing)
        self.stop_after_last = bool(stop_after_last)
        self.filename = filename
        self._clock = clock or time.perf_counter
        self._trainer_ref: Any = None
        self._t0: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.elapsed_offset = 0.0  # seconds trained before this session (restored on resume)
        self.reached: dict[str, dict[str, Any] | None] = {threshold_key(t): None for t in self.thresholds}
        self.curve: dict[str, list[Any]] = {"step": [], "seconds": [], "value": [], "smoothed": []}
        self.ema = 0.0
        self.ema_count = 0
        self.sessions = 0

    @property
    def threshold_keys(self) -> list[str]:
        """Thresholds as the strings used in log keys, highest first."""
        return [threshold_key(t) for t in self.thresholds]

    # ---- binding to a trainer (for logging through its loggers) -------------------------------------
    def bind(self, trainer: Any) -> TimeToThresholdCallback:
        """Log records through ``trainer.log`` (weak reference; the callback must already be added).

        Example:
            >>> cb = TimeToThresholdCallback()
            >>> class T: pass
            >>> t = T(); cb.bind(t) is cb
            True
        """
        self._trainer_ref = weakref.ref(trainer)
        return self

    def attach(self, trainer: Any) -> TimeToThresholdCallback:
        """``trainer.add_callback(self)`` and :meth:`bind`; returns ``self``.

        Example:
            >>> cb = TimeToThresholdCallback()
            >>> class T:
            ...     def add_callback(self, cb): self.cb = cb
            >>> t = T(); cb.attach(t).threshold_keys == t.cb.threshold_keys
            True
        """
        trainer.add_callback(self)
        return self.bind(trainer)

    # ---- ExportableState: saved into every checkpoint's trainer_state.json ---------------------------
    def state(self) -> dict[str, Any]:
        """The callback's arguments and records, with the seconds trained so far (for checkpoints)."""
        return {
            "args": {"thresholds": list(self.thresholds), "metric": self.metric, "smoothing": self.smoothing,
                     "stop_after_last": self.stop_after_last, "filename": self.filename},
            "attributes": {"elapsed_offset": self.elapsed(), "reached": dict(self.reached),
                           "curve": {k: list(v) for k, v in self.curve.items()}, "ema": self.ema,
                           "ema_count": self.ema_count, "sessions": self.sessions},
        }

    def _restore(self, saved: dict[str, Any]) -> None:
        attrs = saved.get("attributes", {})
        self.elapsed_offset = float(attrs.get("elapsed_offset", 0.0))
        reached = attrs.get("reached", {})
        self.reached = {k: reached.get(k) for k in self.threshold_keys}
        curve = attrs.get("curve") or {}
        self.curve = {k: list(curve.get(k, [])) for k in ("step", "seconds", "value", "smoothed")}
        self.ema = float(attrs.get("ema", 0.0))
        self.ema_count = int(attrs.get("ema_count", 0))
        self.sessions = int(attrs.get("sessions", 0))

    # ---- clock ---------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds of training so far, including the sessions before a resume.

        Example:
            >>> TimeToThresholdCallback().elapsed()
            0.0
        """
        if self._t0 is None:
            return self.elapsed_offset
        return self.elapsed_offset + (self._clock() - self._t0)

    # ---- events --------------------------------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        """Start the clock; on a resumed run, restore the records saved in the checkpoint first."""
        saved = None
        if state.global_step > 0:
            stored = (state.stateful_callbacks or {}).get(type(self).__name__)
            if isinstance(stored, list):
                stored = stored[-1] if stored else None
            if isinstance(stored, dict):
                saved = stored
            else:
                logger.warning("resuming at step %d without a saved %s state: time_to_threshold restarts at 0 s",
                               state.global_step, type(self).__name__)
        if saved is not None:
            self._restore(saved)
            # Points logged after the checkpoint belong to the lost session: drop them.
            keep = [i for i, s in enumerate(self.curve["step"]) if s <= state.global_step]
            self.curve = {k: [v[i] for i in keep] for k, v in self.curve.items()}
            logger.info("time_to_threshold: resuming at step %d after %.1f s of training",
                        state.global_step, self.elapsed_offset)
        elif state.global_step == 0:
            self._reset()
        self.sessions += 1
        self._t0 = self._clock()

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Add a curve point when ``metric`` is logged; record, log and write newly reached thresholds."""
        if not logs or self.metric not in logs:
            return
        value = logs[self.metric]
        try:
            value = float(value)
        except (TypeError, ValueError):
            return
        if not math.isfinite(value):
            return
        seconds = self.elapsed()
        if self.smoothing:
            self.ema_count += 1
            self.ema = self.smoothing * self.ema + (1.0 - self.smoothing) * value
            smoothed = self.ema / (1.0 - self.smoothing ** self.ema_count)
        else:
            smoothed = value
        step = int(state.global_step)
        self.curve["step"].append(step)
        self.curve["seconds"].append(seconds)
        self.curve["value"].append(value)
        self.curve["smoothed"].append(smoothed)
        new: dict[str, float] = {}
        for t, key in zip(self.thresholds, self.threshold_keys, strict=True):
            if self.reached[key] is None and smoothed < t:
                self.reached[key] = {"step": step, "seconds": seconds, "value": smoothed}
                new[f"time_to_threshold/{key}"] = seconds
                new[f"steps_to_threshold/{key}"] = step
        if not new:
            return
        for key in self.threshold_keys:
            rec = self.reached[key]
            if rec is not None and f"time_to_threshold/{key}" in new:
                logger.info("%s fell below %s at step %d after %.2f s", self.metric, key, rec["step"],
                            rec["seconds"])
        if self.stop_after_last and all(v is not None for v in self.reached.values()):
            logger.info("every threshold reached: stopping training")
            control.should_training_stop = True
        if state.is_world_process_zero:
            self.write(args.output_dir, state)
        trainer = self._trainer_ref() if self._trainer_ref is not None else None
        if trainer is not None:
            trainer.log(dict(new))  # a log event without `metric`: ignored when it comes back here
        else:
            logs.update(new)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        """Rewrite the JSON beside the checkpoint (the state itself is in ``trainer_state.json``)."""
        if state.is_world_process_zero:
            self.write(args.output_dir, state)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        """Write the final JSON, with the total training seconds."""
        if state.is_world_process_zero:
            self.write(args.output_dir, state)

    # ---- output --------------------------------------------------------------------------------------
    def result(self, state: TrainerState | None = None) -> dict[str, Any]:
        """The JSON-ready record: thresholds reached (step, seconds, value), totals and the curve.

        Example:
            >>> TimeToThresholdCallback(thresholds=(0.5,)).result()["time_to_threshold"]
            {'0.5': None}
        """
        return {
            "metric": self.metric,
            "smoothing": self.smoothing,
            "thresholds": list(self.thresholds),
            "time_to_threshold": {k: (v["seconds"] if v else None) for k, v in self.reached.items()},
            "steps_to_threshold": {k: (v["step"] if v else None) for k, v in self.reached.items()},
            "reached": dict(self.reached),
            "train_seconds": self.elapsed(),
            "global_step": int(state.global_step) if state is not None else (
                self.curve["step"][-1] if self.curve["step"] else 0),
            "sessions": self.sessions,
            "curve": {k: list(v) for k, v in self.curve.items()},
        }

    def write(self, output_dir: str | Path, state: TrainerState | None = None) -> Path:
        """Write :meth:`result` to ``output_dir/filename`` atomically (temporary file, then rename).

        Example:
            >>> import tempfile, json
            >>> p = TimeToThresholdCallback(thresholds=(0.5,)).write(tempfile.mkdtemp())
            >>> json.loads(p.read_text())["thresholds"]
            [0.5]
        """
        return atomic_write_json(Path(output_dir) / self.filename, self.result(state))
