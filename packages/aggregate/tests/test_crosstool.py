"""The W5 cross-tool tables (issue 30): the same cases for every tool, per GPU, n and intervals."""

from __future__ import annotations

from pathlib import Path

from conftest import case, document, metric

import mtap_schemas as ms
from mtap_aggregate.cli import build
from mtap_aggregate.crosstool import w5_cross_tool

REPO = Path(__file__).resolve().parents[3]
PREFILL = "llama2-7b.prefill.b1.t{t}.fp16"
DECODE = "llama2-7b.decode.b{b}.kv{kv}.fp16"


def measured(key: str, ms_: float, hw: str = "H100-SXM5-80GB") -> dict:
    return case(f"gt:{hw}:{key}", workload="W5", hardware=hw, key=key,
                metrics=[metric("latency", ms_, kind="measurement", timing="device"),
                         metric("latency_spread", 0.02, unit="1", kind="measurement", timing="device")])


def predicted(tool: str, key: str, ms_: float, hw: str = "H100-SXM5-80GB") -> dict:
    return case(f"{tool}:{hw}:{key}", workload="W5", hardware=hw, key=key, metrics=[metric("latency", ms_, timing="simulated")])


def test_each_tool_is_scored_on_the_measured_keys_with_its_own_n(tmp_path: Path, write_doc) -> None:
    keys = [PREFILL.format(t=t) for t in (128, 256)] + [DECODE.format(b=b, kv=512) for b in (1, 2)]
    write_doc("gt/h100.tool-run.json", document("groundtruth", [measured(k, 10.0) for k in keys], backend="measured"))
    write_doc("a/a.tool-run.json", document("tool-a", [predicted("tool-a", k, 5.0) for k in keys]))
    # tool-b predicts only two of the four, and a key that is not W5's static grammar (never listed)
    write_doc("b/b.tool-run.json", document("tool-b", [predicted("tool-b", k, 12.0) for k in keys[:2]]
                                            + [predicted("tool-b", "llama2-7b.batch.p1.d0.fp16", 1.0)]))
    doc, _ = build(tmp_path)
    import polars as pl

    summary, per_case = w5_cross_tool(pl.DataFrame(doc["errors_vs_measured"]))
    rows = {(r[0], r[1]): r for r in summary.rows}
    assert rows[("H100-SXM5-80GB", "tool-a")][2:4] == ["4", "50.0%"]
    assert rows[("H100-SXM5-80GB", "tool-b")][2:4] == ["2 of 4", "20.0%"]
    assert rows[("H100-SXM5-80GB", "tool-a")][7].startswith("0.50")
    assert [r[1] for r in per_case.rows] == keys  # prefill by tokens, then decode by batch and KV
    assert per_case.columns[-2:] == ["tool-a", "tool-b"]
    assert per_case.rows[-1][-1] == "—" and per_case.rows[0][3] == "2.0%"


def test_the_committed_cross_tool_tables_are_this_datas() -> None:
    evaluation = REPO / "data" / "evaluation"
    claims = ms.read(REPO / "data" / "claims" / "self-reported.json", "claims", 2)["claims"]
    tables: list = []
    build(evaluation, claims=claims, hardware=ms.read(REPO / "data" / "hardware" / "hardware.json", "hardware"), tables_out=tables)
    for table in tables:
        if table.name.startswith("w5-cross-tool"):
            committed = (evaluation / "tables" / f"{table.name}.md").read_text(encoding="utf-8")
            assert committed == table.markdown(), f"tables/{table.name}.md is stale: run nox -s aggregate"
    summary = next(t for t in tables if t.name == "w5-cross-tool")
    tools = {r[1] for r in summary.rows}
    assert {"genz", "aiconfigurator", "analytical"} <= tools
    for row in summary.rows:  # the LLM-era peers are scored on every measured case of their GPU
        if row[1] in ("genz", "aiconfigurator"):
            assert int(row[2]) >= 10
