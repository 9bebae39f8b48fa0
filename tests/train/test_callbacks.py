"""TimeToThresholdCallback and first_crossings: scripted losses and clocks, a resume, and a real Trainer."""

from __future__ import annotations

import json
import math
import os
import time

import pytest

pytest.importorskip("transformers")

from transformers import TrainerControl, TrainerState, TrainingArguments  # noqa: E402

from hf_uniform.errors import UniformError  # noqa: E402
from hf_uniform.train import TimeToThresholdCallback  # noqa: E402
from hf_uniform.train.callbacks import (  # noqa: E402
    CURVE_KEYS,
    DEFAULT_WINDOW,
    first_crossings,
    mean_train_loss,
    moving_average,
)


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


def drive(cb, args, state, control, losses, start_step=1, key="loss", times=None, cpu=None, tokens=None,
          every=1):
    """End steps start_step, start_step + every, ... and log ``losses`` there; set the clocks and tokens first."""
    for i, loss in enumerate(losses):
        state.global_step = start_step + every * i
        if times is not None:
            cb._clock.now = times[i]
        if cpu is not None:
            cb._cpu_clock.now = cpu[i]
        if tokens is not None:
            state.num_input_tokens_seen = tokens[i]
        cb.on_step_end(args, state, control)  # the Trainer's order: step end, then log, then save
        cb.on_log(args, state, control, logs={key: loss, "learning_rate": 1e-3})


def hand_moving_average(steps, values, window):
    """Independent reference: for each i, the plain mean of values whose step lies in (s_i - window, s_i]."""
    out = []
    for s in steps:
        inside = [v for t, v in zip(steps, values, strict=True) if s - window < t <= s]
        out.append(sum(inside) / len(inside))
    return out


@pytest.fixture
def args(tmp_path):
    return TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True,
                             include_num_input_tokens_seen="non_padding")


def test_raw_crossing_records_step_seconds_cpu_and_tokens(args, tmp_path):
    losses = [1.2, 0.9, 0.66, 0.65, 0.70, 0.40, 0.34, 0.20]
    cb = TimeToThresholdCallback(thresholds=(0.65, 0.34), window=1, clock=Clock(100.0), cpu_clock=Clock(7.0))
    trainer = FakeTrainer()
    cb.attach(trainer)
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    steps = range(1, 9)
    drive(cb, args, state, control, losses, times=[100.0 + 2.5 * s for s in steps],
          cpu=[7.0 + 4.0 * s for s in steps], tokens=[300 * s for s in steps])
    for t in (0.65, 0.34):  # "reaches" is <=: 0.65 at step 4 and 0.34 at step 7 are equal to the threshold
        first = next(i for i, v in enumerate(losses) if v <= t) + 1
        rec = cb.reached[f"{t:g}"]
        assert (rec["step"], rec["seconds"], rec["cpu_seconds"], rec["tokens"], rec["loss"]) == (
            first, 2.5 * first, 4.0 * first, 300 * first, losses[first - 1])
        assert cb.reached_raw[f"{t:g}"] == rec
    assert trainer.logged == [
        {"time_to_threshold/0.65": 10.0, "steps_to_threshold/0.65": 4, "cpu_seconds_to_threshold/0.65": 16.0,
         "tokens_to_threshold/0.65": 1200},
        {"time_to_threshold/0.34": 17.5, "steps_to_threshold/0.34": 7, "cpu_seconds_to_threshold/0.34": 28.0,
         "tokens_to_threshold/0.34": 2100}]
    assert not control.should_training_stop
    data = json.loads((tmp_path / "time_to_threshold.json").read_text())  # written at the crossing of 0.34
    assert [e["step"] for e in data["curve"]] == list(range(1, 8))
    cb.on_train_end(args, state, control)
    data = json.loads((tmp_path / "time_to_threshold.json").read_text())
    assert data["operator"] == "<=" and data["window"] == 1
    assert data["time_to_threshold"] == {"0.65": 10.0, "0.34": 17.5}
    assert data["steps_to_threshold"] == {"0.65": 4, "0.34": 7}
    assert data["cpu_seconds_to_threshold"] == {"0.65": 16.0, "0.34": 28.0}
    assert data["tokens_to_threshold"] == {"0.65": 1200, "0.34": 2100}
    assert (data["train_seconds"], data["train_cpu_seconds"], data["train_tokens"]) == (20.0, 32.0, 2400)
    assert all(set(CURVE_KEYS) <= set(e) for e in data["curve"])
    assert [e["seconds"] for e in data["curve"]] == [2.5 * s for s in steps]
    assert [e["loss"] for e in data["curve"]] == losses
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_smoothed_crossing_is_the_hand_computed_moving_average(args):
    losses = [1.0, 0.2, 0.9, 0.5, 0.3, 0.25, 0.2, 0.45, 0.1]
    cb = TimeToThresholdCallback(thresholds=(0.5, 0.3), window=3, clock=Clock(), cpu_clock=Clock())
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, losses)
    steps = list(range(1, len(losses) + 1))
    expected = hand_moving_average(steps, losses, 3)  # [1, .6, .7, .5333, .5667, .35, .25, .3, .25]
    assert [e["smoothed_loss"] for e in cb.curve] == pytest.approx(expected, abs=1e-15)
    assert moving_average(cb.curve, 3) == pytest.approx(expected, abs=1e-15)
    # smoothed: first mean <= 0.5 is at step 6 (0.35); the raw loss dipped to 0.2 already at step 2
    assert cb.reached["0.5"]["step"] == 6 == next(s for s, v in zip(steps, expected, strict=True) if v <= 0.5)
    assert cb.reached["0.5"]["value"] == pytest.approx(0.35)
    assert cb.reached_raw["0.5"]["step"] == 2 and cb.reached_raw["0.3"]["step"] == 2
    assert cb.reached["0.3"]["step"] == 7  # mean(0.3, 0.25, 0.2) = 0.25
    # the pure function gives the very same records from the written curve
    found = first_crossings(cb.result()["curve"], (0.5, 0.3), window=3)
    assert {k: v["smoothed"] for k, v in found.items()} == cb.reached
    assert {k: v["raw"] for k, v in found.items()} == cb.reached_raw


