"""Publishing to the Hugging Face Hub: uniform subsets as datasets, fine-tuned checkpoints as models.

* :func:`push_subset` (and ``hf-uniform push OUT --repo-id USER/NAME``) pushes the folder written by
  ``hf-uniform select`` as a dataset repo that ``load_dataset(repo_id)`` reads: ``data/train-*.parquet``, the
  baselines as extra configs, ``selection.json``, the PCA coverage plot and a dataset card.
* :func:`push_checkpoint` pushes a fine-tuned model folder with a model card (base model, training subset
  and its h, recipe, time-to-threshold table, lm-eval results, reproduce command).
* :func:`render_dataset_card` / :func:`render_model_card` render the cards from ``model_cards/*.md`` through
  ``huggingface_hub``'s ``DatasetCard`` / ``ModelCard``.

Every check (repo id, input files, card rendering, secrets) runs before the first request to the Hub, and
``dry_run_to`` / ``--dry-run --to DIR`` writes exactly the files that would be pushed. Tokens come from
``huggingface_hub``'s usual sources (``token=``, ``HF_TOKEN``, ``hf auth login``); they are never logged,
printed or written, and a push is refused if a file about to be uploaded contains one.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import logging
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UniformError

logger = logging.getLogger(__name__)

PAPER_TITLE = "Data Uniformity Improves Training Efficiency and More, with a Convergence Framework Beyond the NTK Regime"
PAPER_URL = "https://arxiv.org/abs/2506.24120"
CITATION_BIBTEX = """@article{wang2025datauniformity,
  title   = {Data Uniformity Improves Training Efficiency and More, with a Convergence Framework Beyond the NTK Regime},
  author  = {Wang, Yuqing and Gu, Shangding},
  journal = {arXiv preprint arXiv:2506.24120},
  year    = {2025}
}"""
SUBSET_TAGS = ["uniform-subset", "data-selection"]
MODEL_TAGS = ["hf-uniform", "uniform-subset", "data-selection", "sft"]
DEFAULT_TASK_CATEGORIES = ["text-generation"]  # instruction-tuning data, as the selected pools are
MAX_SHARD_BYTES = 500 * 1024**2
# remote files a new subset push replaces: stale shards of an earlier, larger push must not linger
SUBSET_DELETE_PATTERNS = ["data/*", "baselines/*", "coverage.png", "uniformity.png"]
REGIMES = {
    "adamw-ce": ("AdamW-CE", "AdamW on the token-level cross-entropy loss (the standard SFT recipe)"),
    "l2-sgd": ("ℓ2-SGD", "plain SGD on the squared-error (ℓ2) loss between the logits and the one-hot next token, "
               "the paper's ℓ2 regime"),
}
BASELINE_DESCRIPTIONS = {
    "random": "a uniformly random subset of the same pool, same size",
    "mixed": "the paper's mixed baseline: half random rows, the other half added by greedy max-min; same size",
}
# files of a Trainer output folder that are never pushed: optimizer state, logs, pickles that can hold secrets
CHECKPOINT_EXCLUDE = ("checkpoint-*", "runs/*", "wandb/*", ".*", "*/.*", "__pycache__/*", "*/__pycache__/*",
                      "training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth",
                      "README.md", "*.lock")
MODEL_FILE_PATTERNS = ("config.json", "*.safetensors", "pytorch_model*.bin", "*.gguf", "adapter_model.*")
# credential-named keys (``hub_token``, ``token``, ``api_key``, ...), not ``pad_token`` or ``max_tokens``
_SECRET_KEY = re.compile(r"^(?:(?:hub|hf|huggingface|auth|access|api|push_to_hub|wandb)_)?token$|secret|"
                         r"passw(?:or)?d|api_?key|authorization|credential", re.IGNORECASE)
_TOKEN_LIKE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_REPO_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_TEXT_SUFFIXES = {".json", ".jsonl", ".md", ".txt", ".yaml", ".yml", ".jinja", ".py", ".cfg", ".ini", ".csv"}
_SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


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


# -- checks -----------------------------------------------------------------------------------------------


def validate_repo_id(repo_id: str) -> str:
    """Check that ``repo_id`` is ``USER/NAME`` as the Hub accepts it; return it.

    Raises:
        UniformError: the id has no namespace, more than one ``/``, or characters the Hub rejects.

    Example:
        >>> validate_repo_id("alice/alpaca-uniform-4.5k")
        'alice/alpaca-uniform-4.5k'
        >>> validate_repo_id("alpaca")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: invalid repo id 'alpaca': use USER/NAME, e.g. alice/alpaca-uniform
    """
    hint = "use USER/NAME, e.g. alice/alpaca-uniform"
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise UniformError(f"invalid repo id {repo_id!r}: {hint}")
    namespace, name = repo_id.split("/")
    bad = next((p for p in (namespace, name) if not _REPO_PART.match(p)), None)
    if bad is not None or "--" in repo_id or ".." in repo_id or len(name) > 96 or name.endswith(".git"):
        raise UniformError(f"invalid repo id {repo_id!r}: {hint} (letters, digits, '-', '_', '.'; "
                           "no '--' or '..'; name at most 96 characters)")
    try:
        from huggingface_hub.utils import HFValidationError
        from huggingface_hub.utils import validate_repo_id as hf_validate
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return repo_id
    try:
        hf_validate(repo_id)
    except HFValidationError as err:
        raise UniformError(f"invalid repo id {repo_id!r}: {str(err).splitlines()[0]}") from None
    return repo_id


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` value for a dataset of ``num_rows`` rows.

    Example:
        >>> size_category(4500), size_category(999)
        ('1K<n<10K', 'n<1K')
    """
    for bound, name in _SIZE_CATEGORIES:
        if num_rows < bound:
            return name
    return "n>1B"


def _known_token(token: str | bool | None) -> str | None:
    """The token that will be used (explicit, ``HF_TOKEN`` or the saved login), only to scan for leaks."""
    if isinstance(token, str):
        return token
    if token is False:
        return None
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # pragma: no cover - never fail a push because the token lookup failed
        return None


