"""The study's numbers: threshold crossings, mean ± std over seeds, paired per-seed differences, the verdict.

Every function here is pure: it takes the per-run records (``runs/<arm>-seed<s>.json``) or their aggregates
and returns plain dicts and sentences, so a report can be recomputed from finished runs without training.

Example:
    >>> mean_std([1.0, 3.0])["mean"], threshold_label("train", 2.0)
    (2.0, 'train<=2')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import UniformError
from .config import COMPARATORS, KIND_LABEL, LOSS_KINDS, StudyConfig


def first_crossing(steps: Sequence[int], seconds: Sequence[float], values: Sequence[float],
                   threshold: float, tokens: Sequence[float | None] | None = None) -> dict[str, Any] | None:
    """The first point whose value is at or below ``threshold``: ``{"step", "seconds", "value"[, "tokens"]}``.

    ``None`` when no point reaches it.

    Example:
        >>> first_crossing([10, 20, 30], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0], 2.0)
        {'step': 20, 'seconds': 2.0, 'value': 2.0}
        >>> first_crossing([10], [1.0], [3.0], 2.0) is None
        True
    """
    for i, (s, t, v) in enumerate(zip(steps, seconds, values, strict=True)):
        if v is not None and math.isfinite(v) and v <= threshold:
            out: dict[str, Any] = {"step": int(s), "seconds": float(t), "value": float(v)}
            if tokens is not None and i < len(tokens) and tokens[i] is not None:
                out["tokens"] = float(tokens[i])
            return out
    return None


def _curve_for_threshold(curve: Mapping[str, Sequence[float]], kind: str, smoothing: float) -> list[float]:
    from ..plots import ema_smooth

    values = list(curve["value"])
    if kind == "train" and smoothing and values:
        return ema_smooth(values, smoothing).tolist()
    return values


def auto_thresholds(curves: Sequence[Sequence[float]]) -> list[float]:
    """Two thresholds every run reaches: a loose one halfway down and a tight one at the worst run's best.

    ``tight`` = the largest over runs of each run's minimum loss (rounded up to 3 decimals), so every run
    reaches it; ``loose`` = halfway between ``tight`` and the lowest first value (rounded to 3 decimals).
    :func:`choose_thresholds` passes the curves without their step-0 evaluation.
    This mirrors the paper's pair of an early (0.65) and a late (0.34) threshold, for any model and data.

    Example:
        >>> auto_thresholds([[4.0, 3.0, 2.0], [4.2, 3.5, 2.5]])
        [3.25, 2.5]
    """
    runs = [[v for v in c if v is not None and math.isfinite(v)] for c in curves]
    runs = [r for r in runs if r]
    if not runs:
        raise UniformError("no loss values recorded; cannot choose thresholds (check logging/eval steps)")
    tight = math.ceil(max(min(r) for r in runs) * 1000 - 1e-9) / 1000
    start = min(r[0] for r in runs)
    loose = round(tight + max(0.0, start - tight) / 2, 3)
    return [loose, tight] if loose > tight else [tight]


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` over the finite values (sample std; 0 for one value).

    Example:
        >>> mean_std([1.0, 3.0, None])
        {'mean': 2.0, 'std': 1.4142135623730951, 'n': 2, 'of': 3, 'values': [1.0, 3.0, None]}
    """
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    mean = float(np.mean(vals)) if vals else None
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)
    return {"mean": mean, "std": std, "n": len(vals), "of": len(values),
            "values": [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]}


def threshold_label(kind: str, t: float) -> str:
    """Column label of a threshold, e.g. ``"held-out<2.5"``.

    Example:
        >>> threshold_label("heldout", 2.5)
        'held-out<=2.5'
    """
    return f"{'held-out' if kind == 'heldout' else 'train'}<={t:g}"


