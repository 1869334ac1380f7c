"""Hostile inputs (issue 32): names that would inject Markdown rows, and the Parquet/JSON pair written together."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import case, document, metric

import mtap_schemas as ms
from mtap_aggregate import write as write_module
from mtap_aggregate.cli import main

EVIL_HW = "H100|x\n| evil | row |"


def _run(tmp_path: Path):
    return CliRunner().invoke(
        main,
        [
            "run",
            "--evaluation-dir",
            str(tmp_path / "ev"),
            "--output",
            str(tmp_path / "o" / "agg.json"),
            "--coverage-md",
            str(tmp_path / "o" / "c.md"),
            "--tables-dir",
            str(tmp_path / "o" / "t"),
            "--extensibility",
            str(tmp_path / "none.json"),
            "--hardware",
            str(tmp_path / "none.json"),
            "--claims",
            str(tmp_path / "none.json"),
        ],
    )


def _cells(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def _table_rows_keep_their_width(text: str) -> None:
    width = None
    for line in text.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        width = width or _cells(line)
        assert _cells(line) == width, line


def test_hardware_ids_and_file_names_do_not_inject_markdown_rows(tmp_path: Path, write_doc) -> None:
    keys = [f"k{i}" for i in range(5)]
    write_doc(
        "ev/gt.tool-run.json",
        document(
            "gt",
            [
                case(f"m{i}", hardware=EVIL_HW, key=k, metrics=[metric("latency", 1.0, kind="measurement", timing="device")])
                for i, k in enumerate(keys)
            ],
            backend="measured",
        ),
    )
    write_doc(
        "ev/a.tool-run.json",
        document("tool-a", [case(f"p{i}", hardware=EVIL_HW, key=k, metrics=[metric("latency", 1.1)]) for i, k in enumerate(keys)]),
    )
    write_doc("ev/bad|name\n- injected.tool-run.json", "not json")
    result = _run(tmp_path)
    assert result.exit_code == 0, result.output
    out = tmp_path / "o"
    coverage = (out / "c.md").read_text()
    _table_rows_keep_their_width(coverage)
    assert "| H100\\|x \\| evil \\| row \\|" in coverage  # the D1 row, its hardware in one cell
    assert not any(line.startswith(("| evil", "- injected")) for line in coverage.splitlines())
    assert "- `bad|name - injected.tool-run.json`: not valid JSON" in coverage
    for md in (out / "t").glob("*.md"):
        _table_rows_keep_their_width(md.read_text())
        assert "\n| evil" not in md.read_text()
    tex = (out / "t" / "d1-fidelity.tex").read_text()
    row = next(line for line in tex.splitlines() if line.startswith("tool-a"))
    assert len(re.findall(r"(?<!\\)&", row)) == 13, row  # 14 columns: no & or line break from the data
    assert "H100|x | evil | row |" in row


def test_latex_cells_escape_every_special_character(tmp_path: Path, write_doc) -> None:
    from mtap_aggregate.tables import Table

    tex = Table("t", "cap", ["a"], [[r"x\y{z}~^&%_#$"]], []).latex()
    assert r"x\textbackslash{}y\{z\}\textasciitilde{}\textasciicircum{}\&\%\_\#\$ \\" in tex


def _pair(out: Path) -> tuple[dict, bytes]:
    doc = ms.read(out / "agg.json", "aggregate", 2)
    return doc, (out / doc["table"]["file"]["path"]).read_bytes()


def test_the_table_and_its_document_are_written_together_or_not_at_all(tmp_path: Path, write_doc, monkeypatch) -> None:
    import hashlib

    write_doc("ev/a.tool-run.json", document("tool-a", [case("c1")]))
    assert _run(tmp_path).exit_code == 0
    old_doc, old_table = _pair(tmp_path / "o")
    write_doc("ev/b.tool-run.json", document("tool-b", [case("c2"), case("c3")]))
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):  # the table goes into place, then the document's rename fails
        calls.append(dst)
        if str(dst).endswith("agg.json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    result = _run(tmp_path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert result.exit_code != 0 and any(str(c).endswith(".parquet") for c in calls)
    doc, table = _pair(tmp_path / "o")
    assert doc == old_doc and table == old_table  # the old pair, consistent
    assert hashlib.sha256(table).hexdigest() == doc["table"]["file"]["sha256"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.name.startswith(".")) == []  # no temp or backup left
    assert _run(tmp_path).exit_code == 0
    doc, table = _pair(tmp_path / "o")
    assert doc["table"]["rows"] == 3 and hashlib.sha256(table).hexdigest() == doc["table"]["file"]["sha256"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_the_table_file_mode_follows_the_umask(tmp_path: Path, write_doc, umask: int) -> None:
    write_doc("ev/a.tool-run.json", document("tool-a", [case("c1")]))
    old = os.umask(umask)
    try:
        path = write_module.table_path(tmp_path / "x" / "agg.json")
        assert _run(tmp_path).exit_code == 0
    finally:
        os.umask(old)
    out = tmp_path / "o"
    for name in ("agg.json", "agg.table.parquet"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert path.name == "agg.table.parquet"