def _scrub(obj: Any, token: str | None = None) -> Any:
    """A copy of ``obj`` without secret-named keys and with token-like strings redacted."""
    if isinstance(obj, Mapping):
        return {str(k): _scrub(v, token) for k, v in obj.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(obj, (list, tuple)):
        return [_scrub(v, token) for v in obj]
    if isinstance(obj, str):
        if token and token in obj:
            obj = obj.replace(token, "<redacted>")
        return _TOKEN_LIKE.sub("<redacted>", obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "tolist"):
        return _scrub(obj.tolist(), token)
    return obj


def _check_no_secret(files: Mapping[str, Path | bytes], token: str | None) -> None:
    """Refuse to push when a text file about to be uploaded contains the token (or any ``hf_...`` token)."""
    for path_in_repo, src in files.items():
        if isinstance(src, Path):
            if src.suffix.lower() not in _TEXT_SUFFIXES or src.stat().st_size > 64 * 1024**2:
                continue
            data = src.read_bytes()
        else:
            data = src
        text = data.decode("utf-8", errors="replace")
        if (token and token in text) or _TOKEN_LIKE.search(text):
            raise UniformError(f"{path_in_repo} contains a Hugging Face token; remove it from the file "
                               "(or the config it comes from) before pushing")


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _load_json_arg(value: Any, what: str, *, allow_list: bool = False) -> Any:
    """``value`` as a dict: a mapping as is, or the JSON (or YAML) file it names (a list too if allowed)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if allow_list and isinstance(value, list):
        return value
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return dict(value.to_dict())
    path = Path(value)
    if not path.is_file():
        raise UniformError(f"{what} file {path} does not exist; pass a dict or the path of an existing file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UniformError(f"cannot read {what} from {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
        raise UniformError(f"{path} must hold a JSON object ({what}), not {type(data).__name__}")
    return data


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


def _looks_like_hub_id(text: Any) -> bool:
    if not isinstance(text, str) or text.count("/") != 1 or text.startswith((".", "/", "~")):
        return False
    if Path(text).suffix.lower() in (".json", ".jsonl", ".parquet", ".csv", ".arrow", ".txt"):
        return False
    return all(_REPO_PART.match(p) for p in text.split("/")) and not Path(text).exists()


def _normalize_license(value: Any) -> tuple[str | None, str | None]:
    """(Hub licence id, licence name for ``license: other``) from a free-form licence value."""
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
    if not isinstance(value, str) or not value.strip():
        return None, None
    slug = re.sub(r"\s+", "-", value.strip().lower())
    if re.fullmatch(r"[a-z0-9][a-z0-9.+-]{0,63}", slug):
        return slug, None
    name = re.sub(r"[^a-z0-9.-]+", "-", slug).strip("-")[:64] or "source-license"
    return "other", name


# -- templates --------------------------------------------------------------------------------------------


def _template_path(name: str, template: str | os.PathLike | None) -> Path:
    if template is not None:
        path = Path(template)
        if not path.is_file():
            raise UniformError(f"card template {path} does not exist; pass an existing .md file or None")
        return path
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "model_cards" / name, here / "templates" / name):
        if candidate.is_file():
            return candidate
    raise UniformError(f"card template {name} not found beside the package (model_cards/ or "
                       "hf_uniform/templates/); reinstall hf-uniform or pass template=PATH")


def _render(card_cls: Any, card_data: Any, template: Path, variables: dict[str, Any], must_have: Mapping) -> Any:
    """Render ``template`` through ``card_cls.from_template``; fail with one line on any template problem.

    The template is first rendered with ``StrictUndefined`` so that a misspelt variable is an error instead of a
    silent blank (custom templates test optional variables with ``is defined``), then through
    ``huggingface_hub``; the result must parse and keep the metadata in ``must_have``.
    """
    import jinja2

    try:
        text = template.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UniformError(f"cannot read card template {template}: {err}") from None
    context = {**card_data.to_dict(), **variables}
    try:
        jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(
            card_data=card_data.to_yaml(), **context)
        card = card_cls.from_template(card_data, template_str=text, **variables)
    except jinja2.TemplateSyntaxError as err:
        raise UniformError(f"card template {template} failed to render: {err.message} (line {err.lineno}); "
                           "fix the template") from None
    except jinja2.TemplateError as err:
        raise UniformError(f"card template {template} failed to render: {err}; fix the template or pass "
                           "the variables it needs") from None
    except (ValueError, TypeError) as err:  # the rendered front matter is not valid YAML metadata
        raise UniformError(f"card template {template} rendered an invalid card: {str(err).splitlines()[0]}; "
                           "keep '---', '{{ card_data }}', '---' at its top") from None
    data = card.data.to_dict()
    for key, expected in must_have.items():
        got = data.get(key)
        ok = set(expected) <= set(got or []) if key == "tags" else got == expected
        if not ok:
            raise UniformError(f"card template {template} lost the metadata {key!r} (rendered {got!r}); keep "
                               "'---', '{{ card_data }}', '---' at its top")
    return card


# -- dataset cards and subsets ----------------------------------------------------------------------------


def _selection_record(selection: Any) -> tuple[dict, Path | None]:
    """The selection record (a dict) and the folder it came from, from a dict, ``Selection`` or path."""
    if selection is None:
        raise UniformError("no selection given: pass selection= (the dict or selection.json written by "
                           "`hf-uniform select`, or a Selection)")
    folder = None
    if isinstance(selection, (str, os.PathLike)):
        path = Path(selection)
        if path.is_dir():
            path = path / "selection.json"
        if not path.is_file():
            raise UniformError(f"{path} does not exist: pass the folder written by `hf-uniform select` "
                               "(it holds selection.json) or the path of selection.json")
        folder = path.parent
        record = _load_json_arg(path, "selection")
    else:
        record = _load_json_arg(selection, "selection")
    assert record is not None
    missing = [key for key in ("k", "n", "metric") if record.get(key) is None]
    if missing:
        raise UniformError(f"the selection record lacks {', '.join(missing)}; pass the selection.json written "
                           "by `hf-uniform select` (or Selection.to_dict())")
    return record, folder


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "to_parquet") and hasattr(obj, "features") and hasattr(obj, "select")


def _load_subset_file(path: Path) -> Any:
    from .io import load_input

    return load_input(path)


def _resolve_inputs(subset: Any, record: dict, sel_folder: Path | None, coverage_plot: Any,
                    baselines: Any) -> tuple[Any, Path | None, dict[str, Any]]:
    """(subset Dataset, coverage plot path, {baseline name: Dataset}) from the arguments of push_subset."""
    files = record.get("files") if isinstance(record.get("files"), Mapping) else {}
    out_dir: Path | None = None
    if _is_dataset(subset):
        ds = subset
        out_dir = sel_folder
    elif isinstance(subset, (str, os.PathLike)):
        path = Path(subset)
        if path.is_dir():
            out_dir = path
            name = record.get("subset_file") or files.get("subset")
            candidates = [name] if name else ["subset.jsonl", "subset.parquet"]
            found = [path / c for c in candidates if (path / c).is_file()]
            if not found:
                raise UniformError(f"{path} has no {' or '.join(candidates)}: pass the folder written by "
                                   "`hf-uniform select` (run it again if the subset file was removed)")
            ds = _load_subset_file(found[0])
        elif path.is_file():
            ds = _load_subset_file(path)
            out_dir = sel_folder or path.parent
        else:
            raise UniformError(f"subset {path} does not exist: pass a Dataset, a subset file or the folder "
                               "written by `hf-uniform select`")
    else:
        raise UniformError(f"subset must be a datasets.Dataset, a file or a folder, not {type(subset).__name__}")
    if len(ds) != int(record["k"]):
        raise UniformError(f"the subset has {len(ds)} rows but the selection record says k={record['k']}; "
                           "pass the subset and selection.json of the same run")
    plot: Path | None = None
    if coverage_plot is not None:
        plot = Path(coverage_plot)
        if not plot.is_file():
            raise UniformError(f"coverage plot {plot} does not exist; pass an existing PNG or None")
    elif out_dir is not None:
        names = [files.get("coverage_plot"), "uniformity.png", "coverage.png"]
        plot = next((out_dir / n for n in names if n and (out_dir / n).is_file()), None)
    extra: dict[str, Any] = {}
    if baselines is None and out_dir is not None:
        baselines = {b: out_dir / files[b] for b in ("random", "mixed") if files.get(b) and (out_dir / files[b]).is_file()}
    for name, value in (baselines or {}).items():
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or name == "default":
            raise UniformError(f"baseline name {name!r} is not a valid config name; use e.g. 'random'")
        extra[name] = value if _is_dataset(value) else _load_subset_file(Path(value))
    return ds, plot, extra


def _source_metadata(record: Mapping, source_dataset: str | None, token: str | bool | None) -> dict[str, Any]:
    """Licence, language and task categories of the source, where the source records them.

    Looks at, in order: a ``save_to_disk`` folder's ``dataset_info.json``, the YAML of a ``README.md`` beside a
    local file, and the card of a Hub dataset (skipped when offline). Nothing is guessed.
    """
    meta: dict[str, Any] = {"hub_id": None, "license": None, "license_name": None, "language": None,
                            "task_categories": None, "origin": None}
    src = record.get("input")
    hub_id = source_dataset or (src if _looks_like_hub_id(src) else None)
    meta["hub_id"] = hub_id
    if isinstance(src, str) and not hub_id:
        path = Path(src)
        infos = [path / "dataset_info.json", *sorted(path.glob("*/dataset_info.json"))] if path.is_dir() else []
        for info_path in infos:
            if info_path.is_file():
                with contextlib.suppress(OSError, ValueError):
                    info = json.loads(info_path.read_text(encoding="utf-8"))
                    if info.get("license"):
                        meta.update(license=info["license"], origin="the source's dataset_info.json")
                        return meta
        readme = path.parent / "README.md" if path.is_file() else path / "README.md"
        if readme.is_file():
            with contextlib.suppress(Exception):
                from huggingface_hub import DatasetCard

                data = DatasetCard.load(readme).data
                is_dataset_card = any(data.get(k) for k in ("configs", "dataset_info", "task_categories"))
                if data.get("license") and is_dataset_card:  # a downloaded Hub dataset, not a project README
                    meta.update(license=data.get("license"), license_name=data.get("license_name"),
                                language=data.get("language"), task_categories=data.get("task_categories"),
                                origin="the dataset card beside the source")
        return meta
    if hub_id:
        try:
            from huggingface_hub import HfApi

            card = HfApi().dataset_info(hub_id, token=token).card_data
        except Exception as err:  # offline, private or missing: the metadata stays unknown
            logger.info("could not read the card of the source dataset %s (%s); pass --license/--language",
                        hub_id, type(err).__name__)
            return meta
        if card is not None:
            meta.update(license=card.get("license"), license_name=card.get("license_name"),
                        language=card.get("language"), task_categories=card.get("task_categories"),
                        origin=f"the card of {hub_id}")
    return meta


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


def _load_code(src: Any) -> tuple[str, str]:
    """(import line, load line) for the source pool in the reproduce snippet."""
    imp = "from datasets import load_dataset"
    if not isinstance(src, str):
        return imp, 'ds = load_dataset("json", data_files="POOL.jsonl", split="train")  # the source pool'
    suffix = Path(src).suffix.lower()
    builder = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(suffix)
    if builder:
        return imp, f'ds = load_dataset("{builder}", data_files={_py(src)}, split="train")'
    if _looks_like_hub_id(src):
        return imp, f'ds = load_dataset({_py(src)}, split="train")'
    return "from datasets import load_from_disk", f"ds = load_from_disk({_py(src)})"


def _reproduce(record: Mapping) -> tuple[str, str]:
    """(shell command, Python code) that reproduce the selection."""
    k, metric, seed = record["k"], record.get("metric", "cosine"), record.get("seed", 0)
    emb = record.get("embedder") if isinstance(record.get("embedder"), Mapping) else {}
    kwargs = [f"k={k}", f"metric={_py(metric)}", f"seed={_py(seed)}"]
    cli = ["hf-uniform", "select", str(record.get("input") or "POOL.jsonl"), "-k", str(k), "-o", "out",
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
    command = record.get("command") or " ".join(shlex.quote(a) for a in cli)
    imp, load = _load_code(record.get("input"))
    code = "\n".join(["import hf_uniform  # adds Dataset.filter_uniform", imp, "", load,
                      f"subset = ds.filter_uniform({', '.join(kwargs)})"])
    return command, code


def _report_rows(record: Mapping) -> list[dict[str, str]]:
    report = record.get("report") if isinstance(record.get("report"), Mapping) else {}
    labels = {"subset": "**uniform (this subset)**", "random": "random, same size", "mixed": "mixed (half random)",
              "full": "full pool"}
    rows = []
    if not report:
        report = {"subset": {"k": record.get("k"), "h": record.get("h"),
                             "coverage_radius": record.get("coverage_radius")}}
    for name in ("subset", "random", "mixed", "full", *[n for n in report if n not in labels]):
        stats = report.get(name)
        if isinstance(stats, Mapping):
            rows.append({"name": name, "label": labels.get(name, name), "k": _fmt(stats.get("k")),
                         "h": _fmt(stats.get("h")), "coverage_radius": _fmt(stats.get("coverage_radius")),
                         "mean_nn_distance": _fmt(stats.get("mean_nn_distance"))})
    return rows


def _shard_names(prefix: str, ds: Any) -> list[tuple[str, Any]]:
    nbytes = int(getattr(getattr(ds, "data", None), "nbytes", 0) or 0)
    num = max(1, math.ceil(nbytes / MAX_SHARD_BYTES))
    if num == 1:
        return [(f"{prefix}/train-00000-of-00001.parquet", ds)]
    return [(f"{prefix}/train-{i:05d}-of-{num:05d}.parquet", ds.shard(num_shards=num, index=i, contiguous=True))
            for i in range(num)]


def _length_rows(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """Rows of the dataset card's length table from selection.json's ``lengths`` block (empty when absent).

    Example:
        >>> s = {"rows": 2, "mean": 15.0, "median": 15.0, "p90": 19.0}
        >>> _length_rows({"lengths": {"subset": {"text_chars": s}}})[0]["text"]
        '15.0 / 15 / 19'
    """
    block = record.get("lengths")
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


def render_dataset_card(
    selection: Mapping | str | os.PathLike,
    repo_id: str,
    *,
    subset: Any = None,
    configs: Sequence[Mapping[str, Any]] | None = None,
    dataset_info: Any = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    task_categories: str | Sequence[str] | None = None,
    source_dataset: str | None = None,
    pretty_name: str | None = None,
    coverage_plot: str | None = "uniformity.png",
    revision: str | None = None,
    template: str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> Any:
    """Render the dataset card (a ``huggingface_hub.DatasetCard``) of a uniform subset.

    The YAML metadata holds the licence (``license``, else inherited from the source when it is recorded),
    language, size category, task categories, ``source_datasets``, the tags ``uniform-subset`` and
    ``data-selection``, the ``configs`` and the ``dataset_info`` (features and splits). The body is
    ``model_cards/dataset_card.md`` (or ``template``): method, k of n, h and coverage of the subset vs random
    vs full pool, the coverage plot, ``selection.json``, the reproduce command and the citation.

    Args:
        selection: the selection record (dict or path of ``selection.json``).
        repo_id: the target repo, used in the load snippet.
        subset: the subset ``Dataset``; gives the row count when ``configs`` is not given.
        configs: the card's ``configs`` (default: ``data/train-*`` as split ``train``).
        dataset_info: the card's ``dataset_info`` (features, splits), e.g. from ``datasets.DatasetInfosDict``.
        license: Hub licence id; overrides the source's.
        language: language code(s); override the source's.
        task_categories: Hub task categories (default: the source's, else ``text-generation``).
        source_dataset: the Hub id of the source when ``selection["input"]`` is a local file.
        pretty_name: the card title.
        coverage_plot: file name of the figure (``uniformity.png``: radius trace, nearest-neighbour distances,
            PCA map) in the repo, or ``None`` when there is none.
        revision: branch the subset is pushed to (shown in the load snippet).
        template: a Jinja card template instead of ``model_cards/dataset_card.md``.
        token: used only to read the source dataset's card on the Hub.

    Raises:
        UniformError: the record is incomplete or the template fails to render.

    Example:
        >>> card = render_dataset_card({"input": "pool.jsonl", "k": 2, "n": 10, "metric": "cosine", "h": 0.5},
        ...                            "alice/demo", license="mit", language="en", coverage_plot=None)
        >>> card.data.license, card.data.size_categories, card.data.tags
        ('mit', ['n<1K'], ['uniform-subset', 'data-selection'])
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    validate_repo_id(repo_id)
    record, _ = _selection_record(selection)
    secret = _known_token(token)
    record = _scrub(record, secret)
    source = _source_metadata(record, source_dataset, token)
    lic, lic_name = _normalize_license(license if license is not None else source["license"])
    if lic == "other" and not lic_name and license is None and source["license_name"]:
        lic_name = str(source["license_name"])
    if lic is None:
        logger.warning("the licence of the source is not recorded; pass --license (license=) to set it")
    langs = language if language is not None else source["language"]
    langs = [langs] if isinstance(langs, str) else (list(langs) if langs else None)
    if not langs:
        logger.warning("no language given or recorded for the source; pass --language to set it")
    tasks = task_categories if task_categories is not None else (source["task_categories"] or DEFAULT_TASK_CATEGORIES)
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    k, n = int(record["k"]), int(record["n"])
    src = record.get("input")
    hub_id = source["hub_id"]
    source_name = hub_id or (Path(src).name if isinstance(src, str) else "a local pool")
    if configs is None:
        configs = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    extra = {"configs": [dict(c) for c in configs]}
    if dataset_info is not None:
        extra["dataset_info"] = dataset_info
    if lic_name:
        extra["license_name"] = lic_name
    card_data = DatasetCardData(
        license=lic, language=langs, size_categories=[size_category(len(subset) if subset is not None else k)],
        task_categories=tasks, source_datasets=[hub_id] if hub_id else None,
        pretty_name=pretty_name or f"Uniform subset of {source_name} (k={k})", tags=list(SUBSET_TAGS), **extra)
    command, code = _reproduce(record)
    engine = record.get("engine") if isinstance(record.get("engine"), Mapping) else {}
    versions = record.get("versions") or engine.get("versions")
    versions = versions if isinstance(versions, Mapping) else {}
    baseline_configs = [
        {"name": c["config_name"], "path": c["data_files"][0]["path"] + ".parquet",
         "description": BASELINE_DESCRIPTIONS.get(c["config_name"], f"the {c['config_name']} baseline")}
        for c in configs if c["config_name"] != "default"]
    if lic:
        license_md = f"`{lic}`" + (f" ({lic_name})" if lic_name else "")
        license_md += f", inherited from {source['origin']}" if license is None and source["origin"] else ""
    else:
        license_md = "not recorded for the source: check the source's terms before use"
    start = record.get("start")
    variables = {
        "repo_id": repo_id, "revision": revision if revision not in (None, "main") else None,
        "pretty_name": card_data.pretty_name,
        "source_md": f"[{hub_id}](https://huggingface.co/datasets/{hub_id})" if hub_id else f"`{source_name}`",
        "license_md": license_md, "k": _fmt(k), "n": _fmt(n), "percent": f"{100 * k / max(n, 1):.3g}%",
        "metric": record.get("metric"), "seed": _fmt(record.get("seed")),
        "start": [str(s) for s in start] if isinstance(start, list) else ([str(start)] if start is not None else []),
        "embedder_md": _embedder_md(record.get("embedder")),
        "engine_md": ", ".join(f"{key}={_md_cell(engine[key])}" for key in ("method", "device", "dtype", "world_size")
                               if engine.get(key) is not None),
        "versions_md": ", ".join(f"{name} {ver}" for name, ver in versions.items()),
        "report_rows": _report_rows(record), "duplicates_selected": bool(record.get("duplicates_selected")),
        "length_rows": _length_rows(record),
        "coverage_plot": coverage_plot, "baseline_configs": baseline_configs,
        "command": command, "python_code": code, "citation_bibtex": CITATION_BIBTEX,
        "paper_title": PAPER_TITLE, "paper_url": PAPER_URL,
    }
    must_have = {"tags": SUBSET_TAGS, "configs": extra["configs"]}
    return _render(DatasetCard, card_data, _template_path("dataset_card.md", template), variables, must_have)


def _card_bytes(card: Any) -> bytes:
    text = str(card)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def _check_target(folder: str | os.PathLike) -> Path:
    path = Path(folder)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UniformError(f"dry-run folder {path} is not empty; pass a new or empty folder to --to")
    return path


def stage_subset(
    subset: Any,
    repo_id: str,
    folder: str | os.PathLike,
    *,
    selection: Mapping | str | os.PathLike | None = None,
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
                             pretty_name=pretty_name, revision=revision, template=template, token=token)


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
                  revision: Any, template: Any, token: Any) -> list[str]:
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict

    folder = _check_target(folder)
    record, sel_folder = _selection_record(selection)
    ds, plot, extra = _resolve_inputs(subset, record, sel_folder, coverage_plot, baselines)
    secret = _known_token(token)
    with tempfile.TemporaryDirectory(prefix=".hf-uniform-stage-", dir=_existing_parent(folder)) as tmp:
        stage = Path(tmp)
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
            template=template, token=token)
        generated: dict[str, bytes] = {"README.md": _card_bytes(card)}
        sel_path = sel_folder / "selection.json" if sel_folder is not None else None
        clean = _scrub(record, secret)
        if sel_path is not None and sel_path.is_file() and clean == json.loads(sel_path.read_text(encoding="utf-8")):
            generated["selection.json"] = sel_path.read_bytes()  # byte-identical evidence
        else:
            generated["selection.json"] = _json_bytes(clean)
        if plot is not None:
            generated["uniformity.png"] = plot.read_bytes()
        _check_no_secret(generated, secret)
        for path_in_repo, data in generated.items():
            (stage / path_in_repo).write_bytes(data)
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            folder.rmdir()
        os.replace(stage, folder)  # the folder appears complete or not at all
        stage.mkdir()  # so that TemporaryDirectory can clean up
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _existing_parent(folder: Path) -> Path:
    parent = folder.resolve().parent
    while not parent.exists():
        parent = parent.parent
    return parent


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
    selection: Mapping | str | os.PathLike | None = None,
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
        selection: the selection record: a dict, a ``Selection``, or the path of ``selection.json``
            (default: the one in the ``subset`` folder).
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

    Returns:
        A :class:`PushResult` with the repo URL and commit URL, or the dry-run folder.

    Raises:
        UniformError: invalid repo id, missing subset or selection, a card that does not render, or a file
            that would leak a token; all raised before any upload.

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
                  pretty_name=pretty_name, revision=revision, template=template, token=token)
    if dry_run_to is not None:
        files = stage_subset(subset, repo_id, dry_run_to, **kwargs)
        logger.info("dry run: wrote the %d files of %s to %s", len(files), repo_id, dry_run_to)
        return PushResult(repo_id, "dataset", files, folder=Path(dry_run_to))
    with tempfile.TemporaryDirectory(prefix="hf-uniform-push-") as tmp:
        folder = Path(tmp) / "repo"
        files = stage_subset(subset, repo_id, folder, **kwargs)
        record = json.loads((folder / "selection.json").read_text(encoding="utf-8"))
        message = commit_message or (f"Upload uniform subset (k={record['k']} of n={record['n']}, "
                                     f"{record['metric']}) with hf-uniform")
        api = _hub_api(token)
        url = _ensure_repo(api, repo_id, "dataset", private, revision)
        logger.info("pushing %d files to %s", len(files), url)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", revision=revision,
                                   commit_message=message, delete_patterns=SUBSET_DELETE_PATTERNS)
    commit_url = getattr(commit, "commit_url", None) or str(commit)
    logger.info("pushed %s", commit_url)
    return PushResult(repo_id, "dataset", files, url=url, commit_url=commit_url)


