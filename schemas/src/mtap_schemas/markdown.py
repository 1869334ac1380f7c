"""Text from documents placed into Markdown (and LaTeX) tables and lists: one escaping for every consumer.

    from mtap_schemas.markdown import cell, code, text, tex

    f"| {cell(row['hardware'])} | {cell(row['tool'])} |"       # a table cell: | \\ ` escaped, line breaks -> space
    f"- {code(path)}: {text(reason)}"                          # a list item: the path as a code span, the reason on one line
    " & ".join(tex(c) for c in cells) + r" \\\\"              # a LaTeX tabular cell

A hardware id or file name holding ``|`` or a line break must not add a row, a column or a list
item: every function here returns one line, and :func:`cell`/:func:`code` (``table=True``) keep ``|``
inside the cell. Text without any of these characters comes back unchanged (deterministic; no
HTML entities, no ``<br>``).
"""

from __future__ import annotations

import re
from typing import Any

_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x85\u2028\u2029]")
_CELL = re.compile(r"[\\|`]")
_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "--",
    "±": r"$\pm$",
    "×": r"$\times$",
    "→": r"$\rightarrow$",
    "·": r"$\cdot$",
}
_TEX_CHARS = re.compile("|".join(re.escape(k) for k in _TEX))


def one_line(value: Any) -> str:
    """``str(value)`` with every line break (CR, LF, CRLF, VT, FF, NEL, LS, PS) turned into one space."""
    return _BREAKS.sub(" ", str(value))


def cell(value: Any) -> str:
    """A Markdown table cell from data: one line, with ``\\``, ``|`` and backticks backslash-escaped
    (so a ``|`` stays in its cell and a backtick opens no code span)."""
    return _CELL.sub(lambda m: "\\" + m.group(0), one_line(value))


def text(value: Any) -> str:
    """Running text from data in a list item or paragraph: one line (a line break would start a
    new item or block), ``\\`` and backticks escaped; ``|`` is left alone (it means nothing outside a table)."""
    return re.sub(r"[\\`]", lambda m: "\\" + m.group(0), one_line(value))


def code(value: Any, table: bool = False) -> str:
    """``value`` as an inline code span that no backtick in it can close: the fence is one backtick
    longer than the longest run inside (CommonMark), padded with a space where the text starts or
    ends with a backtick. ``table=True`` also escapes ``|`` (GitHub's tables split cells on it
    even inside code spans, and drop the backslash when rendering)."""
    body = one_line(value)
    if table:
        body = body.replace("|", "\\|")
    runs = [len(r) for r in re.findall(r"`+", body)]
    fence = "`" * (max(runs, default=0) + 1)
    if body.startswith("`") or body.endswith("`"):
        body = f" {body} "
    return f"{fence}{body}{fence}"


def tex(value: Any) -> str:
    """A LaTeX table cell from data, in one pass (an escape's own braces are not escaped again):
    ``\\ & % # _ $ { } ~ ^`` and the few Unicode signs the tables use; one line."""
    return _TEX_CHARS.sub(lambda m: _TEX[m.group(0)], one_line(value))
