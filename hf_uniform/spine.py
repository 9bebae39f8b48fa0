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
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UniformError

logger = logging.getLogger(__name__)

METRICS = ("cosine", "euclidean")
METHODS = ("auto", "lazy", "sweep", "plain")
DTYPES = ("float32", "float16", "bfloat16")
BACKENDS = ("exact", "coreset", "ray")
TIE_BREAKS = ("lowest", "random")
DEVICES_HELP = "cpu (default), cuda, cuda:N or auto (CUDA when available)"


# --------------------------------------------------------------------------------- the rules, one each


def check_k_option(k: Any) -> int | float | None:
    """``k`` as an option (its form; the row count is known later): ``None``, a count (numpy ints welcome) or a
    fraction in (0, 1). Text is the command line's and the config files' business
    (:func:`hf_uniform.selection.parse_k`): ``"2"`` is not a count here, and ``1.0`` is refused everywhere.

    Example:
        >>> check_k_option(np.int64(3)), check_k_option(0.5), check_k_option(None)
        (3, 0.5, None)
    """
    from .selection import check_k

    return None if k is None else check_k(k)


def check_start(start: Any) -> tuple[int, ...] | None:
    """Start rows: ``None``, a row index (numpy ints welcome) or distinct row indices (floats, booleans and text
    are refused; the command line's ``--start 3,17`` goes through :func:`parse_start`).

    Example:
        >>> check_start(np.int64(3)), check_start([4, 1]), check_start(np.array([2, 5])), check_start(None)
        ((3,), (4, 1), (2, 5), None)
        >>> check_start(2.7)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: start must be a row index (an int) or a list of them, got 2.7; pass e.g. start=3 or start=[3, 17] (CLI: --start 3,17)
    """
    if start is None:
        return None
    items: list[Any]
    if isinstance(start, np.ndarray) and start.ndim == 1 and np.issubdtype(start.dtype, np.integer):
        items = start.tolist()
    elif isinstance(start, (list, tuple, range)):
        items = list(start)
    else:  # text too: the command line's --start goes through parse_start; "3" is not a row index here
        items = [start]
    bad = [s for s in items if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer))]
    if bad:
        raise UniformError(f"start must be a row index (an int) or a list of them, got {start!r}; pass e.g. "
                           "start=3 or start=[3, 17] (CLI: --start 3,17)")
    rows = tuple(int(s) for s in items)
    if not rows:
        raise UniformError("start lists no row; pass at least one row index, or leave start out for a seeded "
                           "random start")
    if min(rows) < 0:
        raise UniformError(f"start rows must be 0 or more, got {[r for r in rows if r < 0][:10]}")
    if len(set(rows)) != len(rows):
        raise UniformError(f"start rows repeat a row: {list(rows)[:20]}; pass each row once")
    return rows


def parse_start(text: str) -> tuple[int, ...]:
    """``--start 3,17``: comma-separated row indices, then :func:`check_start`.

    Example:
        >>> parse_start("3, 17")
        (3, 17)
    """
    try:
        rows = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError as err:
        raise UniformError(f"start must be comma-separated row indices, got {text!r}; pass e.g. --start 3,17") from err
    return check_start(rows)


def check_seed(seed: Any) -> int | None:
    """``seed``: a whole number 0 or more (numpy ints welcome), or ``None`` for an unseeded start row.

    Example:
        >>> check_seed(np.int64(2)), check_seed(None)
        (2, None)
        >>> check_seed(-1)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: seed must be a whole number 0 or more, got -1; pass e.g. seed=0
    """
    if seed is None:
        return None
    if isinstance(seed, str) and seed.strip().lstrip("+").isdigit():
        seed = int(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UniformError(f"seed must be a whole number 0 or more, got {seed!r}; pass e.g. seed=0")
    return int(seed)


def check_device(device: Any) -> str:
    """``device``: ``cpu``, ``auto`` (or ``None``: CUDA when available), ``cuda`` or ``cuda:N`` (checked here).

    Example:
        >>> check_device("cpu"), check_device(None)
        ('cpu', 'auto')
        >>> check_device("tpu")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: unknown device 'tpu'; use cpu (default), cuda, cuda:N or auto (CUDA when available)
    """
    if device is None:
        return "auto"
    if not isinstance(device, str) and type(device).__name__ == "device":  # a torch.device
        device = str(device)
    if device in ("cpu", "auto"):
        return device
    if not isinstance(device, str) or not re.fullmatch(r"cuda(:\d+)?", device):
        raise UniformError(f"unknown device {device!r}; use {DEVICES_HELP}")
    import torch

    if not torch.cuda.is_available():
        raise UniformError(f"device {device}: no CUDA device is available here; use cpu or auto (CLI: --device)")
    if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise UniformError(f"device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def _check_count(name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise UniformError(f"{name} must be a whole number {low} or more, got {value!r}")
    return int(value)


def _check_radius(r: Any) -> float:
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float, np.integer, np.floating)) \
            or not 0 <= float(r) < math.inf:
        raise UniformError(f"radius must be a finite distance 0 or more, got {r!r}")
    return float(r)


