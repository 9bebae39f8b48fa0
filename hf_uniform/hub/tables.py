"""The tables and snippets of the cards, computed from the run's records.

``selection.json`` gives the h / coverage table, the length table and the reproduce command;
``time_to_threshold.json`` the time-to-threshold table; lm-eval's ``results.json`` the evaluation table.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UniformError
from ..records import SelectionRecord
from .checks import _looks_like_hub_id

logger = logging.getLogger(__name__)

#: how a model card's usage code names the model it loads: ``SentenceTransformer("org/name")``, ...
_LOAD_CALL = re.compile(r"(?:SentenceTransformer|from_pretrained|StaticModel\.from_pretrained|load)\(\s*['\"]"
                        r"([A-Za-z0-9][\w.-]*/[\w.-]+)['\"]")


def local_model_hub_id(path: str | Path) -> str | None:
    """The Hub id of a model stored in the local folder ``path``, read from the model card it ships with.

    Looks at ``README.md`` in the folder: the card metadata's ``model_id``/``model_name``/``base_model`` (when it
    is an ``org/name`` id), else the first ``org/name`` the card's usage code loads
    (``SentenceTransformer('sentence-transformers/all-MiniLM-L6-v2')``, ``AutoModel.from_pretrained(...)``).
    ``None`` when the folder has no card or the card names no id.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> _ = (d / "README.md").write_text("# all-MiniLM-L6-v2\\nmodel = SentenceTransformer("
        ...                                  "'sentence-transformers/all-MiniLM-L6-v2')\\n")
        >>> local_model_hub_id(d)
        'sentence-transformers/all-MiniLM-L6-v2'
        >>> local_model_hub_id(tempfile.mkdtemp()) is None
        True
    """
    card = Path(path) / "README.md"
    if not card.is_file():
        return None
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if m:
        try:
            meta = yaml.safe_load(m.group(1))
        except yaml.YAMLError:
            meta = None
        if isinstance(meta, Mapping):
            for key in ("model_id", "model_name", "base_model"):
                value = meta.get(key)
                value = value[0] if isinstance(value, list) and value else value
                if isinstance(value, str) and _looks_like_hub_id(value):
                    return value
    found = _LOAD_CALL.search(text)
    return found.group(1) if found else None


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and (Path(value).is_absolute() or value.startswith(("./", "../", "~"))
                                       or (Path(value).exists() and not _looks_like_hub_id(value)))


def publishable_record(record: SelectionRecord, embedder_id: str | None = None) -> SelectionRecord:
    """A copy of ``record`` for a published card: local model paths in the embedder settings and the command
    are replaced by the model's Hub id.

    The id is ``embedder_id`` when given, else the one the local folder's model card names
    (:func:`local_model_hub_id`); a local path with no id is shown as ``<local folder NAME>`` (with a warning
    naming ``--embedder-id``). The run's own ``selection.json`` is not changed.

    Example:
        >>> r = SelectionRecord(k=2, n=5, metric="cosine", command="hf-uniform select a.jsonl --embedder st:/m/x",
        ...                     embedder={"embedder": "SentenceTransformerEmbedder", "model": "/m/x"})
        >>> p = publishable_record(r, embedder_id="org/x")
        >>> p.embedder["model"], p.command
        ('org/x', 'hf-uniform select a.jsonl --embedder st:org/x')
    """
    import copy

    emb = record.embedder
    if not isinstance(emb, Mapping) or not any(_is_local_path(v) for v in emb.values()):
        return record
    out = copy.deepcopy(record)
    new_emb = dict(emb)
    for key, value in emb.items():
        if not _is_local_path(value):
            continue
        hub_id = embedder_id or local_model_hub_id(Path(value).expanduser())
        if hub_id is None:
            hub_id = f"<local folder {Path(value).name}>"
            logger.warning("the embedder's %s is the local folder %s and its Hub id is unknown; pass --embedder-id "
                           "(embedder_id=) to record it in the card", key, value)
        new_emb[key] = hub_id
        if isinstance(out.command, str):
            out.command = out.command.replace(value, hub_id)
    out.embedder = new_emb
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


def _md_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def _embedder_md(embedder: Any) -> str:
    if not isinstance(embedder, Mapping) or not embedder:
        return "not recorded"
    if "embedding_column" in embedder and "embedder" not in embedder:
        return f"precomputed vectors from column `{embedder['embedding_column']}`"
    cls = embedder.get("embedder", "embedder")
    rest = ", ".join(f"{k}={_md_cell(v)}" for k, v in embedder.items() if k != "embedder" and v is not None)
    return f"`{cls}` ({rest})" if rest else f"`{cls}`"


def _py(value: Any) -> str:
    """A Python literal with double-quoted strings."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (str, list)) else repr(value)


