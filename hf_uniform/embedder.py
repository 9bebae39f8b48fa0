"""The embedder base class: render a batch of rows, encode the texts, return ``{output_column: array}``.

The concrete embedders live in :mod:`hf_uniform.embedders` (Word2Vec, sentence-transformers) and
:mod:`hf_uniform.embed_static` (model2vec); every name here is also importable from :mod:`hf_uniform.embedders`.

>>> tokenize("Hello, world")
['hello', 'world']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .text import TextRenderer

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (the Word2Vec vocabulary units).

    Example:
        >>> tokenize("Add 2 and 3!")
        ['add', '2', 'and', '3']
    """
    return _TOKEN.findall(text.lower())


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
    progress = False  # show a bar while fitting (set by :func:`~hf_uniform.integration.embed`)

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

    @property
    def fitted(self) -> bool:
        """True when :meth:`fit` has run (always true for embedders that do not learn from the corpus)."""
        return not self.needs_fit

    # -- optional hooks -----------------------------------------------------------------------------
    def prepare(self) -> Embedder:
        """Load (download, distil) the model now rather than at the first batch; a no-op by default.

        :func:`~hf_uniform.integration.embed` calls it on one process per node first under a distributed
        launcher, so the other processes find the model in the cache.
        """
        return self

    def cache_identity(self) -> dict[str, Any] | None:
        """What the embedding cache key is made of: :meth:`config` plus library versions (plus, for an
        embedder already fitted, the fingerprint of the corpus it was fitted on).

        Return ``None`` to disable caching (e.g. for a model object whose weights cannot be identified, or
        an embedder fitted on texts that are not a fingerprinted ``Dataset``).

        Example:
            >>> from hf_uniform.embedders import Word2VecEmbedder
            >>> Word2VecEmbedder(vector_size=8).cache_identity()["vector_size"]
            8
        """
        ident = {**self.config(), "versions": self._versions()}
        if self.needs_fit and self.fitted:
            fitted_on = getattr(self, "_fitted_on", None)
            if fitted_on is None:
                return None
            ident["fitted_on"] = fitted_on
        return ident

    def _versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        out = {}
        for pkg in ("hf-uniform", *self._libraries):
            try:
                out[pkg] = version(pkg)
            except PackageNotFoundError:
                out[pkg] = "unknown"
        return out

    _libraries: tuple[str, ...] = ()

    def defer_fit(self, data: Any) -> None:
        """Fit on ``data`` only when :meth:`encode` is first needed (used after an embedding cache hit).

        Example:
            >>> from hf_uniform.embedders import Word2VecEmbedder
            >>> emb = Word2VecEmbedder(vector_size=4); emb.defer_fit(["a b", "b c"])
            >>> emb.encode(["a"]).shape
            (1, 4)
        """
        self._pending_fit = data

    # -- shared -------------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        """Length of the vectors."""
        return int(self.encode(["dimension probe"]).shape[1])

    def features(self, ds: Any) -> Any:
        """``ds.features`` plus the output column as an Arrow fixed-size float32 list.

        Example:
            >>> from datasets import Dataset
            >>> from hf_uniform.embedders import Word2VecEmbedder
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
