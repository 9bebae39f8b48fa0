"""Pushing to the Hub: a uniform subset as a dataset repo, a fine-tuned checkpoint as a model repo.

* :func:`stage_subset` writes the dataset repo of a subset into a local folder; :func:`push_subset` builds
  that folder and uploads it in one commit (or keeps it, for a dry run).
* :func:`push_checkpoint` pushes a ``Trainer`` output folder with its model card in one commit.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UniformError
from ..io import atomic_dir, is_main_process, load_input, resolve_path
from ..records import RUN_INFO_FILE, SELECTION_FILE, RunInfo, SelectionRecord
from .cards import _card_bytes, render_dataset_card, render_model_card
from .checks import (
    _check_no_secret,
    _json_bytes,
    _known_token,
    _load_json_arg,
    _scrub,
    _scrubbed,
    _selection_record,
    validate_repo_id,
)
from .tables import eval_result_files

logger = logging.getLogger(__name__)

MAX_SHARD_BYTES = 500 * 1024**2
# remote files a new subset push replaces: stale shards of an earlier, larger push must not linger
SUBSET_DELETE_PATTERNS = ["data/*", "baselines/*", "coverage.png", "uniformity.png"]
# files of a Trainer output folder that are never pushed: optimizer state, logs, pickles that can hold secrets
CHECKPOINT_EXCLUDE = ("checkpoint-*", "runs/*", "wandb/*", ".*", "*/.*", "__pycache__/*", "*/__pycache__/*",
                      "training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth",
                      "README.md", "*.lock")
MODEL_FILE_PATTERNS = ("config.json", "*.safetensors", "pytorch_model*.bin", "*.gguf", "adapter_model.*")


@dataclass
class PushResult:
    """What a push did (or, for a dry run, would do).

    Attributes:
        repo_id: the target repo.
        repo_type: ``"dataset"`` or ``"model"``.
        files: paths in the repo, sorted.
        url: the repo URL after a push (``None`` for a dry run).
        commit_url: the URL of the commit (``None`` for a dry run).
        folder: the dry-run folder (``None`` after a push).

    Example:
        >>> PushResult("alice/x", "dataset", ["README.md"], folder=Path("out")).dry_run
        True
    """

    repo_id: str
    repo_type: str
    files: list[str] = field(default_factory=list)
    url: str | None = None
    commit_url: str | None = None
    folder: Path | None = None

    @property
    def dry_run(self) -> bool:
        """True when nothing was uploaded."""
        return self.folder is not None


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "to_parquet") and hasattr(obj, "features") and hasattr(obj, "select")


def _inside(folder: Path, path: Path) -> Path:
    """``path`` if it is inside ``folder`` once links are resolved (never push a file from elsewhere)."""
    root, real = os.path.realpath(folder), os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise UniformError(f"{path} links to {real}, outside the folder {folder}; replace the link by the file "
                           "itself (push only uploads files of the folder)")
    return path


def _resolve_inputs(subset: Any, record: SelectionRecord, sel_folder: Path | None, coverage_plot: Any,
                    baselines: Any) -> tuple[Any, Path | None, dict[str, Any]]:
    """(subset Dataset, coverage plot path, {baseline name: Dataset}) from the arguments of push_subset.

    Files found through the record (or by their default names) are read from the selection folder only.
    """
    out_dir: Path | None = None
    if _is_dataset(subset):
        ds = subset
        out_dir = sel_folder
    elif isinstance(subset, (str, os.PathLike)):
        path = resolve_path(subset)
        if path.is_dir():
            out_dir = path
            name = record.file("subset", path)
            candidates = [name] if name else [path / "subset.jsonl", path / "subset.parquet"]
            found = [_inside(path, c) for c in candidates if c.is_file()]
            if not found:
                names = " or ".join(c.relative_to(path).as_posix() for c in candidates)
                raise MissingFileError(f"{path} has no {names}: pass the folder written by "
                                       "`hf-uniform select` (run it again if the subset file was removed)")
            ds = load_input(found[0])
        elif path.is_file():
            ds = load_input(path)
            out_dir = sel_folder or path.parent
        else:
            raise MissingFileError(f"subset {path} does not exist: pass a Dataset, a subset file or the folder "
                                   "written by `hf-uniform select`")
    else:
        raise UniformError(f"subset must be a datasets.Dataset, a file or a folder, not {type(subset).__name__}")
    if len(ds) != record.k:
        raise UniformError(f"the subset has {len(ds)} rows but the selection record says k={record.k}; "
                           "pass the subset and selection.json of the same run")
    plot: Path | None = None
    if coverage_plot is not None:
        plot = Path(coverage_plot)
        if not plot.is_file():
            raise MissingFileError(f"coverage plot {plot} does not exist; pass an existing PNG or None")
    elif out_dir is not None:
        named = record.file("coverage_plot", out_dir)
        names = [named.relative_to(out_dir).as_posix() if named else None, "uniformity.png", "coverage.png"]
        plot = next((_inside(out_dir, out_dir / n) for n in names if n and (out_dir / n).is_file()), None)
    extra: dict[str, Any] = {}
    if baselines is None and out_dir is not None:
        found_files = {b: record.file(b, out_dir) for b in ("random", "mixed")}
        baselines = {b: p for b, p in found_files.items() if p is not None and p.is_file()}
    for name, value in (baselines or {}).items():
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or name == "default":
            raise UniformError(f"baseline name {name!r} is not a valid config name; use e.g. 'random'")
        extra[name] = value if _is_dataset(value) else load_input(Path(value))
    return ds, plot, extra


def _shard_names(prefix: str, ds: Any) -> list[tuple[str, Any]]:
    nbytes = int(getattr(getattr(ds, "data", None), "nbytes", 0) or 0)
    num = max(1, math.ceil(nbytes / MAX_SHARD_BYTES))
    if num == 1:
        return [(f"{prefix}/train-00000-of-00001.parquet", ds)]
    return [(f"{prefix}/train-{i:05d}-of-{num:05d}.parquet", ds.shard(num_shards=num, index=i, contiguous=True))
            for i in range(num)]


def _check_target(folder: str | os.PathLike) -> Path:
    """The dry-run folder, resolved first (``nothere/../X`` is ``X``): new or empty, never replaced."""
    path = resolve_path(folder)
    if path.exists() and not path.is_dir():
        raise UniformError(f"dry-run folder {folder} is a file; pass a new or empty folder to --to")
    if path.exists() and any(path.iterdir()):
        where = "" if str(path) == os.fspath(folder) else f" (that is {path})"
        raise UniformError(f"dry-run folder {folder} is not empty{where}; pass a new or empty folder to --to")
    return path


def stage_subset(
    subset: Any,
    repo_id: str,
    folder: str | os.PathLike,
    *,
    selection: SelectionRecord | Mapping | str | os.PathLike | None = None,
    baselines: Mapping[str, Any] | None = None,
    coverage_plot: str | os.PathLike | None = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    task_categories: str | Sequence[str] | None = None,
    source_dataset: str | None = None,
    pretty_name: str | None = None,
    revision: str | None = None,
    template: str | os.PathLike | None = None,
    token: str | bool | None = None,
    embedder_id: str | None = None,
) -> list[str]:
    """Write the dataset repo of a uniform subset into ``folder`` (new or empty); return its file paths.

    Layout: ``README.md`` (the card), ``data/train-*.parquet``, ``baselines/<name>/train-*.parquet``,
    ``selection.json`` and ``uniformity.png``. This is what :func:`push_subset` uploads. Arguments as there.

    Example:
        >>> from datasets import Dataset
        >>> import tempfile; d = Path(tempfile.mkdtemp()) / "repo"
        >>> sel = {"input": "pool.jsonl", "k": 2, "n": 5, "metric": "cosine", "h": 0.4}
        >>> stage_subset(Dataset.from_dict({"text": ["a", "b"]}), "alice/demo", d, selection=sel, license="mit",
        ...              language="en")
        ['README.md', 'data/train-00000-of-00001.parquet', 'selection.json']
    """
    validate_repo_id(repo_id)
    if selection is None and isinstance(subset, (str, os.PathLike)) and Path(subset).is_dir():
        selection = Path(subset)
    with _quiet_datasets():
        return _stage_subset(subset, repo_id, Path(folder), selection=selection, baselines=baselines,
                             coverage_plot=coverage_plot, license=license, language=language,
                             task_categories=task_categories, source_dataset=source_dataset,
                             pretty_name=pretty_name, revision=revision, template=template, token=token,
                             embedder_id=embedder_id)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars while staging (loading and writing small files is quick)."""
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    was_enabled = is_progress_bar_enabled()
    disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            enable_progress_bar()


