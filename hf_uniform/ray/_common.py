"""Connecting to Ray and calling it: the real ``ray`` package, remote functions, the cluster's size."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hf_uniform.errors import UniformError, missing_extra

logger = logging.getLogger("hf_uniform.ray")

INSTALL_HINT = "pip install 'hf-uniform[ray]'"


def _ray() -> Any:
    """The real ``ray`` package (this module is ``hf_uniform.ray``; absolute imports never resolve to it)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise missing_extra("the Ray backend needs Ray Data", "ray") from err
    return ray


def _raise_cause(err: Exception) -> None:
    """Re-raise the UniformError inside a RayTaskError with its own one-line message."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, UniformError):
        raise type(cause)(str(cause)) from err  # same kind (e.g. MissingFileError), one line
    raise err


def _get(refs: Any) -> Any:
    ray = _ray()
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as err:
        _raise_cause(err)


_REMOTE: dict[str, Any] = {}


def _remote(fn: Any) -> Any:
    """``ray.remote(fn)``, made once per function (defining remote functions needs ray imported)."""
    if fn.__name__ not in _REMOTE:
        _REMOTE[fn.__name__] = _ray().remote(fn)
    return _REMOTE[fn.__name__]


# -- connecting ---------------------------------------------------------------------------------------

def init_ray(address: str | None = "local", *, num_cpus: int | None = None, quiet: bool = False) -> bool:
    """Start a local Ray instance (``"local"``) or join a cluster (``"auto"``, ``"ray://host:10001"``, ...).

    Reuses an instance this process is already connected to. Returns ``True`` when this call started or
    joined one (the caller then calls ``ray.shutdown()`` when done).

    Example:
        >>> init_ray("local")  # the tests' instance is already running
        False
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING if quiet else logging.INFO,
                              "log_to_driver": not quiet}
    if address in (None, "", "local"):
        kwargs.update(num_cpus=num_cpus, include_dashboard=False)
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        raise UniformError(f"cannot join the Ray cluster at {address!r} ({err}); start it with `ray start "
                           "--head` or pass --ray local") from err
    return True


def cluster_info() -> dict[str, Any]:
    """Nodes, CPUs and GPUs of the connected Ray cluster, and the Ray version (for ``selection.json``).

    Example:
        >>> sorted(cluster_info())
        ['cpus', 'gpus', 'nodes', 'object_store_bytes', 'ray']
    """
    ray = _ray()
    res = ray.cluster_resources()
    return {"nodes": sum(1 for nd in ray.nodes() if nd.get("Alive")), "cpus": int(res.get("CPU", 0)),
            "gpus": int(res.get("GPU", 0)), "object_store_bytes": int(res.get("object_store_memory", 0)),
            "ray": ray.__version__}


@contextmanager
def _ordered(ds: Any, progress: bool = True) -> Iterator[None]:
    """Keep the block order while ``ds`` executes, with or without Ray Data's progress bars (both settings of
    the dataset's ``DataContext`` are restored afterwards)."""
    ctx = ds.context
    opts = ctx.execution_options
    old = opts.preserve_order, ctx.enable_progress_bars
    opts.preserve_order = True
    if not progress:
        ctx.enable_progress_bars = False
    try:
        yield
    finally:
        opts.preserve_order, ctx.enable_progress_bars = old
