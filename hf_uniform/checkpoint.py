"""Resumable selection: atomic checkpoints of the greedy state, and a fingerprint that guards resumes.

A checkpoint holds the chosen rows and radii so far and the exact min-distance state: for every row its
min-distance ``m`` over the first ``ep`` centres (``ep`` equals the step count for the plain engines; the lazy
engine lets sleeping rows lag behind, which is still exact). Files are written to a temporary name, synced
and moved into place with :func:`os.replace`, so a ``kill -9`` at any moment leaves the previous checkpoint
intact. The two most recent checkpoints are kept (per rank in distributed runs, so that all ranks can agree
on a step every one of them has).

Example:
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> ck = Checkpointer(d, {"n": 3}, every=1)
    >>> _ = ck.save(1, np.array([0]), np.array([np.inf]), np.zeros(3, np.float32), np.ones(3, np.int64))
    >>> ck.load()["indices"].tolist()
    [0]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UniformError

logger = logging.getLogger(__name__)

_NAME = "maxmin-state"
#: checkpoint format. 1 (files without a ``format`` field): cosine distances of rows normalised in float32.
#: 2: cosine is ``1 - a.b / sqrt(|a|^2 |b|^2)`` in float64 on the float32 rows as given (issue 21), so a
#: format-1 cosine state holds other values and is refused on resume (euclidean did not change: accepted).
FORMAT = 2


def rows_hash(embeddings: Any, n: int, chunk_rows: int = 1 << 16) -> str:
    """BLAKE2b of every row (their float32 values, in chunks) and the shape: a resume guard that covers the data.

    Computed once per run (not per checkpoint); a change to any row, anywhere, gives another hash, so a
    checkpoint of other data is refused instead of resumed. Rows are read ``chunk_rows`` at a time, so a
    memmap is streamed, never copied whole.

    Example:
        >>> import numpy as np
        >>> x = np.eye(40, dtype=np.float32); y = x.copy(); y[17, 3] = 0.5
        >>> rows_hash(x, 40) == rows_hash(x.copy(), 40), rows_hash(x, 40) == rows_hash(y, 40)
        (True, False)
    """
    from .engine.store import shape_of, slice_rows

    h = hashlib.blake2b(digest_size=16)
    d = shape_of(embeddings)[1]
    h.update(f"{n}x{d}".encode())
    for lo in range(0, n, chunk_rows):
        block = slice_rows(embeddings, lo, min(n, lo + chunk_rows))
        if hasattr(block, "detach"):
            block = block.detach().cpu().numpy()
        h.update(np.ascontiguousarray(np.asarray(block), dtype=np.float32).tobytes())
    return h.hexdigest()


def fingerprint(*, n: int, d: int, metric: str, k: int, seed: int | None, start: list[int], method: str,
                objective: str, row_hash: str, world_size: int = 1, rank: int = 0) -> dict[str, Any]:
    """The facts a checkpoint must agree with before a run may resume from it.

    Example:
        >>> fingerprint(n=2, d=3, metric="cosine", k=1, seed=0, start=[1], method="lazy", objective="max",
        ...             row_hash="ab")["k"]
        1
    """
    return {"n": int(n), "d": int(d), "metric": metric, "k": int(k), "seed": seed, "start": [int(s) for s in start],
            "method": method, "objective": objective, "rows": row_hash, "world_size": int(world_size),
            "rank": int(rank)}


class Checkpointer:
    """Writes and reads checkpoints of one rank in ``directory``.

    Args:
        directory: folder for the checkpoint files (created if missing).
        fp: the run's :func:`fingerprint`.
        every: save after this many new steps (``None``: only by time).
        seconds: save when this many seconds passed since the last save (``None``: only by steps).
        rank, world_size: this process's place in a distributed run.

    Example:
        >>> import tempfile
        >>> Checkpointer(tempfile.mkdtemp(), {}, every=10).due(5)
        False
    """

    def __init__(self, directory: str | os.PathLike, fp: dict[str, Any], *, every: int | None = None,
                 seconds: float | None = None, rank: int = 0, world_size: int = 1):
        if every is not None and int(every) < 1:
            raise UniformError(f"checkpoint_every must be at least 1 step, got {every}")
        if seconds is not None and not float(seconds) > 0:
            raise UniformError(f"checkpoint_seconds must be positive, got {seconds}")
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UniformError(f"cannot create checkpoint_dir {self.dir}: {err.strerror}; pass a writable folder") from err
        self.fp = fp
        self.every = int(every) if every is not None else (None if seconds is not None else 1000)
        self.seconds = float(seconds) if seconds is not None else None
        self.suffix = "" if world_size == 1 else f".rank{rank}-of-{world_size}"
        self._remove_stale_tmp()
        self.last_step = 0
        self.last_time = time.monotonic()

    # ------------------------------------------------------------------ files
    def _remove_stale_tmp(self) -> None:
        """Remove this rank's temporary checkpoint files left by a killed save (our one temp-name pattern)."""
        from .io import TMP_PATTERN

        mine = re.compile(re.escape(_NAME + self.suffix) + r"\.step\d+\.npz$")
        for p in self.dir.iterdir():
            m = TMP_PATTERN.match(p.name)
            if m and mine.match(m.group("name")) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                logger.info("removed %s, left by a killed checkpoint save", p)

    def _files(self) -> list[tuple[int, Path]]:
        pat = re.compile(re.escape(_NAME + self.suffix) + r"\.step(\d+)\.npz$")
        out = []
        for p in self.dir.iterdir():
            m = pat.match(p.name)
            if m:
                out.append((int(m.group(1)), p))
        return sorted(out)

    def steps(self) -> list[int]:
        """Steps of the checkpoints on disk for this rank, ascending."""
        return [s for s, _ in self._files()]

    def due(self, step: int) -> bool:
        """Whether a checkpoint is due at ``step`` (by steps or by time)."""
        if step <= self.last_step:
            return False
        if self.every is not None and step - self.last_step >= self.every:
            return True
        return self.seconds is not None and time.monotonic() - self.last_time >= self.seconds

    def save(self, step: int, indices: np.ndarray, radii: np.ndarray, m: np.ndarray, ep: np.ndarray,
             extra: dict[str, Any] | None = None) -> Path:
        """Atomically write the state at ``step``; keep the two newest files."""
        path = self.dir / f"{_NAME}{self.suffix}.step{int(step)}.npz"
        meta = json.dumps({"format": FORMAT, "fingerprint": self.fp, "step": int(step), "extra": extra or {}})
        from .io import temp_affixes

        fd, tmp = tempfile.mkstemp(dir=self.dir, **temp_affixes(path.name))
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, indices=np.asarray(indices, dtype=np.int64), radii=np.asarray(radii, dtype=np.float64),
                         m=np.asarray(m, dtype=np.float32), ep=np.asarray(ep, dtype=np.int64),
                         meta=np.array(meta))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        try:  # make the rename durable
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:  # pragma: no cover - some filesystems refuse directory fsync
            pass
        for s, p in self._files()[:-2]:
            if s != step:
                p.unlink(missing_ok=True)
        self.last_step = int(step)
        self.last_time = time.monotonic()
        logger.debug("checkpoint at step %d -> %s", step, path)
        return path

    def load(self, step: int | None = None) -> dict[str, Any] | None:
        """The newest checkpoint (or the one at ``step``) as a dict; ``None`` when there is none.

        Raises :class:`UniformError` when it was written for a different run (fingerprint mismatch), by a newer
        format, or (cosine) by format 1, whose distances were of float32-normalised rows (see :data:`FORMAT`).
        """
        files = self._files()
        if step is not None:
            files = [(s, p) for s, p in files if s == step]
        for _step, p in reversed(files):
            try:
                with np.load(p, allow_pickle=False) as z:
                    data = {key: z[key] for key in ("indices", "radii", "m", "ep")}
                    meta = json.loads(str(z["meta"]))
            except (OSError, ValueError, KeyError) as err:  # a damaged file: fall back to the previous one
                logger.warning("ignoring unreadable checkpoint %s (%s)", p, err)
                continue
            saved = meta["fingerprint"]
            fmt = int(meta.get("format", 1))
            if fmt > FORMAT:
                raise UniformError(f"the checkpoint {p.name} in {self.dir} has format {fmt}, newer than this "
                                   f"hf-uniform's {FORMAT}; upgrade hf-uniform, or rerun without --resume (resume=False)")
            if fmt < 2 and saved.get("metric") == "cosine":
                raise UniformError(f"the checkpoint {p.name} in {self.dir} was written by an older hf-uniform "
                                   "(format 1: cosine of float32-normalised rows, not the exact cosine of format 2) "
                                   "and cannot be resumed exactly; rerun without --resume (resume=False) or use a "
                                   "new checkpoint_dir")
            if saved != self.fp:
                diff = [f"{key}: {saved.get(key)!r} vs {self.fp.get(key)!r}"
                        for key in sorted(set(saved) | set(self.fp)) if saved.get(key) != self.fp.get(key)]
                raise UniformError(
                    f"the checkpoint in {self.dir} belongs to a different run ({'; '.join(diff)[:300]}); "
                    "use a new checkpoint_dir or pass resume=False to start over"
                )
            data["step"] = int(meta["step"])
            data["extra"] = meta.get("extra", {})
            self.last_step = data["step"]
            return data
        return None