def _stage_subset(subset: Any, repo_id: str, folder: Path, *, selection: Any, baselines: Any, coverage_plot: Any,
                  license: Any, language: Any, task_categories: Any, source_dataset: Any, pretty_name: Any,
                  revision: Any, template: Any, token: Any, embedder_id: Any = None) -> list[str]:
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict

    folder = _check_target(folder)
    record, sel_folder = _selection_record(selection)
    ds, plot, extra = _resolve_inputs(subset, record, sel_folder, coverage_plot, baselines)
    secret = _known_token(token)
    with atomic_dir(folder) as stage:  # the folder appears complete or not at all
        configs, infos = [], DatasetInfosDict()
        for name, data, prefix in (("default", ds, "data"), *[(b, d, f"baselines/{b}") for b, d in extra.items()]):
            sizes = 0
            for path_in_repo, shard in _shard_names(prefix, data):
                target = stage / path_in_repo
                target.parent.mkdir(parents=True, exist_ok=True)
                shard.to_parquet(str(target))
                sizes += target.stat().st_size
            configs.append({"config_name": name, "data_files": [{"split": "train", "path": f"{prefix}/train-*"}]})
            nbytes = int(getattr(getattr(data, "data", None), "nbytes", 0) or 0)
            infos[name] = DatasetInfo(features=data.features, download_size=sizes, dataset_size=nbytes,
                                      splits=SplitDict({"train": SplitInfo(name="train", num_bytes=nbytes,
                                                                           num_examples=len(data))}))
        from huggingface_hub import DatasetCardData

        holder = DatasetCardData()
        infos.to_dataset_card_data(holder)
        card = render_dataset_card(
            record, repo_id, subset=ds, configs=configs, dataset_info=holder.to_dict().get("dataset_info"),
            license=license, language=language, task_categories=task_categories, source_dataset=source_dataset,
            pretty_name=pretty_name, coverage_plot="uniformity.png" if plot else None, revision=revision,
            template=template, token=token, embedder_id=embedder_id)
        generated: dict[str, bytes] = {"README.md": _card_bytes(card)}
        sel_path = sel_folder / SELECTION_FILE if sel_folder is not None else None
        clean = _scrubbed(record, secret).to_dict()
        if sel_path is not None and sel_path.is_file() and clean == json.loads(sel_path.read_text(encoding="utf-8")):
            generated[SELECTION_FILE] = sel_path.read_bytes()  # byte-identical evidence
        else:
            generated[SELECTION_FILE] = _json_bytes(clean)
        if plot is not None:
            generated["uniformity.png"] = plot.read_bytes()
        _check_no_secret(generated, secret)
        for path_in_repo, data in generated.items():
            (stage / path_in_repo).write_bytes(data)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _hub_api(token: str | bool | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token, library_name="hf-uniform")


