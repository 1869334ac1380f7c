"""The D5 declaration (data/extensibility/extension-points.json) resolves in this repository:
every path exists, every symbol is a function or class of its file, every JSON pointer names a
value, and a pointer into the hardware catalog names the entry its ``what`` says
("catalog entry <id>"), so an entry inserted before it (as the H200 entries were) cannot leave a
pointer on another id unnoticed. ASTRA-sim's own entries point at the HGX-H200 edits."""

from __future__ import annotations

import ast
import json
import re

import pytest

CATALOG = "data/hardware/hardware.json"


@pytest.fixture
def declaration(repo) -> dict:
    path = repo / "data" / "extensibility" / "extension-points.json"
    if not path.is_file():
        pytest.skip("no D5 declaration in this checkout")
    return json.loads(path.read_text(encoding="utf-8"))


def _edits(declaration):
    for tool in declaration["tools"]:
        for kind in ("add_workload", "add_hardware"):
            for edit in tool[kind]:
                yield tool["tool"], kind, edit


def _resolve(value, pointer: str):
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_every_edit_resolves(repo, declaration):
    for tool, kind, edit in _edits(declaration):
        where = f"{tool} {kind} {edit['what']!r}"
        if "path" not in edit:
            assert "symbol" not in edit and "json_pointer" not in edit, where
            continue
        path = repo / edit["path"]
        assert path.is_file(), f"{where}: {edit['path']} does not exist"
        text = path.read_text(encoding="utf-8")
        if "symbol" in edit:
            names = {n.name for n in ast.walk(ast.parse(text))
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
            assert edit["symbol"] in names, f"{where}: {edit['path']} has no function or class {edit['symbol']}"
        if "json_pointer" in edit:
            try:
                _resolve(json.loads(text), edit["json_pointer"])
            except (KeyError, IndexError, ValueError, TypeError):
                pytest.fail(f"{where}: {edit['json_pointer']} names nothing in {edit['path']}")


def test_catalog_pointers_name_the_entry_they_say(repo, declaration):
    catalog = json.loads((repo / CATALOG).read_text(encoding="utf-8"))
    checked = 0
    for tool, kind, edit in _edits(declaration):
        if edit.get("path") != CATALOG:
            continue
        m = re.match(r"catalog entry (\S+)", edit["what"])
        assert m, f"{tool} {kind}: a catalog edit's what starts 'catalog entry <id>', got {edit['what']!r}"
        entry = _resolve(catalog, edit["json_pointer"])
        ids = [h["id"] for h in catalog["hardware"]]
        right = f"/hardware/{ids.index(m.group(1))}" if m.group(1) in ids else "no such id"
        assert entry.get("id") == m.group(1), (
            f"{tool} {kind}: {edit['json_pointer']} is {entry.get('id')!r}, not {m.group(1)!r} (use {right})")
        checked += 1
    assert checked >= 7


def test_astra_sim_declares_the_hgx_h200_edits(repo, declaration):
    (astra,) = [t for t in declaration["tools"] if t["tool"] == "astra-sim"]
    catalog = json.loads((repo / CATALOG).read_text(encoding="utf-8"))
    named = {_resolve(catalog, e["json_pointer"])["id"] for e in astra["add_hardware"] if e.get("path") == CATALOG}
    assert named == {"HGX-H200x8", "H200-SXM-141GB"}
    from mtap_astra_runner.cases import PLATFORMS

    assert "HGX-H200x8" in PLATFORMS["HGX-H200"][1].values()
    assert any("PLATFORMS" in e["what"] for e in astra["add_hardware"])
    # the layer table the workload edit points at is the one the runner reads
    from mtap_astra_runner.resnet50 import TABLE

    assert any(e.get("path") == f"data/{TABLE.as_posix()}" for e in astra["add_workload"])
