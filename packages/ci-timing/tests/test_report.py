"""The report without CI history, the determinism column from tool-run documents, and the schema."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

import mtap_schemas
from mtap_ci_timing.cli import main


def tool_run(tool: str, flags: list[bool | None]) -> dict:
    """A schema-valid tool-run document whose cases carry the given ``deterministic`` flags
    (reader input for the determinism column; no metric here stands for a tool's output)."""
    cases = []
    for i, flag in enumerate(flags):
        case = {
            "id": f"case-{i}", "workload": "W1", "hardware": "A100-SXM4-80GB", "parameters": {}, "status": "unavailable",
            "error": {"kind": "binary-missing", "message": "not installed here"}, "metrics": [], "artifacts": [],
        }
        if flag is not None:
            case["deterministic"] = flag
        cases.append(case)
    return {
        "schema": "tool-run", "schema_version": mtap_schemas.version("tool-run"),
        "runner": {"name": f"{tool}-runner", "version": "0.0.0"},
        "tool": {"name": tool, "version": None, "backend": "native"},
        "environment": {"python": "3.11", "platform": "linux", "cpu": "x"},
        "invocation": {"command": [f"{tool}-runner", "run"]},
        "wall_clock": {"started_at": "2026-01-01T00:00:00Z", "setup_seconds": 0, "run_seconds": 0},
        "cases": cases,
    }


def run_report(tmp_path, *extra):
    result = CliRunner().invoke(
        main,
        ["report", "--input", str(tmp_path / "ci" / "ci-timing.json"), "--evaluation-dir", str(tmp_path / "eval"), "--output", str(tmp_path / "report.md"), *extra],
        catch_exceptions=False,
    )
    return result, (tmp_path / "report.md").read_text() if (tmp_path / "report.md").exists() else None


def test_report_without_ci_history_says_so(tmp_path):
    result, text = run_report(tmp_path)
    assert result.exit_code == 0 and "no ci-timing document yet" in result.stderr
    assert "**No CI history scraped yet.**" in text and "**No local measurement yet.**" in text
    assert "No tool-run documents under" in text


def test_determinism_column_from_tool_runs(tmp_path):
    mtap_schemas.write(tmp_path / "eval" / "vidur" / "vidur.tool-run.json", tool_run("vidur", [True, True, None]), "tool-run")
    mtap_schemas.write(tmp_path / "eval" / "astra-sim" / "astra-sim.tool-run.json", tool_run("astra-sim", [True, False]), "tool-run")
    mtap_schemas.write(tmp_path / "eval" / "zigzag" / "zigzag.tool-run.json", tool_run("zigzag", [None]), "tool-run")
    (tmp_path / "eval" / "broken").mkdir()
    (tmp_path / "eval" / "broken" / "broken.tool-run.json").write_text('{"schema": "tool-run", "schema_version": "2.0.0"}')
    result, text = run_report(tmp_path)
    assert result.exit_code == 0
    assert "| vidur | 1 | 3 | 2 | 0 | 1 | yes (2/2 cases identical) |" in text
    assert "| astra-sim | 1 | 2 | 1 | 1 | 0 | no (1/2 cases identical) |" in text
    assert "| zigzag | 1 | 1 | 0 | 0 | 1 | not checked (0/1 cases compared) |" in text
    assert "`broken/broken.tool-run.json`: " in text and "broken.tool-run.json: field" in text


def test_a_document_whose_every_case_is_superseded_is_not_counted(tmp_path):
    """A leftover all-unavailable document beside the real results must not turn the tool's row
    into 'not compared' (issue 21: astra-sim.unavailable.tool-run.json)."""
    real = tool_run("astra-sim", [True, True])
    for case in real["cases"]:
        case.update(status="ok", error=None, metrics=[{"name": "cycles", "value": 1, "unit": "cycles", "kind": "prediction"}])
    mtap_schemas.write(tmp_path / "eval" / "astra-sim" / "astra-sim.tool-run.json", real, "tool-run")
    mtap_schemas.write(tmp_path / "eval" / "astra-sim" / "astra-sim.unavailable.tool-run.json", tool_run("astra-sim", [None, None]), "tool-run")
    partly = tool_run("astra-sim", [None, None, None])  # case-2 is its own: this document still counts, with that case only
    mtap_schemas.write(tmp_path / "eval" / "astra-sim" / "more.tool-run.json", partly, "tool-run")
    result, text = run_report(tmp_path)
    assert result.exit_code == 0
    assert "| astra-sim | 2 | 3 | 2 | 0 | 1 | yes (2/2 cases identical) |" in text
    assert "- `astra-sim/astra-sim.unavailable.tool-run.json` (astra-sim)" in text
    assert "more.tool-run.json` (astra-sim)" not in text


def test_invalid_ci_document_is_one_line_exit_2(tmp_path):
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "ci-timing.json").write_text(json.dumps({"schema": "ci-timing", "schema_version": "1.0.0"}))
    result, text = run_report(tmp_path)
    assert result.exit_code == 2 and result.stderr.startswith("Error: ") and "ci-timing.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and text is None