def _ensure_repo(api: Any, repo_id: str, repo_type: str, private: bool | None, revision: str | None) -> str:
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    return str(url)


def push_subset(
    subset: Any,
    repo_id: str,
    *,
    selection: SelectionRecord | Mapping | str | os.PathLike | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run_to: str | os.PathLike | None = None,
    baselines: Mapping[str, Any] | None = None,
    coverage_plot: str | os.PathLike | None = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    task_categories: str | Sequence[str] | None = None,
    source_dataset: str | None = None,
    pretty_name: str | None = None,
    template: str | os.PathLike | None = None,
    embedder_id: str | None = None,
) -> PushResult:
    """Push a uniform subset to the Hub as a dataset that ``load_dataset(repo_id)`` reads, with its card.

    The repo gets ``data/train-*.parquet`` (the subset, in greedy order), ``baselines/<name>/train-*.parquet``
    (configs ``random``/``mixed`` when ``hf-uniform select --baselines`` wrote them), ``selection.json``,
    ``uniformity.png`` and ``README.md`` (see :func:`render_dataset_card`). Everything is built and checked
    locally first, then uploaded in one commit with ``HfApi.upload_folder``; shards of an earlier push that the
    new one does not overwrite are deleted in the same commit.

    Args:
        subset: the folder written by ``hf-uniform select``, a subset file, or a ``Dataset``.
        repo_id: ``USER/NAME`` of the dataset repo (created when missing).
        selection: the selection record: a ``SelectionRecord``, a dict, a ``Selection``, or the path of
            ``selection.json`` (default: the one in the ``subset`` folder).
        private: create the repo private (``None``: the Hub's default; an existing repo keeps its visibility).
        token: Hub token; default: ``HF_TOKEN`` or the saved login. Never logged or written.
        revision: branch to push to (created from ``main`` when missing).
        commit_message: default ``"Upload uniform subset (k=.. of n=..) with hf-uniform"``.
        dry_run_to: write the repo folder here instead of uploading.
        baselines: ``{config name: Dataset or file}``; default: the baselines in the ``subset`` folder.
        coverage_plot: the figure; default: ``uniformity.png`` (or an older ``coverage.png``) in the ``subset``
            folder when present.
        license: Hub licence id; default: the source's when it is recorded.
        language: language code(s); default: the source's when recorded.
        task_categories: default: the source's, else ``text-generation``.
        source_dataset: Hub id of the source when the selection ran on a local copy.
        pretty_name: card title.
        template: a card template instead of ``model_cards/dataset_card.md``.
        embedder_id: Hub id of the embedding model when the selection used a local copy (the card shows it
            instead of the local path; default: the id the folder's own model card names).

    Returns:
        A :class:`PushResult` with the repo URL and commit URL, or the dry-run folder.

    Raises:
        UniformError: invalid repo id, a subset that does not match its selection record, a card that does not
            render, or a file that would leak a token; all raised before any upload.
        FileNotFoundError: the subset, the selection record, the plot or the template does not exist.

    Example:
        >>> from datasets import Dataset
        >>> import tempfile; d = Path(tempfile.mkdtemp()) / "dry"
        >>> sel = {"input": "pool.jsonl", "k": 2, "n": 5, "metric": "cosine", "h": 0.4}
        >>> res = push_subset(Dataset.from_dict({"text": ["a", "b"]}), "alice/demo", selection=sel,
        ...                   dry_run_to=d, license="mit", language="en")
        >>> res.dry_run, res.files[0]
        (True, 'README.md')
    """
    validate_repo_id(repo_id)
    kwargs = dict(selection=selection, baselines=baselines, coverage_plot=coverage_plot, license=license,
                  language=language, task_categories=task_categories, source_dataset=source_dataset,
                  pretty_name=pretty_name, revision=revision, template=template, token=token,
                  embedder_id=embedder_id)
    if dry_run_to is not None:
        files = stage_subset(subset, repo_id, dry_run_to, **kwargs)
        logger.info("dry run: wrote the %d files of %s to %s", len(files), repo_id, dry_run_to)
        return PushResult(repo_id, "dataset", files, folder=resolve_path(dry_run_to))
    with tempfile.TemporaryDirectory(prefix="hf-uniform-push-") as tmp:
        folder = Path(tmp) / "repo"
        files = stage_subset(subset, repo_id, folder, **kwargs)
        record = SelectionRecord.from_json(folder)
        message = commit_message or (f"Upload uniform subset (k={record.k} of n={record.n}, "
                                     f"{record.metric}) with hf-uniform")
        api = _hub_api(token)
        url = _ensure_repo(api, repo_id, "dataset", private, revision)
        logger.info("pushing %d files to %s", len(files), url)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", revision=revision,
                                   commit_message=message, delete_patterns=SUBSET_DELETE_PATTERNS)
    commit_url = getattr(commit, "commit_url", None) or str(commit)
    logger.info("pushed %s", commit_url)
    return PushResult(repo_id, "dataset", files, url=url, commit_url=commit_url)


