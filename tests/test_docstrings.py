"""The examples in the docstrings of the public modules run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["hf_uniform", "hf_uniform.selection", "hf_uniform.metrics", "hf_uniform.baselines",
           "hf_uniform.text", "hf_uniform.embed", "hf_uniform.integration", "hf_uniform.io",
           "hf_uniform.plots", "hf_uniform.errors", "hf_uniform.cli", "hf_uniform.hub"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
