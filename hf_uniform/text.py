"""Render dataset rows as the text that is embedded.

The paper embeds the whole instruction–input–output triple. :class:`TextRenderer` handles three layouts:

* Alpaca-style rows (``instruction``, optional ``input``, ``output``): the non-empty fields joined by
  newlines;
* chat rows (a ``messages`` list of ``{"role", "content"}``): ``"role: content"`` lines;
* any list of columns (``columns=[...]``), joined by newlines, or a ``str.format`` template over columns
  (``template="{question} {answer}"``).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import UniformError

ALPACA_COLUMNS = ("instruction", "input", "output")


def _template_fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


class TextRenderer:
    """Turn a batch of rows (a dict of columns, as ``Dataset.map(batched=True)`` passes it) into strings.

    Args:
        columns: columns to join with newlines. ``None`` detects the layout: ``messages`` for chat data,
            else the Alpaca triple (``instruction``/``input``/``output``, whichever exist), else a single
            ``text`` column.
        template: a ``str.format`` template over column names; overrides ``columns``.

    Example:
        >>> r = TextRenderer()
        >>> r({"instruction": ["Add"], "input": [""], "output": ["2"]})
        ['Add\\n2']
        >>> TextRenderer(template="Q: {q}")({"q": ["why?"]})
        ['Q: why?']
    """

    def __init__(self, columns: Sequence[str] | str | None = None, template: str | None = None):
        if isinstance(columns, str):
            columns = [c.strip() for c in columns.split(",") if c.strip()]
        self.columns = list(columns) if columns else None
        self.template = template

    def config(self) -> dict[str, Any]:
        """The settings that change the rendered text (part of the embedding cache key).

        Example:
            >>> TextRenderer(columns=["a"]).config()
            {'columns': ['a'], 'template': None}
        """
        return {"columns": self.columns, "template": self.template}

    def required_columns(self, available: Sequence[str]) -> list[str]:
        """The columns this renderer reads, checked against ``available``.

        Raises:
            UniformError: a needed column is missing; the message lists the available columns.

        Example:
            >>> TextRenderer().required_columns(["instruction", "output", "id"])
            ['instruction', 'output']
        """
        available = list(available)
        if self.template is not None:
            needed = _template_fields(self.template)
            if not needed:
                raise UniformError(f"template {self.template!r} names no column; use e.g. '{{instruction}}'")
        elif self.columns is not None:
            needed = self.columns
        elif "messages" in available:
            needed = ["messages"]
        elif any(c in available for c in ("instruction", "output")):
            needed = [c for c in ALPACA_COLUMNS if c in available]
        elif "text" in available:
            needed = ["text"]
        else:
            raise UniformError(
                f"cannot tell which columns hold the text; available columns: {available}; "
                "pass text_columns=[...] (CLI: --text-columns a,b) or an embedding column"
            )
        missing = [c for c in needed if c not in available]
        if missing:
            raise UniformError(f"text column(s) {missing} not found; available columns: {available}")
        return needed

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> list[str]:
        """Render one batch (dict of equal-length column lists) to a list of strings."""
        cols = self.required_columns(list(batch.keys()))
        n = len(batch[cols[0]])
        if self.template is not None:
            return [self.template.format(**{c: _as_text(batch[c][i]) for c in cols}) for i in range(n)]
        return ["\n".join(t for t in (_as_text(batch[c][i]) for c in cols) if t) for i in range(n)]


def _as_text(value: Any) -> str:
    """A cell as text: chat message lists become ``role: content`` lines, ``None`` becomes ''."""
    if value is None:
        return ""
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in value)
    return str(value)
