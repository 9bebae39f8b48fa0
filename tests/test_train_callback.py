"""TimeToThresholdCallback on scripted loss sequences (with a scripted clock), across a resume, and in a Trainer."""

from __future__ import annotations

import json
import math
import time

import pytest

pytest.importorskip("transformers")

from transformers import TrainerControl, TrainerState, TrainingArguments  # noqa: E402

from hf_uniform.errors import UniformError  # noqa: E402
from hf_uniform.train import TimeToThresholdCallback  # noqa: E402


class Clock:
    """A scripted clock: returns ``now``, which the test sets before each event."""

    def __init__(self, now: float = 0.0):
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


class FakeTrainer:
    """Collects what the callback sends through trainer.log (stands in for the loggers)."""

    def __init__(self):
        self.logged = []

    def add_callback(self, cb):
        self.cb = cb

    def log(self, logs):
        self.logged.append(dict(logs))


def drive(cb, args, state, control, losses, start_step=1, key="loss", times=None):
    """Log ``losses`` at consecutive steps; with ``times``, set the clock before each log."""
    for i, loss in enumerate(losses):
        state.global_step = start_step + i
        if times is not None:
            cb._clock.now = times[i]
        cb.on_log(args, state, control, logs={key: loss, "learning_rate": 1e-3})


@pytest.fixture
def args(tmp_path):
    return TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)


def test_records_first_crossing_in_steps_and_seconds(args, tmp_path):
    losses = [1.2, 0.9, 0.66, 0.64, 0.70, 0.40, 0.33, 0.20]
    # train_begin at t=100 s, then the loss of step s is logged at t = 100 + 2.5 s
    cb = TimeToThresholdCallback(thresholds=(0.65, 0.34), clock=Clock(100.0))
    trainer = FakeTrainer()
    cb.attach(trainer)
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, losses, times=[100.0 + 2.5 * s for s in range(1, 9)])
    # brute force: first index with loss strictly below t
    for t in (0.65, 0.34):
        first = next(i for i, v in enumerate(losses) if v < t) + 1
        rec = cb.reached[f"{t:g}"]
        assert rec == {"step": first, "seconds": 2.5 * first, "value": losses[first - 1]}
    assert trainer.logged == [{"time_to_threshold/0.65": 10.0, "steps_to_threshold/0.65": 4},
                              {"time_to_threshold/0.34": 17.5, "steps_to_threshold/0.34": 7}]
    assert not control.should_training_stop
    data = json.loads((tmp_path / "time_to_threshold.json").read_text())  # written at the crossing of 0.34
    assert data["curve"]["step"] == list(range(1, 8))
    cb.on_train_end(args, state, control)
    data = json.loads((tmp_path / "time_to_threshold.json").read_text())
    assert data["time_to_threshold"] == {"0.65": 10.0, "0.34": 17.5}
    assert data["steps_to_threshold"] == {"0.65": 4, "0.34": 7}
    assert data["curve"]["step"] == list(range(1, 9))
    assert data["curve"]["seconds"] == [2.5 * s for s in range(1, 9)]
    assert data["curve"]["value"] == losses
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_smoothing_is_the_bias_corrected_ema(args):
    losses = [1.0, 0.2, 0.9, 0.5, 0.3, 0.25, 0.2]
    beta = 0.6
    cb = TimeToThresholdCallback(thresholds=(0.5,), smoothing=beta, clock=Clock())
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, losses)
    m, expected = 0.0, []
    for t, x in enumerate(losses, 1):
        m = beta * m + (1 - beta) * x
        expected.append(m / (1 - beta ** t))
    assert cb.curve["smoothed"] == pytest.approx(expected)
    first = next(i for i, v in enumerate(expected) if v < 0.5) + 1
    assert first == 5 and losses[1] < 0.5  # the raw loss dips at step 2; the smoothed one only at step 5
    assert cb.reached["0.5"]["step"] == first


