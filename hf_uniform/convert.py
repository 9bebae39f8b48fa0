"""Convert chat-style ``conversations`` datasets (WizardLM evol-instruct V2) to instruction/output rows.

The paper trains on WizardLM evol-instruct V2 (``WizardLMTeam/WizardLM_evol_instruct_V2_196k``), whose rows
look like ``{"idx": ..., "conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}``;
its authors convert them to the Alpaca layout (``instruction``/``input``/``output``) before training and
then take 20k rows of the shuffled set. :func:`conversations_to_alpaca` does the conversion (the first
human turn is the instruction, the gpt turn that answers it the output, ``input`` is empty; other columns
such as ``idx`` are kept), :func:`shuffled_head` the seeded shuffle-and-take, and :func:`convert_wizardlm`
/ ``recipes/convert_wizardlm.py`` both, writing JSON Lines atomically.

>>> from datasets import Dataset
>>> ds = Dataset.from_list([{"idx": "a", "conversations": [{"from": "human", "value": "Hi?"},
...                                                         {"from": "gpt", "value": "Hello."}]}])
>>> conversations_to_alpaca(ds)[0]
{'idx': 'a', 'instruction': 'Hi?', 'input': '', 'output': 'Hello.'}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import UniformError

logger = logging.getLogger(__name__)

WIZARDLM_V2 = "WizardLMTeam/WizardLM_evol_instruct_V2_196k"
HUMAN_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")
MULTI_TURN = ("first", "skip")


def _turn(m: Mapping[str, Any]) -> tuple[str, str]:
    role = m.get("from", m.get("role"))
    text = m.get("value", m.get("content"))
    if not isinstance(role, str) or not isinstance(text, str):
        raise UniformError(f"a conversation turn must have string 'from' and 'value' (or 'role'/'content'), got "
                           f"{sorted(m)}")
    return role.lower(), text


def conversation_pair(turns: Sequence[Mapping[str, Any]], multi_turn: str = "first") -> tuple[str, str] | None:
    """``(instruction, output)`` of one conversation, or ``None`` when it has no usable human→gpt pair.

    Leading ``system`` turns are skipped. The instruction is the first human turn and the output the gpt
    turn right after it. A longer conversation gives that first pair with ``multi_turn="first"`` and
    ``None`` with ``"skip"``. Empty instructions or outputs give ``None``.

    Example:
        >>> conversation_pair([{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"},
        ...                    {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}])
        ('Q', 'A')
        >>> conversation_pair([{"from": "gpt", "value": "A"}]) is None
        True
    """
    if multi_turn not in MULTI_TURN:
        raise UniformError(f"multi_turn must be one of {MULTI_TURN}, got {multi_turn!r}")
    parsed = [_turn(m) for m in turns or []]
    while parsed and parsed[0][0] == "system":
        parsed = parsed[1:]
    if len(parsed) < 2 or parsed[0][0] not in HUMAN_ROLES or parsed[1][0] not in ASSISTANT_ROLES:
        return None
    if len(parsed) > 2 and multi_turn == "skip":
        return None
    instruction, output = parsed[0][1].strip(), parsed[1][1].strip()
    if not instruction or not output:
        return None
    return instruction, output


def conversations_to_alpaca(ds: Any, *, column: str = "conversations", multi_turn: str = "first",
                            num_proc: int | None = None) -> Any:
    """Alpaca rows (``instruction``, ``input`` = ``""``, ``output``) from a ``conversations`` column.

    Rows without a usable human→gpt pair (see :func:`conversation_pair`) are dropped and counted in the
    log; every other column (e.g. ``idx``) is kept unchanged. Raises
    :class:`~hf_uniform.errors.UniformError` when ``column`` is missing or no row converts.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_list([{"conversations": [{"from": "human", "value": "Q"}]},
        ...                         {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}])
        >>> conversations_to_alpaca(ds)["output"][:]
        ['A']
    """
    if column not in ds.column_names:
        raise UniformError(f"no {column!r} column (columns: {ds.column_names}); pass column=... naming the "
                           "list of {'from', 'value'} turns")
    if multi_turn not in MULTI_TURN:
        raise UniformError(f"multi_turn must be one of {MULTI_TURN}, got {multi_turn!r}")
    clash = [c for c in ("instruction", "input", "output") if c in ds.column_names]
    if clash:
        raise UniformError(f"the dataset already has {clash}; it is not a conversations-only layout")

    def convert(batch: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
        pairs = [conversation_pair(turns, multi_turn) for turns in batch[column]]
        keep = [i for i, p in enumerate(pairs) if p is not None]
        out = {k: [v[i] for i in keep] for k, v in batch.items() if k != column}
        out["instruction"] = [pairs[i][0] for i in keep]  # type: ignore[index]
        out["input"] = ["" for _ in keep]
        out["output"] = [pairs[i][1] for i in keep]  # type: ignore[index]
        return out

    converted = ds.map(convert, batched=True, remove_columns=ds.column_names, num_proc=num_proc,
                       desc="conversations -> alpaca")
    dropped = len(ds) - len(converted)
    if not len(converted):
        raise UniformError(f"none of the {len(ds)} conversations has a human turn followed by a gpt turn")
    if dropped:
        logger.info("dropped %d of %d conversations without a usable human->gpt pair (multi_turn=%s)",
                    dropped, len(ds), multi_turn)
    return converted


def shuffled_head(ds: Any, n: int | None, *, seed: int = 0) -> Any:
    """The first ``n`` rows of ``ds`` shuffled with ``seed`` (all rows, shuffled, when ``n`` is ``None``).

    The order is the shuffled order, so the paper's WizardLM baseline (the first 10k of the shuffled 20k)
    is ``first_k`` of the result. The permutation is ``numpy.random.default_rng(seed).permutation(len(ds))``.

    Example:
        >>> from datasets import Dataset
        >>> shuffled_head(Dataset.from_dict({"i": list(range(10))}), 3, seed=0)["i"][:]
        [4, 6, 2]
    """
    import numpy as np

    if n is not None and not 0 < int(n) <= len(ds):
        raise UniformError(f"n must be in [1, {len(ds)}] (the converted rows), got {n}")
    order = np.random.default_rng(seed).permutation(len(ds))
    if n is not None:
        order = order[: int(n)]
    return ds.select(order.tolist())


def convert_wizardlm(source: str, output: str | Path, *, n: int | None = 20000, seed: int = 0,
                     split: str = "train", column: str = "conversations", multi_turn: str = "first",
                     overwrite: bool = False) -> dict[str, Any]:
    """Convert ``source`` (Hub id or file) to Alpaca JSON Lines at ``output``: convert, shuffle, take ``n``.

    Returns a record ``{"source", "rows_in", "rows_converted", "rows_out", "seed", "n", "multi_turn",
    "output"}`` that is also logged.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> rows = [{"idx": str(i), "conversations": [{"from": "human", "value": f"q{i}"},
        ...                                           {"from": "gpt", "value": f"a{i}"}]} for i in range(5)]
        >>> _ = (d / "w.json").write_text(json.dumps(rows))
        >>> convert_wizardlm(str(d / "w.json"), d / "out.jsonl", n=3)["rows_out"]
        3
    """
    from .io import atomic_path, load_input

    out = Path(output)
    if out.exists() and not overwrite:
        raise UniformError(f"{out} exists; pass --overwrite or another output path")
    if out.suffix != ".jsonl":
        raise UniformError(f"output must be a .jsonl file, got {out.name}")
    ds = load_input(source, split=split)
    converted = conversations_to_alpaca(ds, column=column, multi_turn=multi_turn)
    if n is not None and n > len(converted):
        raise UniformError(f"only {len(converted)} of {len(ds)} rows convert; ask for n <= {len(converted)}")
    rows = shuffled_head(converted, n, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        rows.to_json(str(tmp), lines=True, force_ascii=False)
    record = {"source": str(source), "rows_in": len(ds), "rows_converted": len(converted), "rows_out": len(rows),
              "seed": seed, "n": n, "multi_turn": multi_turn, "output": str(out)}
    logger.info("converted %s", record)
    return record
