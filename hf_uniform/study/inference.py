"""The study's statistics: paired tests across seeds, power and the minimum detectable effect, the verdicts.

The unit of replication is the seed (its own pool draw, start row, random rows and data order), so every
comparison ``uniform - other`` is a paired test over seeds:

* :func:`paired_t_test`: two-sided one-sample t-test of the per-seed differences (scipy's ``ttest_1samp``),
  with the power to detect a given effect (noncentral t) and the minimum detectable effect at the target
  power for this number of seeds and the observed spread;
* :func:`primary_outcome`: the declared primary outcome of one run (the in-source held-out loss at
  ``primary_step``, read from the held-out schedule) and the paper's claimed effect translated into it;
* :func:`decide`: the declared verdict rule;
* :func:`inference`: every comparison's primary test, secondary tests, verdicts and the power block of
  ``report.json``; :func:`arm_overlap`: pairwise row overlap of the arms per seed.

Example:
    >>> r = paired_t_test([-0.02, -0.03, -0.025], claimed_effect=0.01)
    >>> round(r["p_value"], 4), decide(r)
    (0.0131, 'yes')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import MissingExtraError

VERDICT_RULE = ("per comparison, a two-sided paired t-test over seeds of uniform - other on the primary outcome "
                "(lower = uniform better): 'yes' when p < alpha and uniform is lower; 'no' when p < alpha and "
                "uniform is higher, or when p >= alpha although the design's minimum detectable effect (at the "
                "target power, from the observed paired SD) is below the paper's claimed effect; otherwise "
                "'inconclusive' (the design cannot tell the claimed effect from none)")


def _stats() -> Any:
    try:
        from scipy import stats
    except ImportError as err:  # pragma: no cover - scipy comes with the [eval] extra
        raise MissingExtraError("the study's statistics need scipy; pip install 'hf-uniform[eval]'") from err
    return stats


def power_paired(effect: float, sd: float, n: int, alpha: float = 0.05) -> float | None:
    """Power of a two-sided paired t-test with ``n`` pairs to detect a true mean difference ``effect``.

    ``None`` when it is undefined (fewer than 2 pairs or no spread).

    Example:
        >>> round(power_paired(1.0, 1.0, 10), 3)
        0.803
    """
    if n < 2 or not sd or not math.isfinite(sd) or sd <= 0:
        return None
    st = _stats()
    df = n - 1
    crit = float(st.t.ppf(1 - alpha / 2, df))
    nc = abs(effect) / sd * math.sqrt(n)
    upper, lower = float(st.nct.sf(crit, df, nc)), float(st.nct.cdf(-crit, df, nc))
    # far in the tail scipy's noncentral t can return nan: the probabilities are then 1 and 0
    upper = upper if math.isfinite(upper) else (1.0 if nc > crit else 0.0)
    lower = lower if math.isfinite(lower) else 0.0
    return min(1.0, upper + lower)


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest true mean difference a two-sided paired t-test with ``n`` pairs detects with ``power``.

    Example:
        >>> round(minimum_detectable_effect(1.0, 10), 3)
        0.996
    """
    if n < 2 or not sd or not math.isfinite(sd) or sd <= 0:
        return None
    _stats()
    from scipy.optimize import brentq

    hi = sd
    while power_paired(hi, sd, n, alpha) < power:
        hi *= 2
    return float(brentq(lambda d: power_paired(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-12 * sd))


def paired_t_test(diffs: Sequence[float | None], *, claimed_effect: float | None = None, alpha: float = 0.05,
                  power: float = 0.8) -> dict[str, Any]:
    """Two-sided paired t-test of per-seed differences (``None`` = a seed without a value, left out).

    Returns ``n``, ``mean``, ``sd``, ``t``, ``df``, ``p_value``, ``alpha``, the two-sided ``1 - alpha``
    confidence interval of the mean difference (``ci_low``, ``ci_high``: mean ± t(1 - alpha/2, n - 1) sd / √n),
    the ``claimed_effect`` (the size the paper claims, in the same unit, as a magnitude),
    ``power_at_claimed_effect`` and the ``minimum_detectable_effect`` at ``power``.

    Example:
        >>> r = paired_t_test([1.0, 2.0, 3.0])
        >>> r["mean"], round(r["t"], 4), round(r["p_value"], 4)
        (2.0, 3.4641, 0.0742)
    """
    vals = [float(v) for v in diffs if v is not None and math.isfinite(float(v))]
    n = len(vals)
    out: dict[str, Any] = {"n": n, "values": [None if v is None else float(v) for v in diffs], "alpha": alpha,
                           "mean": float(np.mean(vals)) if vals else None,
                           "sd": float(np.std(vals, ddof=1)) if n > 1 else None,
                           "t": None, "df": n - 1 if n > 1 else None, "p_value": None,
                           "claimed_effect": None if claimed_effect is None else abs(float(claimed_effect)),
                           "power_at_claimed_effect": None, "minimum_detectable_effect": None,
                           "target_power": power, "ci_low": None, "ci_high": None}
    if n < 2:
        return out
    sd = out["sd"]
    if sd == 0:
        out["t"] = math.copysign(math.inf, out["mean"]) if out["mean"] else 0.0
        out["p_value"] = 0.0 if out["mean"] else 1.0
        out["ci_low"] = out["ci_high"] = out["mean"]
        return out
    st = _stats()
    res = st.ttest_1samp(vals, 0.0)
    out["t"], out["p_value"] = float(res.statistic), float(res.pvalue)
    half = float(st.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    out["minimum_detectable_effect"] = minimum_detectable_effect(sd, n, alpha, power)
    if claimed_effect is not None:
        out["power_at_claimed_effect"] = power_paired(claimed_effect, sd, n, alpha)
    return out


def decide(test: Mapping[str, Any]) -> str:
    """The declared verdict of one comparison (see :data:`VERDICT_RULE`).

    Example:
        >>> decide({"p_value": 0.2, "mean": -0.1, "alpha": 0.05, "minimum_detectable_effect": 0.5,
        ...         "claimed_effect": 0.2})
        'inconclusive'
        >>> decide({"p_value": 0.2, "mean": -0.1, "alpha": 0.05, "minimum_detectable_effect": 0.1,
        ...         "claimed_effect": 0.2})
        'no'
    """
    p, mean = test.get("p_value"), test.get("mean")
    if p is None or mean is None:
        return "inconclusive"
    if p < test.get("alpha", 0.05):
        return "yes" if mean < 0 else "no"
    mde, claim = test.get("minimum_detectable_effect"), test.get("claimed_effect")
    if mde is not None and claim is not None and mde < claim:
        return "no"
    return "inconclusive"


def value_at_step(steps: Sequence[float], values: Sequence[float | None], step: float) -> float | None:
    """``values`` at ``step``, linearly interpolated between the two nearest scheduled points (``None`` outside).

    Example:
        >>> round(value_at_step([0, 8, 16], [2.0, 1.8, 1.6], 12), 6)
        1.7
    """
    pts = [(float(s), float(v)) for s, v in zip(steps, values, strict=True) if v is not None]
    if not pts or step < pts[0][0] or step > pts[-1][0]:
        return None
    xs, ys = zip(*pts, strict=True)
    return float(np.interp(step, xs, ys))


def primary_outcome(run: Mapping[str, Any], step: int, source: str = "heldout") -> float | None:
    """The declared primary outcome of one run: the ``source`` held-out loss at ``step`` of its schedule.

    Example:
        >>> primary_outcome({"schedule": {"step": [0, 8, 16], "heldout": [2.0, 1.9, 1.8]}}, 16)
        1.8
    """
    sched = run.get("schedule") or {}
    if not sched.get("step") or source not in sched:
        return None
    return value_at_step(sched["step"], sched[source], step)


def claimed_effect(runs: Sequence[Mapping[str, Any]], step: int, speedup: float,
                   source: str = "heldout") -> float | None:
    """The paper's claim in loss units: how much lower the comparator's held-out loss is at ``step x speedup``
    than at ``step`` (mean over its runs), i.e. what a ``speedup``-times faster arm shows at ``step``.

    Example:
        >>> run = {"schedule": {"step": [0, 8, 16, 24, 32], "heldout": [2.0, 1.9, 1.8, 1.7, 1.6]}}
        >>> round(claimed_effect([run], 16, 1.5), 6)
        0.1
    """
    gaps = []
    for r in runs:
        a, b = primary_outcome(r, step, source), primary_outcome(r, step * speedup, source)
        if a is not None and b is not None:
            gaps.append(a - b)
    return float(np.mean(gaps)) if gaps else None


def arm_overlap(arm_rows: Mapping[str, np.ndarray], seeds: Sequence[int]) -> dict[str, dict[str, int]]:
    """Rows two arms of the same seed share: ``{"seed<s>": {"a&b": count}}`` for every arm pair.

    Example:
        >>> arm_overlap({"uniform-seed0": np.array([1, 2, 3]), "random-seed0": np.array([3, 4, 5])}, [0])
        {'seed0': {'random&uniform': 1}}
    """
    out: dict[str, dict[str, int]] = {}
    for s in seeds:
        names = sorted(n.rsplit("-seed", 1)[0] for n in arm_rows if n.endswith(f"-seed{s}"))
        cell = {}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                cell[f"{a}&{b}"] = int(np.intersect1d(arm_rows[f"{a}-seed{s}"], arm_rows[f"{b}-seed{s}"]).size)
        out[f"seed{s}"] = cell
    return out


def _diffs(runs: Sequence[Mapping[str, Any]], other: str, value: Any) -> tuple[list[int], list[float | None]]:
    by = {(r["arm"], r["seed"]): r for r in runs}
    seeds = sorted(s for (a, s) in by if a == "uniform" and (other, s) in by)
    out: list[float | None] = []
    for s in seeds:
        u, o = value(by[("uniform", s)]), value(by[(other, s)])
        out.append(None if u is None or o is None else float(u) - float(o))
    return seeds, out


def _log_ratio(a: Any, b: Any) -> float | None:
    return None if not a or not b else math.log(float(a) / float(b))


def inference(runs: Sequence[Mapping[str, Any]], *, comparators: Sequence[str], primary_step: int,
              last_step: int | None, speedup: float, alpha: float = 0.05, power: float = 0.8,
              heldout_labels: Sequence[str] = (), train_labels: Sequence[str] = ()) -> dict[str, Any]:
    """Primary and secondary tests of every comparison ``uniform - other`` and the verdicts.

    Every run needs its ``schedule`` (held-out curves) and, for the step secondaries, its ``crossings``.
    Step outcomes are tested as log step ratios (the paper's speed-up is a ratio; its claimed effect is
    ``log(speedup)``); seeds where either arm never crossed are censored (left out, and counted).

    Returns ``{"verdicts": {other: {...}}, "tests": {other: {name: test}}, "power": {other: {...}},
    "rule": VERDICT_RULE}``.

    Example:
        >>> mk = lambda arm, s, v: {"arm": arm, "seed": s, "schedule": {"step": [0, 8, 16, 24, 32],
        ...     "heldout": [2.0, 1.9, v, v - 0.1, v - 0.2]}, "crossings": {}}
        >>> runs = [mk("uniform", 0, 1.7), mk("random", 0, 1.8), mk("uniform", 1, 1.69), mk("random", 1, 1.8),
        ...         mk("uniform", 2, 1.71), mk("random", 2, 1.79)]
        >>> out = inference(runs, comparators=["random"], primary_step=16, last_step=32, speedup=1.5)
        >>> out["verdicts"]["random"]["verdict"], out["verdicts"]["random"]["seeds"]
        ('yes', [0, 1, 2])
    """
    verdicts: dict[str, Any] = {}
    tests: dict[str, Any] = {}
    powers: dict[str, Any] = {}
    for other in comparators:
        if not any(r["arm"] == other for r in runs):
            continue
        cmp_runs = [r for r in runs if r["arm"] == other]
        claim = claimed_effect(cmp_runs, primary_step, speedup)
        seeds, d = _diffs(runs, other, lambda r: primary_outcome(r, primary_step))
        if not seeds:
            continue
        prim = paired_t_test(d, claimed_effect=claim, alpha=alpha, power=power)
        prim.update({"outcome": f"in-source held-out loss at step {primary_step} (uniform - {other})",
                     "unit": "nats/token", "seeds": seeds, "primary": True})
        verdict = decide(prim)
        verdicts[other] = {"verdict": verdict, "p_value": prim["p_value"], "mean_difference": prim["mean"],
                           "sd": prim["sd"], "n_seeds": prim["n"], "seeds": seeds, "claimed_effect": claim,
                           "minimum_detectable_effect": prim["minimum_detectable_effect"],
                           "power_at_claimed_effect": prim["power_at_claimed_effect"],
                           "ci_low": prim["ci_low"], "ci_high": prim["ci_high"], "ci_level": 1 - alpha,
                           "alpha": alpha,
                           "claim_outside_ci": (None if prim["ci_low"] is None or claim is None
                                                else bool(-abs(claim) < prim["ci_low"])),
                           "outcome": prim["outcome"]}
        powers[other] = {k: prim[k] for k in ("n", "sd", "minimum_detectable_effect", "claimed_effect",
                                              "power_at_claimed_effect", "target_power", "alpha")}
        sec: dict[str, Any] = {"primary": prim}
        if last_step:
            for source, what in (("heldout", "in-source held-out"), ("second_heldout", "second-source held-out")):
                for step in sorted({primary_step, last_step}):
                    if source == "heldout" and step == primary_step:
                        continue
                    _, dd = _diffs(runs, other, lambda r, s=step, src=source: primary_outcome(r, s, src))
                    c = claimed_effect(cmp_runs, step, speedup, source) if step * speedup <= last_step else None
                    t = paired_t_test(dd, claimed_effect=c, alpha=alpha, power=power)
                    t.update({"outcome": f"{what} loss at step {step}", "unit": "nats/token", "primary": False})
                    sec[f"{source}_loss_at_step{step}"] = t
        for label in [*heldout_labels, *train_labels]:
            _, dd = _diffs(runs, other, lambda r, lab=label: (r.get("crossings") or {}).get(lab) and
                           (r["crossings"][lab] or {}).get("step"))
            by = {(r["arm"], r["seed"]): r for r in runs}
            ratios, steps = [], set()
            for s in seeds:
                cu = ((by[("uniform", s)].get("crossings") or {}).get(label) or {}).get("step")
                co = ((by[(other, s)].get("crossings") or {}).get(label) or {}).get("step")
                ratios.append(_log_ratio(cu, co))
                steps |= {cu, co}
            t = paired_t_test(ratios, claimed_effect=math.log(speedup), alpha=alpha, power=power)
            t.update({"outcome": f"log(steps to {label}: uniform / {other})", "unit": "log ratio",
                      "primary": False, "censored_seeds": sum(1 for v in ratios if v is None),
                      "step_differences": dd,
                      # every run of both arms crossed at one step: the threshold does not separate the arms at
                      # the resolution it is measured with (the ratio is 0 by construction, not by evidence)
                      "crossed_at_one_step": next(iter(steps)) if len(steps) == 1 and None not in steps else None})
            sec[f"steps_to:{label}"] = t
        tests[other] = sec
    return {"verdicts": verdicts, "tests": tests, "power": powers, "rule": VERDICT_RULE}


def fmt_value(v: Any, digits: int = 4, sign: bool = False) -> str:
    """A number for the report (``–`` for none), e.g. ``fmt_value(-0.01, 3, sign=True) == '-0.010'``."""
    if v is None or not math.isfinite(float(v)):
        return "–"
    return f"{float(v):+.{digits}f}" if sign else f"{float(v):.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value for the report: three decimals, ``< 0.001`` below that, ``–`` for none.

    Example:
        >>> fmt_p(0.0421), fmt_p(0.0003), fmt_p(None)
        ('0.042', '< 0.001', '–')
    """
    if p is None or not math.isfinite(float(p)):
        return "–"
    return "< 0.001" if p < 0.001 else f"{float(p):.3f}"


def _ci_sentence(v: Mapping[str, Any]) -> str:
    """A supplementary sentence: the confidence interval and where the claimed benefit lies against it."""
    if v.get("ci_low") is None or v.get("claimed_effect") is None:
        return ""
    claim = -abs(v["claimed_effect"])
    where = ("outside it (the data exclude a benefit that large)" if claim < v["ci_low"]
             else "inside it (the data do not exclude it)")
    return (f" {v.get('ci_level', 0.95):.0%} CI of the difference [{fmt_value(v['ci_low'], 4, True)}, "
            f"{fmt_value(v['ci_high'], 4, True)}]; the claimed benefit ({fmt_value(claim, 4, True)}) lies {where}.")


def verdict_lines(verdicts: Mapping[str, Mapping[str, Any]], target_power: float = 0.8) -> list[str]:
    """One plain sentence per comparison from the verdicts of :func:`inference`.

    Example:
        >>> v = {"random": {"verdict": "inconclusive", "p_value": 0.5, "mean_difference": -0.01, "sd": 0.02,
        ...      "n_seeds": 3, "claimed_effect": 0.02, "minimum_detectable_effect": 0.07,
        ...      "power_at_claimed_effect": 0.1, "outcome": "in-source held-out loss at step 16 (uniform - random)"}}
        >>> verdict_lines(v)[0][:60]
        'Against random: **inconclusive**. in-source held-out loss at'
    """
    _f = fmt_value
    out = []
    for other, v in (verdicts or {}).items():
        words = {"yes": "uniform trains faster (lower held-out loss at the same step)",
                 "no": "uniform does not train faster",
                 "inconclusive": "this design cannot tell"}[v["verdict"]]
        p, mean = v.get("p_value"), v.get("mean_difference")
        if v["verdict"] == "no" and p is not None and mean is not None and p < v.get("alpha", 0.05) and mean > 0:
            words = f"uniform does not train faster; it is significantly slower than {other} (higher held-out loss)"
        out.append(
            f"Against {other}: **{v['verdict']}**. {v['outcome']}: {_f(v['mean_difference'], 4, True)} ± "
            f"{_f(v['sd'])} nats/token over {v['n_seeds']} seeds, p {'' if fmt_p(v['p_value']).startswith('<') else '= '}{fmt_p(v['p_value'])}. The paper's smallest "
            f"claimed speed-up corresponds to a difference of {_f(v['claimed_effect'])} here; with this many seeds "
            f"and this spread the design detects {_f(v['minimum_detectable_effect'])} with {target_power:.0%} power "
            f"(power at the claimed effect: {_f(v['power_at_claimed_effect'], 2)}).{_ci_sentence(v)} "
            f"In words: {words}.")
    return out
