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
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import UniformError
from .text import TextRenderer

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (the Word2Vec vocabulary units).

    Example:
        >>> tokenize("Add 2 and 3!")
        ['add', '2', 'and', '3']
    """
    return _TOKEN.findall(text.lower())


def _stable_hash(obj: Any) -> int:
    # gensim seeds each word vector with hashfxn(word + seed); Python's hash() is salted per process.
    return zlib.crc32(str(obj).encode("utf-8"))


class Embedder:
    """Base class: render a batch of rows, encode the texts, return ``{output_column: array}``.

    Subclasses implement :meth:`encode` and :meth:`config`; those that learn from the corpus implement
    :meth:`fit`.

    Example:
        >>> class Length(Embedder):
        ...     def encode(self, texts):
        ...         return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)
        >>> Length(text_columns=["q"])({"q": ["ab"]})["embedding"].tolist()
        [[2.0, 1.0]]
    """

    needs_fit = False

    def __init__(self, *, text_columns: Sequence[str] | str | None = None, template: str | None = None,
                 output_column: str = "embedding"):
        self.renderer = TextRenderer(text_columns, template)
        self.output_column = output_column

    # -- to implement -------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` as a float32 ``(len(texts), d)`` array."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Everything that changes the vectors (used for provenance and the embedding cache key)."""
        return {"embedder": type(self).__name__, **self.renderer.config()}

    def fit(self, data: Any) -> Embedder:
        """Learn from the corpus (a ``Dataset`` or an iterable of texts); a no-op for pretrained models."""
        return self

    # -- shared -------------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        """Length of the vectors."""
        return int(self.encode(["dimension probe"]).shape[1])

    def features(self, ds: Any) -> Any:
        """``ds.features`` plus the output column as an Arrow fixed-size float32 list.

        Example:
            >>> from datasets import Dataset
            >>> emb = Word2VecEmbedder(vector_size=4).fit(["a b"])
            >>> emb.features(Dataset.from_dict({"text": ["a"]}))["embedding"]
            List(Value('float32'), length=4)
        """
        from datasets import Features, List, Value

        feats = Features(dict(ds.features))
        feats[self.output_column] = List(Value("float32"), length=self.dimension)
        return feats

    def texts(self, batch: Mapping[str, Sequence[Any]]) -> list[str]:
        """The rendered texts of a batch."""
        return self.renderer(batch)

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Embed one batch; the signature ``Dataset.map(batched=True)`` expects."""
        vectors = np.asarray(self.encode(self.texts(batch)), dtype=np.float32)
        return {self.output_column: vectors}


def _iter_texts(data: Any, renderer: TextRenderer, batch_size: int = 1000) -> Iterable[str]:
    if hasattr(data, "column_names") and hasattr(data, "iter"):
        renderer.required_columns(data.column_names)
        for batch in data.iter(batch_size=batch_size):
            yield from renderer(batch)
    elif isinstance(data, str):
        yield data
    else:
        yield from data


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

    def __init__(self, vector_size: int = 300, window: int = 5, min_count: int = 1, epochs: int = 5,
                 seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.vector_size, self.window, self.min_count = vector_size, window, min_count
        self.epochs, self.seed = epochs, seed
        self.model: Any = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "vector_size": self.vector_size, "window": self.window,
                "min_count": self.min_count, "epochs": self.epochs, "seed": self.seed}

    def fit(self, data: Any) -> Word2VecEmbedder:
        """Train Word2Vec on the corpus: a ``Dataset`` (rendered with this embedder's renderer) or texts."""
        from gensim.models import Word2Vec

        sentences = [tokenize(t) for t in _iter_texts(data, self.renderer)]
        if not any(sentences):
            raise UniformError("the corpus has no words to train Word2Vec on; check the text columns")
        logger.info("training Word2Vec (d=%d, %d epochs) on %d texts", self.vector_size, self.epochs,
                    len(sentences))
        self.model = Word2Vec(sentences, vector_size=self.vector_size, window=self.window,
                              min_count=self.min_count, epochs=self.epochs, seed=self.seed, workers=1,
                              hashfxn=_stable_hash)
        return self

    @property
    def dimension(self) -> int:
        return self.vector_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.model is None:
            raise UniformError("Word2VecEmbedder is not fitted; call .fit(dataset) before embedding")
        kv = self.model.wv
        out = np.zeros((len(texts), self.vector_size), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = [kv.key_to_index[w] for w in tokenize(text) if w in kv.key_to_index]
            if ids:
                out[i] = kv.vectors[ids].mean(axis=0)
        return out


class SentenceTransformerEmbedder(Embedder):
    """Embed with a sentence-transformers model (Hub name or local path), L2-normalised by default.

    Args:
        model: model name or path, or a loaded ``SentenceTransformer``.
        device: ``None`` picks CUDA when available.
        batch_size: encode batch size.
        normalize: L2-normalise the vectors.
        max_seq_length: truncate inputs to this many tokens (``None`` keeps the model's).

    Example:
        >>> emb = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> ds = ds.map(emb, batched=True, features=emb.features(ds))  # doctest: +SKIP
    """

    def __init__(self, model: Any = "sentence-transformers/all-MiniLM-L6-v2", device: str | None = None,
                 batch_size: int = 64, normalize: bool = True, max_seq_length: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self._model = None if isinstance(model, str) else model
        self.device, self.batch_size = device, batch_size
        self.normalize, self.max_seq_length = normalize, max_seq_length

    def config(self) -> dict[str, Any]:
        return {**super().config(), "model": self.model_name, "normalize": self.normalize,
                "max_seq_length": self.max_seq_length}

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use)."""
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise UniformError("SentenceTransformerEmbedder needs sentence-transformers; "
                                   "pip install 'hf-uniform[st]'") from err
            self._model = SentenceTransformer(self.model_name, device=self.device)
            if self.max_seq_length:
                self._model.max_seq_length = self.max_seq_length
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=self.normalize, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


def resolve_embedder(spec: str | Embedder | None, **kwargs: Any) -> Embedder:
    """An :class:`Embedder` from a spec: ``"w2v"`` (default), ``"st:MODEL"``, or an instance.

    Keyword arguments (``text_columns``, ``template``) go to the constructor.

    Example:
        >>> type(resolve_embedder("w2v")).__name__
        'Word2VecEmbedder'
        >>> resolve_embedder("st:some/model").model_name
        'some/model'
    """
    if isinstance(spec, Embedder):
        return spec
    spec = spec or "w2v"
    name, _, arg = spec.partition(":")
    if name in ("w2v", "word2vec") and not arg:
        return Word2VecEmbedder(**kwargs)
    if name in ("st", "sentence-transformers") and arg:
        return SentenceTransformerEmbedder(arg, **kwargs)
    raise UniformError(f"unknown embedder {spec!r}; use 'w2v' or 'st:MODEL_NAME_OR_PATH'")