def _checkpoint_files(output_dir: Path) -> dict[str, Path]:
    """The files of ``output_dir`` that a checkpoint push uploads; a link out of the folder is refused."""
    files = {}
    for path in sorted(output_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(output_dir).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in CHECKPOINT_EXCLUDE):
            continue
        files[rel] = _inside(output_dir, path)
    return files


def _check_local_records(files: Mapping[str, Path]) -> None:
    """Refuse a push whose records do not read: every top-level ``*.json`` must be a JSON document, and
    ``selection.json`` / ``run_info.json`` must be valid records (a truncated one is never uploaded)."""
    for rel, path in files.items():
        if "/" in rel or not rel.endswith(".json"):
            continue
        if rel == SELECTION_FILE:
            SelectionRecord.from_json(path)
        elif rel == RUN_INFO_FILE:
            RunInfo.from_json(path)
        else:
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
                raise UniformError(f"{path} is not valid JSON ({str(err).splitlines()[0][:120]}); write it again "
                                   "(a truncated file) or remove it before pushing") from err


def push_checkpoint(
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    base_model: str | None = None,
    selection: SelectionRecord | Mapping | str | os.PathLike | None = None,
    subset_repo: str | None = None,
    training_config: Mapping | str | os.PathLike | None = None,
    time_to_threshold: Mapping | str | os.PathLike | None = None,
    eval_results: Mapping | str | os.PathLike | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run_to: str | os.PathLike | None = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    template: str | os.PathLike | None = None,
) -> PushResult | None:
    """Push a fine-tuned model folder (``Trainer.save_model`` output) to the Hub with its model card.

    Pushed: the model files of ``output_dir`` (not ``checkpoint-*/``, ``runs/``, optimizer state or
    ``training_args.bin``, a pickle that can hold a Hub token), a ``README.md`` from
    :func:`render_model_card`, and the records ``selection.json``, ``training_config.json``,
    ``time_to_threshold.json``, ``eval_results.json`` when given. One commit via ``HfApi.create_commit``;
    weights are streamed from ``output_dir``, not copied. On ranks other than 0 it does nothing.

    Args:
        output_dir: the folder with ``config.json`` and the weights.
        repo_id: ``USER/NAME`` of the model repo (created when missing).
        base_model: Hub id or path of the model that was fine-tuned (shown in the card; ``base_model``
            metadata when it is a Hub id).
        selection: the selection record (``SelectionRecord``, dict or ``selection.json``) of the training subset;
            pushed too.
        subset_repo: Hub id of the pushed subset, linked from the card and listed in ``datasets``.
        training_config: dict or JSON/YAML file: ``regime`` (``"adamw-ce"`` or ``"l2-sgd"``), learning rate,
            batch size, ..., and ``command`` (the training command line); pushed as ``training_config.json``.
        time_to_threshold: dict or ``time_to_threshold.json`` (default: the one ``TimeToThresholdCallback``
            wrote in ``output_dir``, when present); pushed too.
        eval_results: dict or lm-eval ``results.json`` (from ``hf-uniform eval``); pushed as ``eval_results.json``,
            and the scores on Hub benchmarks also as ``.eval_results/<task>.yaml`` (huggingface_hub 1.x's
            format, :func:`~hf_uniform.hub.tables.eval_result_files`) beside the card's ``model-index``.
        license: Hub licence id of the model.
        language: language code(s).
        template: a card template instead of ``model_cards/model_card.md``.
        private: create the repo private (``None``: the Hub's default).
        token: Hub token; default: ``HF_TOKEN`` or the saved login. Never logged or written.
        revision: branch to push to (created when missing).
        commit_message: default ``"Upload checkpoint trained on <subset> with hf-uniform"``.
        dry_run_to: copy exactly the files that would be pushed into this new folder instead of uploading.

    Returns:
        A :class:`PushResult`, or ``None`` on ranks other than 0.

    Raises:
        UniformError: invalid repo id, unreadable records, a card that fails to render, or a file that would
            leak a token; all before any upload.
        FileNotFoundError: ``output_dir`` or a record file does not exist, or ``output_dir`` has no model files.

    Example:
        >>> import tempfile; ckpt = Path(tempfile.mkdtemp())
        >>> _ = (ckpt / "config.json").write_text('{"model_type": "llama"}')
        >>> res = push_checkpoint(ckpt, "alice/tiny-sft", training_config={"regime": "adamw-ce", "lr": 2e-5},
        ...                       dry_run_to=ckpt.parent / (ckpt.name + "-dry"))
        >>> res.files
        ['README.md', 'config.json', 'training_config.json']
    """
    validate_repo_id(repo_id)
    if not is_main_process():
        return None
    output_dir = resolve_path(output_dir)
    if not output_dir.is_dir():
        raise MissingFileError(f"checkpoint folder {output_dir} does not exist; pass the output_dir of the training run")
    target = _check_target(dry_run_to) if dry_run_to is not None else None
    local = _checkpoint_files(output_dir)
    if target is not None and target.is_relative_to(output_dir):
        inside = target.relative_to(output_dir).as_posix()
        local = {k: v for k, v in local.items() if not (k == inside or k.startswith(inside + "/"))}
    if not any(fnmatch.fnmatch(rel, pat) for rel in local for pat in MODEL_FILE_PATTERNS):
        raise MissingFileError(f"{output_dir} has no model files (config.json, *.safetensors, pytorch_model*.bin); "
                               "save the model there first (trainer.save_model)")
    if time_to_threshold is None and (output_dir / "time_to_threshold.json").is_file():
        time_to_threshold = output_dir / "time_to_threshold.json"  # written there by TimeToThresholdCallback
    secret = _known_token(token)
    generated: dict[str, bytes] = {}
    records = {SELECTION_FILE: (selection, "selection"), "training_config.json": (training_config, "training config"),
               "time_to_threshold.json": (time_to_threshold, "time to threshold"),
               "eval_results.json": (eval_results, "eval results")}
    for name, (value, what) in records.items():
        if value is not None:
            data = (_selection_record(value)[0].to_dict() if name == SELECTION_FILE
                    else _load_json_arg(value, what, allow_list=name == "time_to_threshold.json"))
            generated[name] = _json_bytes(_scrub(data, secret))
    if eval_results is not None:  # the scores in huggingface_hub 1.x's .eval_results/*.yaml too
        generated.update(eval_result_files(_load_json_arg(eval_results, "eval results")))
    _check_local_records({k: v for k, v in local.items() if k not in generated})
    card = render_model_card(
        repo_id, base_model=base_model, selection=selection, subset_repo=subset_repo,
        training_config=training_config, time_to_threshold=time_to_threshold, eval_results=eval_results,
        license=license, language=language,
        library_name="transformers" if "config.json" in local else None, extra_files=sorted(generated),
        template=template)
    generated["README.md"] = _card_bytes(card)
    plan: dict[str, Path | bytes] = {**{k: v for k, v in local.items() if k not in generated}, **generated}
    _check_no_secret(plan, secret)
    files = sorted(plan)
    if target is not None:
        with atomic_dir(target) as stage:  # the folder appears complete or not at all
            for path_in_repo, src in plan.items():
                dest = stage / path_in_repo
                dest.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(src, Path):
                    shutil.copyfile(src, dest)
                else:
                    dest.write_bytes(src)
        logger.info("dry run: wrote the %d files of %s to %s", len(files), repo_id, target)
        return PushResult(repo_id, "model", files, folder=target)
    from huggingface_hub import CommitOperationAdd

    api = _hub_api(token)
    url = _ensure_repo(api, repo_id, "model", private, revision)
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(src) if isinstance(src, Path) else src)
                  for p, src in plan.items()]
    message = commit_message or f"Upload checkpoint trained on {subset_repo or 'a uniform subset'} with hf-uniform"
    logger.info("pushing %d files to %s", len(files), url)
    commit = api.create_commit(repo_id=repo_id, repo_type="model", operations=operations, commit_message=message,
                               revision=revision)
    logger.info("pushed %s", commit.commit_url)
    return PushResult(repo_id, "model", files, url=url, commit_url=commit.commit_url)