def _load_code(src: Any, revision: str | None = None) -> tuple[str, str]:
    """(import line, load line) for the source pool in the reproduce snippet (a Hub id at ``revision``)."""
    imp = "from datasets import load_dataset"
    if not isinstance(src, str):
        return imp, 'ds = load_dataset("json", data_files="POOL.jsonl", split="train")  # the source pool'
    suffix = Path(src).suffix.lower()
    builder = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(suffix)
    if builder:
        return imp, f'ds = load_dataset("{builder}", data_files={_py(src)}, split="train")'
    if _looks_like_hub_id(src):
        at = f", revision={_py(revision)}" if revision else ""
        return imp, f'ds = load_dataset({_py(src)}, split="train"{at})'
    return "from datasets import load_from_disk", f"ds = load_from_disk({_py(src)})"


def _reproduce(record: SelectionRecord) -> tuple[str, str]:
    """(shell command, Python code) that reproduce the selection; a Hub dataset is read at the commit recorded
    (``input_revision``), also by the recorded command (:func:`_pin_revision`).

    Example:
        >>> command, code = _reproduce(SelectionRecord(k=3, n=9, metric="cosine", input="pool.jsonl", seed=1))
        >>> command
        'hf-uniform select pool.jsonl -k 3 -o out --metric cosine --seed 1'
        >>> code.splitlines()[-1]
        'subset = ds.filter_uniform(k=3, metric="cosine", seed=1)'
        >>> command, code = _reproduce(SelectionRecord(k=3, n=9, input="user/data", input_revision="ab" * 20,
        ...                                            command="hf-uniform select user/data -k 3 -o out"))
        >>> command
        'hf-uniform select user/data -k 3 -o out --revision abababababababababababababababababababab'
        >>> code.splitlines()[3]
        'ds = load_dataset("user/data", split="train", revision="abababababababababababababababababababab")'
    """
    k, metric, seed = record.k, record.metric, record.seed if record.seed is not None else 0
    emb = record.embedder if isinstance(record.embedder, Mapping) else {}
    kwargs = [f"k={k}", f"metric={_py(metric)}", f"seed={_py(seed)}"]
    cli = ["hf-uniform", "select", str(record.input or "POOL.jsonl"), "-k", str(k), "-o", "out",
           "--metric", str(metric), "--seed", str(seed)]
    if "embedding_column" in emb and "embedder" not in emb:
        kwargs.append(f"embedding_column={_py(emb['embedding_column'])}")
        cli += ["--embedding-column", str(emb["embedding_column"])]
    else:
        cls = emb.get("embedder")
        if cls == "SentenceTransformerEmbedder" and emb.get("model"):
            kwargs.append(f"embedder={_py('st:' + str(emb['model']))}")
            cli += ["--embedder", f"st:{emb['model']}"]
        if emb.get("columns"):
            kwargs.append(f"text_columns={_py(list(emb['columns']))}")
            cli += ["--text-columns", ",".join(emb["columns"])]
        if emb.get("template"):
            kwargs.append(f"template={_py(emb['template'])}")
            cli += ["--template", str(emb["template"])]
    revision = record.input_revision  # set for a Hub dataset input only
    command = _pin_revision(record.command or " ".join(shlex.quote(a) for a in cli), revision)
    imp, load = _load_code(record.input, revision)
    code = "\n".join(["import hf_uniform  # adds Dataset.filter_uniform", imp, "", load,
                      f"subset = ds.filter_uniform({', '.join(kwargs)})"])
    return command, code