def test_stops_after_last_threshold_and_unbound_adds_to_logs(args):
    cb = TimeToThresholdCallback(thresholds=(2.0, 1.0), stop_after_last=True, clock=Clock())
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    state.global_step = 1
    cb._clock.now = 1.0
    logs = {"loss": 1.5}
    cb.on_log(args, state, control, logs=logs)
    assert logs["time_to_threshold/2"] == 1.0 and not control.should_training_stop
    state.global_step = 2
    cb.on_log(args, state, control, logs={"loss": 0.5})
    assert control.should_training_stop


def test_eval_loss_metric_ignores_training_loss_and_non_finite(args):
    cb = TimeToThresholdCallback(thresholds=(1.0,), metric="eval_loss", clock=Clock())
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, [0.1, 0.2])  # training loss: not watched
    assert cb.curve["step"] == [] and cb.reached["1"] is None
    drive(cb, args, state, control, [float("nan"), 1.5, 0.8], start_step=10, key="eval_loss")
    assert cb.curve["step"] == [11, 12] and cb.reached["1"]["step"] == 12


def test_only_the_main_process_writes(args, tmp_path):
    cb = TimeToThresholdCallback(thresholds=(1.0,), clock=Clock())
    state, control = TrainerState(is_world_process_zero=False), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, [0.5])
    cb.on_save(args, state, control)
    cb.on_train_end(args, state, control)
    assert cb.reached["1"] is not None
    assert not (tmp_path / "time_to_threshold.json").exists()


def test_resume_restores_records_and_keeps_the_clock(args, tmp_path):
    """A checkpoint at step 3 (t=30 s), a crash after step 5, a resume 1000 s later: time continues at 30 s."""
    losses = [1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    cb = TimeToThresholdCallback(thresholds=(0.75, 0.55, 0.35), clock=Clock(0.0))
    state, control = TrainerState(stateful_callbacks=[cb]), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, losses[:3], times=[10, 20, 30])
    # Trainer._save_checkpoint: refresh the callback state, write trainer_state.json
    state.stateful_callbacks["TimeToThresholdCallback"] = cb.state()
    ckpt = tmp_path / "checkpoint-3"
    ckpt.mkdir()
    state.save_to_json(str(ckpt / "trainer_state.json"))
    drive(cb, args, state, control, losses[3:5], start_step=4, times=[40, 50])  # work lost in the crash
    assert cb.reached["0.55"]["step"] == 5

    # A new process: Trainer loads trainer_state.json, then calls on_train_begin.
    resumed = TimeToThresholdCallback(thresholds=(0.75, 0.55, 0.35), clock=Clock(1000.0))
    state2 = TrainerState.load_from_json(str(ckpt / "trainer_state.json"))
    resumed.on_train_begin(args, state2, TrainerControl())
    assert resumed.elapsed_offset == 30.0 and resumed.sessions == 2
    assert resumed.reached["0.75"] == {"step": 3, "seconds": 30.0, "value": 0.7}
    assert resumed.reached["0.55"] is None  # reached only in the lost work
    drive(resumed, args, state2, TrainerControl(), losses[3:], start_step=4, times=[1012, 1024, 1036, 1048])
    assert resumed.curve["step"] == [1, 2, 3, 4, 5, 6, 7]
    assert resumed.curve["seconds"] == [10, 20, 30, 42, 54, 66, 78]
    assert resumed.reached["0.55"] == {"step": 5, "seconds": 54.0, "value": 0.5}
    assert resumed.reached["0.35"]["seconds"] == 78.0
    data = json.loads((tmp_path / "time_to_threshold.json").read_text())
    assert data["time_to_threshold"] == {"0.75": 30.0, "0.55": 54.0, "0.35": 78.0}
    assert data["sessions"] == 2


