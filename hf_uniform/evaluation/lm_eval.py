"""lm-evaluation-harness components: the paper's benchmark tasks, local-file task overrides, the run.

* :func:`parse_tasks` / :class:`TaskSpec`: ``"arc_challenge:25,truthfulqa_mc1:0,truthfulqa_mc2:0"`` (the
  paper's settings, :data:`DEFAULT_TASKS`) or any lm-eval task with its shot count.
* :func:`shipped_tasks_dir`: the task YAMLs shipped in ``hf_uniform/eval_tasks`` (they read the Hub
  datasets); :func:`local_task_overrides` / :func:`prepare_tasks` point them at local files instead (the
  layout of ``../shared/data/eval``); :func:`convert_truthfulqa_mc` converts TruthfulQA's JSON there.
* :func:`run_lm_eval`: ``lm_eval.simple_evaluate`` on a checkpoint, scores keyed by task and metric.

lm-eval, transformers and torch are imported lazily (extras ``[eval]`` and ``[train]``).

>>> [t.label for t in parse_tasks(DEFAULT_TASKS)]
['arc_challenge (25-shot)', 'truthfulqa_mc1 (0-shot)', 'truthfulqa_mc2 (0-shot)']
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UniformError, missing_extra
from ..io import atomic_write_text

logger = logging.getLogger(__name__)

#: The paper's benchmark settings: task name -> number of few-shot examples.
DEFAULT_TASKS = "arc_challenge:25,truthfulqa_mc1:0,truthfulqa_mc2:0"

#: Task names served by the YAMLs shipped in ``hf_uniform/eval_tasks`` (name -> shipped task).
SHIPPED_TASKS = {
    "arc_challenge": "hfu_arc_challenge",
    "truthfulqa_mc1": "hfu_truthfulqa_mc1",
    "truthfulqa_mc2": "hfu_truthfulqa_mc2",
}

#: Metrics reported per task (others lm-eval returns are kept in ``results.json`` too).
TASK_METRICS = {
    "arc_challenge": ("acc", "acc_norm"),
    "truthfulqa_mc1": ("acc",),
    "truthfulqa_mc2": ("acc",),
}

@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task and its number of few-shot examples (``None``: the task's own default).

    Example:
        >>> TaskSpec("arc_challenge", 25).label
        'arc_challenge (25-shot)'
    """

    name: str
    num_fewshot: int | None = None

    @property
    def label(self) -> str:
        """Human-readable ``name (k-shot)``."""
        return self.name if self.num_fewshot is None else f"{self.name} ({self.num_fewshot}-shot)"


