"""Evaluate a checkpoint in one call, the results files, and the arguments of ``hf-uniform eval``.

* :func:`evaluate_checkpoint`: held-out loss (:mod:`~hf_uniform.evaluation.heldout`) and lm-eval
  (:mod:`~hf_uniform.evaluation.lm_eval`) on a checkpoint; writes ``results.json`` and ``summary.md``
  (:func:`write_results`, :func:`summary_table`). ``hf-uniform eval`` (:func:`hf_uniform.scripts.eval.main`) runs
  the same steps.
* :class:`EvalArguments`, :func:`parse_eval_args`, :func:`check_eval_args`: the recipe's arguments.

>>> print(summary_table({"heldout": {"loss": 2.5, "tokens": 100, "examples": 4}}))
| task | shots | metric | value | stderr | n |
|---|---|---|---|---|---|
| held-out split | – | response-token loss (nats) | 2.5000 | – | 4 examples, 100 tokens |
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..arguments import parse_config_args, script_parser
from ..errors import MissingFileError, UniformError
from ..io import atomic_write_json, atomic_write_text
from .heldout import checkpoint_heldout_loss
from .lm_eval import DEFAULT_TASKS, TaskSpec, parse_tasks, run_lm_eval


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
    write_results(output_dir, result)
    return result


def write_results(output_dir: str | os.PathLike, result: Mapping[str, Any]) -> Path:
    """Write ``results.json`` (everything) and ``summary.md`` (:func:`summary_table`) in ``output_dir``.

    Both are written atomically (a temporary file, then a rename). Returns the path of ``results.json``.

    Example:
        >>> import tempfile
        >>> p = write_results(tempfile.mkdtemp(), {"heldout": {"loss": 2.5, "tokens": 100, "examples": 4}})
        >>> p.name, (p.parent / "summary.md").read_text().splitlines()[0]
        ('results.json', '| task | shots | metric | value | stderr | n |')
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_dir / "results.json", dict(result))
    atomic_write_text(output_dir / "summary.md", summary_table(result) + "\n")
    return output_dir / "results.json"


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
    """Arguments of ``hf-uniform eval`` (:mod:`hf_uniform.scripts.eval`; YAML via ``--config`` and/or the
    command line).

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

    def limit_value(self) -> int | float | None:
        """``limit`` as lm-eval takes it: a count (int) when >= 1, else a fraction (or ``None``).

        Example:
            >>> EvalArguments(model="m", limit=8.0).limit_value(), EvalArguments(model="m", limit=0.5).limit_value()
            (8, 0.5)
        """
        return int(self.limit) if self.limit is not None and self.limit >= 1 else self.limit

    def lm_eval_batch_size(self) -> int | str:
        """``batch_size`` as lm-eval takes it: an int, or a string such as ``"auto"``.

        Example:
            >>> EvalArguments(model="m").lm_eval_batch_size(), EvalArguments(model="m", batch_size="auto").lm_eval_batch_size()
            (8, 'auto')
        """
        return int(self.batch_size) if str(self.batch_size).isdigit() else self.batch_size

    def results_dir(self) -> Path:
        """Where ``results.json`` goes: ``output_dir``, default ``MODEL/eval``.

        Example:
            >>> EvalArguments(model="ckpt").results_dir().as_posix()
            'ckpt/eval'
        """
        return Path(self.output_dir) if self.output_dir else Path(self.model) / "eval"


def parse_eval_args(argv: Sequence[str] | None = None, parser: Any = None) -> EvalArguments:
    """Parse ``[--config FILE.yaml] [--key value ...]`` into :class:`EvalArguments` (the command line wins).

    ``parser`` is a ``TrlParser`` over ``(EvalArguments,)`` (built here when not given; see
    :func:`hf_uniform.scripts.eval.make_parser`).

    Raises:
        UniformError: an unknown or malformed argument, or no ``--model``.

    Example:
        >>> parse_eval_args(["--model", "ckpt", "--limit", "8"]).limit
        8.0
    """
    parser = parser if parser is not None else script_parser((EvalArguments,))
    (args,) = parse_config_args(parser, argv, "eval")
    if not args.model:
        raise UniformError("no model given; pass --model CHECKPOINT_FOLDER (or a Hub id)")
    return args


def check_eval_args(args: EvalArguments) -> None:
    """Refuse bad evaluation arguments before any model is loaded (one-line errors naming the fix).

    Raises:
        MissingFileError: a local model path that does not exist (or any model with ``HF_HUB_OFFLINE=1``).
        UniformError: a ``data_dir`` that is not a folder, a malformed ``tasks`` string, or nothing to evaluate.

    Example:
        >>> check_eval_args(EvalArguments(model="./no/such/ckpt"))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.MissingFileError: model ./no/such/ckpt not found locally (...); pass a checkpoint folder
    """
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not Path(args.model).exists() and (offline or args.model.startswith((".", "/", "~"))):
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub is not consulted for paths"
        raise MissingFileError(f"model {args.model} not found locally ({why}); pass a checkpoint folder")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UniformError(f"--data_dir {args.data_dir} is not a folder")
    if args.skip_lm_eval and args.heldout is None:
        raise UniformError("nothing to evaluate: --skip_lm_eval without --heldout")
    parse_tasks(args.tasks)