def _pin_revision(command: str, commit: str | None) -> str:
    """``command`` reading the Hub dataset at ``commit``: its ``--revision`` value (a branch or tag, which may
    move) replaced by the commit id, or ``--revision COMMIT`` added.

    Example:
        >>> _pin_revision("hf-uniform select u/d -k 3 --revision v1 -o out", "ab" * 20)
        'hf-uniform select u/d -k 3 --revision abababababababababababababababababababab -o out'
    """
    if not commit:
        return command
    pinned, found = re.subn(r"(?<!\S)(--revision[= ])(?:'[^']*'|\S+)", lambda m: m.group(1) + commit, command)
    return pinned if found else f"{command} --revision {commit}"


def _report_rows(record: SelectionRecord) -> list[dict[str, str]]:
    """Rows of the h / coverage table: the subset, random, mixed and the full pool, as the record reports them.

    Example:
        >>> [r["h"] for r in _report_rows(SelectionRecord(k=2, n=5, metric="cosine", h=0.25))]
        ['0.25']
    """
    report = record.report if isinstance(record.report, Mapping) else {}
    labels = {"subset": "**uniform (this subset)**", "random": "random, same size", "mixed": "mixed (half random)",
              "full": "full pool"}
    rows = []
    if not report:
        report = {"subset": record.stats("subset")}
    for name in ("subset", "random", "mixed", "full", *[n for n in report if n not in labels]):
        stats = report.get(name)
        if isinstance(stats, Mapping):
            rows.append({"name": name, "label": labels.get(name, name), "k": _fmt(stats.get("k")),
                         "h": _fmt(stats.get("h")), "coverage_radius": _fmt(stats.get("coverage_radius")),
                         "mean_nn_distance": _fmt(stats.get("mean_nn_distance"))})
    return rows


def _length_rows(record: SelectionRecord) -> list[dict[str, str]]:
    """Rows of the dataset card's length table from selection.json's ``lengths`` block (empty when absent).

    Example:
        >>> s = {"rows": 2, "mean": 15.0, "median": 15.0, "p90": 19.0}
        >>> _length_rows(SelectionRecord(k=2, n=4, metric="cosine", lengths={"subset": {"text_chars": s}}))[0]["text"]
        '15.0 / 15 / 19'
    """
    block = record.lengths
    if not isinstance(block, Mapping):
        return []
    labels = {"subset": "uniform subset", "random": "random", "mixed": "mixed", "full": "full pool"}
    out = []
    for name, rec in block.items():
        if not isinstance(rec, Mapping) or not rec:
            continue
        cell = {}
        for m in ("text_chars", "response_chars"):
            v = rec.get(m)
            cell[m] = f"{v['mean']:.1f} / {v['median']:.0f} / {v['p90']:.0f}" if isinstance(v, Mapping) else "–"
        rows = next(v["rows"] for v in rec.values() if isinstance(v, Mapping))
        out.append({"label": labels.get(name, name), "rows": _fmt(rows), "text": cell["text_chars"],
                    "response": cell["response_chars"]})
    return out