# -- model cards and checkpoints --------------------------------------------------------------------------


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


def _eval_rows(results: Any) -> tuple[list[dict[str, str]], str]:
    """Rows of the evaluation table and a note.

    Reads the ``results.json`` of ``recipes/eval.py`` (``{"lm_eval": {"scores": {task: {"acc": ..,
    "acc_stderr": ..}}, "n_shot", "n_samples", "limit"}, "heldout": {"loss", "tokens", "examples"}}``),
    lm-eval's own output (``{"results": {task: {"acc,none": ..}}, "n-shot": ..}``) and ``{task: {metric: value}}``.
    """
    if not results:
        return [], ""
    if not isinstance(results, Mapping):
        raise UniformError("eval_results must be the results.json of recipes/eval.py or lm-eval "
                           '({"results": {task: {metric: value}}})')
    lm = results.get("lm_eval") if isinstance(results.get("lm_eval"), Mapping) else None
    if lm is not None:
        tasks, shots, counts = lm.get("scores") or {}, lm.get("n_shot") or {}, lm.get("n_samples") or {}
        limit = lm.get("limit")
    else:
        tasks = results.get("results", results)
        shots = results.get("n-shot") if isinstance(results.get("n-shot"), Mapping) else {}
        counts = {t: (v.get("effective") or v.get("original")) if isinstance(v, Mapping) else v
                  for t, v in (results.get("n-samples") or {}).items()}
        cfg = results.get("config") if isinstance(results.get("config"), Mapping) else {}
        limit = cfg.get("limit")
    if not isinstance(tasks, Mapping):
        raise UniformError('eval_results must map tasks to metrics, e.g. {"results": {"arc_challenge": {"acc": 0.3}}}')
    rows = []
    for task, metrics in tasks.items():
        if not isinstance(metrics, Mapping):
            continue
        for key, value in metrics.items():
            name, _, filt = str(key).partition(",")
            if "stderr" in name or name in ("alias", "sample_len") or isinstance(value, bool) or _to_float(value) is None:
                continue
            stderr = metrics.get(f"{name}_stderr,{filt}" if filt else f"{name}_stderr")
            label = name if filt in ("", "none") else f"{name} ({filt})"
            rows.append({"task": _md_cell(metrics.get("alias", task)), "metric": _md_cell(label),
                         "shots": _fmt(shots.get(task)) if shots.get(task) is not None else "–",
                         "value": _fmt(float(value)),
                         "stderr": _fmt(float(stderr)) if _to_float(stderr) is not None else "–",
                         "n": _fmt(counts.get(task)) if counts.get(task) is not None else "–"})
    heldout = results.get("heldout")
    if isinstance(heldout, Mapping) and _to_float(heldout.get("loss")) is not None:
        n = [f"{_fmt(heldout[k])} {k}" for k in ("examples", "tokens") if heldout.get(k) is not None]
        rows.append({"task": "held-out split", "metric": "response-token loss (nats)", "shots": "–",
                     "value": _fmt(float(heldout["loss"])), "stderr": "–", "n": ", ".join(n) or "–"})
    return rows, f"at most {limit} examples per task" if limit else ""


