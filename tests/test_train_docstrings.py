"""The docstring examples of hf_uniform.train run and print what they claim."""

from __future__ import annotations

import doctest
import importlib
import os

import pytest

pytest.importorskip("trl")

MODULES = ["hf_uniform.train", "hf_uniform.train.args", "hf_uniform.train.run", "hf_uniform.train.loss",
           "hf_uniform.train.optim", "hf_uniform.train.callbacks",
           "hf_uniform.train.tiny", "hf_uniform.train.data", "hf_uniform.train.sft"]


@pytest.fixture(scope="module", autouse=True)
def quiet_libraries():
    """Import DeepSpeed and silence progress bars before the examples run, so only their output is compared."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import datasets
    import transformers

    try:
        import deepspeed  # noqa: F401 - its logger binds to the real stdout here, not doctest's
    except ImportError:  # pragma: no cover - deepspeed is optional
        pass
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    yield
    transformers.utils.logging.enable_progress_bar()
    datasets.enable_progress_bars()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
