"""``report.md``: the study report rendered from a :class:`~hf_uniform.study.StudyReport`.

One function per section, each returning its lines; tables are built from rows by :func:`md_table`.
``render_markdown(StudyReport.read("reports/smollm2_finetune"))`` reproduces the committed ``report.md``.

Example:
    >>> print(md_table(["arm", "size"], [["uniform", "6"]]))
    | arm | size |
    |---|---|
    | uniform | 6 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_json, atomic_write_text
from .analysis import _fmt_num, _pm, mean_std, threshold_labels
from .inference import fmt_p
from .inference import fmt_value as _f
from .report import StudyReport


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table: the header, the ``|---|`` line, one line per row.

    Example:
        >>> md_table(["a", "b"], [])
        '| a | b |\\n|---|---|'
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _thousands(ms: Mapping[str, Any] | None) -> dict[str, Any]:
    """A mean ± std of tokens in thousands."""
    ms = dict(ms or {})
    if ms.get("mean") is not None:
        ms = {**ms, "mean": ms["mean"] / 1e3, "std": (ms["std"] or 0.0) / 1e3}
    return ms


def table_columns(thresholds: Mapping[str, Sequence[float]], lm_metrics: Sequence[str]) -> list[str]:
    """Header of the report's main table, in order.

    Example:
        >>> table_columns({"train": [2.0], "heldout": [2.5]}, ["arc_challenge/acc"])[:4]
        ['arm', 'size', 'h', 'coverage radius']
    """
    cols = ["arm", "size", "h", "coverage radius"]
    for _, label in threshold_labels(thresholds):
        cols += [f"steps to {label}", f"seconds to {label}"]
    return [*cols, "final train loss", "final held-out loss", *lm_metrics]


def render_table(report: StudyReport) -> str:
    """The main table: one row per arm, mean ± std over seeds.

    Example:
        >>> arm = {"size": mean_std([10]), "h": mean_std([0.0]), "coverage_radius": mean_std([0.0]),
        ...        "thresholds": {}, "final_train_loss": mean_std([2.0]), "final_heldout_loss": mean_std([2.5]),
        ...        "lm_eval": {}}
        >>> print(render_table(StudyReport(arms={"full": arm})))
        | arm | size | h | coverage radius | final train loss | final held-out loss |
        |---|---|---|---|---|---|
        | full | 10 | 0.0000 | 0.0000 | 2.000 | 2.500 |
    """
    th = report.thresholds
    rows = []
    for arm, e in report.arms.items():
        cells = [arm, f"{e['size']['mean']:.0f}", _pm(e["h"], 4), _pm(e["coverage_radius"], 4)]
        for _, label in threshold_labels(th):
            rec = e["thresholds"][label]
            cells += [_pm(rec["steps"], 0, show_n=True), _pm(rec["seconds"], 1, show_n=True)]
        cells += [_pm(e["final_train_loss"]), _pm(e["final_heldout_loss"])]
        cells += [_pm(e["lm_eval"].get(m), 3) for m in report.lm_metrics]
        rows.append(cells)
    return md_table(table_columns(th, report.lm_metrics), rows)


def render_tokens_table(report: StudyReport) -> str:
    """Training tokens (thousands) to each threshold and tokens per step, per arm.

    Example:
        >>> print(render_tokens_table(StudyReport(arms={"full": {"tokens_per_step": mean_std([2000.0])}})))
        | arm | tokens per step |
        |---|---|
        | full | 2000 |
    """
    labels = [lab for _, lab in threshold_labels(report.thresholds)]
    rows = []
    for arm, e in report.arms.items():
        cells = [arm, _pm(e.get("tokens_per_step"), 0)]
        for lab in labels:
            ms = _thousands(e["thresholds"][lab].get("tokens"))
            cells.append(_pm(ms, 1, show_n=True) if ms else "–")
        rows.append(cells)
    return md_table(["arm", "tokens per step", *[f"k tokens to {lab}" for lab in labels]], rows)


def render_heldout_table(report: StudyReport, max_columns: int = 12) -> str:
    """Held-out loss at each evaluation step, per arm (mean ± std over seeds); empty when steps differ.

    At most ``max_columns`` steps are shown (evenly spaced, always the first and the last).

    Example:
        >>> run = lambda a, v: {"arm": a, "curves": {"heldout": {"step": [0, 10], "value": v}}}
        >>> print(render_heldout_table(StudyReport(runs=[run("uniform", [7.0, 5.0]), run("uniform", [7.0, 6.0])])))
        | arm | step 0 | step 10 |
        |---|---|---|
        | uniform | 7.000 ± 0.000 | 5.500 ± 0.707 |
    """
    runs = report.runs
    steps = [tuple(r["curves"]["heldout"]["step"]) for r in runs]
    if not runs or len(set(steps)) != 1 or not steps[0]:
        return ""
    cols = list(steps[0])
    if len(cols) > max_columns:
        pick = np.unique(np.round(np.linspace(0, len(cols) - 1, max_columns)).astype(int))
        cols = [cols[i] for i in pick]
    rows = []
    for arm in dict.fromkeys(r["arm"] for r in runs):
        values = [[r["curves"]["heldout"]["value"][steps[0].index(c)] for r in runs if r["arm"] == arm] for c in cols]
        rows.append([arm, *[_pm(mean_std(v)) for v in values]])
    return md_table(["arm", *[f"step {c}" for c in cols]], rows)


def render_compute_table(report: StudyReport) -> str:
    """Two tables: per arm and threshold the steps, k tokens, CPU and wall seconds to reach it; per arm the
    step-0 and final losses and the training cost (mean ± std over seeds).

    Example:
        >>> render_compute_table(StudyReport())
        ''
    """
    arms = report.arms
    if not arms:
        return ""
    labels = [lab for _, lab in threshold_labels(report.thresholds)]
    reach = []
    for arm, e in arms.items():
        for lab in labels:
            rec = e["thresholds"][lab]
            reach.append([arm, lab, f"{rec['steps']['n']}/{rec['steps']['of']}", _pm(rec["steps"], 1),
                          _pm(_thousands(rec.get("tokens")), 1), _pm(rec.get("cpu_seconds"), 0),
                          _pm(rec.get("seconds"), 0)])
    finals = [[arm, _pm(e.get("start_train_loss"), 4), _pm(e.get("final_train_loss"), 4),
               _pm(e.get("final_heldout_loss"), 4), _pm(e.get("final_second_heldout_loss"), 4),
               _pm(e.get("final_pool_loss"), 4), _pm(e.get("steps"), 0), _pm(_thousands(e.get("train_tokens")), 1),
               _pm(e.get("train_cpu_seconds"), 0), _pm(e.get("train_seconds"), 0)] for arm, e in arms.items()]
    return "\n".join([
        md_table(["arm", "threshold", "reached", "steps", "k tokens", "CPU s", "wall s"], reach), "",
        md_table(["arm", "step-0 loss (own rows)", "final train loss", "final held-out", "final second source",
                  "final full pool", "steps", "k tokens", "train CPU s", "train wall s"], finals)])


# ------------------------------------------------------------------------------------------------ sections


def render_tests_table(report: StudyReport) -> str:
    """Every paired test (primary first): outcome, mean ± sd of uniform - other, its CI, n, p, MDE, claimed effect.

    Example:
        >>> render_tests_table(StudyReport())
        ''
    """
    rows = []
    for other, tests in (report.tests or {}).items():
        for t in tests.values():
            n_cens = t.get("censored_seeds")
            one = t.get("crossed_at_one_step")
            rows.append([other, ("**primary** " if t.get("primary") else "") + t["outcome"]
                         + (f" (every run crossed at step {one}: not resolved)" if one is not None else ""),
                         f"{_f(t['mean'], 4, True)} ± {_f(t['sd'])}",
                         f"[{_f(t.get('ci_low'), 4, True)}, {_f(t.get('ci_high'), 4, True)}]",
                         f"{t['n']}" + (f" ({n_cens} censored)" if n_cens else ""),
                         fmt_p(t["p_value"]), _f(t["minimum_detectable_effect"]), _f(t["claimed_effect"]),
                         _f(t["power_at_claimed_effect"], 2)])
    if not rows:
        return ""
    return md_table(["vs", "outcome (uniform - other; negative = uniform lower / sooner)", "mean ± sd", "95 % CI",
                     "seeds",
                     "p (two-sided)", "MDE (80 % power)", "claimed effect", "power at claim"], rows)


def render_schedule_table(report: StudyReport, source: str = "heldout") -> str:
    """Held-out loss of every arm at each scheduled step (mean ± std over seeds; step 0 = base model).

    Example:
        >>> render_schedule_table(StudyReport())
        ''
    """
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for r in report.runs:
        sched = r.get("schedule") or {}
        if sched.get("step") and source in sched:
            by_arm.setdefault(r["arm"], []).append(sched)
    if not by_arm:
        return ""
    steps = sorted({int(s) for scheds in by_arm.values() for sc in scheds for s in sc["step"]})
    rows = []
    for arm, scheds in by_arm.items():
        cells = []
        for st in steps:
            vals = [sc[source][sc["step"].index(st)] for sc in scheds if st in sc["step"]]
            cells.append(_pm(mean_std(vals), 4) if vals else "–")
        rows.append([arm, str(len(scheds)), *cells])
    return md_table(["arm", "seeds", *[f"step {s}" for s in steps]], rows)


def _declared_verdict_section(report: StudyReport) -> list[str]:
    if not report.verdicts:
        return []
    p = report.primary or {}
    lines = ["## Verdicts (declared primary outcome)", "",
             f"Primary outcome, declared in the config before the runs: the in-source held-out loss at step "
             f"{p.get('step')} (uniform - other, paired by seed). Test: {p.get('test')}; alpha {p.get('alpha')}. "
             f"Claimed effect: {p.get('claimed_effect_rule')}. Rule: {p.get('verdict_rule')}.", ""]
    lines += [f"- {v}" for v in report.verdict_summary]
    lines += ["", "Every paired test (secondary outcomes are labelled by what they measure; step outcomes are "
              "log step ratios, whose claimed effect is log of the claimed speed-up):", "",
              render_tests_table(report), ""]
    if report.overlap:
        worst = {}
        for cell in report.overlap.values():
            for pair, n in cell.items():
                worst[pair] = max(worst.get(pair, 0), n)
        lines += ["Rows shared by two arms of the same seed (largest over seeds): " +
                  ", ".join(f"{k} {v}" for k, v in sorted(worst.items())) + ".", ""]
    if report.crossing_rule:
        cr = report.crossing_rule
        lines += [f"Crossing rule (training loss, secondary): trailing mean over a window of {cr['window']} steps, "
                  f"full window only: {cr['full_window']}, at least {cr['min_updates']} optimizer update(s) before "
                  f"every loss in the window; save time: {cr['save_time']}.", ""]
    return lines


def _verdict_section(report: StudyReport) -> list[str]:
    if report.verdicts:
        return _declared_verdict_section(report)
    if not report.plain_verdict:
        return []
    lines = ["## No verdict: no primary outcome was declared", "",
             "Paired per-seed differences (same seed = same pool draw, start row, data order and base "
             "weights); negative = uniform needed fewer steps / tokens / seconds or has the lower loss; "
             "p = two-sided paired t-test over seeds, exploratory and uncorrected.", ""]
    lines += [f"**{v}**" + "\n" for v in report.verdict_summary]
    lines += ["Every threshold and loss, per comparison:", ""]
    lines += [f"- {v}" for v in report.plain_verdict]
    cost = report.cost
    if cost:
        lines += ["", f"Cost of the study: {cost['total_wall_seconds'] / 60:.1f} min wall, "
                  f"{cost['total_cpu_seconds'] / 60:.1f} min process CPU (training + evaluation of every run "
                  "and the base-model evaluations; CPU time sums all threads).", ""]
    return lines


def _setup_section(report: StudyReport) -> list[str]:
    cfg, pool = report.config, report.pool
    lines = []
    if report.missing_runs:
        lines += [f"**Incomplete study:** runs {', '.join(report.missing_runs)} had not finished; this report "
                  f"covers the seeds whose arms all finished ({report.seeds}).", ""]
    arms = ", ".join(f"{a} ({report.arms[a]['size']['mean']:.0f} rows)" for a in report.arms)
    recipe = f"`{cfg['recipe']}`" + (f" with `{cfg['recipe_args']}`" if cfg["recipe_args"] else "")
    lines += [f"Pool `{cfg['pool']}`: {pool['rows']} rows; **{pool['heldout_rows']} held out** (seed "
              f"{cfg['heldout_seed']}) before anything else, {pool['train_rows']} form the training pool. Arms: "
              f"{arms}. Seeds: {cfg['seeds']}. Embedder `{cfg['embedder']}`, metric {cfg['metric']}. "
              f"Recipe {recipe}; model: {report.model.get('description', '?')}.", ""]
    if cfg.get("command"):
        lines += ["Reproduce:", "", "```bash", cfg["command"], "```", ""]
    return lines


def _results_section(report: StudyReport) -> list[str]:
    th = report.thresholds
    relative = f", relative to each run's step-0 loss {th['train_relative']}" if th.get("train_relative") else ""
    heldout = render_heldout_table(report)
    scheduled = render_schedule_table(report)
    if scheduled:
        second = render_schedule_table(report, "second_heldout")
        heldout_lines = ["In-source held-out loss on the fixed schedule (mean ± std over seeds; step 0 = the base "
                         "model; token-weighted, scored outside the training clock):", "", scheduled, ""]
        if second:
            heldout_lines += ["Second-source held-out loss on the same schedule:", "", second, ""]
    elif heldout:
        heldout_lines = ["Held-out loss at each evaluation (mean ± std over seeds), independent of any threshold:",
                         "", heldout, ""]
    else:
        heldout_lines = ["No held-out evaluation during training (`periodic_eval: false`): held-out losses are "
                         "those of the base model (step 0) and of each final model.", ""]
    return [
        "## Results (mean ± std over seeds)", "",
        render_table(report), "",
        render_compute_table(report), "",
        "Training tokens to each threshold (thousands; prompt + response tokens processed, padding excluded): "
        "a compute measure that, unlike seconds, does not depend on the machine's load and, unlike steps, "
        "counts that arms whose examples are shorter process fewer tokens per step.", "",
        render_tokens_table(report), "",
        f"Thresholds ({th['source']}): train loss {th['train']}{relative}, held-out loss {th['heldout']}. "
        f"{th['rule']}", "",
        *heldout_lines,
        "Curve points are the Trainer's `eval_loss` on the held-out split (mean of per-batch token means); the "
        "final held-out loss is the token-weighted mean over all response tokens of the split, computed on the "
        "final model by `hf_uniform.evaluation.heldout_loss`; the two can differ in the third decimal. The final "
        "train loss is the last logged training loss (mean over the last logging interval).", "",
        f"Time: {report.time_measure}", "",
    ]


def _lengths_section(report: StudyReport) -> list[str]:
    from ..lengths import render_lengths_table

    lens = report.lengths or {}
    if not lens.get("all_seeds"):
        return []
    return ["## Lengths of each arm (all seeds' rows together)", "", lens["measures"] + ". The length_matched arm "
            f"matches {lens['length_matched_on']} in {lens['length_bins']} quantile bins of the pool.", "",
            render_lengths_table(lens["all_seeds"]), ""]


def _paper_section(report: StudyReport) -> list[str]:
    paper = report.paper
    rows = [[arm, *[f"{v:g} min" for v in vals]] for arm, vals in paper["time_to_threshold"].items()]
    return ["## The paper's numbers, for context", "",
            f"{paper['model']}, time ({paper['unit']}) to training-loss thresholds "
            f"{' / '.join(str(t) for t in paper['thresholds'])}:", "",
            md_table(["arm", *[f"loss<{t}" for t in paper["thresholds"]]], rows), "",
            "These are training-loss thresholds on different training sets; the held-out columns above "
            "measure loss on one fixed split that no arm trains on.", ""]


def _runs_section(report: StudyReport) -> list[str]:
    rows = []
    for r in report.runs:
        f = r["final"]
        rows.append([r["arm"], str(r["seed"]), str(r["size"]), str(f.get("steps")),
                     f"{f['train_tokens']:,.0f}" if f.get("train_tokens") else "–",
                     _fmt_num(f.get("train_seconds"), 1), _fmt_num(f.get("train_seconds_wall"), 1),
                     str(len(r["curves"]["heldout"]["step"])), _fmt_num(f.get("train_loss"), 4),
                     _fmt_num(f.get("heldout_loss"), 4)])
    return ["## Runs", "", md_table(["arm", "seed", "size", "steps", "training tokens", "train s (excl. eval)",
                                     "wall s (incl. eval)", "held-out evals", "final train loss",
                                     "final held-out loss"], rows)]


def render_markdown(report: StudyReport) -> str:
    """``report.md``: the verdict, the setup, the results tables, lengths, the per-threshold sentences, the
    paper's numbers, the plots and one line per run.

    Example:
        >>> render_markdown(StudyReport(verdict=["No uniform arm was run, so there is no verdict."],
        ...                             config={"pool": "p.jsonl", "heldout_seed": 1, "seeds": [0], "embedder": "w2v",
        ...                                     "metric": "cosine", "recipe": "r.yaml", "recipe_args": ""},
        ...                             pool={"rows": 10, "heldout_rows": 2, "train_rows": 8},
        ...                             thresholds={"train": [], "heldout": [], "source": "given", "rule": ""}
        ...                             )).splitlines()[0]
        '# Uniform vs random vs full: study report'
    """
    lines = ["# Uniform vs random vs full: study report", ""]
    lines += _verdict_section(report)
    lines += _setup_section(report)
    lines += _results_section(report)
    lines += _lengths_section(report)
    lines += ["## Did uniform reach the thresholds sooner? (means over seeds, descriptive)", ""]
    lines += [f"- {s}" for s in report.verdict]
    lines += ["", *_paper_section(report), "## Plots", ""]
    for name, rel in report.plots.items():
        lines += [f"**{name}**", "", f"![{name}]({rel})", ""]
    lines += _runs_section(report)
    return "\n".join(lines) + "\n"


def write_report(report: StudyReport, out_dir: str | os.PathLike) -> Path:
    """Write ``report.json`` and ``report.md`` into ``out_dir`` (atomically); return the ``report.md`` path.

    Example:
        >>> import tempfile
        >>> report = StudyReport.read("reports/smollm2_finetune")  # doctest: +SKIP
        >>> write_report(report, tempfile.mkdtemp()).name  # doctest: +SKIP
        'report.md'
    """
    out = Path(out_dir)
    atomic_write_json(out / "report.json", report.to_dict())
    return atomic_write_text(out / "report.md", render_markdown(report))
