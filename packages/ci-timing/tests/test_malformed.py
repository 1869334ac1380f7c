"""Odd and partial API data against the real client and the GitHub-shaped server in conftest.py:
a malformed run or job is left out and named in `missing` (exit 5, the rest is recorded); a
response that is not the documented shape stops the scrape with one line naming the URL
(exit 3). Crash checks run the console script as a real process (a traceback would be in its
stderr) or assert on the CliRunner result's exit code and exception."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import Fault, rate_limited

import mtap_schemas
from mtap_ci_timing.cli import main

RUNS = "/repos/mtap/mtap/actions/runs"


def invoke(args):
    env = {"GITHUB_TOKEN": None, "GITHUB_REPOSITORY": None, "GITHUB_API_URL": None}
    return CliRunner().invoke(main, args, env=env)  # exceptions caught: result.exception tells


def exited(result, code: int) -> None:
    """The command ended by exiting with ``code`` (click's SystemExit), not by an exception."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)


def run_process(fake, tmp_path: Path, *extra: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update(env_extra or {})
    args = ["--output", str(tmp_path / "out"), "--report", str(tmp_path / "report.md"), "--evaluation-dir", str(tmp_path / "eval"),
            "--request-interval", "0", "--retries", "1", "--timeout", "10"]
    if "--api-url" not in extra and "GITHUB_API_URL" not in env:
        args += ["--api-url", fake.base]
    if "--repo" not in extra:
        args += ["--repo", "mtap/mtap"]
    return subprocess.run([sys.executable, "-m", "mtap_ci_timing.cli", "run", *args, *extra], check=False, capture_output=True, text=True, env=env, timeout=120)


def doc_of(tmp_path: Path) -> dict:
    return mtap_schemas.read(tmp_path / "out" / "ci-timing.json", "ci-timing", 2)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error")]


def tool_jobs(doc: dict, tool: str) -> int:
    return next(t["jobs"] for t in doc["tools"] if t["tool"] == tool)


def _null_name(job):
    job["name"] = None


def _bad_start(job):
    job["started_at"] = "yesterday"


def _no_end(job):
    del job["completed_at"]


def _bad_step(job):
    job["steps"][1]["number"] = None


def _huge_id(job):
    job["id"] = 2**70


def _surrogate_step_name(job):
    job["steps"][0]["name"] = "Set up \ud800"  # served as the JSON escape "\ud800": not text


def _start_past_year_9999(job):
    job["started_at"] = "9999-12-31T23:59:59-01:00"


@pytest.mark.parametrize(
    "break_job, reason",
    [
        (_null_name, "field name: got null, expected a string"),
        (_bad_start, 'field started_at: got "yesterday", expected an ISO 8601 timestamp or null'),
        (_no_end, "field completed_at: got nothing (the field is absent), expected an ISO 8601 timestamp or null"),
        (_bad_step, "field steps[1].number: got null, expected an integer"),
        (_huge_id, f"field id: got {2**70}, expected an integer that fits in 64 bits"),
        (_surrogate_step_name, 'field steps[0].name: got "Set up \\ud800", expected a string'),
        (_start_past_year_9999, 'field started_at: got "9999-12-31T23:59:59-01:00", expected an ISO 8601 timestamp or null'),
    ],
    ids=["name-null", "started-yesterday", "completed-missing", "step-number-null", "id-beyond-64-bits", "lone-surrogate", "time-out-of-range"],
)
def test_malformed_job_is_left_out_and_named(fake, tmp_path, break_job, reason):
    break_job(fake.history[0]["jobs"][0])  # astra in run #100
    proc = run_process(fake, tmp_path, "--runs", "3")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 5, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert "1 malformed item(s) left out" in line and reason in line
    doc = doc_of(tmp_path)
    assert doc["complete"] is False
    job_id = 2**70 if break_job is _huge_id else 10001
    what = f"job {job_id} of run 9100 (#100), left out" if break_job is _null_name else f"job {job_id} 'astra' of run 9100 (#100), left out"
    assert doc["missing"] == [{"what": what, "reason": reason}]
    assert [len(r["jobs"]) for r in doc["runs"]] == [4, 5, 5]  # the rest of run #100 is kept
    assert tool_jobs(doc, "astra-sim") == 2 and tool_jobs(doc, "timeloop") == 3
    report = (tmp_path / "report.md").read_text()
    assert "Incomplete scrape" in report and reason in report


def test_runs_listing_empty_object_is_one_line_exit_3_nothing_written(fake, tmp_path):
    fake.faults.append(Fault(path=rf"^{RUNS}$", status=200, body={}, times=-1))
    proc = run_process(fake, tmp_path)
    assert "Traceback" not in proc.stderr and proc.returncode == 3, proc.stderr
    assert error_lines(proc.stderr) == [
        f'Error: {fake.base}{RUNS}: expected an object {{"workflow_runs": [...]}}, got an empty object; no run was read, nothing written'
    ]
    assert not (tmp_path / "out").exists() and not (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"<html>proxy error</html>", "got a body that is not JSON"),
        (b'{"workflow_runs": [', "the response is not valid JSON (JSONDecodeError)"),
        (b'{"workflow_runs": []}\xff', "the response is not valid JSON"),
        ({"workflow_runs": {"0": {}}}, "got an object with keys workflow_runs"),
        ("workflow_runs", 'got str "workflow_runs"'),
    ],
    ids=["html", "truncated", "not-utf8", "object-not-array", "string"],
)
def test_runs_listing_of_the_wrong_shape(fake, tmp_path, body, expected):
    fake.faults.append(Fault(path=rf"^{RUNS}$", status=200, body=body, times=-1))
    result = invoke(["run", "--repo", "mtap/mtap", "--api-url", fake.base, "--output", str(tmp_path / "out"), "--no-report", "--request-interval", "0", "--retries", "0"])
    exited(result, 3)
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"Error: {fake.base}{RUNS}: ") and expected in line and line.endswith("no run was read, nothing written")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("body, got", [([], "an array of 0"), ({"name": "mtap"}, "an object with keys name"), (b"<html>", "a body that is not JSON")])
def test_repository_answer_that_is_not_a_repository_is_exit_2(fake, tmp_path, body, got):
    fake.faults.append(Fault(path=r"^/repos/mtap/mtap$", status=200, body=body, times=-1))
    result = invoke(["run", "--repo", "mtap/mtap", "--api-url", fake.base, "--output", str(tmp_path / "out"), "--request-interval", "0"])
    exited(result, 2)
    assert error_lines(result.stderr) == [f"Error: {fake.base}/repos/mtap/mtap: expected a repository object with a full_name, got {got}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("listing", ["runs", "jobs"])
def test_link_header_loop_ends(fake, tmp_path, listing):
    """Every page says its next page is page 2: without a guard the jobs listing never ends,
    and the runs listing (a repeated run is recorded once) neither."""
    original = fake.answer
    target = RUNS if listing == "runs" else f"{RUNS}/9100/jobs"

    def answer(path, query, auth):
        status, body, headers = original(path, query, auth)
        if path == target:
            status, body, headers = original(path, {k: v for k, v in query.items() if k != "page"}, auth)
            headers = {"Link": f'<{fake.base}{target}?page=2>; rel="next"'}
        return status, body, headers

    fake.answer = answer
    proc = run_process(fake, tmp_path, "--runs", "3")
    assert "Traceback" not in proc.stderr, proc.stderr
    loop = f"{fake.base}{target}: Link header: next page {fake.base}{target}?page=2 was already read (the pages loop)"
    if listing == "runs":
        assert proc.returncode == 3 and error_lines(proc.stderr) == [f"Error: scrape incomplete, written with complete: false: {loop}"]
        assert [r["run_number"] for r in doc_of(tmp_path)["runs"]] == [100, 99]
    else:
        assert proc.returncode == 5
        doc = doc_of(tmp_path)
        assert [r["run_number"] for r in doc["runs"]] == [99, 98]
        assert doc["missing"] == [{"what": "jobs of run 9100 (#100), so that run is left out", "reason": loop}]


def test_unusable_rate_limit_reset_is_one_line(fake, tmp_path):
    fault = rate_limited(rf"^{RUNS}$", reset_in=0, times=-1)
    fault.headers = lambda: {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9" * 20}
    fake.faults.append(fault)
    proc = run_process(fake, tmp_path, "--max-wait", "5")
    assert "Traceback" not in proc.stderr and proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert "longer than --max-wait 5 s" in line and "is not a usable time" in line and line.endswith("nothing written")


def test_workflow_answer_that_is_not_json_is_one_line(fake, tmp_path):
    fake.faults.append(Fault(path=r"/actions/workflows/ci.yml$", status=200, body=b"{not json", times=-1))
    proc = run_process(fake, tmp_path, "--workflow", "ci.yml")
    assert "Traceback" not in proc.stderr and proc.returncode == 3, proc.stderr
    assert error_lines(proc.stderr) == [
        f"Error: {fake.base}/repos/mtap/mtap/actions/workflows/ci.yml: the response is not valid JSON (JSONDecodeError); no run was read, nothing written"
    ]


def test_runs_listing_breaks_on_page_2_keeps_page_1(fake, tmp_path):
    original = fake.answer

    def answer(path, query, auth):
        if path == RUNS and query.get("page") == ["2"]:
            return 200, {"total_count": 5}, {}
        return original(path, query, auth)

    fake.answer = answer
    proc = run_process(fake, tmp_path, "--runs", "4")
    assert "Traceback" not in proc.stderr and proc.returncode == 3, proc.stderr
    doc = doc_of(tmp_path)
    assert [r["run_number"] for r in doc["runs"]] == [100, 99] and doc["complete"] is False
    assert doc["missing"] == [
        {"what": "runs after the 2 read (of 4 requested) were not listed",
         "reason": f'{fake.base}{RUNS}: expected an object {{"workflow_runs": [...]}}, got an object with keys total_count'}
    ]


def test_malformed_job_listing_leaves_that_run_out_and_goes_on(fake, tmp_path):
    fake.faults.append(Fault(path=rf"^{RUNS}/9099/jobs$", status=200, body={"jobs": None}, times=-1))
    result = invoke(["run", "--repo", "mtap/mtap", "--api-url", fake.base, "--runs", "3", "--output", str(tmp_path / "out"), "--no-report", "--request-interval", "0"])
    exited(result, 5)
    doc = doc_of(tmp_path)
    assert [r["run_number"] for r in doc["runs"]] == [100, 98]
    assert doc["missing"] == [
        {"what": "jobs of run 9099 (#99), so that run is left out",
         "reason": f'{fake.base}{RUNS}/9099/jobs: expected an object {{"jobs": [...]}}, got an object with keys jobs'}
    ]


def test_malformed_run_items_are_left_out_and_counted_toward_runs(fake, tmp_path):
    original = fake.answer

    def answer(path, query, auth):
        status, body, headers = original(path, query, auth)
        if path == RUNS and status == 200 and query.get("page", ["1"]) == ["1"]:
            body["workflow_runs"][1]["run_number"] = "99"  # a string where GitHub sends an integer
            body["workflow_runs"].insert(1, None)
            body["workflow_runs"].append(body["workflow_runs"][0])  # run #100 listed twice (the listing shifted)
        return status, body, headers

    fake.answer = answer
    proc = run_process(fake, tmp_path, "--runs", "4")
    assert "Traceback" not in proc.stderr and proc.returncode == 5, proc.stderr
    doc = doc_of(tmp_path)
    assert [r["run_number"] for r in doc["runs"]] == [100, 98]  # 4 listing items: #100, null, bad #99, #98
    assert doc["missing"] == [
        {"what": "run at position 2 of the listing, left out", "reason": "got null, expected a workflow run object"},
        {"what": "run 9099, left out", "reason": 'field run_number: got "99", expected an integer'},
    ]


@pytest.mark.parametrize(
    "link, expected",
    [
        ("<{base}/repos/mtap/mtap/actions/runs?page=2>", 'Link header: expected <URL>; rel="next", got'),
        ('<https://elsewhere.example/runs?page=2>; rel="next"', "Link header: next page https://elsewhere.example/runs?page=2 is outside the API root"),
    ],
    ids=["no-rel", "off-host"],
)
def test_bad_link_header_is_one_line(fake, tmp_path, link, expected):
    original = fake.answer

    def answer(path, query, auth):
        status, body, headers = original(path, query, auth)
        if path == RUNS:
            headers = {"Link": link.format(base=fake.base)}
        return status, body, headers

    fake.answer = answer
    proc = run_process(fake, tmp_path, "--runs", "4")
    assert "Traceback" not in proc.stderr and proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert expected in line and "no run was read, nothing written" in line


SECRET = "s3cr3t-TOKEN-in-url-0123456789"


@pytest.mark.parametrize("via", ["option", "env"])
def test_credentials_in_api_url_are_never_sent_printed_or_written(fake, tmp_path, via):
    host = fake.base.removeprefix("http://")
    url = f"http://octocat:{SECRET}@{host}/?access_token={SECRET}2&per_page=5"
    if via == "option":
        proc = run_process(fake, tmp_path, "--runs", "2", "--api-url", url)
    else:
        proc = run_process(fake, tmp_path, "--runs", "2", env_extra={"GITHUB_API_URL": url})
    assert proc.returncode == 0, proc.stderr
    files = {str(p): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert len(files) == 2  # the document and the report
    leaks = [where for where, text in {"stdout": proc.stdout, "stderr": proc.stderr, **files}.items() if SECRET in text or "octocat:" in text]
    assert leaks == []
    assert "the credentials in the URL are ignored and not recorded" in proc.stderr
    assert all(r["authorization"] is None for r in fake.requests)  # not sent either (PyGithub ignores URL user info)
    source = doc_of(tmp_path)["source"]
    assert source["api_url"] == fake.base and source["authenticated"] is False
    assert source["command"][-2:] == ["--api-url", fake.base]


def test_credentials_in_run_html_url_are_not_written(fake, tmp_path):
    original = fake.answer

    def answer(path, query, auth):
        status, body, headers = original(path, query, auth)
        if path == RUNS and status == 200:
            for run in body["workflow_runs"]:
                run["html_url"] = f"https://x:{SECRET}@github.example/mtap/mtap/actions/runs/{run['id']}?token={SECRET}"
        return status, body, headers

    fake.answer = answer
    result = invoke(["run", "--repo", "mtap/mtap", "--api-url", fake.base, "--runs", "1", "--output", str(tmp_path / "out"), "--no-report", "--request-interval", "0"])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert SECRET not in (tmp_path / "out" / "ci-timing.json").read_text()
    assert doc_of(tmp_path)["runs"][0]["html_url"] == "https://github.example/mtap/mtap/actions/runs/9100"


@pytest.mark.parametrize("url", ["not a url", "ftp://api.github.com", "https://", "http://host:port"])
def test_unusable_api_url_is_a_usage_error(url):
    result = invoke(["run", "--repo", "mtap/mtap", "--api-url", url])
    exited(result, 2)
    assert "--api-url" in result.output and ("expected an http(s) URL" in result.output or "the port is not a number" in result.output)


def test_output_that_cannot_be_written_fails_before_any_request(fake, tmp_path):
    (tmp_path / "blocker").write_text("a file where the output folder should go")
    result = invoke(["run", "--repo", "mtap/mtap", "--api-url", fake.base, "--output", str(tmp_path / "blocker" / "out"), "--request-interval", "0"])
    exited(result, 2)
    assert f"Error: --output {tmp_path / 'blocker' / 'out'}: {tmp_path / 'blocker'} is not a folder; nothing scraped" in result.stderr
    assert fake.requests == []

    report = tmp_path / "blocker" / "report.md"
    result = invoke(["run", "--repo", "mtap/mtap", "--api-url", fake.base, "--output", str(tmp_path / "out"), "--report", str(report), "--request-interval", "0"])
    exited(result, 2)
    assert f"Error: --report {report}: {tmp_path / 'blocker'} is not a folder; nothing scraped" in result.stderr
    assert fake.requests == [] and not (tmp_path / "out").exists()


def test_name_cannot_leave_the_output_folder(fake, tmp_path):
    result = invoke(["run", "--repo", "mtap/mtap", "--api-url", fake.base, "--output", str(tmp_path / "out"), "--name", "../escaped"])
    exited(result, 2)
    assert "expected a file stem" in result.output and not list(tmp_path.rglob("*.json"))


def test_config_that_is_not_utf8_is_one_line(tmp_path):
    config = tmp_path / "rules.json"
    data = b'{"tools": {"astra-sim": ["^astra\xff"]}}'
    config.write_bytes(data)
    result = invoke(["rules", "--config", str(config)])
    exited(result, 2)
    at = data.index(b"\xff")
    assert result.stderr.strip() == f"Error: {config}: not valid UTF-8 (byte {at})"


def test_report_with_documents_that_are_not_utf8(tmp_path):
    (tmp_path / "eval" / "x").mkdir(parents=True)
    (tmp_path / "eval" / "x" / "x.tool-run.json").write_bytes(b'{"schema": "tool-run\xff"}')
    args = ["report", "--input", str(tmp_path / "ci.json"), "--evaluation-dir", str(tmp_path / "eval"), "--output", str(tmp_path / "report.md")]
    result = invoke(args)
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "- `x/x.tool-run.json`: " in (tmp_path / "report.md").read_text() and "not valid UTF-8" in (tmp_path / "report.md").read_text()

    (tmp_path / "ci.json").write_bytes(b'{"schema": "ci-timing\xff"}')
    result = invoke(args)
    exited(result, 2)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {tmp_path / 'ci.json'}: ") and "UTF-8" in line