def threshold_labels(thresholds: Mapping[str, Sequence[float]]) -> list[tuple[str, str]]:
    """``(kind, label)`` of every threshold in report order: absolute and relative train, then held-out.

    Example:
        >>> threshold_labels({"train": [2.0], "train_relative": [0.9], "heldout": [2.5]})
        [('train', 'train<=2'), ('train', 'train<=0.9x start'), ('heldout', 'held-out<=2.5')]
    """
    out = [("train", threshold_label("train", t)) for t in thresholds.get("train", [])]
    out += [("train", f"train<={r:g}x start") for r in thresholds.get("train_relative", []) or []]
    out += [("heldout", threshold_label("heldout", t)) for t in thresholds.get("heldout", [])]
    out += [("heldout", heldout_relative_label(r)) for r in thresholds.get("heldout_relative", []) or []]
    return out


def run_crossings(run: Mapping[str, Any], thresholds: Mapping[str, Sequence[float]], *, smoothing: float,
                  window: int | None = None, full_window: bool = False,
                  min_updates: int = 0) -> dict[str, dict[str, Any] | None]:
    """First crossing of every threshold by one run: ``{label: {"step", "seconds", "cpu_seconds", "tokens",
    "value", "threshold"} or None}``.

    Training loss: with ``window`` the trailing moving average over ``window`` steps and the ``<=`` rule of
    :func:`hf_uniform.train.callbacks.first_crossings` (the callback's own rule); without it the EMA of
    ``smoothing``. Relative thresholds are fractions of ``run["start"]["train_loss"]`` (the base model's loss on
    the run's rows). ``full_window`` and ``min_updates`` are the crossing rule of
    :func:`hf_uniform.train.callbacks.first_crossings` (a full window; no loss from before ``min_updates``
    updates; the EMA path also skips those points). Held-out loss: as evaluated; ``heldout_relative``
    thresholds (fractions of the base model's held-out loss) are read off the run's held-out ``schedule``
    (step 0, the base model, never counts).

    Example:
        >>> run = {"curves": {"train": {"step": [1, 2, 3], "seconds": [1.0, 2.0, 3.0], "value": [4.0, 2.0, 2.0],
        ...                             "cpu_seconds": [2.0, 4.0, 6.0], "tokens": [10, 20, 30]},
        ...                   "heldout": {"step": [], "seconds": [], "value": []}},
        ...        "start": {"train_loss": 4.0}}
        >>> c = run_crossings(run, {"train": [], "train_relative": [0.75], "heldout": []}, smoothing=0.0, window=2)
        >>> c["train<=0.75x start"]["step"], c["train<=0.75x start"]["cpu_seconds"]  # mean(4, 2) <= 3
        (2, 4.0)
    """
    from ..train.callbacks import after_updates, first_crossings, threshold_key

    out: dict[str, dict[str, Any] | None] = {}
    train = run["curves"]["train"]
    values = {"train": [float(t) for t in thresholds.get("train", [])],
              "train_relative": [float(r) * float(run["start"]["train_loss"])
                                 for r in thresholds.get("train_relative", []) or []]}
    labels = [lab for kind, lab in threshold_labels(thresholds) if kind == "train"]
    flat = values["train"] + values["train_relative"]
    n = len(train["step"])
    cols = {k: (list(train.get(k)) if train.get(k) is not None else [None] * n)
            for k in ("step", "seconds", "cpu_seconds", "tokens", "value")}
    if window:
        entries = [{"step": cols["step"][i], "seconds": cols["seconds"][i], "cpu_seconds": cols["cpu_seconds"][i],
                    "tokens": cols["tokens"][i], "loss": cols["value"][i]} for i in range(n)]
        found = first_crossings(entries, flat, window=int(window), key="loss", full_window=full_window,
                                min_updates=min_updates) if flat else {}
        for lab, t in zip(labels, flat, strict=True):
            rec = found[threshold_key(t)]["smoothed"]
            out[lab] = None if rec is None else {
                "step": int(rec["step"]), "seconds": rec.get("seconds"), "cpu_seconds": rec.get("cpu_seconds"),
                "tokens": rec.get("tokens"), "value": rec["value"], "threshold": t}
    else:
        smoothed = _curve_for_threshold(train, "train", smoothing)
        for lab, t in zip(labels, flat, strict=True):
            out[lab] = None
            for i in range(n):
                v = smoothed[i]
                if not after_updates(int(cols["step"][i]), min_updates):
                    continue
                if v is not None and math.isfinite(v) and v <= t:
                    out[lab] = {"step": int(cols["step"][i]), "seconds": cols["seconds"][i],
                                "cpu_seconds": cols["cpu_seconds"][i], "tokens": cols["tokens"][i],
                                "value": float(v), "threshold": t}
                    break
    held = run["curves"]["heldout"]
    for t in thresholds.get("heldout", []):
        c = first_crossing(held["step"], held["seconds"], held["value"], t, held.get("tokens"))
        if c is not None:
            c = {**c, "cpu_seconds": None, "threshold": float(t)}
            c.setdefault("tokens", None)
        out[threshold_label("heldout", t)] = c
    sched = run.get("schedule") or {}
    for r in thresholds.get("heldout_relative", []) or []:
        label, c = heldout_relative_label(r), None
        if sched.get("step") and sched.get("heldout"):
            t = float(r) * float(sched["heldout"][0])
            for i, (st, v) in enumerate(zip(sched["step"], sched["heldout"], strict=True)):
                if st > 0 and v is not None and v <= t:
                    c = {"step": int(st), "seconds": sched["seconds"][i], "cpu_seconds": sched["cpu_seconds"][i],
                         "tokens": sched["tokens"][i], "value": float(v), "threshold": t}
                    break
        out[label] = c
    return out


