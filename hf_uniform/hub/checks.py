"""Checks that run before anything is sent to the Hub: repo ids, secrets, and the records a push reads.

* :func:`validate_repo_id`: ``USER/NAME`` as the Hub accepts it.
* :func:`size_category`: the Hub's ``size_categories`` bucket of a row count.
* Secrets: credential-named keys are dropped from records (``_scrub``) and a push is refused when a file
  about to be uploaded holds a Hugging Face token (``_check_no_secret``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub.utils import HFValidationError
from huggingface_hub.utils import validate_repo_id as hf_validate_repo_id

from ..errors import MissingFileError, UniformError
from ..records import SELECTION_FILE, SelectionRecord

# credential-named keys (``hub_token``, ``token``, ``api_key``, ...), not ``pad_token`` or ``max_tokens``
_SECRET_KEY = re.compile(r"^(?:(?:hub|hf|huggingface|auth|access|api|push_to_hub|wandb)_)?token$|secret|"
                         r"passw(?:or)?d|api_?key|authorization|credential", re.IGNORECASE)
_TOKEN_LIKE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_TEXT_SUFFIXES = {".json", ".jsonl", ".md", ".txt", ".yaml", ".yml", ".jinja", ".py", ".cfg", ".ini", ".csv"}
_SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


# -- checks -----------------------------------------------------------------------------------------------


def validate_repo_id(repo_id: str) -> str:
    """Check that ``repo_id`` is ``USER/NAME`` as the Hub accepts it; return it.

    Raises:
        UniformError: the id has no namespace, more than one ``/``, or characters the Hub rejects.

    Example:
        >>> validate_repo_id("alice/alpaca-uniform-4.5k")
        'alice/alpaca-uniform-4.5k'
        >>> validate_repo_id("alpaca")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: invalid repo id 'alpaca': use USER/NAME, e.g. alice/alpaca-uniform
    """
    hint = "use USER/NAME, e.g. alice/alpaca-uniform"
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:  # the Hub's validator also accepts a bare NAME
        raise UniformError(f"invalid repo id {repo_id!r}: {hint}")
    try:
        hf_validate_repo_id(repo_id)
    except HFValidationError as err:
        reason = str(err).splitlines()[0].rstrip(".")
        raise UniformError(f"invalid repo id {repo_id!r} ({reason}); {hint}") from err
    return repo_id


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` value for a dataset of ``num_rows`` rows.

    Example:
        >>> size_category(4500), size_category(999)
        ('1K<n<10K', 'n<1K')
    """
    for bound, name in _SIZE_CATEGORIES:
        if num_rows < bound:
            return name
    return "n>1B"


def _known_token(token: str | bool | None) -> str | None:
    """The token that will be used (explicit, ``HF_TOKEN`` or the saved login), only to scan for leaks."""
    if isinstance(token, str):
        return token
    if token is False:
        return None
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # pragma: no cover - never fail a push because the token lookup failed
        return None


