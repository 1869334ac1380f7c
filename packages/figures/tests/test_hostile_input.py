"""Hostile inputs (issue 32): each builds the bad input in tmp_path and checks the exit code and the one line."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from conftest import ok, tool_doc
from test_figures import _vidur_with_csv, evaluation, run_cli, small_aggregate

import mtap_schemas as ms

TABLE = "mtap-aggregate-results.table.parquet"


def _errors(res) -> list[str]:
    return [x for x in res.output.splitlines() if x.startswith("Error:")]


def _with_table(tmp_path: Path) -> Path:
    """An aggregate whose table file is on disk and recorded with its sha256 (the bytes need not be Parquet: only the hash is checked)."""
    data = b"PAR1" + bytes(range(256)) * 4 + b"PAR1"
    doc = small_aggregate()
    doc["table"]["file"] = {"path": TABLE, "sha256": hashlib.sha256(data).hexdigest()}
    ev = evaluation(tmp_path, doc, only_aggregate=True)
    (ev / TABLE).write_bytes(data)
    return ev


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing"])
def test_a_damaged_aggregate_table_is_one_line_exit_2_and_nothing_drawn(tmp_path: Path, damage: str) -> None:
    ev = _with_table(tmp_path)
    table = ev / TABLE
    data = table.read_bytes()
    if damage == "flip":
        table.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncate":
        table.write_bytes(data[: len(data) // 2])
    else:
        table.unlink()
    out = tmp_path / "f"
    res = run_cli(ev, out)
    assert res.exit_code == 2, res.output
    errors = _errors(res)
    assert len(errors) == 1 and str(table) in errors[0] and "Traceback" not in res.output, res.output
    assert ("missing" if damage == "missing" else "sha256") in errors[0]
    assert not out.exists(), "no figure may be drawn from an aggregate whose table is not the recorded one"


def test_an_intact_aggregate_table_is_accepted(tmp_path: Path) -> None:
    res = run_cli(_with_table(tmp_path), tmp_path / "f")
    assert res.exit_code == 0, res.output


def test_rows_without_a_table_file_are_refused(tmp_path: Path) -> None:
    doc = small_aggregate()
    doc["table"]["rows"] = 5
    res = run_cli(evaluation(tmp_path, doc, only_aggregate=True), tmp_path / "f")
    assert res.exit_code == 2 and "records 5 table rows but no table file" in _errors(res)[0], res.output


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"Request Id,request_e2e_time\n0,0.1,9,9\n", "request_metrics CSV line 2: 4 fields, the header has 2"),
        (b"Request Id,request_e2e_time,request_e2e_time\n0,0.1,0.2\n", "column 'request_e2e_time' appears more than once"),
    ],
)
def test_a_request_metrics_csv_of_unexpected_shape_is_one_line(tmp_path: Path, content: bytes, expect: str) -> None:
    ev = _vidur_with_csv(tmp_path, content)
    out = tmp_path / "f"
    res = run_cli(ev, out)
    assert res.exit_code == 2, res.output
    errors = _errors(res)
    assert len(errors) == 1 and expect in errors[0] and "request_metrics.csv" in errors[0], res.output
    assert not out.exists()


def test_a_non_string_scheduler_names_the_document_and_case(tmp_path: Path) -> None:
    ev = evaluation(tmp_path, small_aggregate(), only_aggregate=True)
    cdf = [{"name": f"ttft_cdf_p{p:03d}", "value": 0.01, "unit": "s", "kind": "measurement", "timing": "device"} for p in range(0, 101, 5)]
    cases = [
        ok("W5/H200-SXM-141GB/vllm/qps=8", None, {"scheduler": 5}, cdf, workload="W5", hardware="H200-SXM-141GB"),
        ok("W5/H200-SXM-141GB/orca/static", None, {"scheduler": "orca"}, cdf, workload="W5", hardware="H200-SXM-141GB"),
    ]
    ms.write(ev / "vidur/replay.tool-run.json", tool_doc("vidur-replay", cases, backend="replayed"), "tool-run", 2)
    res = run_cli(ev, tmp_path / "f")
    assert res.exit_code == 2, res.output
    errors = _errors(res)
    assert (
        len(errors) == 1
        and "replay.tool-run.json: case W5/H200-SXM-141GB/vllm/qps=8: parameter scheduler: expected a string, got 5" in errors[0]
    )


def test_hostile_file_names_do_not_inject_lines_into_sources_md(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    ms.write(ev / "a.tool-run.json", tool_doc("vidur", []), "tool-run", 2)
    (ev / "bad|x\n- injected `tick`.tool-run.json").write_bytes(b"not json")
    os.symlink(ev / "a.tool-run.json", ev / "link.tool-run.json")
    with open(os.fsencode(ev) + b"/latin\xe9.tool-run.json", "wb") as handle:  # a Latin-1 name: not UTF-8
        handle.write(b"{}")
    res = run_cli(ev, tmp_path / "f")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "f" / "sources.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert not any(line.startswith("- injected") for line in lines)
    skipped = lines[lines.index("## Skipped") + 2 :]
    assert len(skipped) == 3, skipped
    assert any(x.startswith("- ``bad|x - injected `tick`.tool-run.json``: not valid JSON") for x in skipped), skipped
    assert "- `latin\\xe9.tool-run.json`: file name is not UTF-8 (rename it to read it)" in skipped
    assert "- `link.tool-run.json`: symbolic link, not followed (to a.tool-run.json)" in skipped