def test_window_is_in_steps_not_log_entries(args):
    """logging_steps = 5: a 10-step window holds the last two logged values (each already a 5-step mean)."""
    losses = [2.0, 1.0, 3.0, 0.5]
    cb = TimeToThresholdCallback(thresholds=(1.5,), window=10, clock=Clock(), cpu_clock=Clock())
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, losses, start_step=5, every=5)
    assert [e["step"] for e in cb.curve] == [5, 10, 15, 20]
    assert [e["smoothed_loss"] for e in cb.curve] == [2.0, 1.5, 2.0, 1.75]
    assert cb.reached["1.5"]["step"] == 10 and cb.reached_raw["1.5"]["step"] == 10
    assert first_crossings({"step": [5, 10, 15, 20], "loss": losses}, [1.0], window=10)["1"] == {
        "smoothed": None, "raw": {"step": 10, "loss": 1.0, "value": 1.0, "window": 1}}


def test_default_window_and_first_crossings_arguments():
    assert DEFAULT_WINDOW == 10 == TimeToThresholdCallback().window
    with pytest.raises(UniformError, match="window"):
        first_crossings([], [1.0], window=0)
    with pytest.raises(UniformError, match="'step' and 'loss'"):
        first_crossings([{"step": 1}], [1.0])
    with pytest.raises(UniformError, match="must not decrease"):
        first_crossings([{"step": 2, "loss": 1.0}, {"step": 1, "loss": 1.0}], [1.0])
    # non-finite values are skipped by the mean and never reach a threshold
    curve = [{"step": 1, "loss": float("nan")}, {"step": 2, "loss": 0.5}]
    assert moving_average(curve, 2) == [None, 0.5]
    assert first_crossings(curve, [1.0], window=2)["1"]["smoothed"]["step"] == 2


def test_mean_train_loss_weights_each_log_by_its_steps():
    history = [{"step": 2, "loss": 3.0}, {"step": 3, "loss": 1.5}, {"step": 3, "eval_loss": 9.0},
               {"step": 6, "loss": 0.5}, {"step": 6, "train_loss": 99.0}]
    assert mean_train_loss(history) == pytest.approx((3.0 * 2 + 1.5 * 1 + 0.5 * 3) / 6)
    assert mean_train_loss([{"step": 1, "eval_loss": 1.0}]) is None


def test_stops_after_last_threshold_and_unbound_adds_to_logs(args):
    cb = TimeToThresholdCallback(thresholds=(2.0, 1.0), window=1, stop_after_last=True, clock=Clock())
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
    cb = TimeToThresholdCallback(thresholds=(1.0,), metric="eval_loss", window=1, clock=Clock())
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, [0.1, 0.2])  # training loss: not watched
    assert cb.curve == [] and cb.reached["1"] is None
    drive(cb, args, state, control, [float("nan"), 1.5, 0.8], start_step=10, key="eval_loss")
    assert [e["step"] for e in cb.curve] == [11, 12] and cb.reached["1"]["step"] == 12
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 0.8, "eval_runtime": 2.5})
    assert cb.result()["eval_seconds"] == 2.5