def _ttt_rows(ttt: Any) -> tuple[list[dict[str, str]], str, str]:
    """Rows of the time-to-threshold table, the watched metric and a note.

    Reads the file ``TimeToThresholdCallback`` writes (``{"metric", "thresholds": [..], "reached": {"0.65":
    {"step", "seconds", "value"} | null}, "train_seconds", "global_step", ...}``), the short form
    ``{"thresholds": {"0.65": {"step", "seconds"}}}`` and a list of ``{"threshold", "step", "seconds"}``.
    """
    if not ttt:
        return [], "", ""
    if isinstance(ttt, Mapping) and isinstance(ttt.get("reached"), Mapping):
        entries: Any = ttt["reached"]
    elif isinstance(ttt, Mapping) and isinstance(ttt.get("time_to_threshold"), Mapping):
        steps = ttt.get("steps_to_threshold") if isinstance(ttt.get("steps_to_threshold"), Mapping) else {}
        entries = {k: (None if v is None else {"seconds": v, "step": steps.get(k)})
                   for k, v in ttt["time_to_threshold"].items()}
    else:
        entries = ttt.get("thresholds", ttt) if isinstance(ttt, Mapping) else ttt
    items: list[tuple[Any, Any]]
    if isinstance(entries, Mapping):
        items = [(key, value) for key, value in entries.items() if isinstance(value, (Mapping, type(None)))]
    elif isinstance(entries, list) and all(isinstance(e, Mapping) for e in entries):
        items = [(e.get("threshold"), e) for e in entries]
    else:
        raise UniformError("time_to_threshold must be the time_to_threshold.json of TimeToThresholdCallback or "
                           'map thresholds to {step, seconds}, e.g. {"thresholds": {"0.65": {"step": 120, '
                           '"seconds": 95.2}}}')
    rows = []
    for key, value in items:
        value = value or {}
        step, seconds = value.get("step"), value.get("seconds")
        rows.append({"threshold": _fmt(_to_float(key)) if _to_float(key) is not None else _md_cell(key),
                     "step": _fmt(step) if step is not None else "not reached",
                     "seconds": _fmt_seconds(seconds) if seconds is not None else "–"})
    info = ttt if isinstance(ttt, Mapping) else {}
    metric = info.get("metric") or info.get("metric_name") or "loss"
    metric = {"loss": "training loss", "eval_loss": "evaluation loss"}.get(str(metric), str(metric))
    notes = []
    if _to_float(info.get("window")):
        notes.append(f"first step whose {_fmt(info['window'])}-step moving average is "
                     f"{info.get('operator', '<=')} the threshold")
    if info.get("global_step") is not None and _to_float(info.get("train_seconds")) is not None:
        notes.append(f"the run took {_fmt(info['global_step'])} steps in {_fmt_seconds(info['train_seconds'])}")
    for key in ("run", "label", "subset", "note"):
        if isinstance(info.get(key), (str, int, float)):
            notes.append(f"{key}: {info[key]}")
    return rows, metric, "; ".join(notes)


def _to_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt_seconds(seconds: Any) -> str:
    s = _to_float(seconds)
    if s is None:
        return _md_cell(seconds)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


@dataclass(frozen=True)
class _Score:
    """One benchmark number of an evaluation record."""

    task: str
    alias: str
    metric: str
    value: float
    stderr: float | None = None
    shots: Any = None
    n: Any = None
    filter: str = ""

    @property
    def label(self) -> str:
        return self.metric if self.filter in ("", "none") else f"{self.metric} ({self.filter})"


