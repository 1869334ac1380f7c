"""consume.find/iter_tool_runs (issue 32): a file name that is not UTF-8 and a symbolic link are skipped and
listed by a printable name with the reason, never a crash, never silently dropped."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas import consume


def _doc(name: str) -> dict:
    run = tr.ToolRun("t", "1", tr.Tool(name, "1", "native", "here"), argv=["run"])
    run.setup_done()
    return run.document([tr.ok("c1", workload="W1", hardware="H100-SXM5-80GB", metrics=[tr.metric("latency", 1.0, "ms", "prediction")])])


def test_non_utf8_names_and_links_are_listed_not_read(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ms.write(ev / "a" / "good.tool-run.json", _doc("tool-a"), "tool-run", 2)
    with open(os.fsencode(ev) + b"/a/caf\xe9.tool-run.json", "wb") as handle:  # Latin-1, not UTF-8
        handle.write((ev / "a" / "good.tool-run.json").read_bytes().replace(b"tool-a", b"tool-b"))
    os.symlink(ev / "a" / "good.tool-run.json", ev / "link.tool-run.json")
    outside = tmp_path / "elsewhere"
    ms.write(outside / "x.tool-run.json", _doc("tool-c"), "tool-run", 2)
    os.symlink(outside / "x.tool-run.json", ev / "out.tool-run.json")
    os.symlink(outside, ev / "folder")
    skipped: list[consume.Skipped] = []
    read = [(rel, doc["tool"]["name"]) for rel, doc, _ in consume.iter_tool_runs(ev, skipped)]
    assert read == [("a/good.tool-run.json", "tool-a")]
    assert sorted(s.as_dict().items() for s in skipped) == sorted(
        d.items()
        for d in [
            {"path": "a/caf\\xe9.tool-run.json", "reason": "file name is not UTF-8 (rename it to read it)"},
            {"path": "folder", "reason": "symbolic link to a folder, not followed (to a path outside the evaluation folder)"},
            {"path": "link.tool-run.json", "reason": "symbolic link, not followed (to a/good.tool-run.json)"},
            {"path": "out.tool-run.json", "reason": "symbolic link, not followed (to a path outside the evaluation folder)"},
        ]
    )
    # what is recorded can be written as JSON and printed (a surrogate escape would crash both)
    orjson.dumps([s.as_dict() for s in skipped])
    assert all(s.path.encode("utf-8") for s in skipped)


def test_paths_given_by_the_caller_get_the_same_checks(tmp_path: Path) -> None:
    ms.write(tmp_path / "a.tool-run.json", _doc("tool-a"), "tool-run", 2)
    os.symlink(tmp_path / "a.tool-run.json", tmp_path / "b.tool-run.json")
    skipped: list[consume.Skipped] = []
    got = [
        rel for rel, _, _ in consume.iter_tool_runs(tmp_path, skipped, paths=[tmp_path / "a.tool-run.json", tmp_path / "b.tool-run.json"])
    ]
    assert got == ["a.tool-run.json"] and [s.path for s in skipped] == ["b.tool-run.json"]


def test_find_keeps_the_sorted_order_of_plain_files(tmp_path: Path) -> None:
    for rel in ("b/x.tool-run.json", "a-b/y.tool-run.json", "a/z.tool-run.json", "a.tool-run.json", "c/other.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    assert consume.find(tmp_path) == sorted(tmp_path.rglob("*.tool-run.json"))


def test_display_name_is_printable_utf8() -> None:
    assert consume.display_name(os.fsdecode(b"a\xff\xfeb")) == "a\\xff\\xfeb"
    assert consume.display_name("plain/name.json") == "plain/name.json"
