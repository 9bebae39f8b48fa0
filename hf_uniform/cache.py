"""On-disk caches: embeddings keyed by data, text and embedder, and distilled model2vec models.

Layout under the cache root (env ``HF_UNIFORM_CACHE``, else huggingface_hub's assets folder for this library,
``huggingface_hub.cached_assets_path("hf_uniform")``: ``$HF_ASSETS_CACHE/hf_uniform/default/default``, by default
``~/.cache/huggingface/assets/...``, so ``hf cache`` tools and ``HF_HOME`` apply to it)::

    embeddings/<key>.npy    float32 (n, d) matrix, rows in dataset order
    embeddings/<key>.json   what the key was made of (fingerprint, text settings, embedder config)
    m2v/<name>-<hash>/      static models distilled by :class:`~hf_uniform.embedders.Model2VecEmbedder`

The embedding key hashes the dataset fingerprint (``ds._fingerprint``: for files read by
:func:`hf_uniform.io.load_input` / :func:`~hf_uniform.io.read_source` it is derived from a BLAKE2b hash of the
file's bytes, computed while they are read, so an edit that keeps the size and modification time still
changes the key; ``datasets`` updates it on every ``select``/``map``/``shuffle``), the row count, the
resolved text layout (which columns, which template) and
:meth:`Embedder.cache_identity() <hf_uniform.embedders.Embedder.cache_identity>` (the embedder configuration,
text columns and template, library versions). Files are written atomically, so a crash never leaves a
partial entry; a damaged entry is ignored (with a warning) and rewritten. The temporary file of a write that
was killed (our one pattern, :data:`hf_uniform.io.TMP_PATTERN`) is removed by the next read or write once it
is an hour old (a younger one may belong to a run writing right now).

>>> import tempfile, numpy as np
>>> from datasets import Dataset
>>> from hf_uniform.embedders import Word2VecEmbedder
>>> ds = Dataset.from_dict({"text": ["a b", "b c"]})
>>> key = embedding_cache_key(ds, Word2VecEmbedder(vector_size=4))
>>> d = tempfile.mkdtemp()
>>> _ = save_embeddings(key, np.ones((2, 4), np.float32), cache_dir=d)
>>> load_embeddings(key, n_rows=2, cache_dir=d).shape
(2, 4)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UniformError
from .io import atomic_path, atomic_write_json, remove_stale_tmp

logger = logging.getLogger(__name__)

CACHE_ENV = "HF_UNIFORM_CACHE"
#: a temporary cache file untouched this long was left by a killed write (concurrent runs finish far sooner)
STALE_TMP_SECONDS = 3600
KEY_VERSION = 2  # bump when the meaning of cached vectors changes


def cache_root() -> Path:
    """The cache root: ``$HF_UNIFORM_CACHE``, else ``huggingface_hub.cached_assets_path("hf_uniform")``.

    Example:
        >>> cache_root() / "embeddings" == embedding_cache_dir()
        True
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from huggingface_hub import cached_assets_path

    return Path(cached_assets_path(library_name="hf_uniform"))


