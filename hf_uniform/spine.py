"""One selection spine: :class:`SelectConfig` (every selection option, validated once) and :func:`select_uniform`.

Every entry point -- ``Dataset.filter_uniform``, ``add_uniform_rank``, ``hf-uniform select`` / ``stats``, the
training data loader and the study's arms -- builds a :class:`SelectConfig` (so a bad option is the same
one-line :class:`~hf_uniform.errors.UniformError` everywhere) and runs :func:`run_spine`: render -> drop empty
rows -> embed (or read a stored vector column) -> select (exact engine, core-set or Ray) -> map positions back to
rows of the input. The ``hf-uniform select`` options are generated from the fields of :class:`SelectConfig`
(:func:`add_config_arguments`), so each option is declared once.

The k rule (:func:`hf_uniform.selection.check_k`): an int is a row count, a float strictly between 0 and 1 a
fraction; ``1.0`` or ``4500.0`` is refused (pass the row count as an int). Text (the command line's ``-k``, a
recipe's ``uniform_k``) is read by :func:`hf_uniform.selection.parse_k` (``"4500"`` a count, ``"0.5"`` a
fraction, ``"1.0"`` refused): the same rule.

>>> import hf_uniform
>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"e": [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]})
>>> hf_uniform.select_uniform(ds, 2, embedding_column="e", start=0).indices.tolist()
[0, 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UniformError
from .options import (  # noqa: F401 - the rules, re-exported
    BACKENDS,
    DEVICES_HELP,
    DTYPES,
    METHODS,
    METRICS,
    TIE_BREAKS,
    _check_count,
    _check_radius,
    _choice,
    _parse_quotas,
    check_device,
    check_k_option,
    check_seed,
    check_start,
    parse_start,
)

logger = logging.getLogger(__name__)



def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------------------- the config


def _opt(default: Any, help: str, cli: Mapping[str, Any] | None = None, **extra: Any) -> Any:
    """A config field with its ``--help`` text (``cli``: argparse keywords; ``cli=None`` with ``flag=False``:
    not a command-line option)."""
    meta = {"help": help, "cli": dict(cli or {}), **extra}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SelectConfig:
    """Every selection option, validated once (in ``__post_init__``); bad values raise a one-line
    :class:`~hf_uniform.errors.UniformError` naming the option and the fix.

    The command-line options of ``hf-uniform select`` are generated from these fields
    (:func:`add_config_arguments`): ``text_columns`` is ``--text-columns``, ``cache=False`` is ``--no-cache``.
    Values are normalised: ``start=np.int64(3)`` is ``(3,)``, ``text_columns="a,b"`` is ``("a", "b")``,
    ``device=None`` is ``"auto"``.

    Example:
        >>> SelectConfig(k=0.5, start=np.int64(3)).start
        (3,)
        >>> SelectConfig(k=3, device="tpu")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: unknown device 'tpu'; use cpu (default), cuda, cuda:N or auto (CUDA when available)
    """

    k: Any = _opt(None, "subset size: a whole number of rows, or a fraction in (0, 1) such as 0.5", flag=False)
    start: Any = _opt(None, "comma-separated start rows (default: a seeded random row)")
    seed: Any = _opt(0, "seed of the random start row, of random tie-breaks and baselines (default: 0)")
    device: Any = _opt("cpu", DEVICES_HELP)
    metric: str = _opt("cosine", "distance: cosine (default) or euclidean", {"choices": METRICS})
    embedder: Any = _opt("w2v", "w2v (the paper's Word2Vec, default), st:MODEL, m2v:PATH_OR_ID, m2v-distill:ST_MODEL")
    text_columns: Any = _opt(None, "comma-separated columns to embed, joined by newlines (default: the detected "
                                   "layout, recorded in selection.json)")
    template: str | None = _opt(None, "str.format template over columns, e.g. '{instruction} {output}'")
    embedding_column: str | None = _opt(None, "use vectors already stored in this column instead of embedding")
    drop_empty: bool = _opt(False, "leave out rows whose text is empty (default: refuse them, reporting how many)")
    drop_zero_vectors: bool = _opt(False, "ignore all-zero embeddings (rows with no known word) instead of failing")
    method: str = _opt("auto", "selection engine: auto (default, the fastest exact one), lazy, sweep or plain",
                       {"choices": METHODS})
    dtype: Any = _opt("float32", "storage precision of the embeddings in the engine's filter pass",
                      {"choices": DTYPES})
    max_memory: Any = _opt(None, "stream embeddings in chunks above this size, e.g. 4GB (a stored "
                                 "--embedding-column is then read from the dataset's Arrow file, not copied)")
    chunk_size: int | None = _opt(None, "rows per distance block (results do not depend on it)", flag=False)
    checkpoint: Any = _opt(None, "save the selection state in this folder so --resume can continue")
    checkpoint_every: int = _opt(1000, "steps between checkpoints")
    resume: bool = _opt(False, "continue from --checkpoint after a crash")
    backend: str = _opt("exact", "exact greedy max-min (default), coreset (two-round composable core-set in this "
                                 "process) or ray (the core-set on Ray; see --ray)", {"choices": BACKENDS})
    ray_address: str | None = _opt(None, "embed and select on Ray (composable core-set, pip install "
                                         "'hf-uniform[ray]'): 'local' (default) starts Ray on this machine, an "
                                         "address (auto, ray://host:10001) joins a cluster",
                                   {"flags": ("--ray",), "nargs": "?", "const": "local", "metavar": "ADDRESS"})
    shards: int | None = _opt(None, "contiguous shards of the core-set (default: 4; with --ray the cluster's "
                                    "CPUs); the result equals hf_uniform.coreset_select(x, k, shards=S)",
                              {"flags": ("--shards", "--ray-shards"), "metavar": "S"})
    radius: float | None = _opt(None, "stop once every row is within R of a chosen row (coverage target); -k is "
                                      "then a cap", {"metavar": "R"})
    tie_break: str = _opt("lowest", "exact ties go to the lowest row (default) or to a --seed-ed random row",
                          {"choices": TIE_BREAKS})
    group_by: Any = _opt(None, "per-group quotas over this column's values: a row of a full group is never "
                               "picked (default quotas: proportional to the group sizes)", {"metavar": "COLUMN"})
    quotas: Any = _opt(None, "rows per --group-by value, e.g. en=300,de=100 (values left out get 0)",
                       {"metavar": "LABEL=ROWS,..."})
    cache: bool = _opt(True, "reuse and store embeddings", no_help="do not reuse or store embeddings")
    progress: bool = _opt(True, "show progress bars", flag=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "k", check_k_option(self.k))
        set_(self, "start", check_start(self.start))
        set_(self, "seed", check_seed(self.seed))
        set_(self, "device", check_device(self.device))
        _choice("metric", self.metric, METRICS)
        _choice("method", self.method, METHODS)
        dtype = str(self.dtype).replace("torch.", "")
        set_(self, "dtype", _choice("dtype", dtype, DTYPES))
        _choice("backend", self.backend, BACKENDS)
        _choice("tie_break", self.tie_break, TIE_BREAKS)
        for name in ("drop_empty", "drop_zero_vectors", "resume", "cache", "progress"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise UniformError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self._check_embedding()
        self._check_engine()
        self._check_rules()

    # -- groups of checks -----------------------------------------------------------------------------
    def _check_embedding(self) -> None:
        set_ = object.__setattr__
        cols = self.text_columns
        if isinstance(cols, str):
            cols = [c.strip() for c in cols.split(",") if c.strip()]
            if not cols:
                raise UniformError("text_columns names no column; pass e.g. text_columns=['instruction', 'output'] "
                                   "(CLI: --text-columns instruction,output)")
        if cols is not None:
            cols = tuple(cols)
            if not cols or not all(isinstance(c, str) and c for c in cols):
                raise UniformError(f"text_columns must be column names, got {self.text_columns!r}")
        set_(self, "text_columns", cols)
        if self.embedder is None:
            set_(self, "embedder", "w2v")
        if self.embedding_column is not None:
            if not isinstance(self.embedding_column, str) or not self.embedding_column:
                raise UniformError(f"embedding_column must be a column name, got {self.embedding_column!r}")
            given = [n for n, v in (("text_columns", cols), ("template", self.template),
                                    ("drop_empty", self.drop_empty)) if v]
            if given or self.embedder != "w2v":
                raise UniformError(f"embedding_column uses stored vectors, so {', '.join(given) or 'embedder'} has "
                                   "no effect; drop it (CLI: --embedding-column)")
            return
        if cols is not None and self.template is not None:
            raise UniformError("pass either text_columns or template, not both (CLI: --text-columns / --template)")
        from .embedders import Embedder, resolve_embedder

        if not isinstance(self.embedder, Embedder):
            resolve_embedder(self.embedder, text_columns=",".join(cols) if cols else None,
                             template=self.template)  # validates the spec and template; nothing is loaded

    def _check_engine(self) -> None:
        if self.max_memory not in (None, "", 0):
            from .engine.store import parse_bytes

            try:
                parse_bytes(self.max_memory)
            except (ValueError, TypeError) as err:
                raise UniformError(f"max_memory {self.max_memory!r}: {str(err).splitlines()[0]}; pass e.g. 4GB"
                                   ) from err
        else:
            object.__setattr__(self, "max_memory", None)
        for name in ("checkpoint_every", "chunk_size", "shards"):
            value = getattr(self, name)
            if value is not None or name == "checkpoint_every":
                object.__setattr__(self, name, _check_count(name, value, 1))
        if self.resume and not self.checkpoint:
            raise UniformError("resume needs checkpoint (the folder the interrupted run saved to; CLI: --checkpoint)")
        if self.ray_address is not None:
            if self.backend == "coreset":
                raise UniformError("ray_address runs backend='ray'; drop backend='coreset' or the Ray address")
            object.__setattr__(self, "backend", "ray")
        elif self.backend == "ray":
            object.__setattr__(self, "ray_address", "local")
        if self.shards is not None and self.backend == "exact":
            raise UniformError("shards applies to the core-set; pass backend='coreset' or a Ray address (CLI: --ray)")

    def _check_rules(self) -> None:
        if self.radius is not None:
            object.__setattr__(self, "radius", _check_radius(self.radius))
        if isinstance(self.quotas, str):  # CLI text: en=300,de=100
            object.__setattr__(self, "quotas", _parse_quotas(self.quotas))
        if self.quotas is not None:
            if not isinstance(self.quotas, Mapping) or not self.quotas:
                raise UniformError(f"quotas must map group labels to rows, e.g. {{'en': 300}}, got {self.quotas!r}")
            if self.group_by is None:
                raise UniformError("quotas needs group_by (the column of group labels; CLI: --group-by)")
        if self.backend != "exact":
            refused = [n for n, on in (("start", self.start is not None), ("checkpoint", self.checkpoint),
                                       ("radius", self.radius is not None), ("tie_break", self.tie_break != "lowest"),
                                       ("group_by", self.group_by is not None), ("quotas", self.quotas is not None),
                                       ("drop_zero_vectors", self.drop_zero_vectors)) if on]
            if refused:
                raise UniformError(f"backend={self.backend!r} runs the composable core-set, which takes no "
                                   f"{', '.join(refused)}; drop them or use backend='exact'")
            if self.k is None:
                raise UniformError(f"backend={self.backend!r} needs k (rows or a fraction)")

    # -- use ------------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> SelectConfig:
        """A copy with ``changes`` (validated again).

        Example:
            >>> SelectConfig(k=3).replace(k=5).k
            5
        """
        return dataclasses.replace(self, **changes)

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~hf_uniform.selection.maxmin_select` (without rows, k, start, groups).

        Example:
            >>> sorted(SelectConfig(k=3, max_memory="1GB").engine_kwargs())  # doctest: +NORMALIZE_WHITESPACE
            ['device', 'dtype', 'max_memory', 'method', 'metric', 'progress', 'radius', 'seed', 'tie_break']
        """
        import torch

        out: dict[str, Any] = {"metric": self.metric, "seed": self.seed, "device": self.device,
                               "method": self.method, "dtype": getattr(torch, self.dtype), "progress": self.progress,
                               "radius": self.radius, "tie_break": self.tie_break}
        if self.max_memory is not None:
            out["max_memory"] = self.max_memory
        if self.chunk_size is not None:
            out["chunk_size"] = self.chunk_size
        if self.checkpoint:
            out.update(checkpoint_dir=str(self.checkpoint), checkpoint_every=self.checkpoint_every,
                       resume=self.resume)
        return out

    def embedder_instance(self) -> Any:
        """The embedder these options name (an instance passed as ``embedder`` is returned as it is), or ``None``
        with ``embedding_column``.

        Example:
            >>> type(SelectConfig(k=2).embedder_instance()).__name__
            'Word2VecEmbedder'
        """
        from .embedders import Embedder, resolve_embedder

        if self.embedding_column is not None:
            return None
        if isinstance(self.embedder, Embedder):
            return self.embedder
        return resolve_embedder(self.embedder, text_columns=",".join(self.text_columns) if self.text_columns else None,
                                template=self.template)

    def hash_parts(self) -> dict[str, Any]:
        """What the selection depends on (no ``progress``), for fingerprints (:class:`datasets.fingerprint.Hasher`).

        Example:
            >>> SelectConfig(k=3).hash_parts() == SelectConfig(k=3, progress=False).hash_parts()
            True
        """
        parts = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("progress",)}
        emb = parts["embedder"]
        if not isinstance(emb, str):
            parts["embedder"] = emb.config() if hasattr(emb, "config") else repr(emb)
        gb = parts["group_by"]
        if gb is not None and not isinstance(gb, str):
            parts["group_by"] = [str(v) for v in gb]
        return parts

    @classmethod
    def from_options(cls, config: SelectConfig | None = None, **options: Any) -> SelectConfig:
        """``config`` with ``options`` on top (``None`` values of ``options`` mean "not given" for ``k``).

        Example:
            >>> SelectConfig.from_options(SelectConfig(k=3), seed=2).seed
            2
        """
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UniformError(f"unknown selection option(s) {unknown}; see hf_uniform.SelectConfig for the options")
        if config is None:
            return cls(**options)
        if not isinstance(config, cls):
            raise UniformError(f"config must be a SelectConfig, got {type(config).__name__}")
        if options.get("k", "given") is None:
            options.pop("k")
        return config.replace(**options) if options else config


