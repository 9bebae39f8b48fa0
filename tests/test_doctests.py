"""Every example in every docstring of the package runs and prints what it claims.

The modules are found by walking ``hf_uniform/`` (nothing to keep in sync by hand); each runs in a fresh
temporary working directory with the test session's offline settings (``tests/conftest.py``).
"""

from __future__ import annotations

import doctest
import importlib
import os

import pytest
from test_package import module_files

SKIP = {"hf_uniform.cli.__main__"}  # runs the CLI on import
MODULES = [name for name in module_files() if name not in SKIP]
NEEDS = {  # optional extras a module's examples import; the test skips without them
    "hf_uniform.ray": "ray", "hf_uniform.train": "trl", "hf_uniform.scripts": "trl",
    "hf_uniform.evaluation": "transformers",
    "hf_uniform.study": "transformers", "hf_uniform.embed_static": "model2vec",
}


@pytest.fixture(scope="module", autouse=True)
def quiet_libraries():
    """Import DeepSpeed and silence progress bars before the examples run, so only their output is compared."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import datasets

    try:
        import transformers
    except ImportError:  # pragma: no cover - the [train] extra is optional
        transformers = None
    try:
        import deepspeed  # noqa: F401 - its logger binds to the real stdout here, not doctest's
    except ImportError:  # pragma: no cover - deepspeed is optional
        pass
    datasets.disable_progress_bars()
    if transformers is not None:
        transformers.utils.logging.disable_progress_bar()
    yield
    datasets.enable_progress_bars()
    if transformers is not None:
        transformers.utils.logging.enable_progress_bar()


def test_every_module_is_collected():
    assert len(MODULES) > 60
    assert {"hf_uniform.engine.reference", "hf_uniform.hub.cards", "hf_uniform.scripts.sft"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, request, tmp_path, monkeypatch):
    for prefix, extra in NEEDS.items():
        if name == prefix or name.startswith(prefix + "."):
            pytest.importorskip(extra, reason=f"{name}'s examples need {extra}")
    if name.startswith("hf_uniform.ray"):
        request.getfixturevalue("local_ray")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_UNIFORM_CACHE", str(tmp_path / "cache"))
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
