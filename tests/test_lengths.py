"""hf_uniform.lengths and the length-matched random baseline: values against hand computation and numpy."""

from __future__ import annotations

import numpy as np
import pytest

from hf_uniform.baselines import length_bins, length_matched_subset
from hf_uniform.errors import UniformError
from hf_uniform.lengths import length_summary, lengths_block, render_lengths_table, response_text, row_lengths

ROWS = [
    {"instruction": "Add two numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Name a colour.", "input": "", "output": "Blue is a colour."},
    {"instruction": "Say nothing.", "input": "", "output": ""},
]


class CharTokenizer:
    """One token per character, so token counts are known exactly."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


def test_row_lengths_alpaca_by_hand():
    lens = row_lengths(ROWS)
    # the rendered text is the non-empty fields joined by newlines (what the embedder sees)
    texts = ["Add two numbers.\n2 and 3\n5", "Name a colour.\nBlue is a colour.", "Say nothing."]
    assert lens["text_chars"].tolist() == [len(t) for t in texts]
    assert lens["response_chars"].tolist() == [1, 17, 0]
    tok = row_lengths(ROWS, tokenizer=CharTokenizer())
    assert tok["text_tokens"].tolist() == lens["text_chars"].tolist()
    assert tok["response_tokens"].tolist() == [1, 17, 0]


def test_row_lengths_dataset_and_chat_rows():
    from datasets import Dataset

    ds = Dataset.from_list(ROWS)
    assert row_lengths(ds, batch_size=2)["text_chars"].tolist() == row_lengths(ROWS)["text_chars"].tolist()
    chat = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!"},
                          {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]}]
    assert response_text(chat[0]) == "hello!\nciao"
    lens = row_lengths(chat)
    assert lens["response_chars"].tolist() == [len("hello!\nciao")]
    assert lens["text_chars"].tolist() == [len("user: hi\nassistant: hello!\nuser: bye\nassistant: ciao")]
    # no response column: only the text length
    assert set(row_lengths([{"text": "abc"}])) == {"text_chars"}
    # a custom renderer (e.g. an embedder's texts method) replaces the default one
    assert row_lengths(ROWS, render=lambda b: ["x"] * len(b["output"]))["text_chars"].tolist() == [1, 1, 1]


def test_length_summary_matches_numpy():
    v = np.random.default_rng(0).integers(0, 1000, size=101)
    s = length_summary(v)
    assert s["rows"] == 101
    assert s["mean"] == pytest.approx(v.mean(), abs=1e-4)
    assert s["median"] == float(np.median(v)) and s["p90"] == pytest.approx(np.percentile(v, 90), abs=1e-4)
    with pytest.raises(UniformError):
        length_summary([])


def test_lengths_block_and_table():
    lens = {"text_chars": np.array([10, 20, 30, 40]), "response_chars": np.array([1, 2, 3, 4])}
    block = lengths_block(lens, {"subset": [0, 3], "full": None})
    assert block["subset"]["text_chars"]["mean"] == 25.0 and block["subset"]["response_chars"]["median"] == 2.5
    assert block["full"]["text_chars"]["rows"] == 4
    table = render_lengths_table(block).splitlines()
    assert table[0] == ("| set | rows | text chars mean | text chars median | text chars p90 | response chars mean "
                        "| response chars median | response chars p90 |")
    assert table[2].startswith("| subset | 2 | 25.0 | 25.0 | 37.0 |")


# ---------------------------------------------------------------------------------------- length-matched arm


def _hist(bins: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.bincount(bins[idx], minlength=int(bins.max()) + 1)


def test_length_bins_are_quantile_bins():
    lengths = np.arange(100)
    b = length_bins(lengths, 4)
    assert np.bincount(b).tolist() == [25, 25, 25, 25]
    assert all(lengths[b == i].max() < lengths[b == i + 1].min() for i in range(3))
    # heavy ties: equal lengths always share a bin, bins merge where quantile edges coincide
    tied = np.array([5] * 80 + list(range(20)))
    bt = length_bins(tied, 10)
    assert len(set(bt[tied == 5].tolist())) == 1
    with pytest.raises(UniformError):
        length_bins(lengths, 0)


@pytest.mark.parametrize("bins", [1, 5, 10])
def test_length_matched_histogram_duplicates_determinism(bins):
    rng = np.random.default_rng(1)
    lengths = np.concatenate([rng.integers(10, 60, 300), rng.integers(200, 2000, 200)])  # short-heavy pool
    target = np.argsort(lengths)[:80]  # a "uniform" subset of short rows
    picked = length_matched_subset(lengths, target, bins=bins, seed=7)
    b = length_bins(lengths, bins)
    assert len(picked) == len(target) == len(set(picked.tolist()))  # no duplicates, same size
    assert _hist(b, picked).tolist() == _hist(b, target).tolist()  # the same count in every bin
    assert picked.tolist() == sorted(picked.tolist()) and 0 <= picked.min() and picked.max() < len(lengths)
    assert length_matched_subset(lengths, target, bins=bins, seed=7).tolist() == picked.tolist()  # determinism
    if bins > 1:  # the matched draw is as short as the target, unlike a plain random draw
        assert lengths[picked].mean() < 0.5 * lengths.mean()
    other = length_matched_subset(lengths, target, bins=bins, seed=8)
    assert other.tolist() != picked.tolist()  # another seed, another draw


def test_length_matched_rejects_bad_target():
    with pytest.raises(UniformError):
        length_matched_subset(np.arange(10), np.array([1, 1]))
    with pytest.raises(UniformError):
        length_matched_subset(np.arange(10), np.array([10]))