def test_only_the_main_process_writes(args, tmp_path):
    cb = TimeToThresholdCallback(thresholds=(1.0,), window=1, clock=Clock())
    state, control = TrainerState(is_world_process_zero=False), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, [0.5])
    cb.on_save(args, state, control)
    cb.on_train_end(args, state, control)
    assert cb.reached["1"] is not None
    assert not (tmp_path / "time_to_threshold.json").exists()


def test_resume_restores_records_and_keeps_both_clocks(args, tmp_path):
    """A checkpoint at step 3 (t=30 s, 60 CPU s), a crash after step 5, a resume 1000 s later."""
    losses = [1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    cb = TimeToThresholdCallback(thresholds=(0.75, 0.55, 0.35), window=2, clock=Clock(0.0), cpu_clock=Clock(0.0))
    state, control = TrainerState(stateful_callbacks=[cb]), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, losses[:3], times=[10, 20, 30], cpu=[20, 40, 60], tokens=[100, 200, 300])
    # Trainer._save_checkpoint: refresh the callback state, write trainer_state.json
    state.stateful_callbacks["TimeToThresholdCallback"] = cb.state()
    ckpt = tmp_path / "checkpoint-3"
    ckpt.mkdir()
    state.save_to_json(str(ckpt / "trainer_state.json"))
    drive(cb, args, state, control, losses[3:5], start_step=4, times=[40, 50], cpu=[80, 100], tokens=[400, 500])
    assert cb.reached["0.55"]["step"] == 5  # mean(0.6, 0.5) = 0.55, in the work lost in the crash

    # A new process: Trainer loads trainer_state.json (tokens included), then calls on_train_begin.
    resumed = TimeToThresholdCallback(thresholds=(0.75, 0.55, 0.35), window=2, clock=Clock(1000.0),
                                      cpu_clock=Clock(5.0))
    state2 = TrainerState.load_from_json(str(ckpt / "trainer_state.json"))
    assert state2.num_input_tokens_seen == 300
    resumed.on_train_begin(args, state2, TrainerControl())
    assert (resumed.elapsed_offset, resumed.cpu_offset, resumed.sessions) == (30.0, 60.0, 2)
    assert resumed.reached["0.75"]["step"] == 3  # mean(0.8, 0.7)
    assert resumed.reached["0.55"] is None and resumed.reached_raw["0.55"] is None
    drive(resumed, args, state2, TrainerControl(), losses[3:], start_step=4, times=[1012, 1024, 1036, 1048],
          cpu=[25, 45, 65, 85], tokens=[410, 520, 630, 740])
    assert [e["step"] for e in resumed.curve] == [1, 2, 3, 4, 5, 6, 7]
    assert [e["seconds"] for e in resumed.curve] == [10, 20, 30, 42, 54, 66, 78]
    assert [e["cpu_seconds"] for e in resumed.curve] == [20, 40, 60, 80, 100, 120, 140]
    rec = resumed.reached["0.55"]
    assert (rec["step"], rec["seconds"], rec["cpu_seconds"], rec["tokens"]) == (5, 54.0, 100.0, 520)
    assert resumed.reached["0.35"]["step"] == 7  # mean(0.4, 0.3)
    data = json.loads((tmp_path / "time_to_threshold.json").read_text())
    assert data["time_to_threshold"] == {"0.75": 30.0, "0.55": 54.0, "0.35": 78.0}
    assert data["sessions"] == 2


def test_fresh_run_resets_and_missing_state_warns(args, caplog):
    cb = TimeToThresholdCallback(thresholds=(1.0,), clock=Clock())
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    drive(cb, args, state, control, [0.5])
    cb.on_train_begin(args, TrainerState(), control)  # a second train() from scratch
    assert cb.curve == [] and cb.reached["1"] is None
    resumed = TrainerState()
    resumed.global_step = 7
    with caplog.at_level("WARNING"):
        cb.on_train_begin(args, resumed, control)
    assert "restarts at 0 s" in caplog.text


def test_tokens_are_none_when_not_counted(tmp_path, caplog):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    cb = TimeToThresholdCallback(thresholds=(1.0,), window=1)
    state, control = TrainerState(), TrainerControl()
    with caplog.at_level("WARNING"):
        cb.on_train_begin(args, state, control)
    assert "include_num_input_tokens_seen" in caplog.text
    drive(cb, args, state, control, [0.5])
    assert cb.reached["1"]["tokens"] is None and cb.result(state)["train_tokens"] is None