def _eval_scores(results: Any) -> tuple[list[_Score], Mapping[str, Any] | None, Any]:
    """(lm-eval scores, the held-out block or ``None``, the per-task example limit) of an evaluation record.

    Reads the ``results.json`` of ``hf-uniform eval`` (``{"lm_eval": {"scores": {task: {"acc": ..,
    "acc_stderr": ..}}, "n_shot", "n_samples", "limit"}, "heldout": {"loss", "tokens", "examples"}}``),
    lm-eval's own output (``{"results": {task: {"acc,none": ..}}, "n-shot": ..}``) and ``{task: {metric: value}}``.

    Example:
        >>> scores, _, _ = _eval_scores({"results": {"arc_challenge": {"acc,none": 0.25, "acc_stderr,none": 0.1}}})
        >>> [(s.task, s.metric, s.value, s.stderr) for s in scores]
        [('arc_challenge', 'acc', 0.25, 0.1)]
    """
    if not results:
        return [], None, None
    if not isinstance(results, Mapping):
        raise UniformError("eval_results must be the results.json of hf-uniform eval (recipes/eval.py) or lm-eval "
                           '({"results": {task: {metric: value}}})')
    lm = results.get("lm_eval") if isinstance(results.get("lm_eval"), Mapping) else None
    if lm is not None:
        tasks, shots, counts = lm.get("scores") or {}, lm.get("n_shot") or {}, lm.get("n_samples") or {}
        limit = lm.get("limit")
    else:
        tasks = results.get("results", {k: v for k, v in results.items() if k != "heldout"})
        shots = results.get("n-shot") if isinstance(results.get("n-shot"), Mapping) else {}
        counts = {t: (v.get("effective") or v.get("original")) if isinstance(v, Mapping) else v
                  for t, v in (results.get("n-samples") or {}).items()}
        cfg = results.get("config") if isinstance(results.get("config"), Mapping) else {}
        limit = cfg.get("limit")
    if not isinstance(tasks, Mapping):
        raise UniformError('eval_results must map tasks to metrics, e.g. {"results": {"arc_challenge": {"acc": 0.3}}}')
    scores = []
    for task, metrics in tasks.items():
        if not isinstance(metrics, Mapping):
            continue
        for key, value in metrics.items():
            name, _, filt = str(key).partition(",")
            if "stderr" in name or name in ("alias", "sample_len") or isinstance(value, bool) or _to_float(value) is None:
                continue
            stderr = _to_float(metrics.get(f"{name}_stderr,{filt}" if filt else f"{name}_stderr"))
            scores.append(_Score(str(task), str(metrics.get("alias", task)), name, float(value), stderr,
                                 shots.get(task), counts.get(task), filt))
    heldout = results.get("heldout")
    heldout = heldout if isinstance(heldout, Mapping) and _to_float(heldout.get("loss")) is not None else None
    return scores, heldout, limit


def _eval_rows(results: Any) -> tuple[list[dict[str, str]], str]:
    """Rows of the evaluation table (lm-eval scores, then the held-out loss) and a note.

    Example:
        >>> rows, note = _eval_rows({"lm_eval": {"scores": {"arc_challenge": {"acc": 0.25}}, "limit": 8}})
        >>> rows[0]["task"], rows[0]["value"], note
        ('arc_challenge', '0.25', 'at most 8 examples per task')
    """
    scores, heldout, limit = _eval_scores(results)
    rows = [{"task": _md_cell(s.alias), "metric": _md_cell(s.label),
             "shots": _fmt(s.shots) if s.shots is not None else "–", "value": _fmt(s.value),
             "stderr": _fmt(s.stderr) if s.stderr is not None else "–",
             "n": _fmt(s.n) if s.n is not None else "–"} for s in scores]
    if heldout is not None:
        n = [f"{_fmt(heldout[k])} {k}" for k in ("examples", "tokens") if heldout.get(k) is not None]
        rows.append({"task": "held-out split", "metric": "response-token loss (nats)", "shots": "–",
                     "value": _fmt(float(heldout["loss"])), "stderr": "–", "n": ", ".join(n) or "–"})
    return rows, f"at most {limit} examples per task" if limit else ""