# ------------------------------------------------------------------------------------ the command line

#: fields exposed by ``hf-uniform stats`` (the ones that decide the embedding)
STATS_FIELDS = ("embedder", "embedding_column", "text_columns", "template", "drop_empty", "metric",
                "drop_zero_vectors", "cache", "device", "seed")


def add_config_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None,
                         parse_types: bool = True) -> None:
    """Add the command-line options of the :class:`SelectConfig` fields ``names`` (default: every exposed one).

    The flag is the field name with dashes; ``bool`` fields default false are ``store_true``, those default true
    are ``--no-NAME``; the value types are checked by the field's own rule (one line, exit status 2).

    Example:
        >>> p = argparse.ArgumentParser(); add_config_arguments(p, ["seed", "cache", "start"])
        >>> vars(p.parse_args(["--seed", "3", "--no-cache", "--start", "1,2"]))
        {'seed': 3, 'cache': False, 'start': (1, 2)}
    """
    fields = {f.name: f for f in dataclasses.fields(SelectConfig)}
    for name in names if names is not None else [n for n, f in fields.items() if f.metadata.get("flag", True)]:
        f = fields[name]
        cli = dict(f.metadata["cli"])
        flags = cli.pop("flags", (_flag(name),))
        kw: dict[str, Any] = {"dest": name, "help": f.metadata["help"], **cli}
        if isinstance(f.default, bool):
            if f.default:
                kw["help"] = f.metadata.get("no_help", f"set {name} to false")
                parser.add_argument(_flag("no_" + name), action="store_false", **kw)
            else:
                parser.add_argument(*flags, action="store_true", **kw)
            continue
        kw.setdefault("default", f.default)
        if parse_types and "choices" not in kw:
            kw["type"] = _text_rule(name)
        parser.add_argument(*flags, **kw)