def render_model_card(
    repo_id: str,
    *,
    base_model: str | None = None,
    selection: Mapping | str | os.PathLike | None = None,
    subset_repo: str | None = None,
    training_config: Mapping | str | os.PathLike | None = None,
    time_to_threshold: Mapping | str | os.PathLike | None = None,
    eval_results: Mapping | str | os.PathLike | None = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    library_name: str | None = "transformers",
    extra_files: Sequence[str] = (),
    template: str | os.PathLike | None = None,
) -> Any:
    """Render the model card (a ``huggingface_hub.ModelCard``) of a checkpoint trained on a uniform subset.

    It states the base model, the training data (link to ``subset_repo`` and its h against random and the
    full pool), the recipe (regime ``adamw-ce`` = AdamW-CE or ``l2-sgd`` = ℓ2-SGD, and the other settings),
    the time-to-threshold table, the lm-eval results and the reproduce command(s).

    Args:
        repo_id: the model repo.
        base_model: Hub id or path of the model that was fine-tuned (default: ``training_config``'s
            ``model_name_or_path``/``base_model``).
        selection: the selection record (dict or ``selection.json``) of the training subset.
        subset_repo: Hub id of the pushed subset (see :func:`push_subset`).
        training_config: dict (or JSON/YAML file) with ``regime``, ``learning_rate``, batch size, ...; a
            ``command`` entry is shown as the reproduce command. Secret-named keys are dropped.
        time_to_threshold: dict or path of the ``time_to_threshold.json`` that
            ``hf_uniform.train.TimeToThresholdCallback`` writes in ``output_dir``; the short form
            ``{"thresholds": {"0.65": {"step": 120, "seconds": 95.2}}}`` works too.
        eval_results: dict or path of the ``results.json`` that ``recipes/eval.py`` writes (lm-eval scores
            and held-out loss); lm-eval's own output (``{"results": {task: {"acc,none": ...}}}``) works too.
        license: Hub licence id of the model.
        language: language code(s).
        library_name: the ``library_name`` metadata.
        extra_files: names of the record files pushed beside the model, listed in the card.
        template: a card template instead of ``model_cards/model_card.md``.

    Raises:
        UniformError: unreadable inputs or a template that fails to render.

    Example:
        >>> card = render_model_card("alice/tiny-sft", base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        ...                          subset_repo="alice/alpaca-uniform", training_config={"regime": "l2-sgd"})
        >>> card.data.base_model, card.data.datasets, "ℓ2-SGD" in card.text
        ('HuggingFaceTB/SmolLM2-135M-Instruct', ['alice/alpaca-uniform'], True)
    """
    from huggingface_hub import ModelCard, ModelCardData

    validate_repo_id(repo_id)
    record = _selection_record(selection)[0] if selection is not None else None
    config = _scrub(_load_json_arg(training_config, "training config") or {}, _known_token(None))
    ttt = _load_json_arg(time_to_threshold, "time to threshold", allow_list=True)
    evals = _load_json_arg(eval_results, "eval results")
    if subset_repo is not None:
        validate_repo_id(subset_repo)
    base = base_model or config.get("model_name_or_path") or config.get("base_model") or config.get("model")
    base = str(base) if base else None
    base_is_hub = bool(base) and _looks_like_hub_id(base)
    lic, lic_name = _normalize_license(license)
    regime_key = str(config.get("regime", "")).lower() or None
    label, description = REGIMES.get(regime_key, (config.get("regime"), None)) if regime_key else (None, None)
    tags = [*MODEL_TAGS, *([regime_key] if regime_key else [])]
    langs = [language] if isinstance(language, str) else (list(language) if language else None)
    card_data = ModelCardData(
        base_model=base if base_is_hub else None, datasets=[subset_repo] if subset_repo else None,
        library_name=library_name, license=lic, license_name=lic_name, language=langs,
        pipeline_tag="text-generation", tags=tags)
    if base_is_hub:
        base_md = f"[{base}](https://huggingface.co/{base})"
    else:
        base_md = f"`{base}`" if base else "The base model (not recorded)"
    data_md = f"[{subset_repo}](https://huggingface.co/datasets/{subset_repo})" if subset_repo else (
        "a uniform subset" if record else "the training data (not recorded)")
    src = record.get("input") if record else None
    source_md = (f"[{src}](https://huggingface.co/datasets/{src})" if _looks_like_hub_id(src)
                 else f"`{Path(src).name}`" if isinstance(src, str) else "the source pool")
    commands = []
    if config.get("command"):
        commands.append(str(config["command"]))
    else:
        commands.append("python recipes/sft.py ...  # with the settings above")
    if record:
        commands.insert(0, _reproduce(record)[0] + "  # the training subset")
    hidden = {"command", "regime"}
    config_rows = [{"key": _md_cell(key), "value": _md_cell(value)} for key, value in config.items()
                   if key not in hidden and value is not None]
    ttt_rows, ttt_metric, ttt_note = _ttt_rows(ttt)
    eval_rows, eval_note = _eval_rows(evals)
    report_rows = [r for r in _report_rows(record) if r["name"] in ("subset", "random", "full")] if record else []
    variables = {
        "repo_id": repo_id, "model_title": repo_id.split("/")[1],
        "base_model_md": base_md, "data_md": data_md, "source_md": source_md,
        "subset_k": _fmt(record.get("k")) if record else None, "subset_n": _fmt(record.get("n")) if record else None,
        "subset_h": _fmt(record.get("h")) if record else None, "metric": record.get("metric") if record else None,
        "report_rows": report_rows,
        "regime_md": f"{label}: {description}" if description else (str(label) if label else None),
        "config_rows": config_rows, "ttt_rows": ttt_rows, "ttt_metric": ttt_metric, "ttt_note": ttt_note,
        "eval_rows": eval_rows, "eval_note": eval_note, "reproduce_commands": commands,
        "files_md": ", ".join(f"[`{f}`]({f})" for f in extra_files),
        "citation_bibtex": CITATION_BIBTEX, "paper_title": PAPER_TITLE, "paper_url": PAPER_URL,
    }
    must_have = {"tags": MODEL_TAGS}
    return _render(ModelCard, card_data, _template_path("model_card.md", template), variables, must_have)


