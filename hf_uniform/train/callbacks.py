"""Time to a loss threshold: the measurement behind the paper's training-speed claims.

:class:`TimeToThresholdCallback` watches the training loss (or ``eval_loss``) as the ``Trainer`` logs it
and keeps a curve with one entry per logged value::

    {"step": 12, "seconds": 8.41, "cpu_seconds": 15.9, "tokens": 30112, "loss": 2.87, "smoothed_loss": 2.95}

* ``seconds``: wall-clock seconds of training (``time.perf_counter``) since ``on_train_begin``;
* ``cpu_seconds``: CPU seconds of the training process (``time.process_time``: user + system time of
  *all threads* of this process; not of DataLoader worker processes, and in a multi-process run those of
  the main process only). On a shared machine wall seconds can vary 10× for the same run, CPU seconds
  much less, and steps or tokens not at all: report them side by side;
* ``tokens``: training tokens seen, padding excluded (the ``Trainer``'s ``num_input_tokens_seen`` with
  ``include_num_input_tokens_seen="non_padding"``, summed over processes; ``None`` when not counted);
* ``loss``: the watched value (``metric``) as logged; ``smoothed_loss``: its trailing moving average.

A threshold is *reached* when the value is ``<=`` it (:data:`OPERATOR`; the study uses the same
:func:`first_crossings`). Crossings are taken on the moving average of the loss over the last ``window``
optimizer steps (default :data:`DEFAULT_WINDOW` = 10 steps; with ``logging_steps > 1`` each logged loss
already averages its own steps and the window covers the entries with ``step > s − window``; at the start
of training the window holds the entries so far). Raw crossings (``window=1``) are kept beside them, so
one lucky batch can no longer set the record unnoticed. Clock, CPU clock, curve and records travel in
every checkpoint (``ExportableState``), so a resumed run continues where the checkpoint stopped; the token
count travels in ``trainer_state.json`` itself.

>>> curve = [{"step": s, "loss": v} for s, v in enumerate([3.0, 1.0, 3.0, 1.0, 1.0], 1)]
>>> r = first_crossings(curve, [1.5], window=2)["1.5"]
>>> r["raw"]["step"], r["smoothed"]["step"], r["smoothed"]["value"]   # raw dips at step 2; mean(1, 1) at 5
(2, 5, 1.0)
"""

from __future__ import annotations

import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from ..errors import UniformError
from ..io import atomic_write_json

logger = logging.getLogger(__name__)

FILENAME = "time_to_threshold.json"
#: Default moving-average window of the threshold crossings, in optimizer steps.
DEFAULT_WINDOW = 10
#: The one comparison used everywhere: a threshold ``t`` is reached when the value is ``<= t``.
OPERATOR = "<="
#: Keys every curve entry carries (``tokens`` may be ``None`` when the trainer does not count tokens).
CURVE_KEYS = ("step", "seconds", "cpu_seconds", "tokens", "loss")
#: Extra logged values copied into curve entries when present (the ℓ2 regime's diagnostics).
EXTRA_KEYS = ("ce_loss", "mean_token_accuracy", "l2_over_floor")


def threshold_key(t: float) -> str:
    """The text form of a threshold used in log keys and JSON (``0.65`` -> ``"0.65"``).

    Example:
        >>> threshold_key(0.34), threshold_key(2.0)
        ('0.34', '2')
    """
    return f"{float(t):g}"


def reaches(value: float | None, threshold: float) -> bool:
    """``True`` when ``value`` reaches ``threshold``: finite and ``value <= threshold`` (:data:`OPERATOR`).

    Example:
        >>> reaches(0.65, 0.65), reaches(0.66, 0.65), reaches(float("nan"), 1.0), reaches(None, 1.0)
        (True, False, False, False)
    """
    return value is not None and math.isfinite(value) and value <= threshold


def _check_window(window: int) -> int:
    if isinstance(window, bool) or not isinstance(window, int) and not (
            isinstance(window, float) and window.is_integer()):
        raise UniformError(f"window must be a whole number of steps >= 1 (1 = raw loss), got {window!r}")
    if int(window) < 1:
        raise UniformError(f"window must be a whole number of steps >= 1 (1 = raw loss), got {window!r}")
    return int(window)