def _parse_quotas(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in (p for p in text.split(",") if p.strip()):
        label, sep, rows = part.rpartition("=")
        if not sep or not label.strip() or not rows.strip().isdigit():
            raise UniformError(f"quotas take label=rows pairs such as en=300,de=100, got {text!r}")
        out[label.strip()] = int(rows)
    if not out:
        raise UniformError("quotas list no group; pass e.g. en=300,de=100")
    return out


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise UniformError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")
    return value


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


# ------------------------------------------------------------------------------------------ the spine


@dataclass
class SpineResult:
    """What :func:`run_spine` computed: the selection (indices into the input), the embeddings of the kept rows
    (``None`` when the vectors were streamed from a stored column), the kept rows and how the text was read.

    Example:
        >>> SpineResult(None, None, np.arange(2), {}).rows.tolist()
        [0, 1]
    """

    selection: Any
    embeddings: Any
    rows: np.ndarray
    source: dict[str, Any]
    positions: Any = None  # the same selection over the kept rows (indices into ``rows``; zero vectors dropped)


def _labels(ds: Any, group_by: Any, n: int, quotas: Any) -> np.ndarray | None:
    if group_by is None:
        return None
    if isinstance(group_by, str):
        if ds is None or group_by not in ds.column_names:
            cols = [] if ds is None else ds.column_names
            raise UniformError(f"group_by column {group_by!r} is not in the dataset; columns: {cols[:20]}")
        values = ds.select_columns([group_by])[group_by]
        labels = np.asarray(list(values), dtype=object)
        if quotas is not None and all(isinstance(q, str) for q in quotas):  # text keys (the CLI's): text labels
            labels = np.asarray([str(v) for v in labels], dtype=object)
    else:
        labels = np.asarray(list(group_by), dtype=object)
    if len(labels) != n:
        raise UniformError(f"group_by has {len(labels)} labels for {n} rows; pass one group label per row")
    return labels


def stored_vectors(ds: Any, column: str, *, stream: bool = False) -> Any:
    """The vectors of ``ds[column]``: an ``(n, d)`` float32 array, or with ``stream`` the Arrow column itself (a
    fixed-size-list ``ChunkedArray`` over the dataset's memory-mapped file, nothing copied) for the engine to read
    in chunks.

    Example:
        >>> from datasets import Dataset
        >>> stored_vectors(Dataset.from_dict({"e": [[1.0, 2.0], [3.0, 4.0]]}), "e").shape
        (2, 2)
    """
    from .integration import embedding_matrix

    if not stream:
        return embedding_matrix(ds, column)
    import pyarrow as pa

    if column not in ds.column_names:
        raise UniformError(f"embedding column {column!r} not found; available columns: {ds.column_names}")
    arr = ds.with_format("arrow").select_columns([column])[:][column]  # zero-copy slices without an indices map
    typ = arr.type
    if not (pa.types.is_fixed_size_list(typ) and pa.types.is_floating(typ.value_type) and arr.null_count == 0):
        return embedding_matrix(ds, column)  # ragged / integer / null rows: the checked copy (and its messages)
    return arr


@dataclass
class Prepared:
    """The rows to select from, checked, before anything is embedded (:func:`prepare`).

    Attributes:
        ds: the input (a ``Dataset`` or an array of vectors); rows: its kept rows (empty text left out);
        embedder: the embedder (``None`` for stored vectors); text: the columns and template it reads;
        empty: rows left out for empty text; labels: group labels of ``rows`` (or ``None``);
        k: the row count of ``k`` among the kept rows; starts: start positions among the kept rows.

    Example:
        >>> p = prepare(np.eye(3), SelectConfig(k=2)); p.rows.tolist(), p.k
        ([0, 1, 2], 2)
    """

    ds: Any
    config: SelectConfig
    rows: np.ndarray
    embedder: Any = None
    text: dict[str, Any] | None = None
    empty: list[int] = field(default_factory=list)
    labels: np.ndarray | None = None
    k: int | None = None
    starts: list[int] | None = None


def prepare(ds: Any, config: SelectConfig) -> Prepared:
    """Every check that needs the data but not the embeddings: row count, ``k``, start rows, group labels, the text
    layout and empty rows (left out with ``drop_empty``, else refused).

    Example:
        >>> prepare(np.eye(3), SelectConfig(k=5))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: k=5 exceeds the number of rows n=3; pass k <= 3
    """
    from .engine.store import shape_of
    from .selection import check_k

    cfg = config
    is_dataset = hasattr(ds, "column_names")
    if not is_dataset and hasattr(ds, "keys") and hasattr(ds, "values"):
        raise UniformError(f"select_uniform takes a Dataset; this is a DatasetDict with splits {list(ds)}; pass "
                           "one split (ds['train']) or use ds.filter_uniform(...)")
    if cfg.k is None and cfg.radius is None and cfg.quotas is None:
        raise UniformError("pass k (rows or a fraction), radius (a coverage target) or per-group quotas")
    n = len(ds) if is_dataset else shape_of(ds)[0]
    if n == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if cfg.k is not None:
        check_k(cfg.k, n)
    if cfg.start is not None and max(cfg.start) >= n:
        raise UniformError(f"start rows {[s for s in cfg.start if s >= n][:10]} are out of range for n={n}")
    labels = _labels(ds if is_dataset else None, cfg.group_by, n, cfg.quotas)
    out = Prepared(ds, cfg, np.arange(n))
    if not is_dataset:
        if cfg.embedding_column is not None:
            raise UniformError("embedding_column names a column of a Dataset; this input is already an array")
    elif cfg.embedding_column is not None:
        if cfg.embedding_column not in ds.column_names:
            raise UniformError(f"embedding column {cfg.embedding_column!r} not found; available columns: "
                               f"{ds.column_names[:20]}")
    else:
        emb = out.embedder = cfg.embedder_instance()
        text = out.text = emb.renderer.describe(ds.column_names)
        empty = out.empty = emb.renderer.empty_rows(ds.select_columns(text["columns"]))
        if empty and not cfg.drop_empty:
            raise UniformError(f"{len(empty)} of {n} rows have empty text in columns {text['columns']} (rows "
                               f"{empty[:10]}{' ...' if len(empty) > 10 else ''}); pass drop_empty=True (CLI: "
                               "--drop-empty) to leave them out, or other text_columns / template")
        if empty:
            logger.warning("leaving out %d row(s) with empty text (rows %s)", len(empty), empty[:10])
            out.rows = np.setdiff1d(out.rows, np.asarray(empty, dtype=np.int64))
            if not len(out.rows):
                raise UniformError("every row has empty text; check text_columns / template")
    if cfg.k is not None:
        if isinstance(cfg.k, int) and cfg.k > len(out.rows):
            raise UniformError(f"k={cfg.k} exceeds the {len(out.rows)} rows left after dropping empty ones")
        out.k = check_k(cfg.k, len(out.rows))
    if cfg.start is not None:
        pos = {int(r): i for i, r in enumerate(out.rows)}
        if any(s not in pos for s in cfg.start):
            raise UniformError("a start row has empty text and was left out; choose other start rows")
        out.starts = [pos[s] for s in cfg.start]
    out.labels = None if labels is None else labels[out.rows]
    return out


def embed_prepared(p: Prepared, *, distributed: bool = False) -> tuple[Any, dict[str, Any]]:
    """The vectors of the kept rows (an array, or a stored Arrow column streamed under ``max_memory``) and what
    they are (``{"embedding_column": ...}`` or the embedder's settings and text layout).

    Example:
        >>> x, source = embed_prepared(prepare(np.eye(2), SelectConfig(k=1))); x.shape, source
        ((2, 2), {})
    """
    from .integration import embed

    cfg, ds = p.config, p.ds
    if not hasattr(ds, "column_names"):
        return ds, {}
    if cfg.embedding_column is not None:
        stream = cfg.max_memory is not None and not cfg.drop_zero_vectors
        return stored_vectors(ds, cfg.embedding_column, stream=stream), {"embedding_column": cfg.embedding_column}
    work = ds if len(p.rows) == len(ds) else ds.select(p.rows.tolist())
    x = embed(work, p.embedder, progress=cfg.progress, cache=cfg.cache, distributed=distributed or None)
    return x, {"embedder": p.embedder.config(), "text": p.text, "dropped_empty_rows": p.empty}


def finish(p: Prepared, x: Any, source: dict[str, Any], *, distributed: bool = False) -> SpineResult:
    """Select on the vectors ``x`` of the kept rows and map the positions back to rows of the input.

    Example:
        >>> p = prepare(np.eye(3), SelectConfig(k=2, start=1))
        >>> finish(p, np.eye(3), {}).selection.indices.tolist()
        [1, 0]
    """
    from .selection import Selection

    n, rows = len(p.ds) if hasattr(p.ds, "column_names") else len(p.rows), p.rows
    sel = raw = _select(x, p.k, p.config, p.starts, p.labels, distributed)
    if len(rows) != n:  # positions among the kept rows -> rows of ds
        dropped = set(rows[sel.info.get("dropped_rows", [])].tolist()) | set(np.setdiff1d(np.arange(n), rows).tolist())
        sel = Selection(rows[sel.indices], sel.min_distances, sel.coverage_radius, sel.metric, n,
                        {**sel.info, "dropped_rows": sorted(dropped)})
    sel.info.update(source)
    sel.info["backend"] = p.config.backend
    logger.info("selected %d of %d rows: h=%.6g coverage=%.6g", sel.k, sel.n, sel.h, sel.coverage_radius)
    return SpineResult(sel, x if isinstance(x, np.ndarray) else None, rows, source, raw)


def run_spine(ds: Any, config: SelectConfig, *, distributed: bool = False) -> SpineResult:
    """Render -> drop empty rows -> embed -> select -> map back: the one pipeline behind every entry point
    (:func:`prepare`, :func:`embed_prepared`, :func:`finish`).

    ``ds`` is a ``Dataset`` or an ``(n, d)`` array of embeddings (then nothing is rendered or embedded). Row
    indices in the result (``selection.indices``, ``info["dropped_rows"]``) are rows of ``ds``.

    Example:
        >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> run_spine(x, SelectConfig(k=2, start=0, metric="euclidean")).selection.indices.tolist()
        [0, 1]
    """
    p = prepare(ds, config)
    x, source = embed_prepared(p, distributed=distributed)
    return finish(p, x, source, distributed=distributed)


def _select(x: Any, k: int | None, cfg: SelectConfig, starts: list[int] | None, labels: np.ndarray | None,
            distributed: bool) -> Any:
    """The selection step on the kept rows' vectors: exact, core-set or Ray (positions into ``x``)."""
    from .integration import select_rows

    kwargs = cfg.engine_kwargs()
    if cfg.backend == "exact":
        if labels is not None:
            kwargs["group_by"] = labels
            kwargs["quotas"] = cfg.quotas
        if distributed:
            kwargs["distributed"] = True
        return select_rows(x, k, drop_zero_vectors=cfg.drop_zero_vectors, start=starts, **kwargs)
    for name in ("radius", "tie_break", "progress"):
        kwargs.pop(name)
    if cfg.backend == "coreset":
        from .coreset import coreset_select

        return coreset_select(x, k, shards=cfg.shards or 4, **kwargs)
    return _ray_select(np.asarray(x, dtype=np.float32), k, cfg, kwargs)


def _ray_select(x: np.ndarray, k: int, cfg: SelectConfig, kwargs: dict[str, Any]) -> Any:
    """The core-set on Ray over the rows of ``x`` (:func:`hf_uniform.ray.select_uniform_ray`)."""
    from datasets import Dataset

    from .ray._common import _ray, init_ray
    from .ray.reading import from_dataset
    from .ray.select import select_uniform_ray

    ray = _ray()
    started = init_ray(cfg.ray_address, quiet=not cfg.progress)
    try:
        rd = from_dataset(Dataset.from_dict({"embedding": x.tolist()}))
        metric, seed, device = kwargs.pop("metric"), kwargs.pop("seed"), kwargs.pop("device")
        res = select_uniform_ray(rd, k, shards=cfg.shards, embedding_column="embedding", metric=metric, seed=seed,
                                 device=device, progress=cfg.progress, return_rows=False, **kwargs)
        return res.selection
    finally:
        if started:
            ray.shutdown()


def select_uniform(ds: Any, k: int | float | str | None = None, *, config: SelectConfig | None = None,
                   **options: Any) -> Any:
    """The greedy max-min (uniform) selection of ``ds``: a :class:`~hf_uniform.selection.Selection` whose
    ``indices`` are rows of ``ds``, in greedy order.

    Renders the text of each row (or reads ``embedding_column``), leaves out empty rows with ``drop_empty``,
    embeds, selects (``backend``: the exact engine, the core-set, or the core-set on Ray) and maps the positions
    back to rows of ``ds``. ``ds.filter_uniform(k, **options)`` returns the same rows as a ``Dataset``.

    Args:
        ds: a ``Dataset``, or an ``(n, d)`` array of embeddings.
        k: rows (an int), a fraction in (0, 1) (a float), or text such as ``"0.5"``; may be left out with
            ``radius`` or ``quotas``.
        config: a :class:`SelectConfig`; ``k`` and ``options`` override its fields.
        **options: the fields of :class:`SelectConfig` (``seed``, ``start``, ``embedder``, ``metric``, ...).

    Raises:
        UniformError: a bad option (one line, naming the fix), or data that cannot be selected from.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"e": [[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]]})
        >>> sel = select_uniform(ds, 2, embedding_column="e", metric="euclidean", start=0)
        >>> sel.indices.tolist(), sel.h
        ([0, 2], 5.0)
    """
    cfg = SelectConfig.from_options(config, **({"k": k} if k is not None else {}), **options)
    return run_spine(ds, cfg).selection
