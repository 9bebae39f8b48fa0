"""Reading inputs as ``ray.data.Dataset``: a folder of Parquet / JSON Lines files, or a ``datasets.Dataset``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_uniform.errors import UniformError

from ._common import _ray

_PACKAGED_BUILDERS = {None, "", "json", "parquet", "csv", "text", "arrow", "generator", "pandas", "webdataset"}


def from_dataset(ds: Any, *, blocks: int | None = None) -> Any:
    """A ``datasets.Dataset`` as a ``ray.data.Dataset`` with the same rows, order and Arrow types.

    An unmodified Hub dataset goes through ``ray.data.from_huggingface`` (which reads the Hub's Parquet
    files in parallel); a local or transformed one is handed over as its Arrow table (what
    ``from_huggingface`` falls back to, without its Hub lookup), split into ``blocks`` blocks
    (default: about 2 per CPU of the cluster).

    Example:
        >>> from datasets import Dataset
        >>> from_dataset(Dataset.from_dict({"a": [1, 2, 3]}), blocks=2).take_all()
        [{'a': 1}, {'a': 2}, {'a': 3}]
    """
    import os

    import datasets

    ray = _ray()
    if not isinstance(ds, datasets.Dataset):
        raise UniformError(f"expected a datasets.Dataset, got {type(ds).__name__}; pass a split, e.g. ds['train']")
    if len(ds) == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if blocks is None:
        blocks = min(len(ds), max(1, 2 * int(ray.cluster_resources().get("CPU", 1))))
    hub = ds.info.dataset_name not in _PACKAGED_BUILDERS and os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "")
    if hub:
        return ray.data.from_huggingface(ds, override_num_blocks=blocks)
    return ray.data.from_arrow(ds.with_format("arrow")[:], override_num_blocks=blocks)


def read_input(source: Any, *, split: str = "train", blocks: int | None = None) -> Any:
    """Open ``source`` as a ``ray.data.Dataset``.

    ``source`` is a folder of ``.parquet`` files (``ray.data.read_parquet``), a folder of ``.jsonl``/``.json``
    files (``ray.data.read_json``), a ``datasets.Dataset``, or anything :func:`hf_uniform.io.load_input`
    reads (a file, a ``save_to_disk`` folder, a Hub id), converted with :func:`from_dataset`. Files in a
    folder are read in sorted path order.

    Example:
        >>> from datasets import Dataset
        >>> read_input(Dataset.from_dict({"a": [1, 2]})).count()
        2
    """
    import datasets

    ray = _ray()
    if isinstance(source, datasets.Dataset):
        return from_dataset(source, blocks=blocks)
    path = Path(source)
    if path.is_dir() and not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
        parquet = [str(p) for p in files if p.suffix == ".parquet"]
        jsonl = [str(p) for p in files if p.suffix in (".jsonl", ".json")]
        if parquet and jsonl:
            raise UniformError(f"{path} holds both Parquet and JSON files; point at a folder of one kind")
        if parquet:
            return ray.data.read_parquet(parquet, override_num_blocks=blocks)
        if jsonl:
            return ray.data.read_json(jsonl, lines=True, override_num_blocks=blocks) \
                if _accepts_lines(ray) else ray.data.read_json(jsonl, override_num_blocks=blocks)
        raise UniformError(f"{path} holds no .parquet or .jsonl files (nor a save_to_disk dataset)")
    from hf_uniform.io import load_input

    return from_dataset(load_input(source, split=split), blocks=blocks)


def _accepts_lines(ray: Any) -> bool:
    import inspect

    return "lines" in inspect.signature(ray.data.read_json).parameters