def heldout_relative_label(r: float) -> str:
    """Label of a held-out threshold relative to the base model's held-out loss.

    Example:
        >>> heldout_relative_label(0.95)
        'held-out<=0.95x base'
    """
    return f"held-out<={float(r):g}x base"


FINALS = {"final_train_loss": ("final", "train_loss"), "final_heldout_loss": ("final", "heldout_loss"),
          "final_second_heldout_loss": ("final", "second_heldout_loss"), "final_pool_loss": ("final", "pool_loss"),
          "start_train_loss": ("start", "train_loss")}
MEASURES = ("steps", "tokens", "cpu_seconds", "seconds")


def aggregate(runs: Sequence[Mapping[str, Any]], thresholds: Mapping[str, Sequence[float]], *,
              arms: Sequence[str], smoothing: float, window: int | None = None, full_window: bool = False,
              min_updates: int = 0) -> dict[str, Any]:
    """Per-arm mean ± std over seeds of every reported quantity, with steps, tokens, CPU and wall seconds to
    each threshold.

    ``runs`` are the per-run records (``runs/<arm>-seed<s>.json``). Returns ``{arm: {...}}`` and adds
    ``crossings`` (:func:`run_crossings`) to each run.

    Example:
        >>> run = {"arm": "uniform", "seed": 0, "size": 4, "h": 0.1, "coverage_radius": 0.2,
        ...        "curves": {"train": {"step": [1, 2], "seconds": [1.0, 2.0], "value": [3.0, 2.0]},
        ...                   "heldout": {"step": [2], "seconds": [2.0], "value": [2.5]}},
        ...        "final": {"train_loss": 2.0, "heldout_loss": 2.5}, "lm_eval": {}}
        >>> agg = aggregate([run], {"train": [2.5], "heldout": [2.5]}, arms=["uniform"], smoothing=0.0)
        >>> agg["uniform"]["thresholds"]["train<=2.5"]["steps"]["mean"]
        2.0
    """
    out: dict[str, Any] = {}
    for run in runs:
        run["crossings"] = run_crossings(run, thresholds, smoothing=smoothing, window=window,  # type: ignore[index]
                                         full_window=full_window, min_updates=min_updates)
    key_of = {"steps": "step", "seconds": "seconds", "cpu_seconds": "cpu_seconds", "tokens": "tokens"}
    for arm in arms:
        rs = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        if not rs:
            continue
        entry: dict[str, Any] = {
            "seeds": [r["seed"] for r in rs],
            "size": mean_std([r["size"] for r in rs]),
            "h": mean_std([r.get("h") for r in rs]),
            "coverage_radius": mean_std([r.get("coverage_radius") for r in rs]),
            **{name: mean_std([(r.get(a) or {}).get(b) for r in rs]) for name, (a, b) in FINALS.items()},
            "steps": mean_std([r["final"].get("steps") for r in rs]),
            "train_seconds": mean_std([r["final"].get("train_seconds") for r in rs]),
            "train_cpu_seconds": mean_std([r["final"].get("train_cpu_seconds") for r in rs]),
            "train_tokens": mean_std([r["final"].get("train_tokens") for r in rs]),
            "tokens_per_step": mean_std([(r["final"].get("train_tokens") or math.nan) / max(1, r["final"].get("steps")
                                         or 1) for r in rs]),
            "thresholds": {},
            "lm_eval": {},
        }
        for label in rs[0]["crossings"]:
            cross = [r["crossings"][label] for r in rs]
            entry["thresholds"][label] = {m: mean_std([c.get(key_of[m]) if c else None for c in cross])
                                          for m in MEASURES}
        metrics = sorted({m for r in rs for m in (r.get("lm_eval") or {})})
        for m in metrics:
            entry["lm_eval"][m] = mean_std([(r.get("lm_eval") or {}).get(m) for r in rs])
        out[arm] = entry
    return out


