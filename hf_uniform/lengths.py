"""Length as a first-class fact: how long the rows of a subset, its baselines and the pool are.

Max-min selection on mean word vectors can favour short rows (on Alpaca 9k, k = 4.5k, the uniform subset's
outputs average about 164 characters against 272 for a random subset). Shorter rows make a training step
cheaper, so "uniform trains faster" and "uniform data is shorter" can only be told apart when lengths are
reported. This module measures them:

* :func:`row_lengths`: per row, ``text_chars`` (characters of the text the embedder saw: the rendered
  instruction–input–output triple, chat ``role: content`` lines, or the chosen columns/template, exactly as
  :class:`~hf_uniform.text.TextRenderer` renders it) and ``response_chars`` (the response alone: ``output``,
  ``response`` or ``completion``, or the assistant turns of a ``messages`` list); with a tokenizer also
  ``text_tokens`` and ``response_tokens`` (tokens without special tokens).
* :func:`length_summary`: mean, median and 90th percentile of one length array.
* :func:`lengths_block`: the summary of every measure for named row sets (``subset``, ``random``, ``full``,
  ...), the ``lengths`` block of ``selection.json`` and of the study report.
* :func:`render_lengths_table`: that block as a Markdown table (dataset card, report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import UniformError

RESPONSE_COLUMNS = ("output", "response", "completion")
MEASURES = ("text_chars", "response_chars", "text_tokens", "response_tokens")
MEASURE_LABEL = {"text_chars": "text chars", "response_chars": "response chars",
                 "text_tokens": "text tokens", "response_tokens": "response tokens"}


def response_text(row: Mapping[str, Any]) -> str | None:
    """The response part of one row, or ``None`` when the layout has none.

    ``output`` / ``response`` / ``completion`` columns, else the assistant turns of a ``messages`` list
    (joined by newlines).

    Example:
        >>> response_text({"instruction": "Add", "output": "2"})
        '2'
        >>> response_text({"messages": [{"role": "user", "content": "hi"},
        ...                             {"role": "assistant", "content": "hello"}]})
        'hello'
        >>> response_text({"text": "plain"}) is None
        True
    """
    for c in RESPONSE_COLUMNS:
        if c in row:
            v = row[c]
            return "" if v is None else str(v)
    msgs = row.get("messages")
    if isinstance(msgs, list):
        return "\n".join(str(m.get("content", "")) for m in msgs
                         if isinstance(m, Mapping) and m.get("role") == "assistant")
    return None


def _count_tokens(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    enc = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return np.array([len(e) for e in enc], dtype=np.int64)


def row_lengths(
    ds: Any,
    *,
    text_columns: Sequence[str] | str | None = None,
    template: str | None = None,
    tokenizer: Any = None,
    batch_size: int = 1000,
    render: Any = None,
) -> dict[str, np.ndarray]:
    """Per-row lengths of ``ds`` (a ``datasets.Dataset`` or a list of row dicts).

    Returns ``{"text_chars": ..., "response_chars": ...}`` (``response_chars`` only when every row has a
    response, see :func:`response_text`), plus ``text_tokens`` / ``response_tokens`` when ``tokenizer``
    (any callable returning ``{"input_ids": [[...], ...]}``, e.g. a transformers tokenizer) is given.
    ``text_columns`` / ``template`` must be the embedder's, so that ``text_chars`` is the text it saw; or pass
    ``render`` (a callable batch -> list of texts, e.g. an embedder's ``texts`` method) to render exactly as it
    does.

    Example:
        >>> rows = [{"instruction": "Add", "input": "", "output": "2"},
        ...         {"instruction": "Name it", "input": "x", "output": "a cat"}]
        >>> {k: v.tolist() for k, v in row_lengths(rows).items()}
        {'text_chars': [5, 15], 'response_chars': [1, 5]}
    """
    from .text import TextRenderer

    renderer = render if render is not None else TextRenderer(text_columns, template)
    if isinstance(ds, list):
        rows: Sequence[Mapping[str, Any]] = ds
        cols = list(rows[0].keys()) if rows else []
        batches = [{c: [r.get(c) for r in rows[i:i + batch_size]] for c in cols}
                   for i in range(0, len(rows), batch_size)]
    else:
        batches = list(ds.iter(batch_size=batch_size))
    texts: list[str] = []
    responses: list[str | None] = []
    for b in batches:
        texts.extend(renderer(b))
        keys = list(b.keys())
        n = len(b[keys[0]]) if keys else 0
        responses.extend(response_text({k: b[k][i] for k in keys}) for i in range(n))
    out = {"text_chars": np.array([len(t) for t in texts], dtype=np.int64)}
    has_response = bool(responses) and all(r is not None for r in responses)
    if has_response:
        out["response_chars"] = np.array([len(r) for r in responses], dtype=np.int64)  # type: ignore[arg-type]
    if tokenizer is not None:
        out["text_tokens"] = _count_tokens(tokenizer, texts)
        if has_response:
            out["response_tokens"] = _count_tokens(tokenizer, responses)  # type: ignore[arg-type]
    return out


def length_summary(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """``{"rows", "mean", "median", "p90"}`` of one length array (``p90``: numpy's linear 90th percentile).

    Raises:
        UniformError: no values.

    Example:
        >>> length_summary([1, 2, 3, 4, 10])
        {'rows': 5, 'mean': 4.0, 'median': 3.0, 'p90': 7.6}
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise UniformError("no rows to summarise lengths of; the set is empty")
    return {"rows": int(v.size), "mean": round(float(v.mean()), 4), "median": round(float(np.median(v)), 4),
            "p90": round(float(np.percentile(v, 90)), 4)}


def lengths_block(lengths: Mapping[str, np.ndarray], sets: Mapping[str, Sequence[int] | np.ndarray | None]
                  ) -> dict[str, dict[str, dict[str, float | int]]]:
    """Summaries of every length measure for named row sets: ``{set: {measure: summary}}``.

    ``sets`` maps a name to row indices into the arrays of ``lengths`` (``None``: every row, the full pool).

    Example:
        >>> lens = {"text_chars": np.array([10, 20, 30, 40])}
        >>> lengths_block(lens, {"subset": [0, 1], "full": None})["subset"]["text_chars"]["mean"]
        15.0
    """
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for name, idx in sets.items():
        out[name] = {m: length_summary(arr if idx is None else np.asarray(arr)[np.asarray(idx, dtype=np.int64)])
                     for m, arr in lengths.items()}
    return out


def render_lengths_table(block: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A Markdown table of a :func:`lengths_block`: one row per set, mean / median / p90 per measure.

    Example:
        >>> print(render_lengths_table({"subset": {"text_chars": {"rows": 2, "mean": 15.0, "median": 15.0,
        ...                                                       "p90": 19.0}}}))
        | set | rows | text chars mean | text chars median | text chars p90 |
        |---|---|---|---|---|
        | subset | 2 | 15.0 | 15.0 | 19.0 |
    """
    if not block:
        return ""
    measures = [m for m in MEASURES if any(m in v for v in block.values())]
    cols = ["set", "rows"] + [f"{MEASURE_LABEL[m]} {s}" for m in measures for s in ("mean", "median", "p90")]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, rec in block.items():
        rows = next(iter(rec.values()))["rows"] if rec else 0
        cells = [name, str(rows)]
        for m in measures:
            s = rec.get(m)
            cells += [f"{s[k]:.1f}" if s else "–" for k in ("mean", "median", "p90")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