def _window_mean(steps: Sequence[int], values: Sequence[float | None], i: int, window: int) -> float | None:
    """Mean of the finite ``values[j]`` with ``j <= i`` and ``steps[j] > steps[i] - window`` (in order)."""
    lo = steps[i] - window
    total, count = 0.0, 0
    j = i
    while j >= 0 and steps[j] > lo:
        v = values[j]
        if v is not None and math.isfinite(v):
            total += v
            count += 1
        j -= 1
    return total / count if count else None


def _columns(curve: Any, key: str) -> tuple[list[dict[str, Any]], list[int], list[float | None]]:
    """Entries (dicts), steps and values of ``curve``: a list of entries or a dict of columns."""
    if isinstance(curve, Mapping):
        if "step" not in curve or key not in curve:
            raise UniformError(f"a curve given as columns needs 'step' and {key!r}, got {sorted(curve)}")
        names = list(curve)
        n = len(curve["step"])
        entries = [{name: curve[name][i] for name in names if i < len(curve[name])} for i in range(n)]
    else:
        entries = [dict(e) for e in curve]
    steps, values = [], []
    for e in entries:
        if "step" not in e or key not in e:
            raise UniformError(f"every curve entry needs 'step' and {key!r}; got {sorted(e)}")
        steps.append(int(e["step"]))
        v = e[key]
        values.append(None if v is None else float(v))
    if any(b < a for a, b in zip(steps, steps[1:], strict=False)):
        raise UniformError("curve steps must not decrease; sort the entries by step")
    return entries, steps, values


def moving_average(curve: Any, window: int = DEFAULT_WINDOW, key: str = "loss") -> list[float | None]:
    """Trailing mean of ``key`` over the last ``window`` steps at each entry of ``curve``.

    Entry ``i`` averages the entries ``j <= i`` with ``step_j > step_i − window`` (non-finite values
    skipped); ``window=1`` gives the raw values. ``curve`` is a list of entries or a dict of columns.

    Example:
        >>> moving_average([{"step": s, "loss": v} for s, v in [(1, 4.0), (2, 2.0), (3, 0.0)]], window=2)
        [4.0, 3.0, 1.0]
    """
    window = _check_window(window)
    _, steps, values = _columns(curve, key)
    return [_window_mean(steps, values, i, window) for i in range(len(steps))]


def after_updates(step: int, min_updates: int) -> bool:
    """Was the loss logged at ``step`` computed after at least ``min_updates`` optimizer updates?

    The loss logged at step ``s`` is computed before update ``s``, i.e. after ``s - 1`` updates.

    Example:
        >>> after_updates(1, 1), after_updates(2, 1), after_updates(1, 0)
        (False, True, True)
    """
    return step - 1 >= min_updates


def first_crossings(curve: Any, thresholds: Iterable[float], window: int = DEFAULT_WINDOW,
                    key: str = "loss", *, full_window: bool = False,
                    min_updates: int = 0) -> dict[str, dict[str, dict[str, Any] | None]]:
    """First entry of ``curve`` reaching each threshold, on the moving average and on the raw value.

    Args:
        curve: entries (mappings with ``step`` and ``key``; e.g. ``seconds``, ``cpu_seconds``, ``tokens``) in
            step order, or a dict of equally long columns.
        thresholds: values to reach; reaching means ``value <= threshold`` (:func:`reaches`).
        window: moving-average window in steps (see :func:`moving_average`); ``1`` = raw.
        key: the entry key holding the value.
        full_window: count a crossing only where the window holds ``window`` logged steps (no partial window
            at the start of training).
        min_updates: count a crossing only where every loss in the window was computed after at least this
            many optimizer updates (the loss logged at step ``s`` is computed with the weights after ``s - 1``
            updates, so ``min_updates=1`` excludes step 1: the untrained model's first batch).

    Returns:
        ``{threshold_key(t): {"smoothed": record or None, "raw": record or None}}``; a record is a copy of
        the crossing entry plus ``"value"`` (the compared value: the moving average, resp. the raw value)
        and ``"window"``.

    Example:
        >>> curve = [{"step": 1, "seconds": 1.0, "cpu_seconds": 1.5, "tokens": 100, "loss": 2.0},
        ...          {"step": 2, "seconds": 2.0, "cpu_seconds": 3.0, "tokens": 210, "loss": 1.0}]
        >>> first_crossings(curve, [1.0, 0.5], window=1)
        {'1': {'smoothed': {'step': 2, 'seconds': 2.0, 'cpu_seconds': 3.0, 'tokens': 210, 'loss': 1.0, 'value': 1.0, 'window': 1}, 'raw': {'step': 2, 'seconds': 2.0, 'cpu_seconds': 3.0, 'tokens': 210, 'loss': 1.0, 'value': 1.0, 'window': 1}}, '0.5': {'smoothed': None, 'raw': None}}
    """
    window = _check_window(window)
    values_t = [float(t) for t in thresholds]
    if any(not math.isfinite(t) for t in values_t):
        raise UniformError(f"thresholds must be finite numbers, got {values_t}")
    entries, steps, values = _columns(curve, key)
    out: dict[str, dict[str, dict[str, Any] | None]] = {threshold_key(t): {"smoothed": None, "raw": None}
                                                        for t in values_t}
    pending = {threshold_key(t): t for t in values_t}
    for i in range(len(entries)):
        if not any(rec["smoothed"] is None or rec["raw"] is None for rec in out.values()):
            break
        first_in_window = steps[i] - window + 1
        if not after_updates(max(first_in_window, 1), min_updates) or (full_window and sum(
                1 for j in range(i + 1) if steps[j] >= first_in_window) < window):
            continue
        smooth = _window_mean(steps, values, i, window)
        for tk, t in pending.items():
            for kind, v, w in (("smoothed", smooth, window), ("raw", values[i], 1)):
                if out[tk][kind] is None and reaches(v, t):
                    out[tk][kind] = dict(entries[i], value=v, window=w)
    return out