def paired_differences(runs: Sequence[Mapping[str, Any]], *, base: str = "uniform",
                       others: Sequence[str] = COMPARATORS) -> dict[str, Any]:
    """Per-seed differences ``base - other`` (same seed = same pool draw, start row and base weights).

    For every threshold (from each run's ``crossings``) and measure (steps, tokens, CPU seconds, wall
    seconds) and for the final and step-0 losses: ``{"mean", "std", "n", "of", "values"}`` over seeds (a
    seed where either arm did not reach a threshold gives ``None``), and for thresholds ``reached``: how
    many seeds each arm reached it in. Negative = ``base`` needed less / has lower loss.

    Example:
        >>> mk = lambda arm, seed, step, loss: {"arm": arm, "seed": seed, "final": {"heldout_loss": loss},
        ...     "start": {}, "crossings": {"train<=1": {"step": step, "tokens": None, "cpu_seconds": None,
        ...                                             "seconds": None}}}
        >>> runs = [mk("uniform", 0, 4, 2.0), mk("random", 0, 6, 2.5), mk("uniform", 1, 5, 2.1),
        ...         mk("random", 1, 5, 2.0)]
        >>> d = paired_differences(runs, others=["random"])["uniform-random"]
        >>> d["thresholds"]["train<=1"]["steps"]["values"], round(d["final_heldout_loss"]["mean"], 3)
        ([-2.0, 0.0], -0.2)
    """
    key_of = {"steps": "step", "seconds": "seconds", "cpu_seconds": "cpu_seconds", "tokens": "tokens"}
    by = {(r["arm"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs if r["arm"] == base})
    out: dict[str, Any] = {}
    for other in others:
        pairs = [(by[(base, s)], by[(other, s)]) for s in seeds if (other, s) in by]
        if not pairs:
            continue
        rec: dict[str, Any] = {"seeds": [u["seed"] for u, _ in pairs], "thresholds": {}}
        for label in pairs[0][0].get("crossings", {}):
            cell: dict[str, Any] = {}
            for m in MEASURES:
                vals: list[float | None] = []
                for u, o in pairs:
                    cu, co = u["crossings"].get(label), o["crossings"].get(label)
                    a = cu.get(key_of[m]) if cu else None
                    b = co.get(key_of[m]) if co else None
                    vals.append(None if a is None or b is None else float(a) - float(b))
                cell[m] = mean_std(vals)
            cell["reached"] = {base: sum(1 for u, _ in pairs if u["crossings"].get(label)),
                               other: sum(1 for _, o in pairs if o["crossings"].get(label)), "of": len(pairs)}
            rec["thresholds"][label] = cell
        for name, (a, b) in FINALS.items():
            vals = []
            for u, o in pairs:
                x, y = (u.get(a) or {}).get(b), (o.get(a) or {}).get(b)
                vals.append(None if x is None or y is None else float(x) - float(y))
            rec[name] = mean_std(vals)
        out[f"{base}-{other}"] = rec
    return out


def _pm(ms: Mapping[str, Any] | None, digits: int = 3, *, show_n: bool = False) -> str:
    if not ms or ms.get("mean") is None:
        return "not reached" if show_n else "–"
    s = f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}" if ms["of"] > 1 else f"{ms['mean']:.{digits}f}"
    if show_n and ms["n"] < ms["of"]:
        s += f" ({ms['n']}/{ms['of']} reached)"
    return s


