"""The real client (PyGithub, urllib3 retries) against the GitHub-shaped server in conftest.py.
All traffic goes to 127.0.0.1; every loop is bounded by --runs, --retries and --max-wait."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from conftest import FakeGitHub, Fault, make_history, rate_limited

import mtap_schemas
from mtap_ci_timing.cli import main

SENTINEL = "ghp_SENTINELtoken0123456789abcdefABCDEF"


def invoke(args, env=None):
    base_env = {"GITHUB_TOKEN": None, "GITHUB_REPOSITORY": None, "GITHUB_API_URL": None}
    return CliRunner().invoke(main, args, env={**base_env, **(env or {})}, catch_exceptions=False)


def doc_of(tmp_path: Path) -> dict:
    return mtap_schemas.read(tmp_path / "out" / "ci-timing.json", "ci-timing", 2)


def tool(doc, name):
    return next(t for t in doc["tools"] if t["tool"] == name)


def test_scrape_pages_and_timings(fake, cli_args, tmp_path):
    result = invoke(cli_args("--runs", "4"))
    assert result.exit_code == 0, result.output
    doc = doc_of(tmp_path)
    assert doc["complete"] is True and doc["missing"] == []
    assert [r["run_number"] for r in doc["runs"]] == [100, 99, 98, 97]
    # Link-header pagination for runs (2 a page) and jobs (3 a page); page 3 of runs is never asked for.
    paths = fake.paths()
    runs_path = "/repos/mtap/mtap/actions/runs"
    assert paths[:2] == ["/repos/mtap/mtap", runs_path]
    assert f"{runs_path}?page=2" in paths and f"{runs_path}?page=3" not in paths
    assert paths.count(f"{runs_path}/9100/jobs") == 1 and paths.count(f"{runs_path}/9100/jobs?page=2") == 1
    assert len(paths) == 2 + 1 + 4 * 2  # repo, 2 pages of runs, 2 pages of jobs for each of 4 runs: nothing else
    assert all(r["query"].get("status") == "completed" for r in fake.requests if r["path"] == runs_path)
    assert all(r["query"].get("filter") == "all" for r in fake.requests if r["path"].endswith("/jobs"))
    assert all(len(r["jobs"]) == 5 for r in doc["runs"])

    astra = tool(doc, "astra-sim")
    assert astra["conclusions"] == {"success": 4} and astra["success_rate"] == 1
    assert astra["setup_seconds"] == {"n": 4, "median": 41.5, "p10": 40.3, "p90": 42.7, "stdev": 1.291, "min": 40, "max": 43}
    assert astra["run_seconds"]["median"] == 60 and astra["docker_build_seconds"]["n"] == 0
    assert astra["native"] == {"jobs": 4, "success": 4} and astra["docker"] == {"jobs": 0, "success": 0}

    timeloop = tool(doc, "timeloop")
    assert timeloop["docker_build_seconds"]["min"] == 100 and timeloop["docker_build_seconds"]["max"] == 130
    assert timeloop["setup_seconds"]["median"] == 120  # 3 + 2 + (100..130) -> 105..135
    assert timeloop["docker"] == {"jobs": 4, "success": 4}

    nnmeter = tool(doc, "nn-meter")
    assert nnmeter["conclusions"] == {"failure": 4} and nnmeter["success_rate"] == 0 and nnmeter["setup_seconds"]["n"] == 0

    aggregate = tool(doc, "aggregate")
    assert aggregate["conclusions"] == {"skipped": 1, "success": 3} and aggregate["success_rate"] == 1
    assert doc["unmapped_jobs"] == [{"name": "lint", "count": 4}]

    job = next(j for j in doc["runs"][0]["jobs"] if j["name"] == "astra")
    assert job["attempt"] == 1
    assert job["started_at"] == "2026-01-05T10:00:10Z" and job["queue_seconds"] == 7 and job["runner"] == "GitHub Actions 7"
    assert [s["category"] for s in job["steps"]] == ["setup", "setup", "setup", "setup", "run", "teardown", "teardown"]
    assert doc["source"] == {
        "kind": "github", "api_url": fake.base, "repository": "mtap/mtap", "workflow": None, "branch": None, "event": None,
        "attempts": "all", "runs_requested": 4, "authenticated": False,
        "command": ["ci-timing", "run", "--repo", "mtap/mtap", "--runs", "4", "--api-url", fake.base],
    }
    report = (tmp_path / "report.md").read_text()
    assert "| astra-sim | 4 | 4 | 0 | 0 | 100% | 42 [40–43] ±1 | 102 [100–103] ±1 | 60 [60–60] ±0 | – | no tool-run document |" in report
    assert "| nn-meter | 4 | 0 | 4 | 0 | 0% |" in report
    assert "| #100 | #99 | #98 | #97 |" in report and "- `lint` (4×)" in report
    # the success matrix (aggregate skipped in run 99) and Docker vs native (timeloop builds its image)
    assert "| aggregate | ✓ | – | ✓ | ✓ |" in report and "| nn-meter | ✗ | ✗ | ✗ | ✗ |" in report
    assert "| timeloop | 4 | 4 | 0 | 0 |" in report and "| nn-meter | 0 | 0 | 4 | 0 |" in report
    assert report.index("### Success matrix") < report.index("### Docker vs native") < report.index("### Jobs not mapped")


def test_token_is_sent_but_never_printed_logged_or_written(fake, cli_args, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's debug logs; --verbose turns on PyGithub's (request headers, bodies)
    fake.valid_token = SENTINEL
    result = invoke(cli_args("--runs", "2", "--verbose"), env={"GITHUB_TOKEN": SENTINEL})
    assert result.exit_code == 0, result.output
    assert all(r["authorization"] and SENTINEL in r["authorization"] for r in fake.requests)
    assert all(r["user_agent"].startswith("mtap-ci-timing/") for r in fake.requests)
    assert doc_of(tmp_path)["source"]["authenticated"] is True
    assert any(r.name.startswith("github") for r in caplog.records), "expected PyGithub's debug logs to be captured"
    texts = {"stdout": result.stdout, "stderr": result.stderr, "logs": caplog.text}
    texts.update({str(p): p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()})
    leaks = [where for where, text in texts.items() if SENTINEL in text or SENTINEL[4:20] in text]
    assert leaks == []


def test_token_does_not_leak_from_a_real_process_either(fake, tmp_path):
    fake.valid_token = SENTINEL
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update({"GITHUB_TOKEN": SENTINEL, "GITHUB_REPOSITORY": "mtap/mtap", "GITHUB_API_URL": fake.base})
    proc = subprocess.run(
        [sys.executable, "-m", "mtap_ci_timing.cli", "run", "--verbose", "--runs", "1", "--output", str(tmp_path / "out"), "--report", str(tmp_path / "r.md"),
         "--evaluation-dir", str(tmp_path / "eval"), "--request-interval", "0"],
        check=False, capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "GET" in proc.stderr and "/actions/runs" in proc.stderr  # the request log really went to stderr
    blobs = [proc.stdout, proc.stderr] + [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(SENTINEL in b for b in blobs)
    doc = doc_of(tmp_path)
    assert doc["source"]["repository"] == "mtap/mtap" and doc["source"]["api_url"] == fake.base  # taken from the environment


def test_without_token_no_authorization_header(fake, cli_args, tmp_path):
    assert invoke(cli_args("--runs", "1")).exit_code == 0
    assert all(r["authorization"] is None for r in fake.requests)


def test_bad_token_is_one_line_exit_2(fake, cli_args, tmp_path):
    fake.valid_token = "the-right-one"
    result = invoke(cli_args(), env={"GITHUB_TOKEN": "wrong-token"})
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ") and "401" in result.stderr and "Bad credentials" in result.stderr
    assert isinstance(result.exception, SystemExit) and "wrong-token" not in result.output  # exited, did not crash
    assert not (tmp_path / "out").exists() and not (tmp_path / "report.md").exists()


def test_unknown_repo_is_one_line_exit_2_from_a_real_process(fake, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    proc = subprocess.run(
        [sys.executable, "-m", "mtap_ci_timing.cli", "run", "--repo", "mtap/nope", "--api-url", fake.base, "--output", str(tmp_path / "out"),
         "--request-interval", "0"],
        check=False, capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error")]
    assert lines == [f"Error: {fake.base}: HTTP 404: repository mtap/nope not found or is private (set GITHUB_TOKEN to a token that can read it)"]
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_unknown_workflow_is_exit_2(fake, cli_args, tmp_path):
    result = invoke(cli_args("--workflow", "nope.yml"))
    assert result.exit_code == 2 and "workflow 'nope.yml' not found" in result.stderr


def test_workflow_filter(fake, cli_args, tmp_path):
    result = invoke(cli_args("--workflow", "ci.yml", "--branch", "main", "--runs", "1"))
    assert result.exit_code == 0, result.output
    listing = [r for r in fake.requests if r["path"].endswith("/workflows/161335/runs")]
    assert listing and listing[0]["query"]["branch"] == "main"
    assert doc_of(tmp_path)["source"]["workflow"] == "ci.yml"


def test_missing_repo_option_is_a_usage_error():
    result = invoke(["run"])
    assert result.exit_code == 2 and "pass --repo OWNER/NAME or set GITHUB_REPOSITORY" in result.output
    for bad in ("no-slash", "a/b/c", "a/b c", "/b"):
        result = invoke(["run", "--repo", bad])
        assert result.exit_code == 2 and "expected OWNER/NAME" in result.output


def test_rate_limit_403_waits_for_the_reset_then_completes(fake, cli_args, tmp_path):
    fake.faults.append(rate_limited(r"/runs/9099/jobs$", reset_in=1))
    began = time.monotonic()
    result = invoke(cli_args("--runs", "3", "--max-wait", "30"))
    waited = time.monotonic() - began
    assert result.exit_code == 0, result.output
    assert "HTTP 403 rate limit: waiting" in result.stderr
    assert fake.faults[0].hits == 1 and waited >= 1.0
    doc = doc_of(tmp_path)
    assert doc["complete"] is True and [r["run_number"] for r in doc["runs"]] == [100, 99, 98]


def test_rate_limit_beyond_max_wait_stops_with_partial_document(fake, cli_args, tmp_path):
    fake.faults.append(rate_limited(r"/runs/9098/jobs", reset_in=3600, times=-1))
    began = time.monotonic()
    result = invoke(cli_args("--runs", "4", "--max-wait", "5"))
    assert time.monotonic() - began < 5  # stopped instead of sitting out the hour
    assert result.exit_code == 3
    assert "longer than --max-wait 5 s" in result.stderr and "complete: false" in result.stderr
    assert isinstance(result.exception, SystemExit)  # exited, did not crash
    doc = doc_of(tmp_path)
    assert doc["complete"] is False
    assert [r["run_number"] for r in doc["runs"]] == [100, 99]  # run 98 (its jobs unread) is left out, not half-written
    whats = [m["what"] for m in doc["missing"]]
    assert whats == ["jobs of run 9098 (#98), so that run is left out", "runs after the 2 read (of 4 requested) were not listed"]
    assert "rate limit resets at" in doc["missing"][0]["reason"]
    assert "Incomplete scrape" in (tmp_path / "report.md").read_text()


def test_rate_limit_on_first_request_writes_nothing(fake, cli_args, tmp_path):
    fake.faults.append(rate_limited(r"^/repos/mtap/mtap$", reset_in=3600, times=-1))
    result = invoke(cli_args("--max-wait", "1"))
    assert result.exit_code == 3 and "nothing written" in result.stderr
    assert not (tmp_path / "out").exists()


def test_429_retry_after_is_honoured_and_bounded(fake, cli_args, tmp_path):
    fake.faults.append(Fault(path=r"/actions/runs$", status=429, body={"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}, headers=lambda: {"Retry-After": "1"}))
    result = invoke(cli_args("--runs", "1", "--max-wait", "10"))
    assert result.exit_code == 0, result.output
    assert fake.faults[0].hits == 1 and "HTTP 429 rate limit: waiting 1 s" in result.stderr

    fake.requests.clear()
    fake.faults[:] = [Fault(path=r"/actions/runs$", status=429, body={"message": "slow down"}, headers=lambda: {"Retry-After": "3600"}, times=-1)]
    result = invoke(cli_args("--runs", "1", "--max-wait", "10"))
    assert result.exit_code == 3 and "asks to wait 3600 s" in result.stderr and "no run was read" in result.stderr


def test_server_errors_exhaust_retries_and_keep_the_first_page(fake, cli_args, tmp_path):
    fault = Fault(path=r"/actions/runs$", status=502, body={"message": "Server Error"}, times=-1)
    original = fake.answer

    def answer(path, query, auth):  # only page 2 of the runs listing keeps failing
        if path.endswith("/actions/runs") and query.get("page") == ["2"]:
            fault.hits += 1
            return 502, fault.body, {}
        return original(path, query, auth)

    fake.answer = answer
    result = invoke(cli_args("--runs", "4", "--retries", "1"))
    assert result.exit_code == 3
    assert fault.hits == 2  # the first try and one retry: bounded
    doc = doc_of(tmp_path)
    assert [r["run_number"] for r in doc["runs"]] == [100, 99] and doc["complete"] is False
    assert doc["missing"] == [{"what": "runs after the 2 read (of 4 requested) were not listed", "reason": doc["missing"][0]["reason"]}]
    assert "gave up after --retries 1" in doc["missing"][0]["reason"]


def test_fewer_runs_than_requested_is_complete(fake, cli_args, tmp_path):
    result = invoke(cli_args("--runs", "50"))
    assert result.exit_code == 0
    doc = doc_of(tmp_path)
    assert len(doc["runs"]) == 5 and doc["complete"] is True


def test_output_is_deterministic_apart_from_wall_clock(fake, cli_args, tmp_path):
    assert invoke(cli_args("--runs", "3")).exit_code == 0
    first = doc_of(tmp_path)
    report_first = (tmp_path / "report.md").read_bytes()
    assert invoke(cli_args("--runs", "3")).exit_code == 0
    assert mtap_schemas.canonical(doc_of(tmp_path)) == mtap_schemas.canonical(first)
    assert (tmp_path / "report.md").read_bytes() == report_first
    text = (tmp_path / "out" / "ci-timing.json").read_text()
    assert text == mtap_schemas.dumps(json.loads(text))


def test_custom_config_maps_jobs(fake, cli_args, tmp_path):
    config = tmp_path / "rules.json"
    config.write_text(json.dumps({"tools": {"lint": ["^lint$"]}}))
    assert invoke(cli_args("--runs", "1", "--config", str(config))).exit_code == 0
    doc = doc_of(tmp_path)
    assert [t["tool"] for t in doc["tools"]] == ["lint"] and len(doc["unmapped_jobs"]) == 4
    assert doc["rules"]["tools"] == {"lint": ["^lint$"]}

    config.write_text("{not json")
    result = invoke(cli_args("--config", str(config)))
    assert result.exit_code == 2 and f"Error: {config}: not valid JSON" in result.stderr


def test_many_runs_one_page_each(tmp_path):
    """A larger history, default page sizes: request count stays 2 + N + 1 (repo, runs, jobs)."""
    server = FakeGitHub(history=make_history(12), page_size=100, jobs_page_size=100).start()
    try:
        args = ["run", "--repo", "mtap/mtap", "--api-url", server.base, "--runs", "10", "--output", str(tmp_path / "out"), "--no-report", "--request-interval", "0"]
        assert invoke(args).exit_code == 0
        assert len(server.requests) == 1 + 1 + 10
        assert not (tmp_path / "report.md").exists()
    finally:
        server.stop()


def test_rerun_attempts_count_unless_latest_only(fake, cli_args, tmp_path):
    """Run #99 was re-run: astra failed in attempt 1 and passed in attempt 2."""
    run = fake.history[1]
    run["run_attempt"] = 2
    first = dict(next(j for j in run["jobs"] if j["name"] == "astra"), id=1, conclusion="failure", run_attempt=1)
    for j in run["jobs"]:
        j["run_attempt"] = 2
    run["jobs"].append(first)
    assert invoke(cli_args("--runs", "2")).exit_code == 0
    doc = doc_of(tmp_path)
    assert tool(doc, "astra-sim")["conclusions"] == {"failure": 1, "success": 2}
    astra_jobs = [(j["attempt"], j["conclusion"]) for j in doc["runs"][1]["jobs"] if j["tool"] == "astra-sim"]
    assert astra_jobs == [(1, "failure"), (2, "success")]
    assert "| astra-sim | ✓ | ✗ ✓ |" in (tmp_path / "report.md").read_text()

    assert invoke(cli_args("--runs", "2", "--attempts", "latest")).exit_code == 0
    doc = doc_of(tmp_path)
    assert tool(doc, "astra-sim")["conclusions"] == {"success": 2} and doc["source"]["attempts"] == "latest"
    assert doc["source"]["command"][-2:] == ["--attempts", "latest"]


