"""Loss curves of one finished training run, read from the trainer's output folder.

Example:
    >>> curves_from_run("no/such/run")
    Traceback (most recent call last):
    ...
    hf_uniform.errors.UniformError: no/such/run/time_to_threshold.json is missing: the training run in no/such/run did not finish
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UniformError
from ..records import read_json_record


def curves_from_run(run_dir: str | os.PathLike) -> dict[str, dict[str, list[float]]]:
    """Training and held-out loss curves of one trainer output folder.

    Reads ``time_to_threshold.json`` (the training-loss curve with the training clock, written by
    :class:`~hf_uniform.train.TimeToThresholdCallback`) and ``trainer_state.json`` (the held-out
    ``eval_loss`` points and each evaluation's ``eval_runtime``). ``seconds`` excludes the time spent in
    held-out evaluations before each point; ``wall_seconds`` includes it. A held-out point at step ``s`` gets
    the training time at step ``s`` (interpolated between the nearest training-loss points).

    Example:
        >>> curves_from_run("out/work/runs/uniform/seed0")["heldout"]["value"][:2]  # doctest: +SKIP
        [6.93, 5.12]
    """
    run_dir = Path(run_dir)
    ttt_path, state_path = run_dir / "time_to_threshold.json", run_dir / "trainer_state.json"
    for p in (ttt_path, state_path):
        if not p.exists():
            raise UniformError(f"{p} is missing: the training run in {run_dir} did not finish")
    ttt = read_json_record(ttt_path, {"curve": (list, dict)}, what="time_to_threshold record")
    if ttt.get("metric") != "loss":
        raise UniformError(f"{ttt_path} tracks {ttt.get('metric')!r}, expected the training 'loss'")
    history = read_json_record(state_path, what="trainer state").get("log_history", [])
    evals = [(int(h["step"]), float(h["eval_loss"]), float(h.get("eval_runtime", 0.0)))
             for h in history if "eval_loss" in h]
    c = ttt["curve"]
    if isinstance(c, list):  # one entry per logged loss (TimeToThresholdCallback since CPU seconds were added)
        c = {key: [e.get(key) for e in c] for key in ("step", "seconds", "cpu_seconds", "tokens", ttt["metric"])}
        c["value"] = c.pop(ttt["metric"])
    t_steps = np.asarray(c["step"], dtype=np.float64)
    t_wall = np.asarray(c["seconds"], dtype=np.float64)
    eval_steps = np.array([e[0] for e in evals], dtype=np.float64)
    eval_rt = np.array([e[2] for e in evals], dtype=np.float64)

    def eval_time_before(step: float, inclusive: bool = False) -> float:
        # evaluations at step s run after the training log of step s
        mask = eval_steps <= step if inclusive else eval_steps < step
        return float(eval_rt[mask].sum()) if len(eval_rt) else 0.0

    t_excl = np.array([w - eval_time_before(s) for s, w in zip(t_steps, t_wall, strict=True)])
    h_steps = [e[0] for e in evals]
    if len(t_steps):
        anchor_s = np.concatenate([[0.0], t_steps])
        anchor_x = np.concatenate([[0.0], t_excl])
        h_excl = [float(np.interp(s, anchor_s, anchor_x)) for s in h_steps]
    else:
        h_excl = [0.0 for _ in h_steps]
    h_wall = [x + eval_time_before(s) for s, x in zip(h_steps, h_excl, strict=True)]
    # training tokens processed (TRL's num_tokens: prompt + response, padding excluded), by step
    tok_by_step = {int(h["step"]): float(h["num_tokens"]) for h in history if "loss" in h and "num_tokens" in h}
    if c.get("tokens") and all(t is not None for t in c["tokens"]):  # the callback's own count (non-padding)
        tok_by_step = {int(s): float(t) for s, t in zip(c["step"], c["tokens"], strict=True)}
    t_tokens = [tok_by_step.get(int(s)) for s in t_steps]
    if tok_by_step and all(t is not None for t in t_tokens):
        ks = sorted(tok_by_step)
        h_tokens = [float(np.interp(s, [0.0, *ks], [0.0, *[tok_by_step[k] for k in ks]])) for s in h_steps]
    else:
        t_tokens, h_tokens = [None] * len(t_steps), [None] * len(h_steps)
    return {
        "train": {"step": t_steps.astype(int).tolist(), "seconds": t_excl.tolist(), "wall_seconds": t_wall.tolist(),
                  "cpu_seconds": [None if v is None else float(v) for v in c.get("cpu_seconds") or
                                  [None] * len(t_steps)],
                  "tokens": t_tokens, "value": [float(v) for v in c["value"]]},
        "heldout": {"step": h_steps, "seconds": h_excl, "wall_seconds": h_wall, "tokens": h_tokens,
                    "value": [e[1] for e in evals]},
        "eval_seconds": float(eval_rt.sum()) if len(eval_rt) else 0.0,
        "train_seconds_wall": float(ttt.get("train_seconds", t_wall[-1] if len(t_wall) else 0.0)),
    }