class _TaskYamlLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs, whose ``!function`` tags name Python code (read as ``None`` here)."""


_TaskYamlLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _task_dataset(task: str) -> dict[str, Any]:
    """The Hub dataset an lm-eval task reads, from the task YAMLs shipped in ``hf_uniform/eval_tasks``.

    Returns ``{"type", "config", "split"}``; an unknown task gives ``{"type": task}`` (nothing is guessed).

    Example:
        >>> _task_dataset("arc_challenge")
        {'type': 'allenai/ai2_arc', 'config': 'ARC-Challenge', 'split': 'test'}
        >>> _task_dataset("truthfulqa_mc2")["type"], _task_dataset("hellaswag")
        ('truthfulqa/truthful_qa', {'type': 'hellaswag'})
    """
    from ..evaluation.lm_eval import SHIPPED_TASKS, shipped_tasks_dir

    folder = shipped_tasks_dir()
    path = folder / f"{SHIPPED_TASKS.get(task, task)}.yaml"
    spec: dict[str, Any] = {}
    for _ in range(4):  # the task's file and the files it includes
        if not path.is_file() or path.parent != folder:
            break
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader) or {}
        except (OSError, yaml.YAMLError):
            break
        spec = {**data, **spec}  # the including file wins over the included one
        path = folder / str(data["include"]) if data.get("include") else Path()
    if not spec.get("dataset_path"):
        return {"type": task}
    split = spec.get("test_split") or spec.get("validation_split")
    return {"type": spec["dataset_path"], "config": spec.get("dataset_name"), "split": split}


def _eval_results(results: Any) -> list[Any]:
    """The lm-eval scores as ``huggingface_hub.EvalResult`` s, for the model card's ``model-index`` metadata.

    The held-out loss is not among them: it has no Hub dataset to name. It stays in the card's table.

    Example:
        >>> lm = {"scores": {"arc_challenge": {"acc": 0.25}}, "n_shot": {"arc_challenge": 25}}
        >>> (r,) = _eval_results({"lm_eval": lm})
        >>> r.dataset_type, r.dataset_config, r.dataset_args, r.metric_type, r.metric_value
        ('allenai/ai2_arc', 'ARC-Challenge', {'num_few_shot': 25}, 'acc', 0.25)
    """
    from huggingface_hub import EvalResult

    scores, _, limit = _eval_scores(results)
    out = []
    for s in scores:
        dataset = _task_dataset(s.task)
        args = {"num_few_shot": int(s.shots)} if _to_float(s.shots) is not None else {}
        if limit:
            args["limit"] = limit
        out.append(EvalResult(
            task_type="text-generation", dataset_type=dataset["type"], dataset_name=s.alias,
            dataset_config=dataset.get("config"), dataset_split=dataset.get("split"), dataset_args=args or None,
            metric_type=s.metric, metric_value=s.value, metric_name=s.label if s.label != s.metric else None))
    return out


def eval_result_files(results: Any) -> dict[str, bytes]:
    """The lm-eval scores as ``.eval_results/<task>.yaml`` files, the format huggingface_hub 1.x reads
    (``EvalResultEntry``; shown on the model page and the benchmark's leaderboard), beside the legacy
    ``model-index`` of the card.

    Only tasks whose data is a Hub dataset get a file; ``task_id`` is the dataset config (``default`` without
    one); the metric, shots and an example ``limit`` (a subsampled run is not the full benchmark) go in
    ``notes``. Empty when this huggingface_hub has no ``EvalResultEntry``.

    Example:
        >>> lm = {"scores": {"arc_challenge": {"acc": 0.25}}, "n_shot": {"arc_challenge": 25}, "limit": 40}
        >>> files = eval_result_files({"lm_eval": lm})
        >>> list(files), yaml.safe_load(files[".eval_results/arc_challenge.yaml"])[0]["dataset"]
        (['.eval_results/arc_challenge.yaml'], {'id': 'allenai/ai2_arc', 'task_id': 'ARC-Challenge'})
    """
    try:
        from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml
    except ImportError:  # huggingface_hub < 1.x: the card's model-index is all there is
        return {}
    scores, _, limit = _eval_scores(results)
    by_task: dict[str, list[Any]] = {}
    for s in scores:
        dataset = _task_dataset(s.task)
        if not _looks_like_hub_id(dataset.get("type")):
            continue
        notes = [f"metric={s.metric}", "lm-eval-harness via hf-uniform eval"]
        if _to_float(s.shots) is not None:
            notes.insert(1, f"{int(s.shots)}-shot")
        if limit:
            notes.append(f"limit={limit} examples per task (not the full benchmark)")
        by_task.setdefault(s.task, []).append(EvalResultEntry(
            dataset_id=dataset["type"], task_id=str(dataset.get("config") or "default"), value=s.value,
            notes=", ".join(notes)))
    out = {}
    for task, entries in by_task.items():
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", task)
        out[f".eval_results/{slug}.yaml"] = yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False,
                                                           allow_unicode=True).encode("utf-8")
    return out