def test_secondary_rate_limit_403_with_retry_after(fake, cli_args, tmp_path):
    fake.faults.append(Fault(path=r"/runs/9100/jobs$", status=403, body={"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}, headers=lambda: {"Retry-After": "1"}))
    result = invoke(cli_args("--runs", "1", "--max-wait", "10"))
    assert result.exit_code == 0, result.output
    assert fake.faults[0].hits == 1 and "HTTP 403 rate limit: waiting 1 s" in result.stderr
    assert doc_of(tmp_path)["complete"] is True


def test_forbidden_without_rate_limit_is_exit_2(fake, cli_args, tmp_path):
    fake.faults.append(Fault(path=r"^/repos/mtap/mtap$", status=403, body={"message": "Resource not accessible by integration"}, times=-1))
    result = invoke(cli_args())
    assert result.exit_code == 2 and "HTTP 403: Resource not accessible by integration" in result.stderr
    assert fake.faults[0].hits == 1  # not retried: it is not a rate limit
    assert not (tmp_path / "out").exists()


def test_success_matrix_is_capped_at_30_columns(tmp_path):
    server = FakeGitHub(history=make_history(35), page_size=100, jobs_page_size=100).start()
    try:
        args = ["run", "--repo", "mtap/mtap", "--api-url", server.base, "--runs", "35", "--output", str(tmp_path / "out"),
                "--report", str(tmp_path / "report.md"), "--evaluation-dir", str(tmp_path / "eval"), "--request-interval", "0"]
        assert invoke(args).exit_code == 0
        text = (tmp_path / "report.md").read_text()
        assert "(latest 30 of 35 runs; the counts above use all)" in text
        header = next(line for line in text.splitlines() if line.startswith("| tool | #100"))
        assert header.count("#") == 30 and "| astra-sim | 35 | 35 |" in text
    finally:
        server.stop()