def mean_train_loss(log_history: Sequence[Mapping[str, Any]]) -> float | None:
    """The training loss averaged over every optimizer step in ``log_history`` (``trainer_state.json``).

    Each logged ``loss`` is the mean over the steps since the previous log, so it is weighted by that
    number of steps; this equals ``Trainer``'s ``training_loss`` for an uninterrupted run and stays right
    after ``resume_from_checkpoint`` (where ``Trainer`` averages only the steps after the resume).
    Entries after a step already seen (a lost session's logs) are ignored.

    Example:
        >>> mean_train_loss([{"step": 1, "loss": 4.0}, {"step": 3, "loss": 1.0}, {"step": 3, "eval_loss": 9.0}])
        2.0
    """
    total, steps, last = 0.0, 0, 0
    for h in log_history:
        if "loss" not in h or "step" not in h:
            continue
        s = int(h["step"])
        v = float(h["loss"])
        if s <= last or not math.isfinite(v):
            continue
        total += v * (s - last)
        steps += s - last
        last = s
    return total / steps if steps else None


class TimeToThresholdCallback(TrainerCallback, ExportableState):
    """Record when the smoothed loss first reaches each threshold: step, wall and CPU seconds, tokens.

    The clocks start at ``on_train_begin`` (after model loading, data preparation and DeepSpeed set-up),
    so they measure training alone (evaluations during training included; their wall time is summed in
    ``eval_seconds``; checkpoint saves are kept off both clocks and summed in ``save_seconds``). Each log event with ``metric`` in it adds a curve entry (see the module docstring);
    the first time the moving average over ``window`` steps is ``<=`` a threshold, the entry is stored in
    ``reached`` and logged as ``time_to_threshold/<t>``, ``steps_to_threshold/<t>``,
    ``cpu_seconds_to_threshold/<t>`` and ``tokens_to_threshold/<t>`` through the trainer's loggers; raw
    crossings go to ``reached_raw``. Everything is written to ``output_dir/time_to_threshold.json``
    (atomically, by the world's main process) at each crossing, checkpoint save and the end of training.
    :func:`first_crossings` applied to the written curve gives the same records.

    Resume: the callback is an ``ExportableState``, so its records, curve and both clocks are saved inside
    each checkpoint's ``trainer_state.json``; on ``on_train_begin`` of a resumed run it restores them from
    there (whatever ``restore_callback_states_from_checkpoint`` says) and drops entries logged after the
    checkpoint. Tokens come from ``state.num_input_tokens_seen``, which the checkpoint restores.

    Logging: call :meth:`attach` (or :meth:`bind` after ``trainer.add_callback``) so the records go
    through ``trainer.log`` to every logger and into ``trainer_state.json``'s log history; unbound, the
    callback adds them to the ``logs`` dict it receives, which reaches the loggers placed after it.

    Args:
        thresholds: loss values to reach, e.g. the paper's ``(0.65, 0.34)``.
        metric: the logged key to watch: ``"loss"`` (training) or ``"eval_loss"``.
        window: moving-average window in optimizer steps (default 10); ``1`` = the raw loss.
        stop_after_last: stop training once every threshold is reached (smoothed).
        filename: name of the JSON file in ``output_dir``.
        clock: a wall-seconds counter (default ``time.perf_counter``); tests pass a scripted one.
        cpu_clock: a CPU-seconds counter (default ``time.process_time``).

    Example:
        >>> from transformers import TrainingArguments, TrainerState, TrainerControl
        >>> import tempfile
        >>> ticks = iter(range(100))
        >>> cb = TimeToThresholdCallback(thresholds=(1.0,), window=1, clock=lambda: float(next(ticks)),
        ...                              cpu_clock=lambda: 0.0)
        >>> args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[])
        >>> state, control = TrainerState(), TrainerControl()
        >>> cb.on_train_begin(args, state, control)
        >>> for step, loss in [(1, 2.0), (2, 0.9)]:
        ...     state.global_step = step
        ...     cb.on_log(args, state, control, logs={"loss": loss})
        >>> cb.reached["1"]["step"], cb.reached["1"]["seconds"], cb.reached["1"]["loss"]
        (2, 2.0, 0.9)
    """

    def __init__(
        self,
        thresholds: Sequence[float] = (0.65, 0.34),
        metric: str = "loss",
        window: int = DEFAULT_WINDOW,
        stop_after_last: bool = False,
        filename: str = FILENAME,
        clock: Callable[[], float] | None = None,
        cpu_clock: Callable[[], float] | None = None,
    ):
        if isinstance(thresholds, (int, float)):
            thresholds = [thresholds]
        values = [float(t) for t in thresholds]
        if not values or any(not math.isfinite(t) for t in values):
            raise UniformError(f"thresholds must be a non-empty list of finite numbers, got {list(thresholds)}")
        if not metric or not isinstance(metric, str):
            raise UniformError(f"metric must be a logged key such as 'loss' or 'eval_loss', got {metric!r}")
        self.thresholds = sorted(set(values), reverse=True)
        self.metric = metric
        self.window = _check_window(window)
        self.stop_after_last = bool(stop_after_last)
        self.filename = filename
        self._clock = clock or time.perf_counter
        self._cpu_clock = cpu_clock or time.process_time
        self._trainer_ref: Any = None
        self._t0: float | None = None
        self._c0: float | None = None
        self._warned_tokens = False
        self._reset()

    def _reset(self) -> None:
        self.elapsed_offset = 0.0  # wall seconds trained before this session (restored on resume)
        self.cpu_offset = 0.0  # CPU seconds trained before this session
        self.eval_seconds = 0.0
        self.save_seconds = 0.0  # wall seconds of checkpoint saves, kept out of the clock (all sessions)
        self.save_cpu_seconds = 0.0
        self._save_session = (0.0, 0.0)  # (wall, CPU) of this session's saves, subtracted from the clocks
        self._mark: tuple[float, float] | None = None
        self.reached: dict[str, dict[str, Any] | None] = {threshold_key(t): None for t in self.thresholds}
        self.reached_raw: dict[str, dict[str, Any] | None] = {threshold_key(t): None for t in self.thresholds}
        self.curve: list[dict[str, Any]] = []
        self.sessions = 0
        self._tokens_counted = True

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
        """The callback's arguments and records, with the seconds trained so far (for checkpoints).

        The Trainer asks for this while it saves a checkpoint: the seconds recorded are those at the end of the
        last step, so the save in progress is not counted in the checkpoint either.
        """
        elapsed, cpu = self.elapsed(), self.cpu_elapsed()
        if self._mark is not None and self._t0 is not None and self._c0 is not None:
            elapsed = self.elapsed_offset + (self._mark[0] - self._t0) - self._save_session[0]
            cpu = self.cpu_offset + (self._mark[1] - self._c0) - self._save_session[1]
        return {
            "args": {"thresholds": list(self.thresholds), "metric": self.metric, "window": self.window,
                     "stop_after_last": self.stop_after_last, "filename": self.filename},
            "attributes": {"elapsed_offset": elapsed, "cpu_offset": cpu,
                           "eval_seconds": self.eval_seconds, "save_seconds": self.save_seconds,
                           "save_cpu_seconds": self.save_cpu_seconds, "reached": dict(self.reached),
                           "reached_raw": dict(self.reached_raw), "curve": [dict(e) for e in self.curve],
                           "sessions": self.sessions},
        }

    def _restore(self, saved: dict[str, Any]) -> None:
        attrs = saved.get("attributes", {})
        self.elapsed_offset = float(attrs.get("elapsed_offset", 0.0))
        self.cpu_offset = float(attrs.get("cpu_offset", 0.0))
        self.eval_seconds = float(attrs.get("eval_seconds", 0.0))
        self.save_seconds = float(attrs.get("save_seconds", 0.0))
        self.save_cpu_seconds = float(attrs.get("save_cpu_seconds", 0.0))
        self.sessions = int(attrs.get("sessions", 0))
        curve = attrs.get("curve") or []
        if isinstance(curve, Mapping):  # columns, as an older version saved them: entries with "loss"
            columns = dict(curve, loss=curve.get("value", []))
            curve = _columns(columns, "loss")[0] if columns.get("step") else []
        self.curve = [dict(e) for e in curve]
        self._recompute_records()

    def _recompute_records(self) -> None:
        found = first_crossings(self.curve, self.thresholds, self.window) if self.curve else {}
        for key in self.threshold_keys:
            rec = found.get(key, {"smoothed": None, "raw": None})
            self.reached[key], self.reached_raw[key] = rec["smoothed"], rec["raw"]

    # ---- clocks --------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Wall seconds of training so far, including the sessions before a resume.

        Example:
            >>> TimeToThresholdCallback().elapsed()
            0.0
        """
        if self._t0 is None:
            return self.elapsed_offset
        return self.elapsed_offset + (self._clock() - self._t0) - self._save_session[0]

    def cpu_elapsed(self) -> float:
        """CPU seconds of the training process so far (``time.process_time``), across resumes.

        Example:
            >>> TimeToThresholdCallback().cpu_elapsed()
            0.0
        """
        if self._c0 is None:
            return self.cpu_offset
        return self.cpu_offset + (self._cpu_clock() - self._c0) - self._save_session[1]

    # ---- events --------------------------------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        """Start the clocks; on a resumed run, restore the records saved in the checkpoint first."""
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
            # Entries logged after the checkpoint belong to the lost session: drop them.
            self.curve = [e for e in self.curve if e["step"] <= state.global_step]
            self._recompute_records()
            logger.info("time_to_threshold: resuming at step %d after %.1f s (%.1f CPU s) of training",
                        state.global_step, self.elapsed_offset, self.cpu_offset)
        elif state.global_step == 0:
            self._reset()
        self._tokens_counted = getattr(args, "include_num_input_tokens_seen", "no") not in ("no", False, None)
        if not self._tokens_counted and not self._warned_tokens:
            self._warned_tokens = True
            logger.warning("training tokens are not counted; set include_num_input_tokens_seen='non_padding' "
                           "to record tokens to each threshold")
        self.sessions += 1
        self._t0 = self._clock()
        self._c0 = self._cpu_clock()
        self._save_session = (0.0, 0.0)
        self._mark = (self._t0, self._c0)

    def _set_mark(self) -> None:
        self._mark = (self._clock(), self._cpu_clock())

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        """Mark the end of the step: a checkpoint saved after it is timed from here (and kept off the clock)."""
        self._set_mark()

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        """Add the evaluation's wall time to ``eval_seconds`` (it is inside ``seconds``)."""
        for k, v in (metrics or {}).items():
            if k.endswith("_runtime") and isinstance(v, (int, float)):
                self.eval_seconds += float(v)
        self._set_mark()

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Add a curve entry when ``metric`` is logged; record, log and write newly reached thresholds."""
        if not logs or self.metric not in logs:
            return
        try:
            value = float(logs[self.metric])
        except (TypeError, ValueError):
            return
        if not math.isfinite(value):
            return
        step = int(state.global_step)
        if self.curve and step <= self.curve[-1]["step"]:
            return  # one entry per step, never backwards
        tokens = int(state.num_input_tokens_seen) if self._tokens_counted else None
        entry: dict[str, Any] = {"step": step, "seconds": self.elapsed(), "cpu_seconds": self.cpu_elapsed(),
                                 "tokens": tokens, "loss": value, "eval_seconds": self.eval_seconds}
        if self._t0 is not None and self._c0 is not None:  # the clock as recorded here (no second reading):
            # a checkpoint saved next is timed from this point
            self._mark = (self._t0 + entry["seconds"] - self.elapsed_offset + self._save_session[0],
                          self._c0 + entry["cpu_seconds"] - self.cpu_offset + self._save_session[1])
        for k in EXTRA_KEYS:
            if isinstance(logs.get(k), (int, float)):
                entry[k] = float(logs[k])
        self.curve.append(entry)
        steps = [e["step"] for e in self.curve[-self.window:]]
        vals = [e["loss"] for e in self.curve[-self.window:]]
        smoothed = _window_mean(steps, vals, len(steps) - 1, self.window)
        entry["smoothed_loss"] = smoothed
        new: dict[str, float] = {}
        for key, t in zip(self.threshold_keys, self.thresholds, strict=True):
            if self.reached_raw[key] is None and reaches(value, t):
                self.reached_raw[key] = dict(entry, value=value, window=1)
            if self.reached[key] is None and reaches(smoothed, t):
                rec = self.reached[key] = dict(entry, value=smoothed, window=self.window)
                new[f"time_to_threshold/{key}"] = rec["seconds"]
                new[f"steps_to_threshold/{key}"] = step
                new[f"cpu_seconds_to_threshold/{key}"] = rec["cpu_seconds"]
                if tokens is not None:
                    new[f"tokens_to_threshold/{key}"] = tokens
                logger.info("%s (mean over %d steps) reached %s at step %d after %.2f s (%.2f CPU s, %s tokens)",
                            self.metric, self.window, key, step, rec["seconds"], rec["cpu_seconds"], tokens)
        if not new:
            return
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
        """Keep the save's time off the clocks; rewrite the JSON beside the checkpoint (the state itself is in
        ``trainer_state.json``)."""
        if self._mark is not None and self._t0 is not None:
            dw, dc = self._clock() - self._mark[0], self._cpu_clock() - self._mark[1]
            self._save_session = (self._save_session[0] + dw, self._save_session[1] + dc)
            self.save_seconds += dw
            self.save_cpu_seconds += dc
        self._set_mark()
        if state.is_world_process_zero:
            self.write(args.output_dir, state)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        """Write the final JSON, with the total training seconds, CPU seconds and tokens."""
        if state.is_world_process_zero:
            self.write(args.output_dir, state)

    # ---- output --------------------------------------------------------------------------------------
    def result(self, state: TrainerState | None = None) -> dict[str, Any]:
        """The JSON-ready record: thresholds reached (smoothed and raw), totals and the curve.

        Example:
            >>> r = TimeToThresholdCallback(thresholds=(0.5,)).result()
            >>> r["time_to_threshold"], r["operator"], r["window"]
            ({'0.5': None}, '<=', 10)
        """
        def column(records: Mapping[str, Any], name: str) -> dict[str, Any]:
            return {k: (v[name] if v else None) for k, v in records.items()}

        tokens = None
        if state is not None and self._tokens_counted:
            tokens = int(state.num_input_tokens_seen)
        elif self.curve:
            tokens = self.curve[-1].get("tokens")
        return {
            "metric": self.metric,
            "operator": OPERATOR,
            "window": self.window,
            "thresholds": list(self.thresholds),
            "time_to_threshold": column(self.reached, "seconds"),
            "steps_to_threshold": column(self.reached, "step"),
            "cpu_seconds_to_threshold": column(self.reached, "cpu_seconds"),
            "tokens_to_threshold": column(self.reached, "tokens"),
            "reached": dict(self.reached),
            "reached_raw": dict(self.reached_raw),
            "train_seconds": self.elapsed(),
            "train_cpu_seconds": self.cpu_elapsed(),
            "train_tokens": tokens,
            "eval_seconds": self.eval_seconds,
            "save_seconds": self.save_seconds,
            "save_cpu_seconds": self.save_cpu_seconds,
            "cpu_count": os.cpu_count(),
            "global_step": int(state.global_step) if state is not None else (
                self.curve[-1]["step"] if self.curve else 0),
            "sessions": self.sessions,
            "clocks": {"seconds": "time.perf_counter: wall seconds of training, evaluations included, checkpoint "
                                  "saves excluded (save_seconds)",
                       "cpu_seconds": "time.process_time: CPU seconds of all threads of the main training process",
                       "tokens": "num_input_tokens_seen: non-padding training tokens, all processes"},
            "curve": [dict(e) for e in self.curve],
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
