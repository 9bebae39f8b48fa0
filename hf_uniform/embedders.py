"""Embedders usable as ``ds.map(embedder, batched=True)``.

Each embedder renders rows with a :class:`~hf_uniform.text.TextRenderer`, turns the texts into a float32
``(batch, d)`` array and returns it under ``output_column`` (default ``"embedding"``). Pass
``features=embedder.features(ds)`` to ``map`` to store the column as an Arrow ``fixed_size_list``:

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"instruction": ["add", "sub"], "output": ["1 + 1", "1 - 1"]})
>>> emb = Word2VecEmbedder(vector_size=8).fit(ds)
>>> ds.map(emb, batched=True, features=emb.features(ds)).features["embedding"]
List(Value('float32'), length=8)

* :class:`Word2VecEmbedder`: the paper's. Word2Vec trained on the corpus itself (``fit``), each example the
  mean of its word vectors. Deterministic for a seed; needs no download.
* :class:`SentenceTransformerEmbedder`: any sentence-transformers model (name or local path).
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .embed_static import Model2VecEmbedder, distill_static_model, distilled_model_path
from .embedder import Embedder, _iter_texts, tokenize
from .errors import UniformError, missing_extra

logger = logging.getLogger(__name__)

#: :meth:`Word2VecEmbedder.fit` warns when the mean pairwise cosine distance of its vectors over the first
#: :data:`SPREAD_SAMPLE` texts is below this: Word2Vec trained on too small a corpus gives nearly parallel mean
#: vectors, so distances (and h, the subset's minimum pairwise distance) come out near 0. Measured (d = 300):
#: Alpaca 9k 0.176, the 1,200-row demo set 0.0025, Alpaca's first 1,000 rows 9e-6.
NEAR_PARALLEL_SPREAD = 0.01
SPREAD_SAMPLE = 256

__all__ = ["Embedder", "Model2VecEmbedder", "SentenceTransformerEmbedder", "Word2VecEmbedder", "distill_static_model",
           "distilled_model_path", "resolve_embedder", "tokenize"]


def _stable_hash(obj: Any) -> int:
    # gensim seeds each word vector with hashfxn(word + seed); Python's hash() is salted per process.
    return zlib.crc32(str(obj).encode("utf-8"))


class Word2VecEmbedder(Embedder):
    """The paper's embedder: Word2Vec trained on the corpus, each example the mean of its word vectors.

    Training uses one worker and a process-independent hash, so the vectors are identical for a given
    ``seed`` in every run. Rows whose words are all unknown get a zero vector (drop them before cosine
    selection with ``drop_zero_vectors=True``).

    Args:
        vector_size: dimension of the word vectors.
        window: context window.
        min_count: ignore words rarer than this.
        epochs: training passes over the corpus.
        seed: random seed.
        text_columns, template: how rows become text (see :class:`~hf_uniform.text.TextRenderer`).

    Example:
        >>> emb = Word2VecEmbedder(vector_size=16, seed=0).fit(["the cat sat", "the dog ran"])
        >>> emb.encode(["the cat", "zebra"]).shape, float(abs(emb.encode(["zebra"])).sum())
        ((2, 16), 0.0)
    """

    needs_fit = True
    _libraries = ("gensim",)

    def __init__(self, vector_size: int = 300, window: int = 5, min_count: int = 1, epochs: int = 5,
                 seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.vector_size, self.window, self.min_count = vector_size, window, min_count
        self.epochs, self.seed = epochs, seed
        self.model: Any = None
        self.spread: float | None = None  # set by fit: mean pairwise cosine distance over a sample of texts

    def config(self) -> dict[str, Any]:
        return {**super().config(), "vector_size": self.vector_size, "window": self.window,
                "min_count": self.min_count, "epochs": self.epochs, "seed": self.seed}

    def fit(self, data: Any) -> Word2VecEmbedder:
        """Train Word2Vec on the corpus: a ``Dataset`` (rendered with this embedder's renderer) or texts."""
        from gensim.models import Word2Vec
        from gensim.models.callbacks import CallbackAny2Vec
        from tqdm.auto import tqdm

        self._fitted_on = getattr(data, "_fingerprint", None)
        sentences = [tokenize(t) for t in _iter_texts(data, self.renderer)]
        if not any(sentences):
            raise UniformError("the corpus has no words to train Word2Vec on; check the text columns "
                               "(--text-columns / --template)")
        logger.info("training Word2Vec (d=%d, %d epochs) on %d texts", self.vector_size, self.epochs,
                    len(sentences))

        class _Bar(CallbackAny2Vec):
            def __init__(self, bar: Any):
                self.bar = bar

            def on_epoch_end(self, model: Any) -> None:
                self.bar.update(1)

        with tqdm(total=self.epochs, desc="train Word2Vec", unit="epoch", disable=not self.progress) as bar:
            self.model = Word2Vec(sentences, vector_size=self.vector_size, window=self.window,
                                  min_count=self.min_count, epochs=self.epochs, seed=self.seed, workers=1,
                                  hashfxn=_stable_hash, callbacks=[_Bar(bar)])
        self.model.callbacks = ()  # keep the model picklable / hashable by datasets
        self.spread = self._spread(sentences[:SPREAD_SAMPLE])
        if self.spread is not None and self.spread < NEAR_PARALLEL_SPREAD:
            logger.warning("Word2Vec trained on %d texts gives nearly parallel vectors (mean pairwise cosine "
                           "distance %.2g over %d texts, below %g): distances and h come out near 0, so the "
                           "selection says little; on a small pool use a pretrained embedder (st:MODEL or "
                           "m2v:MODEL)", len(sentences), self.spread, min(len(sentences), SPREAD_SAMPLE),
                           NEAR_PARALLEL_SPREAD)
        return self

    def _spread(self, sentences: Sequence[Sequence[str]]) -> float | None:
        """Mean pairwise cosine distance of the mean vectors of ``sentences`` (token lists; rows without a
        known word left out), in float64; ``None`` with fewer than 2 such rows."""
        kv = self.model.wv
        rows = [kv.vectors[[kv.key_to_index[w] for w in words if w in kv.key_to_index]].mean(axis=0)
                for words in sentences if any(w in kv.key_to_index for w in words)]
        if len(rows) < 2:
            return None
        x = np.asarray(rows, dtype=np.float64)
        norms = np.linalg.norm(x, axis=1)
        u = x[norms > 0] / norms[norms > 0, None]
        if len(u) < 2:
            return None
        m = len(u)
        return float((m * m - np.square(u.sum(axis=0)).sum()) / (m * (m - 1)))  # mean of 1 - u_i.u_j, i != j

    @property
    def dimension(self) -> int:
        return self.vector_size

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.model is None and getattr(self, "_pending_fit", None) is not None:
            data, self._pending_fit = self._pending_fit, None
            self.fit(data)
        if self.model is None:
            raise UniformError("Word2VecEmbedder is not fitted; call .fit(dataset) before embedding")
        kv = self.model.wv
        out = np.zeros((len(texts), self.vector_size), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = [kv.key_to_index[w] for w in tokenize(text) if w in kv.key_to_index]
            if ids:
                out[i] = kv.vectors[ids].mean(axis=0)
        return out


def _local_rank() -> int | None:
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value and value.lstrip("-").isdigit() else None


class SentenceTransformerEmbedder(Embedder):
    """Embed with a sentence-transformers model (Hub name or local path), L2-normalised by default.

    Args:
        model: model name or path, or a loaded ``SentenceTransformer`` (not cached: its weights cannot be
            identified).
        device: ``None`` picks CUDA when available; ``"cpu"``, ``"cuda:1"``...; ``"all"`` uses every visible
            GPU through sentence-transformers' multi-process pool (one process per GPU; under a distributed
            launcher, only this rank's GPU ``cuda:LOCAL_RANK``; on a machine without GPU, the CPU); a list
            such as ``["cuda:0", "cuda:1"]`` or ``["cpu", "cpu"]`` starts a pool on those devices.
        batch_size: encode batch size (per device).
        normalize: L2-normalise the vectors.
        max_seq_length: truncate inputs to this many tokens (``None`` keeps the model's).

    A pool is started at the first batch and stopped by :meth:`close` (or at exit).

    Example:
        >>> emb = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2", device="all")  # doctest: +SKIP
        >>> ds = ds.map(emb, batched=True, batch_size=4096, features=emb.features(ds))  # doctest: +SKIP
        >>> emb.close()  # doctest: +SKIP
    """

    _libraries = ("sentence-transformers", "transformers", "torch")

    def __init__(self, model: Any = "sentence-transformers/all-MiniLM-L6-v2",
                 device: str | Sequence[str] | None = None, batch_size: int = 64, normalize: bool = True,
                 max_seq_length: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self._model = None if isinstance(model, str) else model
        self._in_memory = self._model is not None
        if device is not None and not isinstance(device, str):
            device = [str(d) for d in device]
            if not device:
                raise UniformError("device=[] lists no device; pass e.g. ['cuda:0', 'cuda:1'] or 'all'")
        self.device, self.batch_size = device, batch_size
        self.normalize, self.max_seq_length = normalize, max_seq_length
        self._pool: Any = None
        self._finalizer: Any = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "model": self.model_name, "normalize": self.normalize,
                "max_seq_length": self.max_seq_length}

    def cache_identity(self) -> dict[str, Any] | None:
        if self._in_memory:
            logger.info("not caching embeddings of an in-memory SentenceTransformer; pass its name or path")
            return None
        from .cache import path_signature

        return {**super().cache_identity(), "model_files": path_signature(self.model_name)}

    def target_devices(self) -> list[str]:
        """The devices this embedder encodes on (more than one: a multi-process pool).

        Example:
            >>> SentenceTransformerEmbedder("m", device=["cpu", "cpu"]).target_devices()
            ['cpu', 'cpu']
        """
        import torch

        if isinstance(self.device, list):
            return list(self.device)
        if self.device != "all":
            return [self.device] if self.device else []
        if not torch.cuda.is_available():
            logger.info("device='all': no GPU visible, encoding on the CPU")
            return ["cpu"]
        count = torch.cuda.device_count()
        local = _local_rank()
        from .distributed import launched_distributed

        if local is not None and launched_distributed():  # one process per GPU already: use ours only
            return [f"cuda:{local % count}"]
        return [f"cuda:{i}" for i in range(count)]

    @property
    def min_batch_rows(self) -> int:
        """Rows per :meth:`encode` call that keep every pooled device busy (used by ``embed``)."""
        n = len(self.target_devices())
        return self.batch_size * 16 * n if n > 1 else 0

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use)."""
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise missing_extra("SentenceTransformerEmbedder needs sentence-transformers", "st") from err
            devices = self.target_devices()
            load_on = devices[0] if len(devices) == 1 else ("cpu" if devices else None)
            try:
                self._model = SentenceTransformer(self.model_name, device=load_on)
            except OSError as err:
                raise UniformError(f"cannot load sentence-transformers model {self.model_name!r} "
                                   f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                                   "pass a local model folder or a Hub id available offline") from err
            if self.max_seq_length:
                self._model.max_seq_length = self.max_seq_length
        return self._model

    def prepare(self) -> SentenceTransformerEmbedder:
        _ = self.model
        return self

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def _get_pool(self) -> Any:
        if self._pool is None:
            import weakref

            devices = self.target_devices()
            logger.info("starting a sentence-transformers pool on %s", devices)
            self._pool = self.model.start_multi_process_pool(target_devices=devices)
            self._finalizer = weakref.finalize(self, type(self.model).stop_multi_process_pool, self._pool)
        return self._pool

    def close(self) -> None:
        """Stop the multi-process pool, if one was started (safe to call twice).

        Example:
            >>> SentenceTransformerEmbedder("m").close()
        """
        if self._finalizer is not None:
            self._finalizer()
        self._pool = self._finalizer = None

    def __enter__(self) -> SentenceTransformerEmbedder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pool"] = state["_finalizer"] = None  # processes and queues do not pickle
        return state

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        kwargs: dict[str, Any] = {"batch_size": self.batch_size, "convert_to_numpy": True,
                                  "normalize_embeddings": self.normalize, "show_progress_bar": False}
        if len(self.target_devices()) > 1:
            pool = self._get_pool()
            kwargs.update(pool=pool, chunk_size=max(1, math.ceil(len(texts) / len(pool["processes"]))))
        vecs = self.model.encode(texts, **kwargs)
        return np.asarray(vecs, dtype=np.float32)


def resolve_embedder(spec: str | Embedder | None, **kwargs: Any) -> Embedder:
    """An :class:`Embedder` from a spec or an instance.

    Specs: ``"w2v"`` (default), ``"st:MODEL"`` (sentence-transformers), ``"m2v:PATH_OR_ID"`` (a model2vec
    model), ``"m2v-distill:ST_MODEL"`` (a static model distilled offline from a sentence-transformers model
    and cached). Keyword arguments (``text_columns``, ``template``, ...) go to the constructor.

    Example:
        >>> type(resolve_embedder("w2v")).__name__
        'Word2VecEmbedder'
        >>> resolve_embedder("st:some/model").model_name
        'some/model'
        >>> resolve_embedder("m2v-distill:some/st-model").distill_from
        'some/st-model'
    """
    if isinstance(spec, Embedder):
        return spec
    spec = spec or "w2v"
    name, _, arg = spec.partition(":")
    if name in ("w2v", "word2vec") and not arg:
        return Word2VecEmbedder(**kwargs)
    if name in ("st", "sentence-transformers") and arg:
        return SentenceTransformerEmbedder(arg, **kwargs)
    if name in ("m2v", "model2vec") and arg:
        return Model2VecEmbedder(model=arg, **kwargs)
    if name == "m2v-distill" and arg:
        return Model2VecEmbedder(distill_from=arg, **kwargs)
    raise UniformError(f"unknown embedder {spec!r}; use 'w2v', 'st:MODEL', 'm2v:MODEL2VEC_MODEL' or "
                       "'m2v-distill:ST_MODEL'")