def _checkpoint_files(output_dir: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(output_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(output_dir).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in CHECKPOINT_EXCLUDE):
            continue
        files[rel] = path
    return files


def push_checkpoint(
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    base_model: str | None = None,
    selection: Mapping | str | os.PathLike | None = None,
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
        selection: the selection record (dict or ``selection.json``) of the training subset; pushed too.
        subset_repo: Hub id of the pushed subset, linked from the card and listed in ``datasets``.
        training_config: dict or JSON/YAML file: ``regime`` (``"adamw-ce"`` or ``"l2-sgd"``), learning rate,
            batch size, ..., and ``command`` (the training command line); pushed as ``training_config.json``.
        time_to_threshold: dict or ``time_to_threshold.json`` (default: the one ``TimeToThresholdCallback``
            wrote in ``output_dir``, when present); pushed too.
        eval_results: dict or lm-eval ``results.json`` (from ``recipes/eval.py``); pushed as ``eval_results.json``.
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
        UniformError: invalid repo id, no model files, unreadable records, a card that fails to render, or a
            file that would leak a token; all before any upload.

    Example:
        >>> import tempfile; ckpt = Path(tempfile.mkdtemp())
        >>> _ = (ckpt / "config.json").write_text('{"model_type": "llama"}')
        >>> res = push_checkpoint(ckpt, "alice/tiny-sft", training_config={"regime": "adamw-ce", "lr": 2e-5},
        ...                       dry_run_to=ckpt.parent / (ckpt.name + "-dry"))
        >>> res.files
        ['README.md', 'config.json', 'training_config.json']
    """
    from .io import is_main_process

    validate_repo_id(repo_id)
    if not is_main_process():
        return None
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise UniformError(f"checkpoint folder {output_dir} does not exist; pass the output_dir of the training run")
    target = _check_target(dry_run_to) if dry_run_to is not None else None
    local = _checkpoint_files(output_dir)
    if target is not None and target.resolve().is_relative_to(output_dir.resolve()):
        inside = target.resolve().relative_to(output_dir.resolve()).as_posix()
        local = {k: v for k, v in local.items() if not (k == inside or k.startswith(inside + "/"))}
    if not any(fnmatch.fnmatch(rel, pat) for rel in local for pat in MODEL_FILE_PATTERNS):
        raise UniformError(f"{output_dir} has no model files (config.json, *.safetensors, pytorch_model*.bin); "
                           "save the model there first (trainer.save_model)")
    if time_to_threshold is None and (output_dir / "time_to_threshold.json").is_file():
        time_to_threshold = output_dir / "time_to_threshold.json"  # written there by TimeToThresholdCallback
    secret = _known_token(token)
    generated: dict[str, bytes] = {}
    records = {"selection.json": (selection, "selection"), "training_config.json": (training_config, "training config"),
               "time_to_threshold.json": (time_to_threshold, "time to threshold"),
               "eval_results.json": (eval_results, "eval results")}
    for name, (value, what) in records.items():
        if value is not None:
            data = (_selection_record(value)[0] if name == "selection.json"
                    else _load_json_arg(value, what, allow_list=name == "time_to_threshold.json"))
            generated[name] = _json_bytes(_scrub(data, secret))
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
        for path_in_repo, src in plan.items():
            dest = target / path_in_repo
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


# -- command line -----------------------------------------------------------------------------------------


def add_push_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``hf-uniform push`` on the CLI's sub-parsers; return the new parser.

    Example:
        >>> p = argparse.ArgumentParser(); sub = p.add_subparsers(dest="command")
        >>> _ = add_push_parser(sub)
        >>> p.parse_args(["push", "out", "--repo-id", "alice/x", "--dry-run", "--to", "d"]).dry_run
        True
    """
    p = subparsers.add_parser(
        "push", help="push the folder written by `hf-uniform select` to the Hub as a dataset with its card",
        description="Push the folder written by `hf-uniform select` to the Hub as a dataset (data/train-*.parquet, "
                    "selection.json, uniformity.png and a dataset card). The token comes from HF_TOKEN or "
                    "`hf auth login`.")
    p.add_argument("out", metavar="OUT", help="the folder written by `hf-uniform select`")
    p.add_argument("--repo-id", required=True, help="USER/NAME of the dataset repo (created when missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="branch to push to (created when missing; default: main)")
    p.add_argument("--commit-message", help="commit message")
    p.add_argument("--license", help="Hub licence id, e.g. cc-by-nc-4.0 (default: the source's, when recorded)")
    p.add_argument("--language", action="append", help="language code, e.g. en (repeat for several)")
    p.add_argument("--task-category", action="append", dest="task_categories",
                   help="Hub task category (repeatable; default: the source's, else text-generation)")
    p.add_argument("--source-dataset", help="Hub id of the source when the selection ran on a local copy")
    p.add_argument("--pretty-name", help="title of the dataset card")
    p.add_argument("--no-baselines", action="store_true", help="do not push random.*/mixed.* as extra configs")
    p.add_argument("--template", help="a Jinja dataset-card template instead of model_cards/dataset_card.md")
    p.add_argument("--dry-run", action="store_true", help="write the repo folder to --to instead of uploading")
    p.add_argument("--to", metavar="DIR", help="with --dry-run: a new or empty folder to write to")
    p.add_argument("-q", "--quiet", action="store_true", help="no log messages")
    p.set_defaults(func=push_command)
    return p


def push_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform push``; return the exit status (bad input raises :class:`UniformError`).

    Example:
        >>> ns = argparse.Namespace(out="missing", repo_id="alice/x", dry_run=True, to=None)
        >>> push_command(ns)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: --dry-run needs --to DIR (the folder to write the repo to)
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per HTTP request is noise here
    if args.dry_run and not args.to:
        raise UniformError("--dry-run needs --to DIR (the folder to write the repo to)")
    if args.to and not args.dry_run:
        raise UniformError("--to is only used with --dry-run; add --dry-run or drop --to")
    validate_repo_id(args.repo_id)
    out = Path(args.out)
    if not out.is_dir():
        raise UniformError(f"{out} is not a folder: pass the folder written by `hf-uniform select -o OUT`")
    if not (out / "selection.json").is_file():
        raise UniformError(f"{out} has no selection.json: pass the folder written by `hf-uniform select -o OUT`")
    kwargs = dict(selection=out / "selection.json", private=True if getattr(args, "private", False) else None,
                  revision=getattr(args, "revision", None), commit_message=getattr(args, "commit_message", None),
                  baselines={} if getattr(args, "no_baselines", False) else None,
                  license=getattr(args, "license", None), language=getattr(args, "language", None),
                  task_categories=getattr(args, "task_categories", None),
                  source_dataset=getattr(args, "source_dataset", None),
                  pretty_name=getattr(args, "pretty_name", None), template=getattr(args, "template", None))
    if args.dry_run:
        result = push_subset(out, args.repo_id, dry_run_to=args.to, **kwargs)
        print(f"dry run: wrote {len(result.files)} files to {result.folder}:")
        for name in result.files:
            print(f"  {name}")
        return 0
    try:
        result = push_subset(out, args.repo_id, **kwargs)
    except UniformError:
        raise
    except Exception as err:  # the Hub or the network failed: one line, no traceback, nothing partial
        if not _is_network_error(err):
            raise
        print(f"hf-uniform: error: push to {args.repo_id} failed: {_first_line(err)}", file=sys.stderr)
        return 2
    print(f"pushed {len(result.files)} files to {result.url}")
    if result.commit_url:
        print(f"commit: {result.commit_url}")
    return 0


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _is_network_error(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return True
    with contextlib.suppress(ImportError):
        from huggingface_hub.errors import HfHubHTTPError

        if isinstance(err, HfHubHTTPError):
            return True
    with contextlib.suppress(ImportError):
        import httpx

        if isinstance(err, httpx.HTTPError):
            return True
    return False


__all__ = [
    "PushResult",
    "add_push_parser",
    "push_checkpoint",
    "push_command",
    "push_subset",
    "render_dataset_card",
    "render_model_card",
    "size_category",
    "stage_subset",
    "validate_repo_id",
]