def test_bad_arguments():
    with pytest.raises(UniformError, match="window"):
        TimeToThresholdCallback(window=0)
    with pytest.raises(UniformError, match="window"):
        TimeToThresholdCallback(window=2.5)
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
    assert per_call < 100e-6, f"on_log takes {per_call * 1e6:.1f} µs"


def test_in_a_real_trainer_with_checkpoint_resume(tmp_path):
    """A Trainer run saves the callback in its checkpoint; resuming continues both clocks, the curve and the
    token count, which equals the sum of the attention masks of every batch trained on."""
    import torch
    from datasets import Dataset
    from transformers import Trainer

    class Regressor(torch.nn.Module):
        main_input_name = "input_ids"

        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(16, 4)
            self.w = torch.nn.Linear(4, 1)

        def forward(self, input_ids, attention_mask, labels):
            m = attention_mask.unsqueeze(-1).float()
            h = (self.emb(input_ids) * m).sum(1) / m.sum(1)
            return {"loss": torch.nn.functional.mse_loss(self.w(h).squeeze(-1), labels)}

    g = torch.Generator().manual_seed(0)
    n, length = 64, 6
    ids = torch.randint(0, 16, (n, length), generator=g)
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    y = (ids.float() * mask).sum(1) / lengths
    ds = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": y.tolist()})

    def make(max_steps, cb):
        torch.manual_seed(0)
        targs = TrainingArguments(output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=8,
                                  learning_rate=0.1, lr_scheduler_type="constant", logging_steps=1,
                                  save_strategy="steps", save_steps=8, report_to=[], use_cpu=True,
                                  disable_tqdm=True, include_num_input_tokens_seen="non_padding")
        trainer = Trainer(model=Regressor(), args=targs, train_dataset=ds)
        cb.attach(trainer)
        return trainer

    per_epoch = int(mask.sum())  # 8 steps of 8 rows = one epoch, whatever the order
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    first = TimeToThresholdCallback(thresholds=(1e3, 1e-9), window=3)
    make(8, first).train()
    saved = json.loads((tmp_path / "checkpoint-8" / "trainer_state.json").read_text())
    attrs = saved["stateful_callbacks"]["TimeToThresholdCallback"]["attributes"]
    assert [e["step"] for e in attrs["curve"]] == list(range(1, 9))
    assert saved["num_input_tokens_seen"] == per_epoch == first.curve[-1]["tokens"]
    at_ckpt, cpu_at_ckpt = attrs["elapsed_offset"], attrs["cpu_offset"]
    assert first.curve[-1]["seconds"] <= at_ckpt <= first.elapsed()
    time.sleep(0.3)  # the pause between the crash and the resume is not training time
    second = TimeToThresholdCallback(thresholds=(1e3, 1e-9), window=3)
    trainer = make(16, second)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-8"))
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    assert second.sessions == 2
    curve = second.curve
    assert [e["step"] for e in curve] == list(range(1, 17))
    assert curve[:8] == first.curve
    secs = [e["seconds"] for e in curve]
    assert all(b > a for a, b in zip(secs, secs[1:], strict=False))
    assert secs[8] >= at_ckpt and secs[8] - secs[7] < 0.3  # continued, without the pause
    cpus = [e["cpu_seconds"] for e in curve]
    assert 0 < cpus[0] and all(b >= a for a, b in zip(cpus, cpus[1:], strict=False)) and cpus[8] >= cpu_at_ckpt
    data = json.loads((tmp_path / "time_to_threshold.json").read_text())
    assert 0 < data["train_cpu_seconds"] <= cpu + 1e-6
    assert data["train_cpu_seconds"] <= data["train_seconds"] * os.cpu_count() + 0.05
    assert data["train_seconds"] <= wall
    assert data["train_tokens"] == 2 * per_epoch == curve[-1]["tokens"]
    assert data["global_step"] == 16 and data["time_to_threshold"]["1e-09"] is None
    assert data["steps_to_threshold"]["1000"] == 1
    history = [h for h in trainer.state.log_history if any(k.startswith("time_to_threshold/") for k in h)]
    logged = {k: v for h in history for k, v in h.items() if k.startswith("time_to_threshold/")}
    expected = {f"time_to_threshold/{k}": v for k, v in data["time_to_threshold"].items() if v is not None}
    assert logged.items() >= expected.items() and expected
    # train_loss over the whole run, not only the part after the resume
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 16
    assert mean_train_loss(trainer.state.log_history) == pytest.approx(sum(losses) / 16)
