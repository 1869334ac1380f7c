"""A GitHub-shaped REST API on 127.0.0.1 (a thread in the test process) so that the real client
(PyGithub + urllib3 retries) is what the tests exercise. Objects follow the field lists of
GitHub's REST reference (repos, actions/runs, actions/runs/{id}/jobs, actions/workflows);
pagination by ``Link`` headers, rate-limit headers on every response, and injectable faults
(401, 404, 403 with ``X-RateLimit-Remaining: 0``, 429, 500, and any body: a malformed JSON
value or raw bytes). The history it serves is built by
``make_history``: its names and timestamps are test inputs, not measured CI data.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
RATE_LIMIT_MESSAGE = (
    "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher "
    "rate limit. Check out the documentation for more details.)"
)
DOCS = "https://docs.github.com/rest"


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(name: str, conclusion: str, start: datetime, steps: list[tuple[str, float]], job_id: int, failed_step: int | None = None) -> dict[str, Any]:
    """A job whose steps run back to back for the given durations (seconds)."""
    out_steps = []
    t = start
    for number, (step_name, seconds) in enumerate(steps, start=1):
        end = t + timedelta(seconds=seconds)
        concl = "success"
        if failed_step is not None and number == failed_step:
            concl = "failure"
        elif failed_step is not None and number > failed_step and not step_name.startswith(("Post ", "Complete job")):
            concl = "skipped"
        out_steps.append({"name": step_name, "number": number, "status": "completed", "conclusion": concl, "started_at": ts(t), "completed_at": ts(end)})
        t = end
    return {
        "id": job_id,
        "name": name,
        "status": "completed",
        "conclusion": conclusion,
        "created_at": ts(start - timedelta(seconds=7)),
        "started_at": ts(start),
        "completed_at": ts(t),
        "steps": out_steps,
        "labels": ["ubuntu-latest"],
        "runner_id": 7,
        "runner_name": "GitHub Actions 7",
        "runner_group_id": 2,
        "runner_group_name": "GitHub Actions",
        "workflow_name": "CI",
        "head_branch": "main",
    }


def make_history(n_runs: int = 5) -> list[dict[str, Any]]:
    """Runs newest first. Run i (0 = newest): astra install takes 30+i s; timeloop builds a Docker
    image (100+10i s); nnmeter fails in its run step; aggregate is skipped in run 1; lint is unmapped."""
    runs = []
    for i in range(n_runs):
        number = 100 - i
        created = T0 - timedelta(hours=i)
        start = created + timedelta(seconds=10)
        base = number * 100
        jobs = [
            job("astra", "success", start, [("Set up job", 2), ("Run actions/checkout@v4", 2), ("Set up Python 3.11", 6), ("Install astra-runner", 30 + i), ("Run astra", 60), ("Post Run actions/checkout@v4", 1), ("Complete job", 1)], base + 1),
            job("timeloop", "success", start, [("Set up job", 3), ("Run actions/checkout@v4", 2), ("Build docker image", 100 + 10 * i), ("Run timeloop in docker", 20 + i), ("Complete job", 1)], base + 2),
            job("nnmeter", "failure", start, [("Set up job", 2), ("Run pip install nn-meter", 20), ("Run nnmeter", 5), ("Complete job", 1)], base + 3, failed_step=3),
            job("lint", "success", start, [("Set up job", 1), ("Run ruff", 3), ("Complete job", 1)], base + 4),
        ]
        if i == 1:
            skipped = job("aggregate", "skipped", start, [], base + 5)
            skipped["completed_at"] = skipped["started_at"]
            jobs.append(skipped)
        else:
            jobs.append(job("aggregate", "success", start + timedelta(seconds=120), [("Set up job", 1), ("Install aggregate", 9), ("Run aggregate", 4), ("Complete job", 1)], base + 5))
        runs.append(
            {
                "id": 9000 + number,
                "run_number": number,
                "run_attempt": 1,
                "name": "CI",
                "event": "push",
                "head_branch": "main",
                "head_sha": f"{number:040x}",
                "conclusion": "failure",
                "created_at": ts(created),
                "workflow_id": 161335,
                "jobs": jobs,
            }
        )
    return runs


@dataclass
class Fault:
    """Answer requests whose path matches ``path`` with ``status`` ``times`` times (-1: always)."""

    path: str
    status: int
    body: Any  # JSON value, or bytes sent as they are
    headers: Callable[[], dict[str, str]] = dict
    times: int = 1
    hits: int = 0


@dataclass
class FakeGitHub:
    history: list[dict[str, Any]]
    repo: str = "mtap/mtap"
    page_size: int = 2
    jobs_page_size: int = 3
    valid_token: str | None = None
    faults: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    remaining: int = 60
    base: str = ""

    # -- GitHub-shaped objects ---------------------------------------------------------------
    def repo_json(self) -> dict[str, Any]:
        owner, name = self.repo.split("/")
        url = f"{self.base}/repos/{self.repo}"
        return {
            "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": name, "full_name": self.repo,
            "private": False, "owner": {"login": owner, "id": 1, "type": "Organization", "url": f"{self.base}/users/{owner}"},
            "html_url": f"https://github.com/{self.repo}", "description": "mtap", "fork": False, "url": url,
            "default_branch": "main", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-05T00:00:00Z",
            "pushed_at": "2026-01-05T00:00:00Z", "visibility": "public", "archived": False, "disabled": False,
        }

    def run_json(self, run: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base}/repos/{self.repo}/actions/runs/{run['id']}"
        keys = ("id", "name", "run_number", "run_attempt", "event", "head_branch", "head_sha", "conclusion", "created_at", "workflow_id")
        out = {k: run[k] for k in keys}
        out.update(
            {
                "node_id": f"WFR_{run['id']}", "path": ".github/workflows/ci.yml", "display_title": "commit", "status": "completed",
                "check_suite_id": run["id"] * 3, "url": url, "html_url": f"https://github.com/{self.repo}/actions/runs/{run['id']}",
                "pull_requests": [], "updated_at": run["created_at"], "run_started_at": run["created_at"],
                "jobs_url": f"{url}/jobs", "logs_url": f"{url}/logs", "artifacts_url": f"{url}/artifacts",
                "cancel_url": f"{url}/cancel", "rerun_url": f"{url}/rerun", "check_suite_url": f"{self.base}/repos/{self.repo}/check-suites/{run['id'] * 3}",
                "workflow_url": f"{self.base}/repos/{self.repo}/actions/workflows/{run['workflow_id']}",
                "previous_attempt_url": None, "actor": {"login": "octocat", "id": 1}, "triggering_actor": {"login": "octocat", "id": 1},
            }
        )
        return out

    def job_json(self, run: dict[str, Any], j: dict[str, Any]) -> dict[str, Any]:
        out = dict(j)
        out.update(
            {
                "run_id": run["id"], "run_url": f"{self.base}/repos/{self.repo}/actions/runs/{run['id']}", "run_attempt": j.get("run_attempt", 1),
                "node_id": f"CR_{j['id']}", "head_sha": run["head_sha"], "url": f"{self.base}/repos/{self.repo}/actions/jobs/{j['id']}",
                "html_url": f"https://github.com/{self.repo}/actions/runs/{run['id']}/job/{j['id']}",
                "check_run_url": f"{self.base}/repos/{self.repo}/check-runs/{j['id']}",
            }
        )
        return out

    # -- serving -----------------------------------------------------------------------------
    def rate_headers(self) -> dict[str, str]:
        self.remaining = max(0, self.remaining - 1)
        return {
            "X-RateLimit-Limit": "60", "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(time.time()) + 3600), "X-RateLimit-Used": str(60 - self.remaining),
            "X-RateLimit-Resource": "core", "X-GitHub-Api-Version-Selected": "2022-11-28",
        }

    def page(self, path: str, query: dict[str, list[str]], items: list[Any], key: str, size: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        number = int(query.get("page", ["1"])[0])
        last = max(1, -(-len(items) // size))
        body = {"total_count": len(items), key: items[(number - 1) * size : number * size]}
        links = []
        params = {k: v[0] for k, v in query.items() if k != "page"}
        if number < last:
            links.append(f'<{self.base}{path}?{urlencode({**params, "page": number + 1})}>; rel="next"')
            links.append(f'<{self.base}{path}?{urlencode({**params, "page": last})}>; rel="last"')
        if number > 1:
            links.append(f'<{self.base}{path}?{urlencode({**params, "page": 1})}>; rel="first"')
            links.append(f'<{self.base}{path}?{urlencode({**params, "page": number - 1})}>; rel="prev"')
        return 200, body, ({"Link": ", ".join(links)} if links else {})

    def answer(self, path: str, query: dict[str, list[str]], auth: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        for fault in self.faults:
            if re.search(fault.path, path) and (fault.times < 0 or fault.hits < fault.times):
                fault.hits += 1
                return fault.status, fault.body, fault.headers()
        if auth is not None and self.valid_token is not None and auth.split()[-1] != self.valid_token:
            return 401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}, {}
        prefix = f"/repos/{self.repo}"
        if path == prefix:
            return 200, self.repo_json(), {}
        if path == f"{prefix}/actions/runs" or re.fullmatch(rf"{re.escape(prefix)}/actions/workflows/161335/runs", path):
            runs = [self.run_json(r) for r in self.history]
            return self.page(path, query, runs, "workflow_runs", self.page_size)
        if path == f"{prefix}/actions/workflows/ci.yml" or path == f"{prefix}/actions/workflows/161335":
            return 200, {"id": 161335, "node_id": "W_1", "name": "CI", "path": ".github/workflows/ci.yml", "state": "active",
                         "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                         "url": f"{self.base}{prefix}/actions/workflows/161335", "html_url": f"https://github.com/{self.repo}/blob/main/.github/workflows/ci.yml",
                         "badge_url": f"https://github.com/{self.repo}/workflows/CI/badge.svg"}, {}
        m = re.fullmatch(rf"{re.escape(prefix)}/actions/runs/(\d+)/jobs", path)
        if m:
            run = next((r for r in self.history if r["id"] == int(m.group(1))), None)
            if run is not None:
                jobs = run["jobs"]
                if query.get("filter", ["latest"])[0] == "latest":  # GitHub's default: the latest attempt only
                    jobs = [j for j in jobs if j.get("run_attempt", 1) == run["run_attempt"]]
                return self.page(path, query, [self.job_json(run, j) for j in jobs], "jobs", self.jobs_page_size)
        return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {}

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                auth = self.headers.get("Authorization")
                fake.requests.append({"path": url.path, "query": {k: v[0] for k, v in query.items()}, "authorization": auth, "user_agent": self.headers.get("User-Agent")})
                status, body, headers = fake.answer(url.path, query, auth)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()  # bytes: served as they are
                self.send_response(status)
                all_headers = {**fake.rate_headers(), **headers}
                for k, v in all_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [r["path"] + ("?page=" + r["query"]["page"] if "page" in r["query"] else "") for r in self.requests]


def rate_limited(path: str, reset_in: float, times: int = 1, status: int = 403) -> Fault:
    return Fault(
        path=path,
        status=status,
        body={"message": RATE_LIMIT_MESSAGE, "documentation_url": DOCS},
        headers=lambda: {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "60", "X-RateLimit-Used": "60", "X-RateLimit-Reset": str(int(time.time() + reset_in))},
        times=times,
    )


@pytest.fixture(autouse=True)
def _cwd_in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder: a default output path (data/evaluation/...)
    that a test forgot to redirect lands there, never in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake():
    server = FakeGitHub(history=make_history()).start()
    yield server
    server.stop()


@pytest.fixture
def cli_args(fake, tmp_path):
    """Arguments that point the CLI at the fake API and at tmp_path for every output."""

    def build(*extra: str, repo: str = "mtap/mtap") -> list[str]:
        return [
            "run", "--repo", repo, "--api-url", fake.base, "--output", str(tmp_path / "out"),
            "--report", str(tmp_path / "report.md"), "--evaluation-dir", str(tmp_path / "eval"),
            "--request-interval", "0", "--retries", "2", "--timeout", "10", *extra,
        ]

    return build