MINIMAL = {
    "schema": "ci-timing", "schema_version": "1.0.0",
    "scraper": {"name": "ci-timing", "version": "0.1.0", "client": "PyGithub 2.10.0"},
    "source": {"api_url": "https://api.github.com", "repository": "o/r", "workflow": None, "branch": None, "event": None, "attempts": "all",
               "runs_requested": 1, "authenticated": False, "command": ["ci-timing", "run", "--repo", "o/r"]},
    "rules": {"tools": {}, "setup_steps": [], "docker_steps": [], "teardown_steps": []},
    "complete": True, "missing": [], "wall_clock": {"scraped_at": "2026-01-01T00:00:00Z"},
    "runs": [], "tools": [], "unmapped_jobs": [],
}


def test_v1_document_is_still_read_and_reported(tmp_path):
    """A committed v1 document (GitHub only) renders through the v2 report, nothing invented."""
    mtap_schemas.write(tmp_path / "ci" / "ci-timing.json", MINIMAL, "ci-timing")
    result, text = run_report(tmp_path)
    assert result.exit_code == 0, result.output
    assert "## GitHub Actions history" in text and "`o/r` via https://api.github.com, 0 completed workflow run(s)" in text
    assert "**No local measurement yet.**" in text


def test_v2_schema_is_strict_and_github_or_local():
    from mtap_ci_timing.report import upgrade_v1

    v2 = upgrade_v1(copy.deepcopy(MINIMAL))
    mtap_schemas.validate(v2, "ci-timing", 2)
    assert mtap_schemas.version("ci-timing", 2) == "2.1.0"  # 2.1: optional job.image and install_path.attempted
    for source in ({**v2["source"], "kind": "local"}, {**v2["source"], "token": "x"}, {"kind": "local"}):
        bad = copy.deepcopy(v2)
        bad["source"] = source
        with pytest.raises(mtap_schemas.SchemaError):
            mtap_schemas.validate(bad, "ci-timing", 2)


def test_schema_accepts_minimal_and_is_strict():
    mtap_schemas.validate(MINIMAL, "ci-timing")
    assert mtap_schemas.version("ci-timing") == "1.0.0"
    extra = copy.deepcopy(MINIMAL)
    extra["source"]["token"] = "x"
    with pytest.raises(mtap_schemas.SchemaError, match="unexpected"):
        mtap_schemas.validate(extra, "ci-timing")
    missing = copy.deepcopy(MINIMAL)
    del missing["complete"]
    with pytest.raises(mtap_schemas.SchemaError, match="complete"):
        mtap_schemas.validate(missing, "ci-timing")


def test_rules_command_prints_defaults():
    result = CliRunner().invoke(main, ["rules"])
    data = json.loads(result.stdout)
    assert data["tools"]["nn-meter"] == ["^nn-?meter"] and "^complete job$" in data["teardown_steps"]


def test_help_explains():
    out = CliRunner().invoke(main, ["run", "--help"]).output
    for word in ("GITHUB_TOKEN", "--api-url", "--max-wait", "Exit 3", "complete: false"):
        assert word in out or word in CliRunner().invoke(main, ["--help"]).output


def test_report_never_shows_credentials_a_document_holds(tmp_path):
    """A valid ci-timing document written elsewhere (or by an older ci-timing) with credentials in its URLs."""
    doc = copy.deepcopy(MINIMAL)
    doc["source"]["api_url"] = "https://octocat:SECRET-1@ghe.example/api/v3?access_token=SECRET-2"
    doc["complete"] = False
    doc["missing"] = [{"what": "runs after the 0 read", "reason": "https://x:SECRET-3@ghe.example/api/v3/repos/o/r/actions/runs: HTTP 502"}]
    mtap_schemas.write(tmp_path / "ci" / "ci-timing.json", doc, "ci-timing")
    result, text = run_report(tmp_path)
    assert result.exit_code == 0
    assert "SECRET" not in text and "octocat" not in text
    assert "via https://ghe.example/api/v3," in text and "https://ghe.example/api/v3/repos/o/r/actions/runs: HTTP 502" in text


def test_the_committed_report_is_what_the_committed_data_gives(tmp_path, monkeypatch) -> None:
    """deployment-viability-report.md is rebuilt from data/evaluation (ci-timing documents and the runners'
    determinism records); a document added without `nox -s ci-timing` leaves it stale, and this says so."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    committed = root / "data" / "evaluation" / "deployment-viability-report.md"
    if not committed.is_file():
        pytest.skip("no committed report")
    monkeypatch.chdir(root)
    out = tmp_path / "report.md"
    result = CliRunner().invoke(main, ["report", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == committed.read_text(), "stale: run `nox -s ci-timing` and commit the report"