def _text_rule(name: str) -> Any:
    """The argparse type of field ``name``: the text through the field's own rule (one line, exit status 2)."""
    def parse(text: str) -> Any:
        try:
            if name == "seed":
                return check_seed(_whole(name, text))
            if name in ("checkpoint_every", "shards", "chunk_size"):
                return _check_count(name, _whole(name, text), 1)
            if name == "radius":
                try:
                    return _check_radius(float(text))
                except ValueError as err:
                    raise UniformError(f"radius must be a finite distance 0 or more, got {text!r}") from err
            if name == "start":
                return parse_start(text)
            if name == "quotas":
                return _parse_quotas(text)
            return text
        except UniformError as err:
            raise argparse.ArgumentTypeError(str(err)) from err
    parse.__name__ = name
    return parse


def _whole(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise UniformError(f"{name} must be a whole number, got {text!r}") from err


def config_from_args(args: argparse.Namespace, **overrides: Any) -> SelectConfig:
    """The :class:`SelectConfig` of parsed command-line options (the fields present in ``args``).

    Example:
        >>> p = argparse.ArgumentParser(); add_config_arguments(p, ["seed", "metric"])
        >>> config_from_args(p.parse_args(["--seed", "4"]), k=3).seed
        4
    """
    names = {f.name for f in dataclasses.fields(SelectConfig)}
    options = {name: value for name, value in vars(args).items() if name in names}
    return SelectConfig(**{**options, **overrides})