def embedding_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of cached embeddings: ``cache_dir`` if given, else ``cache_root() / "embeddings"``.

    Example:
        >>> embedding_cache_dir("/tmp/x").as_posix()
        '/tmp/x'
    """
    return Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "embeddings"


def model_cache_dir(kind: str = "m2v") -> Path:
    """Folder of cached models of one kind (``cache_root() / kind``).

    Example:
        >>> model_cache_dir().name
        'm2v'
    """
    return cache_root() / kind


def stable_hash(obj: Any, length: int = 20) -> str:
    """Hex SHA-256 of ``obj`` serialised as canonical JSON (sorted keys), truncated to ``length``.

    For keys that are *stored* (study run fingerprints and arms caches committed with a report, checkpoint
    keys): JSON of plain values hashes the same under every Python, dill and ``datasets`` version.
    ``datasets.fingerprint.Hasher`` (which ``filter_uniform``'s cache uses, as ``datasets`` does) hashes
    pickled bytes, which change with those versions, so a committed record would stop matching its rerun.

    Example:
        >>> stable_hash({"b": 1, "a": [2]}) == stable_hash({"a": [2], "b": 1})
        True
    """
    text = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def embedding_key_parts(ds: Any, embedder: Any) -> dict[str, Any] | None:
    """What an embedding cache key is made of, or ``None`` when ``ds``/``embedder`` cannot be keyed.

    ``None`` means: the dataset has no fingerprint (not a ``datasets.Dataset``) or the embedder reports
    :meth:`~hf_uniform.embedders.Embedder.cache_identity` ``None`` (e.g. a model object passed in memory).

    Example:
        >>> from datasets import Dataset
        >>> from hf_uniform.embedders import Word2VecEmbedder
        >>> parts = embedding_key_parts(Dataset.from_dict({"text": ["a"]}), Word2VecEmbedder(template="{text}"))
        >>> parts["embedder"]["template"], parts["n_rows"]
        ('{text}', 1)
    """
    fingerprint = getattr(ds, "_fingerprint", None)
    if not fingerprint:
        return None
    identity = embedder.cache_identity()
    if identity is None:
        return None
    text = None
    renderer = getattr(embedder, "renderer", None)
    if renderer is not None and hasattr(ds, "column_names"):
        try:
            text = renderer.describe(ds.column_names)
        except UniformError:
            text = None
    return {"version": KEY_VERSION, "fingerprint": str(fingerprint), "n_rows": len(ds), "text": text,
            "embedder": identity}


def embedding_cache_key(ds: Any, embedder: Any) -> str | None:
    """The cache key of ``embedder``'s vectors for ``ds`` (``None``: not cacheable, see :func:`embedding_key_parts`).

    Example:
        >>> from datasets import Dataset
        >>> from hf_uniform.embedders import Word2VecEmbedder
        >>> ds = Dataset.from_dict({"text": ["a"]})
        >>> embedding_cache_key(ds, Word2VecEmbedder()) != embedding_cache_key(ds, Word2VecEmbedder(seed=1))
        True
    """
    parts = embedding_key_parts(ds, embedder)
    return None if parts is None else stable_hash(parts, 32)


def _paths(key: str, cache_dir: str | os.PathLike | None) -> tuple[Path, Path]:
    if not key or any(c not in "0123456789abcdef" for c in key):
        raise UniformError(f"invalid embedding cache key {key!r}; use embedding_cache_key(ds, embedder)")
    folder = embedding_cache_dir(cache_dir)
    return folder / f"{key}.npy", folder / f"{key}.json"


def load_embeddings(key: str, *, n_rows: int | None = None,
                    cache_dir: str | os.PathLike | None = None) -> np.ndarray | None:
    """The cached float32 matrix for ``key``, or ``None`` on a miss or a damaged/mismatched entry.

    Args:
        key: from :func:`embedding_cache_key`.
        n_rows: expected number of rows; an entry of another length is treated as a miss.
        cache_dir: folder of the cache (default :func:`embedding_cache_dir`).

    Example:
        >>> import tempfile
        >>> load_embeddings("ab12", cache_dir=tempfile.mkdtemp()) is None
        True
    """
    path, _ = _paths(key, cache_dir)
    remove_stale_tmp(path.parent, older_than=STALE_TMP_SECONDS)  # killed writes: gone on the next use, hit or miss
    if not path.exists():
        return None
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        logger.warning("ignoring damaged embedding cache entry %s (%s); it will be rewritten", path, err)
        return None
    if x.ndim != 2 or x.dtype != np.float32 or (n_rows is not None and x.shape[0] != n_rows):
        logger.warning("ignoring embedding cache entry %s: shape %s %s does not match %s rows", path, x.shape,
                       x.dtype, n_rows)
        return None
    logger.info("embedding cache hit: %s (%d x %d)", path, x.shape[0], x.shape[1])
    return x


def save_embeddings(key: str, embeddings: np.ndarray, *, meta: dict[str, Any] | None = None,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """Store ``embeddings`` (as float32 ``.npy``) under ``key``, atomically; returns the ``.npy`` path.

    ``meta`` (e.g. :func:`embedding_key_parts`) is written beside it as JSON, for humans.

    Example:
        >>> import tempfile
        >>> save_embeddings("ab12", np.zeros((1, 2), np.float32), cache_dir=tempfile.mkdtemp()).suffix
        '.npy'
    """
    path, meta_path = _paths(key, cache_dir)
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise UniformError(f"embeddings to cache must be a 2-D (n, d) array, got shape {x.shape}")
    removed = remove_stale_tmp(path.parent, older_than=STALE_TMP_SECONDS)
    if removed:
        logger.info("removed %d temporary file(s) of killed cache writes from %s", len(removed), path.parent)
    atomic_write_json(meta_path, {**(meta or {}), "shape": list(x.shape), "dtype": "float32",
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, x, allow_pickle=False)
    logger.info("cached embeddings %s (%d x %d)", path, x.shape[0], x.shape[1])
    return path


def path_signature(path: str | os.PathLike) -> dict[str, Any] | None:
    """Name, size and modification time of the files of a local model folder (``None`` if not local).

    Part of cache keys, so a model re-trained in place at the same path gets new keys.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "w.bin").write_bytes(b"12")
        >>> path_signature(d)["files"][0][:2]
        ['w.bin', 2]
        >>> path_signature("some/hub-id") is None
        True
    """
    p = Path(path).expanduser()
    if not p.exists():
        return None
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    sig = []
    for f in files:
        st = f.stat()
        sig.append([f.relative_to(p).as_posix() if f != p else f.name, st.st_size, st.st_mtime_ns])
    return {"path": str(p.resolve()), "files": sig}