def test_fresh_run_resets_and_missing_state_warns(args, caplog):
    cb = TimeToThresholdCallback(thresholds=(1.0,), clock=Clock())
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, [0.5])
    cb.on_train_begin(args, TrainerState(), control)  # a second train() from scratch
    assert cb.curve["step"] == [] and cb.reached["1"] is None
    resumed = TrainerState()
    resumed.global_step = 7
    with caplog.at_level("WARNING"):
        cb.on_train_begin(args, resumed, control)
    assert "restarts at 0 s" in caplog.text


def test_bad_arguments():
    with pytest.raises(UniformError, match="smoothing"):
        TimeToThresholdCallback(smoothing=1.0)
    with pytest.raises(UniformError, match="thresholds"):
        TimeToThresholdCallback(thresholds=[])
    with pytest.raises(UniformError, match="thresholds"):
        TimeToThresholdCallback(thresholds=[math.inf])


def test_overhead_is_far_below_half_a_percent_of_a_step(args):
    """on_log without a crossing costs microseconds; a CPU step of the smoke model takes ~50 ms, so the
    0.5% budget is ~250 µs (and a GPU step of a 7B model takes seconds)."""
    cb = TimeToThresholdCallback(thresholds=(-1.0,))
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    n = 5000
    t0 = time.perf_counter()
    for i in range(n):
        state.global_step = i + 1
        cb.on_log(args, state, control, logs={"loss": 1.0 + 1.0 / (i + 1)})
    per_call = (time.perf_counter() - t0) / n
    assert per_call < 50e-6, f"on_log takes {per_call * 1e6:.1f} µs"


def test_in_a_real_trainer_with_checkpoint_resume(tmp_path):
    """A Trainer run saves the callback in its checkpoint; resuming continues the clock and the curve."""
    import torch
    from datasets import Dataset
    from transformers import Trainer

    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(4, 1)

        def forward(self, x, y):
            return {"loss": torch.nn.functional.mse_loss(self.w(x).squeeze(-1), y)}

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.01 * torch.randn(64, generator=g)
    ds = Dataset.from_dict({"x": x.tolist(), "y": y.tolist()})

    def make(max_steps, cb):
        torch.manual_seed(0)
        targs = TrainingArguments(output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=8,
                                  learning_rate=0.1, lr_scheduler_type="constant", logging_steps=1, save_strategy="steps", save_steps=6,
                                  report_to=[], use_cpu=True, disable_tqdm=True)
        trainer = Trainer(model=Regressor(), args=targs, train_dataset=ds)
        cb.attach(trainer)
        return trainer

    first = TimeToThresholdCallback(thresholds=(5.0, 0.5, 1e-9))
    make(6, first).train()
    saved = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())
    attrs = saved["stateful_callbacks"]["TimeToThresholdCallback"]["attributes"]
    assert attrs["curve"]["step"] == list(range(1, 7))
    at_ckpt = attrs["elapsed_offset"]
    assert first.curve["seconds"][-1] <= at_ckpt <= first.elapsed()
    time.sleep(0.3)  # the pause between the crash and the resume is not training time
    second = TimeToThresholdCallback(thresholds=(5.0, 0.5, 1e-9))
    trainer = make(12, second)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-6"))
    assert second.sessions == 2
    assert second.curve["step"] == list(range(1, 13))
    secs = second.curve["seconds"]
    assert secs[:6] == first.curve["seconds"] and all(b > a for a, b in zip(secs, secs[1:], strict=False))
    assert secs[6] >= at_ckpt and secs[6] - secs[5] < 0.3  # continued, without the pause
    data = json.loads((tmp_path / "time_to_threshold.json").read_text())
    assert data["global_step"] == 12 and data["time_to_threshold"]["1e-09"] is None
    history = [h for h in trainer.state.log_history if any(k.startswith("time_to_threshold/") for k in h)]
    logged = {k: v for h in history for k, v in h.items() if k.startswith("time_to_threshold/")}
    expected = {f"time_to_threshold/{k}": v for k, v in data["time_to_threshold"].items() if v is not None}
    assert logged.items() >= expected.items() and expected
