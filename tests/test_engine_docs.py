"""The docstring examples of the engine modules run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["hf_uniform.engine", "hf_uniform.engine.lazy", "hf_uniform.engine.store", "hf_uniform.engine.sweep",
           "hf_uniform.engine.reference", "hf_uniform.engine.driver", "hf_uniform.engine.distance",
           "hf_uniform.engine.exact", "hf_uniform.checkpoint", "hf_uniform.distributed", "hf_uniform.coreset"]


@pytest.mark.parametrize("name", MODULES)
def test_engine_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