def _fmt_num(v: Any, digits: int) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.{digits}f}"


def verdict(arms: Mapping[str, Any], thresholds: Mapping[str, Sequence[float]]) -> list[str]:
    """Plain sentences from the per-arm aggregates (:func:`aggregate`): did uniform reach each held-out (and
    absolute train) threshold sooner than random, mixed and full?

    Descriptive only (means over seeds): the paired tests are in ``report.tests`` and the verdict, if the study
    declared a primary outcome, in ``report.verdicts``.

    Example:
        >>> ms = lambda v: mean_std(v)
        >>> arms = {a: {"thresholds": {"held-out<=2": {"steps": ms(s), "seconds": ms(s)}}}
        ...         for a, s in (("uniform", [10, 12]), ("random", [20, 22]))}
        >>> verdict(arms, {"heldout": [2.0], "train": []})[0][:60]
        'Held-out loss <= 2: uniform reached it at step 11 ± 1 (11.0 '
    """
    if "uniform" not in arms:
        return ["No uniform arm was run, so there is no verdict."]
    lines = []
    for kind in ("heldout", "train"):
        for t in thresholds[kind]:
            label = threshold_label(kind, t)
            u = arms["uniform"]["thresholds"][label]
            head = f"{KIND_LABEL[kind].capitalize()} <= {t:g}: "
            if u["steps"]["mean"] is None:
                lines.append(head + "uniform never reached it.")
                continue
            parts = [head + f"uniform reached it at step {_pm(u['steps'], 0)} ({_pm(u['seconds'], 1)} s)"]
            for other in ("random", "mixed", "full"):
                if other not in arms:
                    continue
                o = arms[other]["thresholds"][label]
                if o["steps"]["mean"] is None:
                    parts.append(f"{other} never reached it (uniform sooner)")
                    continue
                d_steps = o["steps"]["mean"] - u["steps"]["mean"]
                d_sec = o["seconds"]["mean"] - u["seconds"]["mean"]
                head_o = f"{other} at step {_pm(o['steps'], 0)} ({_pm(o['seconds'], 1)} s)"
                extra = ""
                if u.get("tokens", {}).get("mean") and o.get("tokens", {}).get("mean"):
                    extra = (f"; in training tokens {u['tokens']['mean'] / 1e3:,.1f}k vs "
                             f"{o['tokens']['mean'] / 1e3:,.1f}k")
                sec = "sooner" if d_sec > 0 else "later"
                if d_steps == 0:
                    parts.append(f"{head_o}: the same step{extra}; by the clock uniform {abs(d_sec):.1f} s {sec}")
                    continue
                word = "sooner" if d_steps > 0 else "later"
                rel = f" ({abs(d_steps) / o['steps']['mean'] * 100:.0f}%)" if o["steps"]["mean"] else ""
                parts.append(f"{head_o}: uniform {word} by {abs(d_steps):g} steps{rel} on average{extra}; by the "
                             f"clock {abs(d_sec):.1f} s {sec}")
            lines.append("; ".join(parts) + ".")
    tps = {a: (e.get("tokens_per_step") or {}).get("mean") for a, e in arms.items()}
    if tps.get("uniform") and tps.get("random"):
        ratio = tps["uniform"] / tps["random"] - 1
        if abs(ratio) > 0.1:
            lines.append(f"Uniform's batches hold {abs(ratio) * 100:.0f}% {'fewer' if ratio < 0 else 'more'} tokens "
                         f"than random's ({tps['uniform']:.0f} vs {tps['random']:.0f} per step): its examples are "
                         f"{'shorter' if ratio < 0 else 'longer'}, so a step costs {'less' if ratio < 0 else 'more'} "
                         "compute; compare tokens as well as steps.")
    finals = [f"{a} {_pm(e['final_heldout_loss'], 4)}" for a, e in arms.items() if e.get("final_heldout_loss")]
    if finals:
        lines.append("Final held-out loss (lower is better): " + ", ".join(finals) + ".")
    return lines


