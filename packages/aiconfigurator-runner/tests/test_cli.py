"""The runner contract (packages/README.md) through the real console entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import DATA, cli, run_doc


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_bad_configs_exit_2_with_one_line(tmp_path: Path, write_config) -> None:
    line = _one_line_error(cli("cases", "--config", str(write_config(hardware=["A100"])), "--data-dir", str(DATA)))
    assert "field hardware[0]" in line
    line = _one_line_error(
        cli("run", "--config", str(write_config(backend="vllm")), "--data-dir", str(DATA), "--output", str(tmp_path / "out"))
    )
    assert "backend" in line
    line = _one_line_error(
        cli("run", "--config", str(write_config(include=["nothing.*"])), "--data-dir", str(DATA), "--output", str(tmp_path / "out"))
    )
    assert "selects no cases" in line
    (tmp_path / "broken.json").write_text("{")
    _one_line_error(cli("cases", "--config", str(tmp_path / "broken.json"), "--data-dir", str(DATA)))
    assert not list(tmp_path.glob("out/*.json")), "a user error writes no document"


def test_cases_prints_the_plan_and_limit_cuts_it() -> None:
    proc = cli("cases", "--data-dir", str(DATA))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 78 and rows[0]["key"] == "llama2-7b.prefill.b1.t128.fp16"
    assert {r["hardware"] for r in rows} == {"H100-SXM5-80GB", "H200-SXM-141GB"}
    limited = cli("cases", "--data-dir", str(DATA), "--limit", "5")
    assert [json.loads(line) for line in limited.stdout.splitlines()] == rows[:5]


def test_two_runs_give_the_same_document_and_limit_cuts_the_run(tmp_path: Path, write_config) -> None:
    cfg = write_config(include=["llama2-7b.decode.b1.kv*", "gpt2.model.b1.s128.fp16"])
    p1, d1 = run_doc(tmp_path / "a", "--config", str(cfg))
    assert p1.returncode == 0, p1.stderr
    assert [c["status"] for c in d1["cases"]] == ["ok"] * 3 + ["unsupported"] + ["ok"] * 3 + ["unsupported"]
    assert d1["tool"] == {
        "name": "aiconfigurator",
        "version": "0.12.0",
        "backend": "native",
        "location": "aiconfigurator 0.12.0 from PyPI (aiconfigurator-core 0.12.0)",
    }
    p2, d2 = run_doc(tmp_path / "b", "--config", str(cfg), "--limit", "4")
    assert p2.returncode == 0, p2.stderr
    assert len(d2["cases"]) == 4
    # the same cases give the same records: the tool is deterministic and the document holds no run-dependent value
    assert d2["cases"] == d1["cases"][:4]
    strip = lambda d: {k: v for k, v in d.items() if k not in ("wall_clock", "invocation", "cases")}  # noqa: E731
    assert strip(d1) == strip(d2)


def test_missing_package_gives_unavailable_records_and_no_traceback(tmp_path: Path) -> None:
    hide = tmp_path / "hide" / "aiconfigurator"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError(\"No module named 'aiconfigurator' (hidden by the test)\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hide.parent), os.environ.get("PYTHONPATH")]))}
    proc, doc = run_doc(tmp_path, "--limit", "3", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert {(c["status"], c["error"]["kind"]) for c in doc["cases"]} == {("unavailable", "package-missing")}
    assert "aiconfigurator==0.12.0" in doc["cases"][0]["error"]["message"]
    assert doc["tool"]["version"] is None
