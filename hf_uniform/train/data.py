"""Training data for the recipes: prompt formats, uniform/random subsets and their provenance.

Prompt formats (all end up as TRL prompt/completion data, so the loss is on the response tokens only,
as in the paper):

* ``"alpaca"``: the paper's prompt, exactly the Llama-X text, with the "no input" variant when ``input``
  is missing or empty; the completion is ``output`` (TRL appends the EOS token, as Llama-X does).
* ``"chat"``: ``messages`` rendered by the tokenizer's chat template; the last assistant turn is the
  completion, the turns before it are the prompt.
* ``"prompt_completion"``: ``prompt``/``completion`` columns, used as they are.
* ``"auto"``: ``messages`` → chat, ``instruction``/``output`` → alpaca, ``prompt``/``completion`` → as is.

>>> print(format_alpaca("Add 2 and 3."))
Below is an instruction that describes a task. Write a response that appropriately completes the request.
<BLANKLINE>
### Instruction:
Add 2 and 3.
<BLANKLINE>
### Response:
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UniformError
from ..records import SelectionRecord

logger = logging.getLogger(__name__)

# The prompts of Llama-X's train.py (itself Stanford Alpaca's), character for character.
ALPACA_PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)
PROMPT_FORMATS = ("auto", "alpaca", "chat", "prompt_completion")
#: On-the-fly subsets: greedy max-min, and the paper's baselines: a seeded random draw, ``mixed`` (its
#: TeaMs-RL baseline: half random, half chosen to minimise distances) and ``first_k`` (its WizardLM baseline:
#: the first k rows of the already shuffled pool).
SUBSET_METHODS = ("uniform", "random", "mixed", "first_k")
SELECTION_FILE = "selection.json"
#: Held-out rows written by ``hf-uniform select --heldout N`` before it selects from the rest.
HELDOUT_FILE = "heldout.jsonl"
PROVENANCE_FILE = "provenance.json"


def format_alpaca(instruction: str, input: str | None = "") -> str:  # noqa: A002 - the Alpaca field name
    """The Llama-X / Alpaca prompt for one example (the "no input" text when ``input`` is empty).

    Example:
        >>> format_alpaca("Translate.", "bonjour").endswith("### Input:\\nbonjour\\n\\n### Response:")
        True
    """
    if input is not None and input != "":
        return ALPACA_PROMPT_INPUT.format_map({"instruction": instruction, "input": input})
    return ALPACA_PROMPT_NO_INPUT.format_map({"instruction": instruction})


def detect_prompt_format(columns: Sequence[str]) -> str:
    """The prompt format ``"auto"`` picks for these columns.

    Raises:
        UniformError: no known layout; the message lists the columns.

    Example:
        >>> detect_prompt_format(["instruction", "input", "output"])
        'alpaca'
    """
    cols = set(columns)
    if "messages" in cols:
        return "chat"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if {"prompt", "completion"} <= cols:
        return "prompt_completion"
    raise UniformError(f"cannot tell the prompt format from the columns {sorted(cols)}; provide instruction/"
                       "[input]/output (Alpaca), messages (chat) or prompt/completion columns")


def _alpaca_rows(batch: Mapping[str, list[Any]]) -> dict[str, list[str]]:
    inputs = batch.get("input") or [""] * len(batch["instruction"])
    prompts = [format_alpaca(i or "", x) for i, x in zip(batch["instruction"], inputs, strict=True)]
    return {"prompt": prompts, "completion": [o or "" for o in batch["output"]]}


def _chat_rows(batch: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    prompts, completions = [], []
    for messages in batch["messages"]:
        if not messages or messages[-1].get("role") != "assistant":
            raise UniformError("a chat example does not end with an assistant turn; each `messages` list must "
                               "end with {'role': 'assistant', ...} (its content is the trained response)")
        prompts.append([{"role": m["role"], "content": m["content"]} for m in messages[:-1]])
        completions.append([{"role": "assistant", "content": messages[-1]["content"]}])
    return {"prompt": prompts, "completion": completions}


def prepare_sft_dataset(ds: Any, prompt_format: str = "auto", *, num_proc: int | None = None) -> Any:
    """Turn raw rows into TRL prompt/completion rows (loss on the completion only); other columns are dropped.

    Args:
        ds: a ``Dataset``.
        prompt_format: ``"auto"``, ``"alpaca"``, ``"chat"`` or ``"prompt_completion"``.
        num_proc: processes for ``map``.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"instruction": ["Say hi."], "input": [""], "output": ["hi"]})
        >>> row = prepare_sft_dataset(ds)[0]
        >>> row["prompt"].endswith("### Response:"), row["completion"]
        (True, 'hi')
    """
    if prompt_format not in PROMPT_FORMATS:
        raise UniformError(f"unknown prompt_format {prompt_format!r}; use one of {PROMPT_FORMATS}")
    if len(ds) == 0:
        raise UniformError("the training dataset is empty; check dataset_name and uniform_k")
    fmt = detect_prompt_format(ds.column_names) if prompt_format == "auto" else prompt_format
    cols = ds.column_names
    if fmt == "alpaca":
        if not {"instruction", "output"} <= set(cols):
            raise UniformError(f"prompt_format 'alpaca' needs instruction and output columns; got {cols}")
        fn = _alpaca_rows
    elif fmt == "chat":
        if "messages" not in cols:
            raise UniformError(f"prompt_format 'chat' needs a messages column; got {cols}")
        fn = _chat_rows
    else:
        if not {"prompt", "completion"} <= set(cols):
            raise UniformError(f"prompt_format 'prompt_completion' needs prompt and completion columns; got {cols}")
        return ds.select_columns(["prompt", "completion"])
    return ds.map(fn, batched=True, remove_columns=cols, num_proc=num_proc, desc=f"{fmt} prompts")


def example_texts(ds: Any, limit: int | None = 5000) -> list[str]:
    """Plain texts (prompt + completion) of prepared rows, e.g. to train a tiny model's tokenizer.

    Example:
        >>> from datasets import Dataset
        >>> example_texts(Dataset.from_dict({"prompt": ["Q: "], "completion": ["A"]}))
        ['Q: A']
    """
    n = len(ds) if limit is None else min(limit, len(ds))
    out = []
    for row in ds.select(range(n)):
        parts = []
        for key in ("prompt", "completion"):
            v = row[key]
            parts.append("\n".join(m["content"] for m in v) if isinstance(v, list) else str(v))
        out.append("".join(parts))
    return out


@dataclass
class TrainingData:
    """The datasets a recipe trains and evaluates on, and where they came from.

    Attributes:
        train: prompt/completion training rows.
        eval: prompt/completion evaluation rows, or ``None``.
        provenance: JSON-ready record (source, subset kind, k, embedder, h, ...).
        selection: the selection record (``selection.json`` content) when a uniform subset was used.

    Example:
        >>> TrainingData(train=None, eval=None).provenance
        {}
    """

    train: Any
    eval: Any
    provenance: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] | None = None


def _k_value(k: Any) -> int | float | None:
    """``uniform_k`` by the one k rule: text through :func:`hf_uniform.selection.parse_k` (``"4500"`` a count,
    ``"0.5"`` a fraction, ``"none"`` the whole pool), numbers through :func:`hf_uniform.spine.check_k_option`
    (``1.0`` is refused, as ``-k 1.0`` is)."""
    from ..selection import parse_k
    from ..spine import check_k_option

    if k is None or (isinstance(k, str) and k.strip().lower() in ("", "none")):
        return None
    try:
        return parse_k(k) if isinstance(k, str) else check_k_option(k)
    except UniformError as err:
        raise UniformError(f"uniform_k: {err}") from err


def split_eval(ds: Any, eval_size: float, seed: int) -> tuple[Any, Any]:
    """``(rest, held_out)``: ``eval_size`` rows (a count, or a fraction of ``len(ds)``) drawn with ``seed``.

    The held-out rows are those of :func:`hf_uniform.heldout.split_heldout`, the one rule that ``hf-uniform
    select --heldout`` and the study use too, so one seed and size hold out the same rows everywhere. Both
    parts keep the pool's row order (so ``first_k`` of the rest is still "the first rows").
    ``eval_size=0`` returns ``(ds, None)``.

    Example:
        >>> from datasets import Dataset
        >>> rest, held = split_eval(Dataset.from_dict({"i": list(range(10))}), 0.3, seed=0)
        >>> len(rest), len(held), rest["i"][:] == sorted(rest["i"][:])
        (7, 3, True)
    """
    if not eval_size:
        return ds, None
    from ..heldout import split_heldout  # the one held-out rule, shared with `select --heldout` and the study

    try:
        held, rest = split_heldout(len(ds), eval_size, seed)
    except UniformError as err:
        raise UniformError(f"eval_size: {err}") from err
    return ds.select(rest.tolist()), ds.select(held.tolist())


def _heldout_file(sel_path: Path, selection: SelectionRecord) -> Path | None:
    """The ``heldout.jsonl`` beside ``selection.json`` (or the file its ``files`` map names), if any."""
    path = selection.file("heldout", sel_path.parent) or sel_path.parent / HELDOUT_FILE
    return path if path.is_file() else None


def _select_output(source: Path) -> tuple[Path, Path] | None:
    """(subset file, selection.json) when ``source`` is an ``hf-uniform select`` folder or one of its files."""
    if source.is_dir() and (source / SELECTION_FILE).exists():
        subset = SelectionRecord.from_json(source / SELECTION_FILE).file("subset", source) or source / "subset.jsonl"
        if not subset.exists():
            raise UniformError(f"{source} has selection.json but no {subset.name}; rerun hf-uniform select")
        return subset, source / SELECTION_FILE
    if source.is_file() and (source.parent / SELECTION_FILE).exists():
        return source, source.parent / SELECTION_FILE
    return None


def _drop_selection_columns(ds: Any) -> Any:
    from ..integration import DISTANCE_COLUMN, RANK_COLUMN

    extra = [c for c in (RANK_COLUMN, DISTANCE_COLUMN) if c in ds.column_names]
    return ds.remove_columns(extra) if extra else ds


def load_training_data(
    dataset_name: str,
    *,
    split: str = "train",
    dataset_config: str | None = None,
    prompt_format: str = "auto",
    uniform_k: int | float | str | None = None,
    subset_method: str = "uniform",
    embedder: str | None = "w2v",
    text_columns: Sequence[str] | str | None = None,
    template: str | None = None,
    embedding_column: str | None = None,
    metric: str = "cosine",
    seed: int = 0,
    measure_h: bool = True,
    eval_size: float = 0.0,
    eval_dataset_name: str | None = None,
    num_proc: int | None = None,
    progress: bool = False,
) -> TrainingData:
    """Load the pool, hold out an evaluation set, take the subset, and record the provenance.

    The source is a Hub id, a local ``.json``/``.jsonl``/``.parquet``/``.csv`` file, a ``save_to_disk``
    folder, or the output folder (or one of its subset files: ``subset``, ``random``, ``mixed``) of
    ``hf-uniform select`` — then its ``selection.json`` is the provenance.

    With ``uniform_k`` the subset is selected here from the pool: ``"uniform"`` through
    :func:`hf_uniform.select_uniform` (greedy max-min); the paper's baselines of the same size are
    ``"random"`` (a seeded draw), ``"mixed"`` (its TeaMs-RL baseline, :func:`hf_uniform.baselines.mixed_subset`:
    half random, half chosen to minimise distances, in the same embedding) and ``"first_k"`` (its WizardLM
    baseline: the first k rows of the pool, which the paper had shuffled beforehand). ``h`` of a baseline is
    measured in the same embedding when ``measure_h`` (``mixed`` always embeds).

    Held-out rows are never taken from a subset. From a pool, ``eval_size`` (a fraction or a row count,
    seeded, order-preserving: :func:`split_eval`) is held out *before* selection, so the uniform, baseline
    and full runs are scored on the same rows. From an ``hf-uniform select`` folder, the evaluation set is
    the folder's ``heldout.jsonl`` (written by ``hf-uniform select --heldout N`` before selecting), the same
    for every subset file of the folder; ``eval_size`` is refused there, because splitting a subset would
    give each arm different held-out rows and train it on ``k − eval`` rows. ``eval_dataset_name`` (an
    explicit source) always wins.

    Args:
        dataset_name: the source (see above).
        split: split of a Hub dataset or ``DatasetDict`` folder.
        dataset_config: Hub configuration name.
        prompt_format: see :func:`prepare_sft_dataset`.
        uniform_k: subset size (rows, or a fraction in (0, 1)); ``None`` trains on the whole pool.
        subset_method: ``"uniform"``, ``"random"``, ``"mixed"`` or ``"first_k"``.
        embedder: embedder spec for the selection (default: the paper's Word2Vec).
        text_columns: columns that are embedded (default: detected).
        template: ``str.format`` template over columns, instead of ``text_columns``.
        embedding_column: use stored vectors instead of embedding.
        metric: ``"cosine"`` or ``"euclidean"``.
        seed: seed of the selection's start row, of the random draw and of the evaluation split.
        measure_h: measure ``h`` of a random subset (embeds the pool).
        eval_size: rows held out of the pool for evaluation (not allowed with a selection folder).
        eval_dataset_name: a separate evaluation source instead of ``eval_size``.
        num_proc: processes for ``map``.
        progress: show the selection's progress bars.

    Example:
        >>> import tempfile, json, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
        >>> _ = p.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\\n"
        ...                          for i in range(6)))
        >>> data = load_training_data(str(p), uniform_k=3, subset_method="random", measure_h=False)
        >>> len(data.train), data.provenance["subset"], data.provenance["k"]
        (3, 'random', 3)
    """
    from ..io import load_input

    if subset_method not in SUBSET_METHODS:
        raise UniformError(f"unknown subset_method {subset_method!r}; use one of {SUBSET_METHODS}")
    k = _k_value(uniform_k)
    if not dataset_name:
        raise UniformError("no dataset given; set dataset_name (a Hub id, a local file or an hf-uniform "
                           "select folder)")
    source = Path(os.path.expanduser(str(dataset_name)))
    prov: dict[str, Any] = {"dataset": str(dataset_name), "split": split, "prompt_format": prompt_format}
    selection: dict[str, Any] | None = None
    selected = _select_output(source) if source.exists() else None
    if selected is not None:
        if k is not None:
            raise UniformError(f"{source} is already a selection (it has selection.json); drop uniform_k or "
                               "point dataset_name at the pool")
        subset_file, sel_path = selected
        record = SelectionRecord.from_json(sel_path)
        selection = record.to_dict()
        heldout = _heldout_file(sel_path, record)
        if heldout is not None and subset_file.resolve() == heldout.resolve():
            raise UniformError(f"{subset_file} holds the held-out rows of the selection; train on the folder "
                               "(the subset) or one of its baseline files, not on heldout.jsonl")
        if eval_size:
            fix = (f"its {heldout.name} is the evaluation set already" if heldout is not None else
                   "hold rows out before selection with `hf-uniform select ... --heldout N`, or pass "
                   "eval_dataset_name")
            raise UniformError(f"eval_size would split the subset {subset_file.name} itself (different held-out "
                               f"rows per arm, k − eval training rows); drop eval_size: {fix}")
        ds = _drop_selection_columns(load_input(subset_file))
        kind = "uniform" if subset_file.name == (record.subset_file or "subset.jsonl") else subset_file.stem
        stats = record.stats(kind if kind != "uniform" else "subset")
        prov.update({"subset": kind, "source": "hf-uniform select", "subset_file": str(subset_file),
                     "selection_json": str(sel_path), "pool": record.input, "n": record.n,
                     "k": len(ds), "embedder": record.embedder, "metric": record.metric,
                     "h": stats.get("h"), "coverage_radius": stats.get("coverage_radius"), "seed": record.seed})
        if kind != "uniform":
            selection = None  # a baseline file: its rows are not the greedy order in selection.json
        train, ev = ds, None
        if heldout is not None and eval_dataset_name:
            logger.info("evaluating on %s instead of %s (eval_dataset_name wins)", eval_dataset_name, heldout)
        elif heldout is not None:
            ev = _drop_selection_columns(load_input(heldout))
            prov["eval_dataset"] = str(heldout)
            prov["eval_source"] = "hf-uniform select --heldout: held out of the pool before selection"
    else:
        if dataset_config is not None and not source.exists():
            import datasets

            try:
                pool = datasets.load_dataset(str(dataset_name), dataset_config, split=split)
            except Exception as err:  # noqa: BLE001 - datasets raises many types
                raise UniformError(f"cannot load {dataset_name!r} ({dataset_config}): "
                                   f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
        else:
            pool = load_input(str(source) if source.exists() else str(dataset_name), split=split)
        pool = _drop_selection_columns(pool)
        pool, ev = split_eval(pool, eval_size, seed)
        if ev is not None:
            prov["eval_source"] = f"eval_size {eval_size} of the pool, held out before selection (seed {seed})"
        prov.update({"n": len(pool), "metric": metric, "seed": seed})
        if k is None:
            train = pool
            prov.update({"subset": "full", "k": len(pool), "embedder": None, "h": None, "coverage_radius": None})
        elif subset_method == "uniform":
            from ..steps import select_uniform

            sel = select_uniform(pool, k, text_columns=text_columns, template=template,
                                 embedding_column=embedding_column, embedder=embedder, metric=metric, seed=seed,
                                 progress=progress)
            train = pool.select(sel.indices.tolist())  # the rows unchanged, in greedy order
            selection = {"input": str(dataset_name), **sel.to_dict()}
            prov.update({"subset": "uniform", "source": "select_uniform", "k": sel.k,
                         "embedder": _embedder_record(sel.info.get("embedder"), sel.info.get("text"),
                                                      embedding_column),
                         "h": selection["h"], "coverage_radius": selection["coverage_radius"]})
        else:
            from ..baselines import first_k, mixed_subset, random_subset

            x = emb_info = None
            if subset_method == "mixed" or measure_h:
                x, emb_info = _pool_embeddings(pool, embedder=embedder, text_columns=text_columns,
                                               template=template, embedding_column=embedding_column,
                                               progress=progress)
            if subset_method == "random":
                idx, how = random_subset(len(pool), k, seed=seed), "random_subset"
            elif subset_method == "first_k":
                idx, how = first_k(len(pool), k), "first_k"
            else:
                idx, how = mixed_subset(x, k, metric=metric, seed=seed), "mixed_subset"
            train = pool.select(idx.tolist())
            prov.update({"subset": subset_method, "source": how, "k": len(idx), "indices": idx.tolist(),
                         "embedder": None, "h": None, "coverage_radius": None})
            if x is not None:
                prov.update(_subset_h(x, idx, emb_info, metric=metric))
    if eval_dataset_name:
        if ev is not None:
            raise UniformError("give either eval_size or eval_dataset_name, not both")
        local = Path(os.path.expanduser(str(eval_dataset_name))).exists()  # a file is one split
        ev = _drop_selection_columns(load_input(eval_dataset_name, split="train" if local else split))
        prov["eval_dataset"] = str(eval_dataset_name)
    prov["train_rows"] = len(train)
    prov["eval_rows"] = len(ev) if ev is not None else 0
    fmt = detect_prompt_format(train.column_names) if prompt_format == "auto" else prompt_format
    prov["prompt_format"] = fmt
    train = prepare_sft_dataset(train, fmt, num_proc=num_proc)
    if ev is not None:
        ev = prepare_sft_dataset(ev, fmt, num_proc=num_proc)
    return TrainingData(train=train, eval=ev, provenance=prov, selection=selection)


def _pool_embeddings(pool: Any, *, embedder: str | None, text_columns: Any, template: str | None,
                     embedding_column: str | None, progress: bool) -> tuple[Any, Any]:
    """The pool's vectors in the embedding a uniform selection would use, and that embedding's record."""
    from ..embedders import resolve_embedder
    from ..integration import embed, embedding_matrix

    if embedding_column is not None:
        return embedding_matrix(pool, embedding_column), {"embedding_column": embedding_column}
    emb = resolve_embedder(embedder, text_columns=text_columns, template=template)
    text = emb.renderer.describe(pool.column_names)
    return embed(pool, emb, progress=progress), _embedder_record(emb.config(), text, None)


def _embedder_record(config: Mapping[str, Any] | None, text: Mapping[str, Any] | None,
                     embedding_column: str | None) -> dict[str, Any]:
    """The embedder's settings with the columns and template it actually read (never ``columns: null``).

    Example:
        >>> _embedder_record({"embedder": "Word2VecEmbedder", "columns": None, "template": None},
        ...                  {"layout": "alpaca", "columns": ["instruction", "output"], "template": None}, None)
        {'embedder': 'Word2VecEmbedder', 'columns': ['instruction', 'output'], 'template': None, 'layout': 'alpaca'}
        >>> _embedder_record(None, None, "emb")
        {'embedding_column': 'emb'}
    """
    if config is None:
        return {"embedding_column": embedding_column}
    out = dict(config)
    if text:
        out.update({"columns": list(text.get("columns") or []), "template": text.get("template"),
                    "layout": text.get("layout")})
    return out


def _subset_h(x: Any, idx: Any, emb_info: Any, *, metric: str) -> dict[str, Any]:
    """h and coverage radius of the rows ``idx`` of ``x``."""
    from ..metrics import coverage_radius, min_pairwise_distance

    sub = x[idx]
    h = min_pairwise_distance(sub, metric=metric) if len(idx) > 1 else None
    return {"embedder": emb_info, "h": h, "coverage_radius": coverage_radius(sub, x, metric=metric)}


def write_provenance(output_dir: str | os.PathLike, data: TrainingData,
                     extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``provenance.json`` (and the subset's ``selection.json`` when one was used) in ``output_dir``.

    Example:
        >>> import tempfile, json
        >>> d = tempfile.mkdtemp()
        >>> p = write_provenance(d, TrainingData(None, None, {"subset": "full", "k": 5}))
        >>> json.loads(p.read_text())["data"]["k"]
        5
    """
    from ..io import atomic_path, atomic_write_json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    prov = dict(data.provenance)
    if data.selection is not None:
        src = prov.get("selection_json")
        target = out / SELECTION_FILE
        if src and Path(src).resolve() != target.resolve():
            with atomic_path(target) as tmp:
                shutil.copyfile(src, tmp)
        elif not src:
            atomic_write_json(target, data.selection)
        prov["selection_file"] = SELECTION_FILE
    return atomic_write_json(out / PROVENANCE_FILE, {"data": prov, **(dict(extra) if extra else {})})
