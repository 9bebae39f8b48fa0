"""Render dataset rows as the text that is embedded.

The paper embeds the whole instruction–input–output triple. :class:`TextRenderer` detects the common
instruction-data layouts and renders every field of an example (prompt and response), in this order of
precedence:

=====================  ==========================================================  ======================
layout                 columns                                                     rendered as
=====================  ==========================================================  ======================
``messages``           ``messages``: list of ``{"role", "content"}``               ``role: content`` lines
``conversations``      ``conversations``: ``{"from", "value"}`` or role/content    ``from: value`` lines
``history``            ``history``: ``[[user, assistant], ...]`` (+ the current turn's columns)
``alpaca``             ``instruction``, optional ``input``, ``output``             non-empty fields, one per line
``instruction``        ``instruction``, optional ``input``/``context``, ``response``
``prompt/response``    ``prompt``, ``response``
``prompt/completion``  ``prompt``, ``completion`` (text or message lists)
``question/answer``    ``question``, ``answer``
``text``               ``text``
=====================  ==========================================================  ======================

Any other layout needs ``text_columns=[...]`` (CLI ``--text-columns a,b``: the columns joined by newlines) or a
``str.format`` ``template`` over columns (``--template "{question} {answer}"``); the error lists the columns.

>>> TextRenderer()({"conversations": [[{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]]})
['human: hi\\ngpt: hello']
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import UniformError

ALPACA_COLUMNS = ("instruction", "input", "output")

# (layout name, required columns, optional columns in rendering order); first match wins.
LAYOUTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("messages", ("messages",), ()),
    ("conversations", ("conversations",), ()),
    ("history", ("history",), ("system", "instruction", "input", "output", "response", "prompt", "query")),
    ("alpaca", ("instruction", "output"), ("input",)),
    ("instruction", ("instruction", "response"), ("input", "context")),
    ("prompt/response", ("prompt", "response"), ()),
    ("prompt/completion", ("prompt", "completion"), ()),
    ("question/answer", ("question", "answer"), ()),
    ("text", ("text",), ()),
)
_ORDER = ("history", "system", "instruction", "prompt", "query", "question", "input", "context", "output",
          "response", "completion", "answer", "messages", "conversations", "text")
MAX_FORMAT_WIDTH = 10_000


def _spec_ok(spec: str) -> bool:
    for number in re.findall(r"\d+", spec):
        if int(number) > MAX_FORMAT_WIDTH:
            return False
    return True


def check_template(template: str) -> list[str]:
    """Validate a ``str.format`` template over column names; return the columns it reads.

    Refused, each with a one-line :class:`~hf_uniform.errors.UniformError`: malformed braces, empty or
    positional fields (``{}``, ``{0}``), attribute/index access (``{a.b}``, ``{a[0]}``), format specs that
    do not apply to text or ask for more than 10,000 characters of padding, and templates naming no column.

    Example:
        >>> check_template("{instruction}: {output!r}")
        ['instruction', 'output']
        >>> check_template("{instruction")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: template '{instruction' is malformed (expected '}' before end of string); write fields as {column}, and double literal braces as {{ }}
    """
    if not isinstance(template, str):
        raise UniformError(f"template must be a string, got {type(template).__name__}")
    fields: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise UniformError(f"template {template!r} is malformed ({err}); write fields as {{column}}, and double "
                           "literal braces as {{ }}") from err
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise UniformError(f"template {template!r} has a field without a column name ({{{name}}}); name a "
                               "column, e.g. {instruction}")
        if not re.fullmatch(r"[^.\[\]{}:!]+", name):
            raise UniformError(f"template field {{{name}}} is not a plain column name; attribute and index access "
                               "are not supported, use {column}")
        if spec and not _spec_ok(spec):
            raise UniformError(f"template field {{{name}:{spec}}} asks for more than {MAX_FORMAT_WIDTH} characters; "
                               "use a smaller width")
        if name not in fields:
            fields.append(name)
    if not fields:
        raise UniformError(f"template {template!r} names no column; use e.g. '{{instruction}} {{output}}'")
    try:
        template.format(**{f: "text" for f in fields})
    except (ValueError, OverflowError, MemoryError, KeyError, IndexError) as err:
        raise UniformError(f"template {template!r} cannot format text ({err}); cells are formatted as strings, "
                           "so use only string format specs such as {a:>20}") from err
    return fields


def _message_text(messages: Sequence[Any]) -> str:
    """``role: content`` lines; ``""`` when no turn has any text (roles alone are not text: such a row is
    empty, so the empty-text check sees it instead of embedding ``"user: \\nassistant: "``).

    Example:
        >>> _message_text([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}])
        'user: hi\\nassistant: '
        >>> _message_text([{"role": "user", "content": ""}, {"role": "assistant", "content": None}])
        ''
    """
    lines, has_text = [], False
    for m in messages:
        if isinstance(m, Mapping):
            who = m.get("role", m.get("from", ""))
            content = _content_text(m.get("content", m.get("value", "")))
            has_text = has_text or bool(content.strip())
            lines.append(f"{'' if who is None else who}: {content}")
        else:
            text = _as_text(m)
            has_text = has_text or bool(text.strip())
            lines.append(text)
    return "\n".join(lines) if has_text else ""


def _content_text(content: Any) -> str:
    """A message's content: a string, or a list of parts (``{"type": "text", "text": ...}``)."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) if isinstance(p, Mapping) else _as_text(p) for p in content)
    return _as_text(content)