def study_cost(runs: Sequence[Mapping[str, Any]],
               base_evals: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Total wall and process CPU seconds of the study's runs (training call + final evaluation) and of the
    base-model evaluations (``base_evals``: the ``base_eval-seed<s>.json`` records); summed over the records,
    so a resumed study counts each run once.

    Example:
        >>> study_cost([{"seconds": {"train_call": 10.0, "evaluation": 2.0},
        ...              "cpu_seconds": {"train_call": 18.0, "evaluation": 3.0}}])["runs_wall_seconds"]
        12.0
    """
    wall = sum(sum((r.get("seconds") or {}).values()) for r in runs)
    cpu = sum(sum((r.get("cpu_seconds") or {}).values()) for r in runs)
    out = {"runs_wall_seconds": wall, "runs_cpu_seconds": cpu}
    if base_evals is not None:
        base = list(base_evals)
        out["base_eval_wall_seconds"] = sum(b.get("seconds", 0.0) for b in base)
        out["base_eval_cpu_seconds"] = sum(b.get("cpu_seconds", 0.0) for b in base)
    out["total_wall_seconds"] = wall + out.get("base_eval_wall_seconds", 0.0)
    out["total_cpu_seconds"] = cpu + out.get("base_eval_cpu_seconds", 0.0)
    return out


def _fmt_diff(ms: Mapping[str, Any], digits: int = 1, scale: float = 1.0) -> str:
    if not ms or ms.get("mean") is None:
        return "n/a"
    vals = ", ".join("–" if v is None else f"{v / scale:+.{digits}f}" for v in ms["values"])
    return f"{ms['mean'] / scale:+.{digits}f} ± {(ms['std'] or 0) / scale:.{digits}f} (seeds: {vals})"


def _p_value(ms: Mapping[str, Any]) -> float | None:
    """Two-sided paired t-test p-value of the per-seed differences in ``ms`` (None below 2 seeds)."""
    from .inference import paired_t_test

    return paired_t_test(ms.get("values") or [])["p_value"] if ms else None


def _clear(ms: Mapping[str, Any]) -> str:
    """The paired t-test of a mean paired difference, in words: ``p = 0.042 (paired t, 3 seeds)``.

    Example:
        >>> _clear(mean_std([1.0, 2.0, 3.0]))
        'p = 0.074 (paired t, 3 seeds)'
    """
    if not ms or ms.get("mean") is None or ms["n"] < 2:
        return "too few seeds to test"
    return f"p = {_p_value(ms):.3f} (paired t, {ms['n']} seeds)"


#: The opening of a report whose study declared no primary outcome.
NO_VERDICT = ("No primary outcome was declared before the runs, so this report states no verdict: the differences "
              "below are exploratory (thresholds and p-values uncorrected for the many comparisons). Declare "
              "primary_outcome and primary_step in the config for a pre-declared test with a verdict.")


def verdict_summary(paired: Mapping[str, Any], alpha: float = 0.05) -> list[str]:
    """The opening of a report without a declared primary outcome: :data:`NO_VERDICT`, then one sentence per
    comparison arm: at how many thresholds uniform was sooner / later in steps (mean of the paired per-seed
    differences), at how many of those a paired t-test gives p < ``alpha``, and the final held-out loss.

    Example:
        >>> ms = lambda v: mean_std(v)
        >>> cell = lambda v: {"steps": ms(v), "reached": {"uniform": 3, "random": 3, "of": 3}}
        >>> pd = {"uniform-random": {"thresholds": {"a": cell([-2.0, -3.0, -2.5]), "b": cell([1.0, -1.0, 2.0])},
        ...                          "final_heldout_loss": ms([0.1, 0.2, 0.1])}}
        >>> lines = verdict_summary(pd)
        >>> lines[0] == NO_VERDICT
        True
        >>> lines[1][:96]
        'Against random: uniform reached 1 of 2 thresholds sooner (1 with p < 0.05) and 1 later (0 with p'
    """
    out = [NO_VERDICT] if paired else []
    for comp, rec in (paired or {}).items():
        other = comp.split("-", 1)[1]
        cells = [c["steps"] for c in rec["thresholds"].values() if c["steps"]["mean"] is not None]
        sooner = [c for c in cells if c["mean"] < 0]
        later = [c for c in cells if c["mean"] > 0]
        sig = lambda cs: sum(1 for c in cs if (_p_value(c) or 1.0) < alpha)  # noqa: E731
        line = (f"Against {other}: uniform reached {len(sooner)} of {len(rec['thresholds'])} thresholds sooner "
                f"({sig(sooner)} with p < {alpha:g}) and {len(later)} later ({sig(later)} with p < {alpha:g}), in "
                "steps (mean of the paired per-seed differences)")
        ho = rec.get("final_heldout_loss")
        if ho and ho.get("mean") is not None:
            line += (f"; final held-out loss uniform - {other} = {ho['mean']:+.4f} ± {ho['std'] or 0:.4f} "
                     f"({_clear(ho)})")
        out.append(line + ".")
    return out


def plain_verdict(paired: Mapping[str, Any]) -> list[str]:
    """The opening of ``report.md``: per comparison arm and threshold, does uniform get there sooner (in
    steps, tokens and CPU seconds), by how much (mean ± std of the per-seed paired differences), with the
    paired t-test's p-value; then the final losses.

    Example:
        >>> ms = lambda v: mean_std(v)
        >>> pd = {"uniform-random": {"thresholds": {"train<=0.9x start": {
        ...     "steps": ms([-2.0, -3.0, -1.0]), "tokens": ms([-100.0, -50.0, -80.0]),
        ...     "cpu_seconds": ms([-5.0, -6.0, -4.0]), "seconds": ms([-3.0, -2.0, -1.0]),
        ...     "reached": {"uniform": 3, "random": 3, "of": 3}}},
        ...     "final_heldout_loss": ms([0.1, 0.0, 0.05])}}
        >>> plain_verdict(pd)[0][:58]
        'uniform vs random, train<=0.9x start: uniform reached it 2'
    """
    lines = []
    for comp, rec in (paired or {}).items():
        other = comp.split("-", 1)[1]
        for label, cell in rec["thresholds"].items():
            st = cell["steps"]
            head = f"uniform vs {other}, {label}: "
            reached = cell["reached"]
            if st["mean"] is None:
                lines.append(head + f"no seed where both reached it (uniform {reached['uniform']}/{reached['of']}, "
                             f"{other} {reached[other]}/{reached['of']} seeds).")
                continue
            word = "sooner" if st["mean"] < 0 else ("later" if st["mean"] > 0 else "at the same step")
            amount = f"{abs(st['mean']):.1f} steps {word}" if st["mean"] else word
            lines.append(
                head + f"uniform reached it {amount} (paired difference uniform - {other}: steps "
                f"{_fmt_diff(st)}, {_clear(st)}; tokens {_fmt_diff(cell['tokens'], 1, 1e3)}k, "
                f"{_clear(cell['tokens'])}; CPU seconds {_fmt_diff(cell['cpu_seconds'], 0)}, "
                f"{_clear(cell['cpu_seconds'])}; wall seconds {_fmt_diff(cell['seconds'], 0)}). "
                f"Reached in uniform {reached['uniform']}/{reached['of']}, {other} {reached[other]}/{reached['of']} seeds.")
        for name, what in (("final_heldout_loss", "final held-out loss (alpaca split taken before selection)"),
                           ("final_second_heldout_loss", "final loss on the unseen second source"),
                           ("final_pool_loss", "final loss on the seed's full pool"),
                           ("start_train_loss", "step-0 loss on the arm's own rows")):
            ms = rec.get(name)
            if ms and ms.get("mean") is not None:
                lines.append(f"uniform vs {other}, {what}: uniform - {other} = {_fmt_diff(ms, 4)} "
                             f"({'uniform lower' if ms['mean'] < 0 else 'uniform higher'}; {_clear(ms)}).")
    return lines




def choose_thresholds(cfg: StudyConfig, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The report's thresholds: the declared ones (``relative_thresholds``, ``train_thresholds``,
    ``heldout_thresholds``), else :func:`auto_thresholds` of the runs' curves; with ``source`` and ``rule``
    (the sentence the report prints).

    Example:
        >>> cfg = StudyConfig(relative_thresholds=[0.8, 0.9], train_thresholds=[1.5], window=3)
        >>> th = choose_thresholds(cfg, [])
        >>> th["train_relative"], th["train"], th["heldout"], th["source"]
        ([0.9, 0.8], [1.5], [], 'declared in the config before the runs')
    """
    thresholds: dict[str, Any] = {}
    given = {"train": cfg.train_thresholds, "heldout": cfg.heldout_thresholds}
    declared = bool(cfg.relative_thresholds)
    if declared:  # declared in the config before the runs: nothing is chosen after seeing the curves
        thresholds["train_relative"] = sorted({float(r) for r in cfg.relative_thresholds}, reverse=True)
        if getattr(cfg, "heldout_relative_thresholds", None):
            thresholds["heldout_relative"] = sorted({float(r) for r in cfg.heldout_relative_thresholds},
                                                    reverse=True)
    for kind in LOSS_KINDS:
        if declared and not given[kind]:
            thresholds[kind] = []
        elif given[kind]:
            thresholds[kind] = sorted({float(t) for t in given[kind]}, reverse=True)
        else:
            # the evaluation before the first step only shows the untrained model: leave it out, or the loose
            # threshold falls in the first, trivial drop that every arm makes before the next evaluation
            try:
                thresholds[kind] = auto_thresholds([
                    [v for st, v in zip(r["curves"][kind]["step"], _curve_for_threshold(r["curves"][kind], kind,
                                                                                          cfg.smoothing), strict=True)
                     if st > 0] for r in runs])
            except UniformError:  # no curve to choose from (e.g. no held-out evaluation): the report still gets written
                thresholds[kind] = []
    source = "given" if all(given.values()) else ("automatic" if not any(given.values()) else "partly automatic")
    rule = ("Automatic thresholds: the tight one is the worst run's lowest loss (so every run reaches it), the "
            "loose one lies halfway between it and the lowest loss at the first logged point after step 0. ")
    if declared:
        source, rule = "declared in the config before the runs", ""
    smooth = (f"its trailing moving average over {cfg.window} optimizer steps "
              "(hf_uniform.train.callbacks.first_crossings)" if cfg.window else
              f"its EMA (weight {cfg.smoothing:g})")
    rule += (f"A run reaches a threshold at the first logged point at or below it (<=); the training loss is "
             f"{smooth}, held-out loss is used as evaluated. Relative thresholds (r x start) are fractions of "
             "the run's step-0 loss: the base model's token-weighted loss on the run's own training rows.")
    if getattr(cfg, "full_window", False) and cfg.window:
        rule += (f" A training-loss crossing counts only on a full {cfg.window}-step window whose every loss was "
                 f"computed after at least {cfg.min_updates} optimizer update(s) (the loss logged at step s is "
                 "computed before update s).")
    if thresholds.get("heldout_relative"):
        rule += (" Held-out thresholds (r x base) are fractions of the base model's held-out loss, read off the "
                 "held-out schedule (the first scheduled step after step 0 at or below it).")
    return {**thresholds, "source": source, "rule": rule}
