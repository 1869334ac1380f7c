"""mtap_schemas.markdown: text from documents stays in its table cell, list item and LaTeX cell."""

from __future__ import annotations

import re

import pytest

from mtap_schemas.markdown import cell, code, one_line, tex, text

HOSTILE = "H100|x\n| evil | row |\r\nend\\`tick`"


def _columns(row: str) -> int:
    """Cells of a GFM table row: the unescaped | split it."""
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def test_plain_text_is_unchanged() -> None:
    for s in ("H100-SXM5-80GB", "ok 3/5 · failed 2", "—", "resnet50.layer.conv1.b1.fp32", "a_b c%d"):
        assert cell(s) == text(s) == one_line(s) == s
        assert code(s) == f"`{s}`"


def test_a_hostile_cell_stays_one_cell_on_one_line() -> None:
    out = cell(HOSTILE)
    assert "\n" not in out and "\r" not in out
    row = f"| {out} | 1 |"
    assert _columns(row) == 2
    assert out == "H100\\|x \\| evil \\| row \\| end\\\\\\`tick\\`"
    assert cell(HOSTILE) == out  # deterministic


def test_line_breaks_of_every_kind_become_one_space() -> None:
    assert one_line("a\r\nb\rc\nd\x0be\x0cf\x85g\u2028h\u2029i") == "a b c d e f g h i"


def test_list_text_is_one_line_and_leaves_pipes() -> None:
    out = text("bad\n- injected item\n# heading | x`")
    assert out == "bad - injected item # heading | x\\`"


@pytest.mark.parametrize("value", ["a`b", "``x``", "`lead", "trail`", "plain", "p|q\nr"])
def test_code_spans_cannot_be_closed_from_inside(value: str) -> None:
    out = code(value)
    fence = re.match(r"`+", out).group(0)
    assert out.endswith(fence) and "\n" not in out
    inner = out[len(fence) : -len(fence)]
    assert fence not in inner  # no run inside is as long as the fence
    assert max((len(r) for r in re.findall(r"`+", inner)), default=0) < len(fence)
    assert inner.strip(" ") == one_line(value) or inner == one_line(value)


def test_code_in_a_table_escapes_pipes() -> None:
    row = f"| {code('a|b.json', table=True)} | x |"
    assert _columns(row) == 2


def test_tex_escapes_in_one_pass() -> None:
    assert tex(r"a\b{c}") == r"a\textbackslash{}b\{c\}"  # the escape's own braces stay braces
    assert tex("50% & #1_$x$~^") == r"50\% \& \#1\_\$x\$\textasciitilde{}\textasciicircum{}"
    assert tex("x\ny") == "x y"
    assert tex("± × → · —") == r"$\pm$ $\times$ $\rightarrow$ $\cdot$ --"
    assert tex("H100-SXM5-80GB") == "H100-SXM5-80GB"