def _history_text(history: Any) -> str:
    if not isinstance(history, list):
        return _as_text(history)
    return "\n".join("\n".join(_as_text(t) for t in pair) if isinstance(pair, (list, tuple)) else _as_text(pair)
                     for pair in history)


def detect_layout(available: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(layout name, columns in rendering order)`` for these columns, or ``None`` when unknown.

    Example:
        >>> detect_layout(["id", "instruction", "input", "response"])
        ('instruction', ['instruction', 'input', 'response'])
        >>> detect_layout(["a", "b"]) is None
        True
    """
    cols = set(available)
    for name, required, optional in LAYOUTS:
        if set(required) <= cols:
            used = set(required) | {c for c in optional if c in cols}
            return name, sorted(used, key=_ORDER.index)
    return None


class TextRenderer:
    """Turn a batch of rows (a dict of columns, as ``Dataset.map(batched=True)`` passes it) into strings.

    Args:
        columns: columns to join with newlines. ``None`` detects the layout (see the module docstring).
        template: a ``str.format`` template over column names; overrides ``columns``. Validated at once.

    Raises:
        UniformError: a malformed template (see :func:`check_template`).

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
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            raise UniformError(f"text columns {self.columns} repeat a column; name each once")
        self.template = template
        self._fields = check_template(template) if template is not None else None

    def config(self) -> dict[str, Any]:
        """The settings that change the rendered text (part of the embedding cache key).

        Example:
            >>> TextRenderer(columns=["a"]).config()
            {'columns': ['a'], 'template': None}
        """
        return {"columns": self.columns, "template": self.template}

    def describe(self, available: Sequence[str]) -> dict[str, Any]:
        """Exactly what is embedded for these columns: layout, columns (in order) and template.

        Example:
            >>> TextRenderer().describe(["prompt", "completion", "id"])
            {'layout': 'prompt/completion', 'columns': ['prompt', 'completion'], 'template': None, 'joined_by': '\\n'}
            >>> TextRenderer(template="{q} {a}").describe(["q", "a"])["layout"]
            'template'
        """
        cols = self.required_columns(available)
        if self.template is not None:
            return {"layout": "template", "columns": cols, "template": self.template, "joined_by": None}
        if self.columns is not None:
            return {"layout": "columns", "columns": cols, "template": None, "joined_by": "\n"}
        found = detect_layout(available)
        assert found is not None
        return {"layout": found[0], "columns": cols, "template": None, "joined_by": "\n"}

    def required_columns(self, available: Sequence[str]) -> list[str]:
        """The columns this renderer reads, checked against ``available``.

        Raises:
            UniformError: a needed column is missing, or no known layout; the message lists the columns.

        Example:
            >>> TextRenderer().required_columns(["instruction", "output", "id"])
            ['instruction', 'output']
        """
        available = list(available)
        if self._fields is not None:
            needed = self._fields
        elif self.columns is not None:
            needed = self.columns
        else:
            found = detect_layout(available)
            if found is None:
                raise UniformError(
                    f"cannot tell which columns hold the text; available columns: {available}; pass "
                    "--text-columns a,b or --template '{a} {b}' (Python: text_columns=[...] or template=...)"
                )
            needed = found[1]
        missing = [c for c in needed if c not in available]
        if missing:
            raise UniformError(f"text column(s) {missing} not found; available columns: {available}")
        return list(needed)

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> list[str]:
        """Render one batch (dict of equal-length column lists) to a list of strings."""
        cols = self.required_columns(list(batch.keys()))
        n = len(batch[cols[0]])
        if self.template is not None:
            return [self.template.format(**{c: _as_text(batch[c][i]) for c in cols}) for i in range(n)]
        render = {c: (_history_text if c == "history" else _as_text) for c in cols}
        return ["\n".join(t for t in (render[c](batch[c][i]) for c in cols) if t) for i in range(n)]

    def empty_rows(self, ds: Any, batch_size: int = 2000) -> list[int]:
        """Rows whose rendered text is empty or whitespace only (``ds``: a ``Dataset``).

        Example:
            >>> from datasets import Dataset
            >>> TextRenderer().empty_rows(Dataset.from_dict({"text": ["a", " ", None]}))
            [1, 2]
        """
        out: list[int] = []
        offset = 0
        for batch in ds.iter(batch_size=batch_size):
            texts = self(batch)
            out.extend(offset + i for i, t in enumerate(texts) if not t.strip())
            offset += len(texts)
        return out


def _as_text(value: Any) -> str:
    """A cell as text: message lists become ``role: content`` lines, ``None`` becomes ''."""
    if value is None:
        return ""
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return _message_text(value)
    if isinstance(value, list):
        return "\n".join(_as_text(v) for v in value)
    return str(value)
