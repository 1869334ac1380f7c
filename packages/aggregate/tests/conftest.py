from __future__ import annotations

from pathlib import Path

import pytest

import mtap_schemas as ms


def case(cid, workload="W1", hardware="H100-SXM5-80GB", key=None, status="ok", metrics=None, error=None):
    if status != "ok" and error is None:
        error = {"kind": "binary-missing", "message": "no binary given"}
    return {
        "id": cid,
        "key": key,
        "workload": workload,
        "hardware": hardware,
        "parameters": {},
        "status": status,
        "error": error,
        "metrics": metrics if metrics is not None else ([] if status != "ok" else [metric("latency", 1.0)]),
        "artifacts": [],
    }


def metric(name, value, unit="ms", kind="prediction", timing=None):
    m = {"name": name, "value": value, "unit": unit, "kind": kind}
    if timing:
        m["timing"] = timing
    return m


def document(tool, cases, backend="native"):
    return {
        "schema": "tool-run",
        "schema_version": "2.0.0",
        "runner": {"name": f"{tool}-runner", "version": "0"},
        "tool": {"name": tool, "version": "1", "backend": backend},
        "environment": {"python": "3.11", "platform": "linux", "cpu": "test"},
        "invocation": {"command": [tool], "config": None},
        "wall_clock": {"started_at": "2026-11-26T00:00:00Z", "setup_seconds": 0, "run_seconds": 0},
        "cases": cases,
    }


@pytest.fixture
def write_doc(tmp_path: Path):
    def _write(rel: str, doc) -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(doc, str):
            path.write_text(doc)
        else:
            ms.write(path, doc, "tool-run", ms.TOOL_RUN_MAJOR)
        return path

    return _write
