"""Dataset and model cards, rendered from ``model_cards/*.md`` through ``huggingface_hub``.

* :func:`render_dataset_card`: the card of a uniform subset (``DatasetCard``).
* :func:`render_model_card`: the card of a checkpoint trained on one (``ModelCard``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UniformError
from ..records import SelectionRecord
from .checks import (
    _known_token,
    _load_json_arg,
    _looks_like_hub_id,
    _normalize_license,
    _scrub,
    _scrubbed,
    _selection_record,
    size_category,
    validate_repo_id,
)
from .tables import (
    _embedder_md,
    _eval_results,
    _eval_rows,
    _fmt,
    _length_rows,
    _md_cell,
    _report_rows,
    _reproduce,
    _ttt_rows,
    publishable_record,
)

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
REGIMES = {
    "adamw-ce": ("AdamW-CE", "AdamW on the token-level cross-entropy loss (the standard SFT recipe)"),
    "l2-sgd": ("ℓ2-SGD", "plain SGD on the squared-error (ℓ2) loss between the logits and the one-hot next token, "
               "the paper's ℓ2 regime"),
}
#: the card templates: ``model_cards/`` of the repository, shipped in the wheel as ``hf_uniform/templates``
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
BASELINE_DESCRIPTIONS = {
    "random": "a uniformly random subset of the same pool, same size",
    "mixed": ("the paper's mixed baseline: half random rows, the other half added by greedy min-min (each step adds "
              "the row nearest to the rows already chosen); same size"),
}


# -- templates --------------------------------------------------------------------------------------------


def _template_path(name: str, template: str | os.PathLike | None) -> Path:
    """``template`` if given, else the card template ``name`` from ``model_cards/`` (``hf_uniform/templates``).

    Example:
        >>> _template_path("model_card.md", None).relative_to(TEMPLATES_DIR.parent).as_posix()
        'templates/model_card.md'
    """
    if template is not None:
        path = Path(template)
        if not path.is_file():
            raise MissingFileError(f"card template {path} does not exist; pass an existing .md file or None")
        return path
    path = TEMPLATES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"card template {path} is missing from the package; reinstall hf-uniform or "
                                "pass template=PATH")
    return path


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
        raise UniformError(f"cannot read card template {template}: {err}") from err
    context = {**card_data.to_dict(), **variables}
    try:
        jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(
            card_data=card_data.to_yaml(), **context)
        card = card_cls.from_template(card_data, template_str=text, **variables)
    except jinja2.TemplateSyntaxError as err:
        raise UniformError(f"card template {template} failed to render: {err.message} (line {err.lineno}); "
                           "fix the template") from err
    except jinja2.TemplateError as err:
        raise UniformError(f"card template {template} failed to render: {err}; fix the template or pass "
                           "the variables it needs") from err
    except (ValueError, TypeError) as err:  # the rendered front matter is not valid YAML metadata
        raise UniformError(f"card template {template} rendered an invalid card: {str(err).splitlines()[0]}; "
                           "keep '---', '{{ card_data }}', '---' at its top") from err
    data = card.data.to_dict()
    for key, expected in must_have.items():
        got = data.get(key)
        ok = set(expected) <= set(got or []) if key == "tags" else got == expected
        if not ok:
            raise UniformError(f"card template {template} lost the metadata {key!r} (rendered {got!r}); keep "
                               "'---', '{{ card_data }}', '---' at its top")
    return card


def _source_metadata(record: SelectionRecord, source_dataset: str | None, token: str | bool | None) -> dict[str, Any]:
    """Licence, language and task categories of the source, where the source records them.

    Looks at, in order: a ``save_to_disk`` folder's ``dataset_info.json``, the YAML of a ``README.md`` beside a
    local file, and the card of a Hub dataset (skipped when offline). Nothing is guessed.
    """
    meta: dict[str, Any] = {"hub_id": None, "license": None, "license_name": None, "language": None,
                            "task_categories": None, "origin": None}
    src = record.input
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

            at = record.input_revision if hub_id == src else None  # the card of the version selected from
            card = HfApi().dataset_info(hub_id, revision=at, token=token).card_data
        except Exception as err:  # offline, private or missing: the metadata stays unknown
            logger.info("could not read the card of the source dataset %s (%s); pass --license/--language",
                        hub_id, type(err).__name__)
            return meta
        if card is not None:
            meta.update(license=card.get("license"), license_name=card.get("license_name"),
                        language=card.get("language"), task_categories=card.get("task_categories"),
                        origin=f"the card of {hub_id}")
    return meta


def render_dataset_card(
    selection: SelectionRecord | Mapping | str | os.PathLike,
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
    embedder_id: str | None = None,
) -> Any:
    """Render the dataset card (a ``huggingface_hub.DatasetCard``) of a uniform subset.

    The YAML metadata holds the licence (``license``, else inherited from the source when it is recorded),
    language, size category, task categories, ``source_datasets``, the tags ``uniform-subset`` and
    ``data-selection``, the ``configs`` and the ``dataset_info`` (features and splits). The body is
    ``model_cards/dataset_card.md`` (or ``template``): method, k of n, h and coverage of the subset vs
    random vs full pool, the coverage plot, ``selection.json``, the reproduce command and the citation. A Hub
    source is named at the commit the selection read (the record's ``input_revision``), and the reproduce
    command and code read that commit.

    Args:
        selection: the selection record: a :class:`~hf_uniform.records.SelectionRecord`, a dict, or the path of
            ``selection.json`` (or of the folder holding it).
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
        embedder_id: the Hub id of the embedding model when the selection ran on a local copy
            (``--embedder st:/path/to/model``); default: the id the folder's model card names. The card shows
            the id, never the local path (:func:`~hf_uniform.hub.tables.publishable_record`).

    Raises:
        UniformError: the record is incomplete or the template fails to render.
        FileNotFoundError: the selection record or the template does not exist.

    Example:
        >>> card = render_dataset_card({"input": "pool.jsonl", "k": 2, "n": 10, "metric": "cosine", "h": 0.5},
        ...                            "alice/demo", license="mit", language="en", coverage_plot=None)
        >>> card.data.license, card.data.size_categories, card.data.tags
        ('mit', ['n<1K'], ['uniform-subset', 'data-selection'])
        >>> card = render_dataset_card({"input": "user/data", "input_revision": "ab" * 20, "k": 2, "n": 10},
        ...                            "alice/demo", license="mit", language="en", coverage_plot=None)
        >>> "| Source | [user/data](https://huggingface.co/datasets/user/data) at commit [`abababababab`]" in card.text
        True
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    validate_repo_id(repo_id)
    secret = _known_token(token)
    record = publishable_record(_scrubbed(_selection_record(selection)[0], secret), embedder_id)
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
    k, n, src = record.k, record.n, record.input
    hub_id = source["hub_id"]
    source_name = hub_id or (Path(src).name if isinstance(src, str) else "a local pool")
    source_md = f"[{hub_id}](https://huggingface.co/datasets/{hub_id})" if hub_id else f"`{source_name}`"
    if hub_id and hub_id == src and record.input_revision:  # the commit the selection read
        sha = record.input_revision
        source_md += f" at commit [`{sha[:12]}`](https://huggingface.co/datasets/{hub_id}/tree/{sha})"
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
    engine = record.engine if isinstance(record.engine, Mapping) else {}
    versions = record.provenance.versions
    baseline_configs = [
        {"name": c["config_name"], "path": c["data_files"][0]["path"] + ".parquet",
         "description": BASELINE_DESCRIPTIONS.get(c["config_name"], f"the {c['config_name']} baseline")}
        for c in configs if c["config_name"] != "default"]
    if lic:
        license_md = f"`{lic}`" + (f" ({lic_name})" if lic_name else "")
        license_md += f", inherited from {source['origin']}" if license is None and source["origin"] else ""
    else:
        license_md = "not recorded for the source: check the source's terms before use"
    start = record.start
    variables = {
        "repo_id": repo_id, "revision": revision if revision not in (None, "main") else None,
        "pretty_name": card_data.pretty_name,
        "source_md": source_md,
        "license_md": license_md, "k": _fmt(k), "n": _fmt(n), "percent": f"{100 * k / max(n, 1):.3g}%",
        "metric": record.metric, "seed": _fmt(record.seed),
        "start": [str(s) for s in start] if isinstance(start, list) else ([str(start)] if start is not None else []),
        "embedder_md": _embedder_md(record.embedder),
        "engine_md": ", ".join(f"{key}={_md_cell(engine[key])}" for key in ("method", "device", "dtype", "world_size")
                               if engine.get(key) is not None),
        "versions_md": ", ".join(f"{name} {ver}" for name, ver in versions.items()),
        "report_rows": _report_rows(record), "duplicates_selected": bool(record.extra.get("duplicates_selected")),
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


def render_model_card(
    repo_id: str,
    *,
    base_model: str | None = None,
    selection: SelectionRecord | Mapping | str | os.PathLike | None = None,
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
        selection: the selection record (``SelectionRecord``, dict or ``selection.json``) of the training subset.
        subset_repo: Hub id of the pushed subset (see :func:`push_subset`).
        training_config: dict (or JSON/YAML file) with ``regime``, ``learning_rate``, batch size, ...; a
            ``command`` entry is shown as the reproduce command. Secret-named keys are dropped.
        time_to_threshold: dict or path of the ``time_to_threshold.json`` that
            ``hf_uniform.train.TimeToThresholdCallback`` writes in ``output_dir``; the short form
            ``{"thresholds": {"0.65": {"step": 120, "seconds": 95.2}}}`` works too.
        eval_results: dict or path of the ``results.json`` that ``hf-uniform eval`` writes (lm-eval scores
            and held-out loss); lm-eval's own output (``{"results": {task: {"acc,none": ...}}}``) works too.
        license: Hub licence id of the model.
        language: language code(s).
        library_name: the ``library_name`` metadata.
        extra_files: names of the record files pushed beside the model, listed in the card.
        template: a card template instead of ``model_cards/model_card.md``.

    Raises:
        UniformError: unreadable inputs or a template that fails to render.
        FileNotFoundError: a record file or the template does not exist.

    Example:
        >>> card = render_model_card("alice/tiny-sft", base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        ...                          subset_repo="alice/alpaca-uniform", training_config={"regime": "l2-sgd"})
        >>> card.data.base_model, card.data.datasets, "ℓ2-SGD" in card.text
        ('HuggingFaceTB/SmolLM2-135M-Instruct', ['alice/alpaca-uniform'], True)
    """
    from huggingface_hub import ModelCard, ModelCardData

    validate_repo_id(repo_id)
    secret = _known_token(None)
    record = _scrubbed(_selection_record(selection)[0], secret) if selection is not None else None
    config = _scrub(_load_json_arg(training_config, "training config") or {}, secret)
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
    scores = _eval_results(evals)  # the lm-eval scores as model-index metadata
    card_data = ModelCardData(
        base_model=base if base_is_hub else None, datasets=[subset_repo] if subset_repo else None,
        library_name=library_name, license=lic, license_name=lic_name, language=langs,
        pipeline_tag="text-generation", tags=tags, model_name=repo_id.split("/")[1] if scores else None,
        eval_results=scores or None)
    if base_is_hub:
        base_md = f"[{base}](https://huggingface.co/{base})"
    else:
        base_md = f"`{base}`" if base else "The base model (not recorded)"
    data_md = f"[{subset_repo}](https://huggingface.co/datasets/{subset_repo})" if subset_repo else (
        "a uniform subset" if record else "the training data (not recorded)")
    src = record.input if record else None
    source_md = (f"[{src}](https://huggingface.co/datasets/{src})" if _looks_like_hub_id(src)
                 else f"`{Path(src).name}`" if isinstance(src, str) else "the source pool")
    commands = []
    if config.get("command"):
        commands.append(str(config["command"]))
    else:
        commands.append("hf-uniform sft ...  # with the settings above")
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
        "subset_k": _fmt(record.k) if record else None, "subset_n": _fmt(record.n) if record else None,
        "subset_h": _fmt(record.h) if record else None, "metric": record.metric if record else None,
        "report_rows": report_rows,
        "regime_md": f"{label}: {description}" if description else (str(label) if label else None),
        "config_rows": config_rows, "ttt_rows": ttt_rows, "ttt_metric": ttt_metric, "ttt_note": ttt_note,
        "eval_rows": eval_rows, "eval_note": eval_note, "reproduce_commands": commands,
        "files_md": ", ".join(f"[`{f}`]({f})" for f in extra_files),
        "citation_bibtex": CITATION_BIBTEX, "paper_title": PAPER_TITLE, "paper_url": PAPER_URL,
    }
    must_have = {"tags": MODEL_TAGS}
    return _render(ModelCard, card_data, _template_path("model_card.md", template), variables, must_have)