def _scrub(obj: Any, token: str | None = None) -> Any:
    """A copy of ``obj`` without secret-named keys and with token-like strings redacted."""
    if isinstance(obj, Mapping):
        return {str(k): _scrub(v, token) for k, v in obj.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(obj, (list, tuple)):
        return [_scrub(v, token) for v in obj]
    if isinstance(obj, str):
        if token and token in obj:
            obj = obj.replace(token, "<redacted>")
        return _TOKEN_LIKE.sub("<redacted>", obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "tolist"):
        return _scrub(obj.tolist(), token)
    return obj


def _check_no_secret(files: Mapping[str, Path | bytes], token: str | None) -> None:
    """Refuse to push when a text file about to be uploaded contains the token (or any ``hf_...`` token)."""
    for path_in_repo, src in files.items():
        if isinstance(src, Path):
            if src.suffix.lower() not in _TEXT_SUFFIXES or src.stat().st_size > 64 * 1024**2:
                continue
            data = src.read_bytes()
        else:
            data = src
        text = data.decode("utf-8", errors="replace")
        if (token and token in text) or _TOKEN_LIKE.search(text):
            raise UniformError(f"{path_in_repo} contains a Hugging Face token; remove it from the file "
                               "(or the config it comes from) before pushing")


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _load_json_arg(value: Any, what: str, *, allow_list: bool = False) -> Any:
    """``value`` as a dict: a mapping as is, or the JSON (or YAML) file it names (a list too if allowed)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if allow_list and isinstance(value, list):
        return value
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return dict(value.to_dict())
    path = Path(value)
    if not path.is_file():
        raise MissingFileError(f"{what} file {path} does not exist; pass a dict or the path of an existing file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UniformError(f"cannot read {what} from {path}: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
        raise UniformError(f"{path} must hold a JSON object ({what}), not {type(data).__name__}")
    return data


def _looks_like_hub_id(text: Any) -> bool:
    """True for ``USER/NAME`` that the Hub accepts and that is not an existing path or a data file name.

    Example:
        >>> _looks_like_hub_id("tatsu-lab/alpaca"), _looks_like_hub_id("data/pool.jsonl"), _looks_like_hub_id("a--b/c")
        (True, False, False)
    """
    if not isinstance(text, str) or text.count("/") != 1 or text.startswith((".", "/", "~")):
        return False
    if Path(text).suffix.lower() in (".json", ".jsonl", ".parquet", ".csv", ".arrow", ".txt"):
        return False
    try:
        hf_validate_repo_id(text)
    except HFValidationError:
        return False
    return not Path(text).exists()


def _normalize_license(value: Any) -> tuple[str | None, str | None]:
    """(Hub licence id, licence name for ``license: other``) from a free-form licence value."""
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
    if not isinstance(value, str) or not value.strip():
        return None, None
    slug = re.sub(r"\s+", "-", value.strip().lower())
    if re.fullmatch(r"[a-z0-9][a-z0-9.+-]{0,63}", slug):
        return slug, None
    name = re.sub(r"[^a-z0-9.-]+", "-", slug).strip("-")[:64] or "source-license"
    return "other", name


def _selection_record(selection: Any) -> tuple[SelectionRecord, Path | None]:
    """The selection record and the folder it was read from (``None`` unless ``selection`` is a path).

    ``selection`` is the folder written by ``hf-uniform select``, the path of its ``selection.json``, a
    :class:`~hf_uniform.records.SelectionRecord`, a dict, or a ``Selection``.

    Example:
        >>> rec, folder = _selection_record({"k": 2, "n": 5, "metric": "cosine", "input": "pool.jsonl"})
        >>> rec.k, rec.input, folder
        (2, 'pool.jsonl', None)
    """
    if selection is None:
        raise UniformError("no selection given: pass selection= (the dict or selection.json written by "
                           "`hf-uniform select`, or a Selection)")
    if isinstance(selection, SelectionRecord):
        return selection, None
    if isinstance(selection, (str, os.PathLike)):
        from ..io import resolve_path

        path = resolve_path(selection)
        if path.is_dir():
            path = path / SELECTION_FILE
        if not path.is_file():
            raise MissingFileError(f"{path} does not exist: pass the folder written by `hf-uniform select` "
                                   "(it holds selection.json) or the path of selection.json")
        return SelectionRecord.from_json(path), path.parent
    if not isinstance(selection, Mapping) and callable(getattr(selection, "to_dict", None)):
        selection = selection.to_dict()  # a Selection
    if not isinstance(selection, Mapping):
        raise UniformError(f"selection must be the folder or selection.json written by `hf-uniform select`, a "
                           f"SelectionRecord, a dict or a Selection, not {type(selection).__name__}")
    return SelectionRecord.from_dict(selection), None


def _scrubbed(record: SelectionRecord, token: str | None) -> SelectionRecord:
    """A copy of ``record`` without secret-named keys, token-like strings or non-finite numbers.

    Example:
        >>> rec = SelectionRecord(k=1, n=2, metric="cosine", h=float("nan"), command="x --hub_token hf_" + "a" * 34)
        >>> clean = _scrubbed(rec, None)
        >>> clean.h, clean.command
        (None, 'x --hub_token <redacted>')
    """
    return SelectionRecord.from_dict(_scrub(record.to_dict(), token))
