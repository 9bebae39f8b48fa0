"""The commit of a Hub dataset that :func:`hf_uniform.io.load_hub_dataset` reads: resolved online before the
load, told from the ``datasets`` cache offline (what ``selection.json`` records as ``input_revision``).

Example:
    >>> from datasets import Dataset
    >>> cached_commit(Dataset.from_dict({"a": [1]}))  # rows in memory: no cache folder to tell it from
    >>> bool(COMMIT_ID.fullmatch("7711df7cc13614a7efa69fbc829ced737f8e5308"))
    True
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from .errors import UniformError

logger = logging.getLogger(__name__)

#: a Hub commit id (what ``HfApi.dataset_info(...).sha`` gives)
COMMIT_ID = re.compile(r"[0-9a-f]{40}")


def hub_commit(repo_id: str, revision: str | None) -> tuple[str | None, str | None]:
    """``(commit id, None)`` of ``revision`` (default ``main``) of a Hub dataset, or ``(None, why not)``.

    One ``dataset_info`` request for the ``sha`` alone, to the endpoint and with the token ``datasets`` uses
    (``HF_ENDPOINT``; the token of ``HF_TOKEN`` or the saved login). A failure is returned, not raised:
    ``load_dataset`` then reports a missing repo or revision in its own words, and a load that works is not
    failed for want of the id.
    """
    import datasets
    from huggingface_hub import HfApi

    try:
        api = HfApi(endpoint=datasets.config.HF_ENDPOINT)
        sha = api.dataset_info(repo_id, revision=revision, expand=["sha"], timeout=30).sha  # not the file list
    except Exception as err:  # noqa: BLE001 - whatever went wrong, the load itself decides
        return None, f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:120]}"
    if isinstance(sha, str) and COMMIT_ID.fullmatch(sha):
        return sha, None
    return None, f"the Hub answered no commit id ({sha!r:.60})"


def cached_commit(ds: Any) -> str | None:
    """The commit id a Hub dataset loaded from the ``datasets`` cache was prepared from: the name of the folder
    its Arrow files are in (``<cache>/<user>___<name>/<config>/<version>/<commit>/``); ``None`` otherwise."""
    files = getattr(ds, "cache_files", None) or []
    name = Path(files[0]["filename"]).parent.name if files else ""
    return name if COMMIT_ID.fullmatch(name) else None


def check_offline_revision(repo_id: str, revision: str, commit: str | None) -> None:
    """Offline, ``datasets`` reads the latest cached copy whatever the revision: refuse a copy that is known
    not to be ``revision``; warn when it cannot be checked."""
    from huggingface_hub import constants

    wanted = revision if COMMIT_ID.fullmatch(revision) else None
    if wanted is None and ".." not in revision:  # a branch or tag: what it named when last read by name online
        ref = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}" / "refs" / revision
        try:
            text = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
        except OSError:
            text = ""
        wanted = text if COMMIT_ID.fullmatch(text) else None
    if commit is not None and wanted is None and re.fullmatch(r"[0-9a-f]{7,39}", revision):
        wanted = commit if commit.startswith(revision) else revision  # a short commit id
    if commit is not None and wanted is not None and wanted != commit:
        raise UniformError(f"cannot load the Hub dataset {repo_id!r} at revision {revision!r}: offline, and the "
                           f"datasets cache holds commit {commit[:12]}, not {wanted[:12]}; unset HF_HUB_OFFLINE "
                           "and check the network to load that revision, or drop --revision to use the cached copy")
    if commit is not None and wanted is None:
        logger.warning("offline: cannot check that the cached copy of %s is revision %r (datasets reads the "
                       "latest cached copy when offline)", repo_id, revision)
