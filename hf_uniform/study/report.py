"""The study's report: :class:`StudyReport` (``report.json``, with a JSON round-trip), its assembly from
finished runs (:func:`build_report`), and the PNG plots (:func:`make_plots`). ``report.md`` is rendered by
:func:`hf_uniform.study.markdown.render_markdown` and written with
:func:`hf_uniform.study.markdown.write_report`.

Example:
    >>> import json
    >>> report = StudyReport.from_dict(json.load(open("reports/smollm2_finetune/report.json")))  # doctest: +SKIP
    >>> report.verdict_summary[0][:42]  # doctest: +SKIP
    'Does uniform reach the thresholds sooner? '
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingFileError, UniformError
from .analysis import (
    aggregate,
    choose_thresholds,
    paired_differences,
    plain_verdict,
    study_cost,
    threshold_labels,
    verdict,
    verdict_summary,
)
from .config import COMPARATORS, KIND_LABEL, LOSS_KINDS, PAPER_REFERENCE, StudyConfig

TIME_MEASURE = ("seconds of training from on_train_begin (TimeToThresholdCallback's clock) minus the "
                "wall-clock of the periodic held-out evaluations before that point; steps are optimizer "
                "steps. The machine may be shared, so compare steps as well as seconds.")


@dataclass
class StudyReport:
    """Everything ``report.json`` holds, in its key order; nested values are plain JSON dicts and lists.

    Attributes:
        config: the :class:`~hf_uniform.study.StudyConfig` as a dict.
        pool: ``rows``, ``heldout_rows``, ``train_rows``, ``k`` and the pool's content ``digest``.
        model: ``description`` of the trained model (and a tiny model's size).
        thresholds: ``train``, ``heldout`` (and ``train_relative``) thresholds with their ``source`` and ``rule``.
        time_measure: what "seconds" means.
        lm_metrics: lm-eval columns (``task/metric``).
        arms: per arm, mean ± std over seeds (:func:`~hf_uniform.study.aggregate`).
        runs: the per-run records (``runs/<arm>-seed<s>.json``, with their ``crossings``).
        paper: the paper's own time-to-threshold numbers.
        epochs: the recipe's epochs (``None`` for a step budget).
        seeds: the seeds reported.
        paired_differences: per comparison ``uniform-<arm>``, the per-seed differences.
        lengths: length summaries of every arm.
        cost: wall and CPU seconds of the study.
        verdict: sentences per threshold from the per-arm means.
        plain_verdict: sentences per comparison and threshold from the paired differences.
        verdict_summary: the one-line answers that open ``report.md``.
        plots: ``{title: path relative to the output folder}``.
        missing_runs: runs that had not finished (``--report_only``).
        crossing_rule: the training-loss crossing rule (``window``, ``full_window``, ``min_updates``).
        primary: the declared primary outcome (what, at which step, the claimed effect, the verdict rule).
        overlap: rows shared by every pair of arms, per seed.
        verdicts: per comparison ``{"verdict": "yes"|"no"|"inconclusive", "p_value", ...}`` on the primary.
        tests: per comparison, the primary and secondary paired tests (p-value, power, minimum detectable effect).
        power: per comparison, the design's power at the claimed effect and its minimum detectable effect.
        seconds_total: wall seconds of the pass that wrote the report.

    A key that the JSON did not have (a report written before that field existed) stays absent when the
    report is written back, so ``StudyReport.from_dict(d).to_dict() == d``.

    Example:
        >>> r = StudyReport.from_dict({"seeds": [0, 1], "verdict": ["No uniform arm was run."]})
        >>> r.seeds, r.arms, r.to_dict()
        ([0, 1], {}, {'seeds': [0, 1], 'verdict': ['No uniform arm was run.']})
    """

    config: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=lambda: {"train": [], "heldout": []})
    time_measure: str = TIME_MEASURE
    lm_metrics: list[str] = field(default_factory=list)
    arms: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    paper: dict[str, Any] = field(default_factory=lambda: dict(PAPER_REFERENCE))
    epochs: float | list[float] | None = None
    seeds: list[int] = field(default_factory=list)
    paired_differences: dict[str, Any] = field(default_factory=dict)
    lengths: dict[str, Any] | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    verdict: list[str] = field(default_factory=list)
    plain_verdict: list[str] = field(default_factory=list)
    verdict_summary: list[str] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    missing_runs: list[str] = field(default_factory=list)
    crossing_rule: dict[str, Any] | None = None
    primary: dict[str, Any] | None = None
    overlap: dict[str, Any] | None = None
    verdicts: dict[str, Any] | None = None
    tests: dict[str, Any] | None = None
    power: dict[str, Any] | None = None
    seconds_total: float | None = None
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False, metadata={"json": False})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyReport:
        """A report from the dict of ``report.json``.

        Raises:
            UniformError: a key this version does not know (a report from a newer version).

        Example:
            >>> StudyReport.from_dict({"seeds": [0], "bogus": 1})
            Traceback (most recent call last):
            ...
            hf_uniform.errors.UniformError: report.json has unknown keys ['bogus']; it was written by another version of hf_uniform
        """
        names = [f.name for f in fields(cls) if f.metadata.get("json", True)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise UniformError(f"report.json has unknown keys {unknown}; it was written by another version of "
                               "hf_uniform")
        return cls(**{k: data[k] for k in names if k in data}, absent=frozenset(k for k in names if k not in data))

    def to_dict(self) -> dict[str, Any]:
        """The dict written to ``report.json`` (keys in field order; absent keys of a read report left out).

        Example:
            >>> list(StudyReport().to_dict())[:3]
            ['config', 'pool', 'model']
        """
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("json", True) and f.name not in self.absent}

    @classmethod
    def read(cls, path: str | os.PathLike) -> StudyReport:
        """Read ``report.json`` (or the ``report.json`` of an output folder).

        Example:
            >>> StudyReport.read("reports/smollm2_finetune").seeds  # doctest: +SKIP
            [0, 1, 2]
        """
        from ..records import read_json_record

        p = Path(path)
        p = p / "report.json" if p.is_dir() else p
        try:
            if not p.is_file():
                raise FileNotFoundError(p)
            return cls.from_dict(read_json_record(p, what="study report"))
        except FileNotFoundError as err:
            raise MissingFileError(f"{p} not found; run recipes/compare.py first") from err


def build_report(cfg: StudyConfig, study: Any, runs: list[dict[str, Any]], *,
                 missing_runs: Sequence[str] = (), seconds_total: float | None = None) -> StudyReport:
    """Thresholds, aggregates, paired differences, verdicts and plots of finished runs.

    ``study`` is the :class:`~hf_uniform.study.Study` the runs came from (its pool, split, arms, embeddings,
    base-model evaluations and lengths). Adds ``crossings`` to every run.

    Example:
        >>> build_report  # doctest: +ELLIPSIS
        <function build_report at ...>
    """
    thresholds = choose_thresholds(cfg, runs)
    agg = aggregate(runs, thresholds, arms=cfg.arms, smoothing=cfg.smoothing, window=cfg.window,
                    full_window=bool(cfg.full_window), min_updates=cfg.min_updates)
    epochs = sorted({r.get("epochs") for r in runs if r.get("epochs") is not None})
    paired = paired_differences(runs, others=[a for a in COMPARATORS if a in cfg.arms]) \
        if "uniform" in cfg.arms else {}
    report = StudyReport(
        config=asdict(cfg),
        pool={"rows": len(study.pool), "heldout_rows": int(len(study.heldout_idx)),
              "train_rows": int(len(study.train_idx)), "k": study.k, "digest": study.pool_digest},
        model=study.model_description(),
        thresholds=thresholds,
        lm_metrics=sorted({m for r in runs for m in (r.get("lm_eval") or {})}),
        arms=agg,
        runs=runs,
        paper=PAPER_REFERENCE,
        epochs=epochs[0] if len(epochs) == 1 else (epochs or None),
        seeds=list(cfg.seeds),
        paired_differences=paired,
        lengths=study.lengths_report(),
        cost=study_cost(runs, study.base_eval_records()),
        verdict=verdict(agg, thresholds),
        plain_verdict=plain_verdict(paired),
        verdict_summary=verdict_summary(paired, cfg.alpha),
        missing_runs=list(missing_runs),
        seconds_total=seconds_total,
    )
    if cfg.primary_outcome:
        _add_inference(report, cfg, study, runs)
    first = cfg.seeds[0]
    pca_subsets = {name: study.arm_idx[f"{name}-seed{first}"] for name in ("uniform", "random")
                   if f"{name}-seed{first}" in study.arm_idx}
    report.plots = make_plots(report, study.out, embeddings=study.x, subsets=pca_subsets, smoothing=cfg.smoothing,
                              window=cfg.window if cfg.full_window else None, min_updates=cfg.min_updates)
    return report


def _add_inference(report: StudyReport, cfg: StudyConfig, study: Any, runs: list[dict[str, Any]]) -> None:
    """The declared analysis: crossing rule, primary outcome, overlap, paired tests, power and verdicts."""
    from .inference import VERDICT_RULE, arm_overlap, inference, verdict_lines

    report.crossing_rule = {"window": cfg.window, "full_window": bool(cfg.full_window),
                            "min_updates": int(cfg.min_updates), "applies_to": "training loss (secondary)",
                            "comparison": "<=", "held_out_schedule_steps": cfg.schedule_steps,
                            "save_time": "excluded (no checkpoint is saved during training; the final save "
                                         "happens after the clock stops)"}
    subset_runs = [r for r in runs if r["arm"] != "full"]
    last = min((r["final"]["steps"] for r in subset_runs), default=None)
    labels = [lab for kind, lab in threshold_labels(report.thresholds)]
    res = inference(runs, comparators=[a for a in COMPARATORS if a in cfg.arms], primary_step=int(cfg.primary_step),
                    last_step=last, speedup=cfg.claimed_speedup, alpha=cfg.alpha, power=cfg.target_power,
                    heldout_labels=[lab for lab in labels if lab.startswith("held-out")],
                    train_labels=[lab for lab in labels if lab.startswith("train")])
    report.primary = {"outcome": cfg.primary_outcome, "step": cfg.primary_step, "source": "in-source held-out "
                      f"split ({report.pool.get('heldout_rows')} rows held out before selection)",
                      "claimed_speedup": cfg.claimed_speedup, "alpha": cfg.alpha, "target_power": cfg.target_power,
                      "test": "two-sided paired t-test over seeds (scipy.stats.ttest_1samp of uniform - other)",
                      "claimed_effect_rule": f"the comparator's own held-out loss at step {cfg.primary_step} minus "
                                             f"at step {cfg.primary_step} x {cfg.claimed_speedup:g} (its curve, "
                                             "linearly interpolated on the schedule; mean over seeds)",
                      "verdict_rule": VERDICT_RULE}
    report.overlap = arm_overlap(study.arm_rows, cfg.seeds)
    report.verdicts, report.tests, report.power = res["verdicts"], res["tests"], res["power"]
    report.verdict_summary = verdict_lines(report.verdicts, cfg.target_power)


def make_plots(report: StudyReport, out_dir: str | os.PathLike, *, embeddings: np.ndarray | None = None,
               subsets: Mapping[str, np.ndarray] | None = None, smoothing: float = 0.9,
               window: int | None = None, min_updates: int = 0) -> dict[str, str]:
    """Write the study's PNGs into ``out_dir/plots``; return ``{name: path relative to out_dir}``.

    Plots: the PCA map (PCA fit on the training pool, min-max scaled; full, uniform and random), train and
    held-out loss curves against steps and against seconds (raw and smoothed), and steps / seconds / tokens
    (and CPU seconds, when recorded) to each threshold as bars.

    Example:
        >>> make_plots(StudyReport(), "out/none")
        {}
    """
    from ..plots import loss_curves_plot, pca_coverage_plot, threshold_bars_plot

    out_dir = Path(out_dir)
    pdir = out_dir / "plots"
    paths: dict[str, Path] = {}
    if embeddings is not None and subsets:
        paths["PCA map of the training pool (Figures 2-3)"] = pca_coverage_plot(
            embeddings, subsets, pdir / "pca_coverage.png",
            title="PCA of the training pool (fit on the full pool, min-max scaled)")
    th = report.thresholds
    for kind in LOSS_KINDS:
        if not any(r["curves"][kind]["step"] for r in report.runs):
            continue  # e.g. no held-out evaluation during training
        for xkey, xlabel in (("step", "optimizer step"), ("seconds", "training seconds (excl. eval)")):
            curves: dict[str, list[tuple[list[float], list[float]]]] = {}
            for r in report.runs:
                c = r["curves"][kind]
                curves.setdefault(r["arm"], []).append((c[xkey], c["value"]))
            fname = f"loss_{kind}_{'steps' if xkey == 'step' else 'seconds'}.png"
            paths[f"{KIND_LABEL[kind]} vs {xlabel} (Figures 4-8)"] = loss_curves_plot(
                curves, pdir / fname, xlabel=xlabel, ylabel=KIND_LABEL[kind], smoothing=smoothing,
                thresholds=th[kind], title=f"{KIND_LABEL[kind]}: one line per seed",
                window=window if kind == "train" and xkey == "step" else None, min_updates=min_updates)
    sched_runs = [r for r in report.runs if (r.get("schedule") or {}).get("step")]
    for source in ("heldout", "second_heldout"):
        curves = {}
        for r in sched_runs:
            if source in r["schedule"]:
                curves.setdefault(r["arm"], []).append((r["schedule"]["step"], r["schedule"][source]))
        if curves:
            label = "in-source held-out" if source == "heldout" else "second-source held-out"
            paths[f"{label} loss on the schedule vs optimizer step (primary outcome)"
                  if source == "heldout" else f"{label} loss on the schedule vs optimizer step"] = loss_curves_plot(
                curves, pdir / f"schedule_{source}_steps.png", xlabel="optimizer step", ylabel=f"{label} loss",
                smoothing=0.0, title=f"{label} loss (step 0 = base model): one line per seed")
    labels = [label for _, label in threshold_labels(th)]
    measures = [("seconds", "training seconds (excl. eval)"), ("steps", "optimizer steps"),
                ("tokens", "training tokens")] if labels else []
    if labels and any((e["thresholds"].get(lab) or {}).get("cpu_seconds", {}).get("mean") is not None
                      for e in report.arms.values() for lab in e["thresholds"]):
        measures.append(("cpu_seconds", "process CPU seconds of training"))
    for measure, unit in measures:
        values = {}
        for label in labels:
            values[label] = {}
            for arm, e in report.arms.items():
                ms = e["thresholds"][label].get(measure) or {}
                values[label][arm] = (ms["mean"] if ms.get("mean") is not None else float("nan"),
                                      ms.get("std") or 0.0, ms.get("n", 0), ms.get("of", 0))
        paths[f"{measure} to threshold (Figure 11)"] = threshold_bars_plot(
            values, pdir / f"time_to_threshold_{measure}.png", ylabel=unit,
            title=f"{measure} to threshold (mean ± std over seeds)")
    return {k: str(v.relative_to(out_dir)) for k, v in paths.items()}