def parse_tasks(spec: str | Sequence[str | TaskSpec] | None) -> list[TaskSpec]:
    """Parse ``"arc_challenge:25,truthfulqa_mc1:0"`` (or a list of such items) into :class:`TaskSpec`.

    An item without ``:N`` keeps the task's default shots (25 for ARC-Challenge, 0 for TruthfulQA).

    Raises:
        UniformError: an empty list, a repeated task, or a shot count that is not a non-negative integer.

    Example:
        >>> [t.label for t in parse_tasks("arc_challenge:10,truthfulqa_mc2")]
        ['arc_challenge (10-shot)', 'truthfulqa_mc2']
    """
    if spec is None:
        spec = DEFAULT_TASKS
    items: list[str | TaskSpec] = [s for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[TaskSpec] = []
    for item in items:
        if isinstance(item, TaskSpec):
            out.append(item)
            continue
        item = item.strip()
        if not item:
            continue
        name, _, shots = item.partition(":")
        name = name.strip()
        if not name:
            raise UniformError(f"task item {item!r} has no name; use NAME or NAME:SHOTS")
        if shots.strip():
            try:
                n = int(shots)
            except ValueError as err:
                raise UniformError(f"task {name!r}: shots {shots!r} is not an integer; use NAME:SHOTS") from err
            if n < 0:
                raise UniformError(f"task {name!r}: shots must be >= 0, got {n}")
            out.append(TaskSpec(name, n))
        else:
            out.append(TaskSpec(name, None))
    if not out:
        raise UniformError("no evaluation tasks given; pass e.g. --tasks arc_challenge:25,truthfulqa_mc1:0")
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UniformError(f"task(s) {dup} given more than once; list each task once")
    return out


def shipped_tasks_dir() -> Path:
    """Folder of the task YAMLs shipped with the package.

    Example:
        >>> (shipped_tasks_dir() / "hfu_arc_challenge.yaml").exists()
        True
    """
    return Path(str(resources.files("hf_uniform") / "eval_tasks"))


# ----------------------------------------------------------------------------------------------- local data


def convert_truthfulqa_mc(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert TruthfulQA's ``mc_task.json`` (``{answer: 0/1}`` maps) to the Hub layout, as JSON Lines.

    The Hub's ``truthfulqa/truthful_qa`` (``multiple_choice``) stores ``mc1_targets`` and ``mc2_targets`` as
    ``{"choices": [...], "labels": [...]}`` with the true answers first; the shipped task YAMLs expect that.

    Raises:
        UniformError: the file is not a JSON list of records with ``question``, ``mc1_targets`` and
            ``mc2_targets`` maps.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> _ = (d / "mc.json").write_text(json.dumps([{"question": "Q?", "mc1_targets": {"yes": 1, "no": 0},
        ...                                              "mc2_targets": {"yes": 1, "no": 0}}]))
        >>> p = convert_truthfulqa_mc(d / "mc.json", d / "mc.jsonl")
        >>> json.loads(p.read_text())["mc1_targets"]
        {'choices': ['yes', 'no'], 'labels': [1, 0]}
    """
    src = Path(src)
    try:
        rows = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UniformError(f"cannot read TruthfulQA file {src}: {err}") from err
    if not isinstance(rows, list) or not rows:
        raise UniformError(f"{src}: expected a non-empty JSON list of TruthfulQA records")
    lines = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "question" not in row:
            raise UniformError(f"{src}: record {i} has no 'question'; expected TruthfulQA's mc_task.json")
        out: dict[str, Any] = {"question": row["question"]}
        for key in ("mc1_targets", "mc2_targets"):
            t = row.get(key)
            if isinstance(t, dict) and "choices" in t and "labels" in t:  # already the Hub layout
                choices, labels = list(t["choices"]), [int(v) for v in t["labels"]]
            elif isinstance(t, dict) and t:
                choices, labels = list(t), [int(v) for v in t.values()]
            else:
                raise UniformError(f"{src}: record {i} has no {key} map; expected {{answer: 0/1}} entries")
            if 1 not in labels:
                raise UniformError(f"{src}: record {i} {key} has no true answer (label 1)")
            if key == "mc1_targets" and labels[0] != 1:  # the task scores choice 0 as the answer
                j = labels.index(1)
                choices.insert(0, choices.pop(j))
                labels.insert(0, labels.pop(j))
            out[key] = {"choices": choices, "labels": labels}
        lines.append(json.dumps(out, ensure_ascii=False))
    return atomic_write_text(dst, "\n".join(lines) + "\n")


def _first(folder: Path, patterns: Sequence[str]) -> Path | None:
    for pat in patterns:
        hits = sorted(folder.glob(pat))
        if hits:
            return hits[0]
    return None


def local_task_overrides(task: str, data_dir: str | os.PathLike, work_dir: str | os.PathLike) -> dict[str, Any]:
    """YAML keys that point a shipped task at local files under ``data_dir``.

    Expected layout (that of ``../shared/data/eval``):

    * ``arc_challenge/ARC-Challenge-Test*.jsonl`` (evaluated) and ``arc_challenge/ARC-Challenge-Train*.jsonl``
      (few-shot source; optional for 0-shot), in the ``allenai/ai2_arc`` layout.
    * ``truthfulqa/mc_task.json`` (converted into ``work_dir``) or ``truthfulqa/*.jsonl`` in the Hub layout.

    Raises:
        UniformError: a required file is missing (the message names the folder and the expected file).

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "arc_challenge").mkdir()
        >>> _ = (d / "arc_challenge" / "ARC-Challenge-Test.jsonl").write_text("{}\\n")
        >>> local_task_overrides("arc_challenge", d, d / "work")["test_split"]
        'test'
    """
    data_dir, work_dir = Path(data_dir), Path(work_dir)
    if not data_dir.is_dir():
        raise UniformError(f"--data_dir {data_dir} is not a folder")
    if task == "arc_challenge":
        folder = data_dir / "arc_challenge"
        test = _first(folder, ["ARC-Challenge-Test*.jsonl", "*test*.jsonl"])
        if test is None:
            raise UniformError(f"no ARC-Challenge test file in {folder}; expected ARC-Challenge-Test.jsonl")
        files = {"test": str(test.resolve())}
        train = _first(folder, ["ARC-Challenge-Train*.jsonl", "*train*.jsonl"])
        if train is not None:
            files["train"] = str(train.resolve())
        return {
            "dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": files},
            "training_split": "train" if train else None, "validation_split": None, "test_split": "test",
            "fewshot_split": "train" if train else None,
        }
    if task in ("truthfulqa_mc1", "truthfulqa_mc2"):
        folder = data_dir / "truthfulqa"
        hub_layout = _first(folder, ["*.jsonl"])
        if hub_layout is None:
            raw = folder / "mc_task.json"
            if not raw.exists():
                raise UniformError(f"no TruthfulQA file in {folder}; expected mc_task.json or a Hub-layout .jsonl")
            hub_layout = work_dir / "data" / "truthfulqa_mc.jsonl"
            if not hub_layout.exists() or hub_layout.stat().st_mtime < raw.stat().st_mtime:
                convert_truthfulqa_mc(raw, hub_layout)
        return {
            "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {"validation": str(hub_layout.resolve())}},
            "training_split": None, "validation_split": "validation", "test_split": None,
        }
    raise UniformError(f"--data_dir has no local layout for task {task!r}; local files are supported for "
                       f"{sorted(SHIPPED_TASKS)} (other tasks read the Hub)")


def prepare_tasks(
    tasks: Sequence[TaskSpec],
    work_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
) -> tuple[dict[str, Path | str], bool]:
    """Write one task YAML per task into ``work_dir/tasks`` (shots and data location applied).

    Each YAML ``include``s the shipped one (or lm-eval's built-in one for other tasks) and overrides
    ``num_fewshot`` and, with ``data_dir``, the dataset keys. Returns ``{user name: YAML path or built-in
    name}`` and whether lm-eval's built-in task index is needed.

    Example:
        >>> import tempfile
        >>> paths, builtin = prepare_tasks(parse_tasks("truthfulqa_mc1:0"), tempfile.mkdtemp())
        >>> paths["truthfulqa_mc1"].name, builtin
        ('truthfulqa_mc1.yaml', False)
    """
    import yaml

    work_dir = Path(work_dir)
    task_dir = work_dir / "tasks"
    task_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path | str] = {}
    needs_builtin = False
    for t in tasks:
        if t.name in SHIPPED_TASKS:
            base = shipped_tasks_dir() / f"{SHIPPED_TASKS[t.name]}.yaml"
            cfg: dict[str, Any] = {"include": str(base.resolve()), "task": f"hfu_{t.name}"}
            if data_dir is not None:
                cfg.update(local_task_overrides(t.name, data_dir, work_dir))
                shots = 25 if t.num_fewshot is None else t.num_fewshot
                if t.name == "arc_challenge" and shots > 0 and cfg["fewshot_split"] is None:
                    raise UniformError(f"{t.label} needs a training file for few-shot examples in "
                                       f"{Path(data_dir) / 'arc_challenge'} (ARC-Challenge-Train*.jsonl)")
        else:
            if data_dir is not None:
                logger.warning("task %s is not shipped by hf-uniform: it reads lm-eval's own data source", t.name)
            needs_builtin = True
            if t.num_fewshot is None:
                out[t.name] = t.name
                continue
            cfg = {"include": None, "task": f"hfu_{t.name}"}  # resolved below against the built-in index
        if t.num_fewshot is not None:
            cfg["num_fewshot"] = t.num_fewshot
        path = task_dir / f"{t.name}.yaml"
        out[t.name] = path
        if cfg["include"] is not None:
            atomic_write_text(path, yaml.safe_dump(cfg, sort_keys=False))
        else:
            out[t.name] = cfg  # type: ignore[assignment]  # finished in _resolve_builtin
    if any(isinstance(v, dict) for v in out.values()):
        _resolve_builtin(out, task_dir)
    return out, needs_builtin


def _resolve_builtin(out: dict[str, Any], task_dir: Path) -> None:
    import yaml
    from lm_eval.tasks import TaskManager

    index = TaskManager().task_index
    for name, cfg in list(out.items()):
        if not isinstance(cfg, dict):
            continue
        entry = index.get(name)
        if entry is None or entry.yaml_path is None:
            raise UniformError(f"unknown lm-eval task {name!r}; check the name (e.g. `lm_eval ls tasks`)")
        if getattr(entry.kind, "name", "TASK") != "TASK":
            raise UniformError(f"{name!r} is a group or tag; shots can be set per single task only "
                               f"(drop ':{cfg.get('num_fewshot')}' to use its defaults)")
        cfg["include"] = str(Path(entry.yaml_path).resolve())
        path = task_dir / f"{name}.yaml"
        atomic_write_text(path, yaml.safe_dump(cfg, sort_keys=False))
        out[name] = path


# ------------------------------------------------------------------------------------------------- lm-eval


def run_lm_eval(
    model: str | os.PathLike,
    tasks: str | Sequence[str | TaskSpec] | None = None,
    *,
    work_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    limit: int | float | None = None,
    batch_size: int | str = 8,
    device: str = "cpu",
    dtype: str = "float32",
    model_args: Mapping[str, Any] | None = None,
    seed: int = 1234,
) -> dict[str, Any]:
    """Run lm-evaluation-harness on a checkpoint folder; return scores keyed by task and metric.

    Args:
        model: a checkpoint folder (``save_pretrained`` output with its tokenizer) or a Hub model id.
        tasks: ``"arc_challenge:25,truthfulqa_mc1:0,truthfulqa_mc2:0"`` (default, the paper's) or a list.
        work_dir: where the derived task YAMLs (and converted local data) are written.
        data_dir: read the shipped tasks' data from local files (see :func:`local_task_overrides`).
        limit: evaluate only the first ``limit`` documents per task (a fraction in (0, 1) is a share).
        batch_size: lm-eval batch size (``"auto"`` allowed).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:0"``, ...
        dtype: weights dtype passed to ``from_pretrained``.
        model_args: extra ``HFLM`` arguments (e.g. ``{"max_length": 1024}``).
        seed: seed of lm-eval's random, numpy, torch and few-shot sampling.

    Returns:
        ``{"scores": {task: {metric: value, metric + "_stderr": se}}, "n_samples": {task: n},
        "n_shot": {task: k}, "tasks": [...], "seconds": s, "lm_eval_version": v, "raw": lm-eval results}``.

    Example:
        >>> run_lm_eval("ckpt", "arc_challenge:25", work_dir="out", data_dir="../shared/data/eval",
        ...             limit=8)["scores"]["arc_challenge"]["acc"]  # doctest: +SKIP
        0.25
    """
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError as err:  # pragma: no cover - depends on the install
        raise missing_extra("evaluation needs lm-eval", "eval") from err
    if limit is not None and (limit <= 0 or (isinstance(limit, float) and limit >= 1 and limit != int(limit))):
        raise UniformError(f"--limit must be a positive count or a fraction in (0, 1), got {limit}")
    if limit is not None and limit >= 1:
        limit = int(limit)
    specs = parse_tasks(tasks)
    model_s = str(model)
    if Path(model_s).exists() and not (Path(model_s) / "config.json").exists():
        raise UniformError(f"{model_s} has no config.json: not a save_pretrained checkpoint folder")
    task_files, needs_builtin = prepare_tasks(specs, work_dir, data_dir=data_dir)
    tm = TaskManager(include_defaults=needs_builtin)
    margs: dict[str, Any] = {"pretrained": model_s, "dtype": dtype}
    margs.update(model_args or {})
    t0 = time.perf_counter()
    logger.info("lm-eval on %s: %s (limit=%s, device=%s)", model_s, ", ".join(t.label for t in specs), limit,
                device)
    raw = lm_eval.simple_evaluate(
        model="hf", model_args=margs, tasks=[str(v) for v in task_files.values()], task_manager=tm,
        device=device, batch_size=batch_size, limit=limit, log_samples=False, random_seed=seed,
        numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed, bootstrap_iters=1000,
    )
    seconds = time.perf_counter() - t0
    if raw is None:  # non-zero ranks under a launcher
        return {}
    scores: dict[str, dict[str, float]] = {}
    n_samples: dict[str, int] = {}
    n_shot: dict[str, int] = {}
    for t in specs:
        internal = f"hfu_{t.name}" if (t.name in SHIPPED_TASKS or t.num_fewshot is not None) else t.name
        res = raw["results"].get(internal)
        if res is None:
            raise UniformError(f"lm-eval returned no results for {t.name} (internal name {internal})")
        scores[t.name] = {k.split(",")[0]: _float(v) for k, v in res.items()
                          if k.split(",")[0] not in ("alias", "sample_len") and isinstance(v, (int, float))}
        ns = raw.get("n-samples", {}).get(internal, {})
        n_samples[t.name] = int(ns.get("effective", ns.get("original", 0)) or 0)
        n_shot[t.name] = int(raw.get("n-shot", {}).get(internal, t.num_fewshot or 0))
    return {
        "scores": scores,
        "n_samples": n_samples,
        "n_shot": n_shot,
        "tasks": [asdict(t) for t in specs],
        "limit": limit,
        "data_dir": None if data_dir is None else str(data_dir),
        "seconds": seconds,
        "lm_eval_version": raw.get("lm_eval_version", getattr(lm_eval, "__version__", None)),
        "raw": {k: raw[k] for k in ("results", "n-shot", "n-samples", "versions", "higher_is_better")
                if k in raw},
    }


def _float(v: Any) -> float:
    v = float(v)
    return v if math.isfinite(v) else math.nan
