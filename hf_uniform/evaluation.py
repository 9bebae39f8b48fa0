"""Evaluate a checkpoint: lm-evaluation-harness benchmarks and held-out loss.

* :func:`run_lm_eval`: ARC-Challenge (25-shot, acc and acc_norm) and TruthfulQA MC1/MC2 (0-shot), the
  paper's settings, through ``lm_eval.simple_evaluate``. The task YAMLs ship in ``hf_uniform/eval_tasks``
  and read the Hub datasets; with ``data_dir`` they are pointed at local files instead (the layout of
  ``../shared/data/eval``). Tasks and shot counts are overridable (``"arc_challenge:10,hellaswag:0"``).
* :func:`heldout_loss`: mean per-token cross-entropy on the response tokens of a split (prompt tokens are
  masked), the quantity the study's held-out thresholds are measured on.
* :func:`evaluate_checkpoint`: both, writing ``results.json`` and ``summary.md`` (what ``recipes/eval.py``
  runs).

lm-eval, transformers and torch are imported lazily (extras ``[eval]`` and ``[train]``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import UniformError
from .io import atomic_write_json, atomic_write_text

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

IGNORE_INDEX = -100


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
            except ValueError:
                raise UniformError(f"task {name!r}: shots {shots!r} is not an integer; use NAME:SHOTS") from None
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
        raise UniformError(f"cannot read TruthfulQA file {src}: {err}") from None
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
        raise UniformError("evaluation needs lm-eval; pip install 'hf-uniform[eval]'") from err
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


# ------------------------------------------------------------------------------------------- held-out loss


@dataclass(frozen=True)
class HeldoutLoss:
    """Mean per-token cross-entropy over the response tokens of a split.

    Attributes:
        loss: total response-token cross-entropy divided by the number of response tokens (nats/token).
        tokens: response tokens scored.
        examples: examples scored (those whose response was truncated away count as 0 tokens).
        truncated: examples cut at ``max_length``.

    Example:
        >>> HeldoutLoss(2.0, 10, 2).perplexity > 7.38
        True
    """

    loss: float
    tokens: int
    examples: int
    truncated: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def perplexity(self) -> float:
        """``exp(loss)``."""
        return math.exp(self.loss) if math.isfinite(self.loss) else math.inf


def _ids(out: Any) -> list[int]:
    if isinstance(out, Mapping) or hasattr(out, "keys"):
        out = out["input_ids"]
    out = list(out)
    if out and isinstance(out[0], list):  # a batch of one
        out = out[0]
    return [int(i) for i in out]


def tokenize_prompt_response(
    tokenizer: Any, prompt: str | list[dict[str, Any]], response: str | list[dict[str, Any]]
) -> tuple[list[int], list[int]]:
    """Token ids of prompt + response and labels with the prompt masked (-100), as TRL's SFT builds them.

    Mirrors ``SFTTrainer`` on prompt/completion data, so held-out loss scores the same tokens training does:
    text prompts are tokenized alone and followed by the response plus the EOS token; chat prompts go
    through the chat template (with the generation prompt alone, without it followed by the response). The
    response starts where the two token sequences diverge.

    Example:
        >>> class Tok:  # one token per character
        ...     eos_token = "$"
        ...     def __call__(self, text): return {"input_ids": [ord(c) for c in text]}
        >>> ids, labels = tokenize_prompt_response(Tok(), "ab", "c")
        >>> ids, labels
        ([97, 98, 99, 36], [-100, -100, 99, 36])
    """
    if isinstance(prompt, list):
        p = _ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
        full = _ids(tokenizer.apply_chat_template(prompt + list(response), tokenize=True))
    else:
        eos = getattr(tokenizer, "eos_token", None) or ""
        text = str(response)
        if eos and not text.endswith(eos):
            text += eos
        p = _ids(tokenizer(prompt))
        full = _ids(tokenizer(prompt + text))
    n = 0
    for a, b in zip(p, full, strict=False):
        if a != b:
            break
        n += 1
    return full, [IGNORE_INDEX] * n + full[n:]


def format_pairs(ds: Any, prompt_format: str = "auto") -> list[tuple[Any, Any]]:
    """``(prompt, response)`` pairs of a split, rendered by the training recipe's formatter.

    Uses :func:`hf_uniform.train.data.prepare_sft_dataset` (the paper's Alpaca/Llama-X prompt, chat
    messages, or prompt/completion columns), so the held-out loss sees the exact training prompt.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"instruction": ["Say hi."], "input": [""], "output": ["hi"]})
        >>> p, r = format_pairs(ds)[0]
        >>> p.endswith("### Response:"), r
        (True, 'hi')
    """
    from .train.data import prepare_sft_dataset

    if {"prompt", "completion"} <= set(ds.column_names) and prompt_format == "auto":
        prepared = ds.select_columns(["prompt", "completion"])
    else:
        prepared = prepare_sft_dataset(ds, prompt_format)
    return list(zip(prepared["prompt"][:], prepared["completion"][:], strict=True))


def heldout_loss(
    model: Any,
    tokenizer: Any,
    pairs: Iterable[tuple[str, str]],
    *,
    max_length: int | None = 512,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = False,
) -> HeldoutLoss:
    """Mean per-token cross-entropy on response tokens (prompt tokens masked) over ``(prompt, response)`` pairs.

    Token-weighted: the sum of response-token losses divided by the number of response tokens, so long
    responses weigh more (the quantity a per-token training loss estimates).

    Args:
        model: a causal LM (``transformers`` ``PreTrainedModel``).
        tokenizer: its tokenizer.
        pairs: ``(prompt, response)`` strings, e.g. from the training template
            (:func:`hf_uniform.evaluation.format_pairs`).
        max_length: cut longer sequences on the right (as training does).
        batch_size: sequences per forward pass.
        device: where to run (default: the model's device).
        progress: show a progress bar.

    Raises:
        UniformError: no pairs, or no response token survives truncation.

    Example:
        >>> from hf_uniform.evaluation import heldout_loss  # doctest: +SKIP
        >>> heldout_loss(model, tok, [("Q: 2+2?\\nA:", " 4")]).loss  # doctest: +SKIP
        5.8
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    encoded = [tokenize_prompt_response(tokenizer, p, r) for p, r in pairs]
    if not encoded:
        raise UniformError("held-out loss needs at least one example; the held-out split is empty")
    truncated = 0
    if max_length is not None:
        truncated = sum(len(ids) > max_length for ids, _ in encoded)
        encoded = [(ids[:max_length], lab[:max_length]) for ids, lab in encoded]
    dev = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # length-sorted batches pad less
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc="held-out loss", disable=not progress):
                batch = [encoded[i] for i in order[start:start + batch_size]]
                width = max(len(ids) for ids, _ in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                lab = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
                att = torch.zeros((len(batch), width), dtype=torch.long)
                for j, (a, b) in enumerate(batch):
                    ids[j, :len(a)] = torch.tensor(a)
                    lab[j, :len(b)] = torch.tensor(b)
                    att[j, :len(a)] = 1
                logits = model(input_ids=ids.to(dev), attention_mask=att.to(dev)).logits.float()
                shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
                shift_labels = lab[:, 1:].reshape(-1).to(dev)
                total += float(F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX,
                                               reduction="sum"))
                count += int((shift_labels != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise UniformError("no response token left to score; raise max_length or check the response column")
    return HeldoutLoss(total / count, count, len(encoded), truncated)


# --------------------------------------------------------------------------------------------- checkpoint


def load_model(path: str | os.PathLike, *, device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a checkpoint folder (or a Hub id).

    Raises:
        UniformError: the folder has no ``config.json`` or the model cannot be loaded.

    Example:
        >>> model, tok = load_model("out/uniform/seed0/model")  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if p.exists() and not (p / "config.json").exists():
        raise UniformError(f"{p} has no config.json: not a save_pretrained checkpoint folder")
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    except OSError as err:
        raise UniformError(f"cannot load a model from {path}: {str(err).splitlines()[0]}") from None
    return model.to(device), tok


def evaluate_checkpoint(
    model: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    tasks: str | Sequence[str | TaskSpec] | None = None,
    data_dir: str | os.PathLike | None = None,
    limit: int | float | None = None,
    batch_size: int | str = 8,
    device: str = "cpu",
    dtype: str = "float32",
    heldout: Any = None,
    heldout_max_length: int | None = 512,
    heldout_prompt_format: str = "auto",
    heldout_limit: int | float | None = None,
    skip_lm_eval: bool = False,
    model_args: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint: lm-eval benchmarks and, with ``heldout``, held-out loss; write the results.

    Writes ``output_dir/results.json`` (everything, including lm-eval's raw per-task results) and
    ``output_dir/summary.md`` (one table: task, shots, metric, value, stderr, n).

    Args:
        model: checkpoint folder (with tokenizer) or Hub id.
        output_dir: where results go (created).
        tasks: ``"arc_challenge:25,truthfulqa_mc1:0,truthfulqa_mc2:0"`` by default.
        data_dir: local benchmark files instead of the Hub (see :func:`local_task_overrides`).
        limit: documents per task.
        batch_size: lm-eval batch size.
        device: ``"cpu"``, ``"cuda"``, ...
        dtype: weights dtype.
        heldout: a split to score held-out loss on: a data file path or a ``Dataset`` in the training
            layout (Alpaca columns, ``prompt``/``completion`` or ``messages``).
        heldout_max_length: cut sequences as training does.
        heldout_prompt_format: ``"auto"``, ``"alpaca"``, ``"chat"`` or ``"prompt_completion"`` (as training).
        heldout_limit: score only the first rows of the held-out split (a count, or a fraction < 1); default:
            ``limit``, so ``--limit`` bounds every part of the evaluation.
        skip_lm_eval: only compute held-out loss.
        model_args: extra ``HFLM`` arguments.
        progress: show a progress bar for the held-out loss.

    Example:
        >>> evaluate_checkpoint("ckpt", "out/eval", data_dir="../shared/data/eval", limit=8)  # doctest: +SKIP
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if skip_lm_eval and heldout is None:
        raise UniformError("nothing to evaluate: --skip_lm_eval without --heldout")
    parse_tasks(tasks)  # validate before the slow parts
    result: dict[str, Any] = {"model": str(model), "device": device, "dtype": dtype}
    if heldout is not None:
        result["heldout"] = checkpoint_heldout_loss(model, heldout, device=device, dtype=dtype,
                                                    max_length=heldout_max_length,
                                                    prompt_format=heldout_prompt_format,
                                                    limit=heldout_limit if heldout_limit is not None else limit,
                                                    progress=progress)
    if not skip_lm_eval:
        result["lm_eval"] = run_lm_eval(model, tasks, work_dir=output_dir, data_dir=data_dir, limit=limit,
                                        batch_size=batch_size, device=device, dtype=dtype,
                                        model_args=model_args)
    atomic_write_json(output_dir / "results.json", result)
    atomic_write_text(output_dir / "summary.md", summary_table(result) + "\n")
    return result


def checkpoint_heldout_loss(
    model: str | os.PathLike | Any,
    heldout: Any,
    *,
    tokenizer: Any = None,
    device: str = "cpu",
    dtype: str = "float32",
    max_length: int | None = 512,
    prompt_format: str = "auto",
    batch_size: int = 8,
    limit: int | float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Held-out loss of a checkpoint folder (or a loaded model + ``tokenizer``) on a split, as a dict.

    The split is rendered into ``(prompt, response)`` pairs with the training recipe's formatter, so the
    prompt template matches training. ``limit`` scores only the first rows (a count, or a fraction < 1 of
    the split); ``progress`` shows a bar.

    Example:
        >>> checkpoint_heldout_loss("ckpt", "heldout.jsonl")["loss"]  # doctest: +SKIP
        2.41
    """
    from .io import load_input

    if isinstance(model, (str, os.PathLike)):
        model, tokenizer = load_model(model, device=device, dtype=dtype)
    elif tokenizer is None:
        raise UniformError("pass the tokenizer with a loaded model")
    ds = load_input(heldout) if isinstance(heldout, (str, os.PathLike)) else heldout
    total = len(ds)
    if limit is not None:
        if isinstance(limit, bool) or not limit > 0:
            raise UniformError(f"held-out limit must be a positive count or a fraction in (0, 1), got {limit!r}")
        rows = int(limit) if limit >= 1 else max(1, round(float(limit) * total))
        ds = ds.select(range(min(rows, total)))
    pairs = format_pairs(ds, prompt_format=prompt_format)
    t0 = time.perf_counter()
    res = heldout_loss(model, tokenizer, pairs, max_length=max_length, batch_size=batch_size, progress=progress)
    return {"loss": res.loss, "perplexity": res.perplexity, "tokens": res.tokens, "examples": res.examples,
            "rows_in_split": total, "truncated": res.truncated, "max_length": max_length,
            "seconds": time.perf_counter() - t0}


def summary_table(result: Mapping[str, Any]) -> str:
    """The one-table Markdown summary of :func:`evaluate_checkpoint` results.

    Example:
        >>> r = {"lm_eval": {"scores": {"arc_challenge": {"acc": 0.25, "acc_stderr": 0.16}},
        ...                  "n_shot": {"arc_challenge": 25}, "n_samples": {"arc_challenge": 8}},
        ...      "heldout": {"loss": 2.5, "tokens": 100, "examples": 4}}
        >>> print(summary_table(r))
        | task | shots | metric | value | stderr | n |
        |---|---|---|---|---|---|
        | arc_challenge | 25 | acc | 0.2500 | 0.1600 | 8 |
        | held-out split | – | response-token loss (nats) | 2.5000 | – | 4 examples, 100 tokens |
    """
    rows = ["| task | shots | metric | value | stderr | n |", "|---|---|---|---|---|---|"]
    lm = result.get("lm_eval") or {}
    for task, metrics in (lm.get("scores") or {}).items():
        for metric, value in metrics.items():
            if metric.endswith("_stderr") or metric == "sample_len":
                continue
            se = metrics.get(f"{metric}_stderr")
            rows.append(f"| {task} | {lm.get('n_shot', {}).get(task, '–')} | {metric} | {_fmt(value)} | "
                        f"{_fmt(se)} | {lm.get('n_samples', {}).get(task, '–')} |")
    ho = result.get("heldout")
    if ho:
        rows.append(f"| held-out split | – | response-token loss (nats) | {_fmt(ho['loss'])} | – | "
                    f"{ho['examples']} examples, {ho['tokens']} tokens |")
    return "\n".join(rows)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{float(v):.{digits}f}"


# ------------------------------------------------------------------------------------------------- recipe


@dataclass
class EvalArguments:
    """Arguments of ``recipes/eval.py`` (YAML via ``--config`` and/or the command line).

    Example:
        >>> EvalArguments(model="ckpt").tasks
        'arc_challenge:25,truthfulqa_mc1:0,truthfulqa_mc2:0'
    """

    model: str = field(default="", metadata={"help": "checkpoint folder (with tokenizer) or Hub model id"})
    output_dir: str = field(default="", metadata={"help": "where results.json and summary.md go "
                                                          "(default MODEL/eval)"})
    tasks: str = field(default=DEFAULT_TASKS, metadata={
        "help": "NAME:SHOTS,...; arc_challenge, truthfulqa_mc1 and truthfulqa_mc2 ship with hf-uniform, other "
                "names are lm-eval's built-in tasks"})
    data_dir: str | None = field(default=None, metadata={
        "help": "read the shipped tasks from local files (e.g. ../shared/data/eval) instead of the Hub"})
    limit: float | None = field(default=None, metadata={"help": "documents per task (count, or fraction < 1)"})
    batch_size: str = field(default="8", metadata={"help": "lm-eval batch size, or auto"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:0, ..."})
    dtype: str = field(default="float32", metadata={"help": "weights dtype: float32, bfloat16, float16"})
    heldout: str | None = field(default=None, metadata={
        "help": "also compute held-out loss (mean per-token CE on response tokens) on this split (a data file)"})
    heldout_max_length: int = field(default=512, metadata={"help": "cut held-out sequences as training does"})
    heldout_limit: float | None = field(default=None, metadata={
        "help": "score only the first rows of --heldout (count, or fraction < 1); default: --limit"})
    heldout_prompt_format: str = field(default="auto", metadata={
        "help": "auto, alpaca, chat or prompt_completion (as the training recipe)"})
    skip_lm_eval: bool = field(default=False, metadata={"help": "only held-out loss"})
    no_progress: bool = field(default=False, metadata={"help": "hide the held-out loss progress bar"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})


def parse_eval_args(argv: Sequence[str] | None = None) -> EvalArguments:
    """Parse ``[--config FILE.yaml] [--key value ...]`` into :class:`EvalArguments` (the command line wins).

    Raises:
        UniformError: an unknown or malformed argument, or no ``--model``.

    Example:
        >>> parse_eval_args(["--model", "ckpt", "--limit", "8"]).limit
        8.0
    """
    from transformers import HfArgumentParser

    try:
        from trl import TrlParser

        parser: Any = TrlParser((EvalArguments,))
        parse = parser.parse_args_and_config
    except ImportError:  # pragma: no cover - TRL is in the [train] extra; YAML configs then need it
        parser = HfArgumentParser((EvalArguments,))
        parse = parser.parse_args_into_dataclasses
    try:
        out = parse(list(argv) if argv is not None else None, return_remaining_strings=True)
    except SystemExit as err:
        if not err.code:  # --help printed the usage: exit 0 as argparse does
            raise
        raise UniformError(f"bad arguments for eval (exit status {err.code}); see --help") from None
    except ValueError as err:
        raise UniformError(f"bad arguments for eval: {str(err).splitlines()[0]}") from None
    args, rest = out[0], out[-1]
    if rest:
        raise UniformError(f"unknown eval arguments {rest}; check the spelling (see --help)")
    if not args.model:
        raise UniformError("no model given; pass --model CHECKPOINT_FOLDER (or a Hub id)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``recipes/eval.py``; bad input exits with status 2 and a one-line message.

    Example:
        >>> main(["--model", "no/such/checkpoint", "--skip_lm_eval", "true"])
        2
    """
    import sys

    logging.basicConfig(level=os.environ.get("HF_UNIFORM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args = parse_eval_args(argv)
        if args.num_threads:
            import torch

            torch.set_num_threads(args.num_threads)
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        if not Path(args.model).exists() and (offline or args.model.startswith((".", "/", "~"))):
            raise UniformError(f"model {args.model} not found locally (and the Hub is {'off' if offline else 'not'}"
                               " consulted for paths); pass a checkpoint folder")
        if args.data_dir is not None and not Path(args.data_dir).is_dir():
            raise UniformError(f"--data_dir {args.data_dir} is not a folder")
        limit: int | float | None = args.limit
        if limit is not None and limit >= 1:
            limit = int(limit)
        bs: int | str = int(args.batch_size) if str(args.batch_size).isdigit() else args.batch_size
        out = args.output_dir or str(Path(args.model) / "eval")
        result = evaluate_checkpoint(
            args.model, out, tasks=args.tasks, data_dir=args.data_dir, limit=limit, batch_size=bs,
            device=args.device, dtype=args.dtype, heldout=args.heldout, heldout_max_length=args.heldout_max_length,
            heldout_prompt_format=args.heldout_prompt_format, skip_lm_eval=args.skip_lm_eval,
            heldout_limit=args.heldout_limit, progress=not args.no_progress)
    except UniformError as err:
        logger.error("%s", err)
        print(f"eval: error: {err}", file=sys.stderr)
        return 2
    print(summary_table(result))
    print(f"results: {Path(out) / 'results.json'}")
    return 0
