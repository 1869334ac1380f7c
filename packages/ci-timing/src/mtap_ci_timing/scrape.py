"""Read the last N completed workflow runs of a repository, each with its full job list, and
build the ci-timing v1 document.

Failure policy (documented in the README):
- The repository lookup fails with 401/404/403-not-rate-limit or the API cannot be reached:
  :class:`AccessError`, nothing gathered, nothing written.
- Anything that stops the scrape after that (a rate-limit wait longer than ``--max-wait``,
  retries exhausted on server errors, a dropped connection): the scrape stops at once and the
  runs read so far are kept. A run is kept only with its complete job list (all pages); the
  run being read when the scrape stopped is dropped. The document then says
  ``complete: false`` and lists in ``missing`` what was not read. A scrape that stopped before
  any run was read raises :class:`StoppedEarly` and nothing is written. A listing page that is
  not the documented shape (``{"workflow_runs": [...]}``, not JSON, a broken Link header) stops
  the scrape the same way (:class:`~.client.MalformedResponse`, one line naming the URL).
- A run or job that is malformed (a field of the wrong type, a timestamp that is not ISO 8601,
  a field GitHub always sends that is absent; see ``parse.py``) is skipped and recorded in
  ``missing`` with the reason, and the scrape goes on: partial data is data. A run whose job
  listing is malformed is skipped the same way. Such a document says ``complete: false``.
- A run or job listed twice (the listing shifts when a run completes between two page requests)
  is recorded once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from github import Github, GithubException
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededExceedsMaxWait,
    RateLimitExceededException,
    UnknownObjectException,
)

import mtap_schemas

from . import __version__
from .client import MalformedResponse, RawListing, client_version, shape
from .parse import Malformed, label, parse_job, parse_run
from .rules import Rules
from .timing import job_timing, tool_summaries


class AccessError(Exception):
    """The repository cannot be read at all (bad token, unknown repo, API unreachable). One line."""


class StoppedEarly(Exception):
    """The scrape stopped before any run was read. One line."""


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    if isinstance(data, (bytes, bytearray)):
        try:
            msg = json.loads(data.decode("utf-8", "replace")).get("message")
            if msg:
                return str(msg)
        except (ValueError, AttributeError):
            pass
    return exc.message or f"HTTP {exc.status}"


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, shortened to one line."""
    seen = exc
    while True:
        inner = getattr(seen, "reason", None)
        if inner is None and seen.args and isinstance(seen.args[0], BaseException):
            inner = seen.args[0]
        if not isinstance(inner, BaseException) or inner is seen:
            break
        seen = inner
    text = str(seen)
    if "): " in text and text.startswith(("HTTPConnection(", "HTTPSConnection(", "<urllib3")):
        text = text.split("): ", 1)[1]
    return f"{type(seen).__name__}: {text}"[:240].replace("\n", " ")


def describe_stop(exc: BaseException, max_wait: float, retries: int) -> str:
    """One line saying why the scrape stopped (never includes request headers)."""
    if isinstance(exc, RateLimitExceededExceedsMaxWait):
        reset = (exc.headers or {}).get("X-RateLimit-Reset") or (exc.headers or {}).get("x-ratelimit-reset")
        when = ""
        if reset and str(reset).isdigit():
            try:
                when = f" (rate limit resets at {iso(datetime.fromtimestamp(int(reset), UTC))})"
            except (OverflowError, ValueError, OSError):  # a reset time no clock can show
                when = f" (X-RateLimit-Reset {str(reset)[:20]!r} is not a usable time)"
        return (
            f"rate limit: the API asks to wait {exc.wait or 0:.0f} s{when}, longer than --max-wait {max_wait:g} s"
        )
    if isinstance(exc, RateLimitExceededException):
        return f"rate limit exceeded (HTTP {exc.status}): {_message(exc)}"
    if isinstance(exc, requests.exceptions.RetryError):
        return f"gave up after --retries {retries}: {_root_cause(exc)}"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"network error after --retries {retries}: {_root_cause(exc)}"
    if isinstance(exc, GithubException):
        return f"HTTP {exc.status}: {_message(exc)}"
    if isinstance(exc, MalformedResponse):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


STOP_ERRORS = (GithubException, requests.exceptions.RequestException, MalformedResponse)


def get_json(gh: Github, path: str, where: str) -> Any:
    """GET ``path`` through the client (retries, rate-limit waits); a body that is not JSON
    raises :class:`MalformedResponse` naming ``where``."""
    try:
        return gh.requester.requestJsonAndCheck("GET", path)[1]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"{where}: the response is not valid JSON ({type(exc).__name__})") from None


def open_repository(gh: Github, repository: str, api_url: str, authenticated: bool, max_wait: float, retries: int) -> None:
    """GET the repository: the access check (token, existence, reachability) before any listing."""
    where = f"{api_url}/repos/{repository}"
    try:
        data = get_json(gh, f"/repos/{repository}", where)
    except MalformedResponse as exc:
        raise AccessError(str(exc)) from None
    except BadCredentialsException as exc:
        raise AccessError(
            f"{api_url}: HTTP 401 {_message(exc)}: the token in GITHUB_TOKEN was refused (unset it to read a public repository anonymously)"
        ) from None
    except UnknownObjectException:
        hint = "" if authenticated else " or is private (set GITHUB_TOKEN to a token that can read it)"
        raise AccessError(f"{api_url}: HTTP 404: repository {repository} not found{hint}") from None
    except RateLimitExceededException as exc:
        raise StoppedEarly(f"{api_url}: {describe_stop(exc, max_wait, retries)}; nothing gathered, nothing written") from None
    except GithubException as exc:
        raise AccessError(f"{api_url}: repository {repository}: {describe_stop(exc, max_wait, retries)}") from None
    except requests.exceptions.RequestException as exc:
        raise AccessError(f"{api_url}: cannot reach the API: {describe_stop(exc, max_wait, retries)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("full_name"), str):
        raise AccessError(f"{where}: expected a repository object with a full_name, got {shape(data)}")


def run_record(run: dict[str, Any], jobs: list[dict[str, Any]], rules: Rules) -> dict[str, Any]:
    """A documented run from a parsed run and its parsed jobs (``parse.py``)."""
    job_records = []
    for job in jobs:
        timing = job_timing(job, rules)
        job_records.append(
            {
                "id": job["id"],
                "name": job["name"],
                "tool": rules.tool_of(job["name"]),
                "attempt": job["run_attempt"],
                "conclusion": job["conclusion"],
                "started_at": iso(job["started_at"]),
                "completed_at": iso(job["completed_at"]),
                "runner": job["runner_name"],
                **timing,
                # v2: what only the local source knows (null for GitHub jobs)
                "install_path": job.get("install_path"),
                "reused_build": job.get("reused_build"),
                "determinism": job.get("determinism"),
                # v2.1: a docker-image runner's image (local only; absent elsewhere)
                **({"image": job["image"]} if "image" in job else {}),
            }
        )
    job_records.sort(key=lambda j: (j["name"], j["attempt"] or 0, j["id"]))
    return {**run, "created_at": iso(run["created_at"]), "jobs": job_records}


@dataclass
class Scrape:
    """The document, and how it came to be incomplete (the CLI's exit status depends on it)."""

    doc: dict[str, Any]
    stopped: str | None  # why the scrape stopped early, None if it read to the end
    skipped: int  # malformed runs/jobs (and run job listings) left out, each named in doc["missing"]


def document(records: list[dict[str, Any]], *, client: str, source: dict[str, Any], rules: Rules, missing: list[dict[str, str]],
             scraped_at: datetime) -> dict[str, Any]:
    """The ci-timing v2 document of ``records`` (documented runs, in the order given), with the per-tool
    summaries; GitHub's and the local source's alike."""
    tools, unmapped = tool_summaries(records)
    return {
        "schema": "ci-timing",
        "schema_version": mtap_schemas.version("ci-timing", 2),
        "scraper": {"name": "ci-timing", "version": __version__, "client": client},
        "source": source,
        "rules": rules.as_dict(),
        "complete": not missing,
        "missing": missing,
        "wall_clock": {"scraped_at": iso(scraped_at)},
        "runs": records,
        "tools": tools,
        "unmapped_jobs": unmapped,
    }


@dataclass
class _Reading:
    """What a scrape has read so far; kept when a stop error ends it."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # malformed items, in the order met
    seen: set[int] = field(default_factory=set)
    listed: int = 0  # listing items used, malformed ones included (they are runs of the history too)
    current: str | None = None  # the run being read, dropped if the scrape stops inside it


def scrape(
    gh: Github,
    *,
    repository: str,
    runs: int,
    rules: Rules,
    api_url: str,
    authenticated: bool,
    command: list[str],
    workflow: str | None = None,
    branch: str | None = None,
    event: str | None = None,
    attempts: str = "all",
    max_wait: float = 600.0,
    retries: int = 5,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> Scrape:
    """The ci-timing v1 document for the last ``runs`` completed runs (see module doc for failures)."""
    open_repository(gh, repository, api_url, authenticated, max_wait, retries)
    filters: dict[str, Any] = {"status": "completed"}
    if branch:
        filters["branch"] = branch
    if event:
        filters["event"] = event
    reading = _Reading()
    missing: list[dict[str, str]] = []  # what a stop left unread
    stopped: str | None = None
    try:
        path = _runs_path(gh, repository, workflow, api_url)
        _read_runs(gh, path, filters, reading, runs=runs, repository=repository, api_url=api_url, attempts=attempts, rules=rules,
                   progress=progress)
    except STOP_ERRORS as exc:
        stopped = describe_stop(exc, max_wait, retries)
        if isinstance(exc, UnknownObjectException) and not reading.records and workflow:
            raise AccessError(f"{api_url}: HTTP 404: workflow {workflow!r} not found in {repository}") from None
        if not reading.records:
            where = "" if isinstance(exc, MalformedResponse) else f"{api_url}: "  # its reason names the URL
            raise StoppedEarly(f"{where}{stopped}; no run was read, nothing written") from None
        missing = _unread(reading, runs, stopped)
    records = sorted(reading.records, key=lambda r: (r["created_at"] or "", r["id"]), reverse=True)
    source = {
        "kind": "github",
        "api_url": api_url,
        "repository": repository,
        "workflow": workflow,
        "branch": branch,
        "event": event,
        "attempts": attempts,
        "runs_requested": runs,
        "authenticated": authenticated,
        "command": command,
    }
    doc = document(records, client=client_version(), source=source, rules=rules, missing=reading.skipped + missing,
                   scraped_at=now or datetime.now(UTC))
    return Scrape(doc, stopped, len(reading.skipped))


def _runs_path(gh: Github, repository: str, workflow: str | None, api_url: str) -> str:
    """The listing of the repository's runs, or of one workflow's (its id looked up first)."""
    base = f"/repos/{repository}"
    if workflow:
        path = f"{base}/actions/workflows/{quote(workflow, safe='')}"
        wf = get_json(gh, path, f"{api_url}{path}")
        if not isinstance(wf, dict) or isinstance(wf.get("id"), bool) or not isinstance(wf.get("id"), int):
            raise MalformedResponse(f"{api_url}{path}: expected a workflow object with an integer id, got {shape(wf)}")
        base = f"{base}/actions/workflows/{wf['id']}"
    return f"{base}/runs" if workflow else f"{base}/actions/runs"


def _read_runs(gh: Github, path: str, filters: dict[str, Any], reading: _Reading, *, runs: int, repository: str, api_url: str,
               attempts: str, rules: Rules, progress: Callable[[int], None] | None) -> None:
    """Read listing items into ``reading`` until ``runs`` are used or the listing ends: each run with its whole
    job list; a malformed run is left out (and counts), a run listed twice is read once."""
    # The listing is paged lazily by PyGithub (Link headers); pages past N are never asked for.
    listing = iter(RawListing(gh.requester, path, filters, "workflow_runs", f"{api_url}{path}", api_url))
    while reading.listed < runs:
        item = next(listing, None)
        if item is None:
            break
        try:
            run = parse_run(item.value)
        except Malformed as exc:
            reading.listed += 1
            reading.skipped.append({"what": f"{label(item.value, 'run', reading.listed)}, left out", "reason": str(exc)})
            continue
        if run["id"] in reading.seen:
            continue
        reading.seen.add(run["id"])
        reading.listed += 1
        reading.current = f"run {run['id']} (#{run['run_number']})"
        jobs = _read_jobs(gh, f"/repos/{repository}/actions/runs/{run['id']}/jobs", attempts, api_url, reading)
        if jobs is not None:
            reading.records.append(run_record(run, jobs, rules))
        reading.current = None
        if progress:
            progress(1)


def _read_jobs(gh: Github, jobs_path: str, attempts: str, api_url: str, reading: _Reading) -> list[dict[str, Any]] | None:
    """The current run's jobs, every page (or an exception: a run is kept only whole), each job once; a
    malformed job is left out and named, a malformed job listing leaves the run out (None)."""
    try:
        raw_jobs = [i.value for i in RawListing(gh.requester, jobs_path, {"filter": attempts}, "jobs", f"{api_url}{jobs_path}", api_url)]
    except MalformedResponse as exc:
        reading.skipped.append({"what": f"jobs of {reading.current}, so that run is left out", "reason": str(exc)})
        return None
    jobs, job_ids = [], set()
    for position, raw in enumerate(raw_jobs, 1):
        try:
            job = parse_job(raw)
        except Malformed as exc:
            reading.skipped.append({"what": f"{label(raw, 'job', position)} of {reading.current}, left out", "reason": str(exc)})
            continue
        if job["id"] not in job_ids:
            job_ids.add(job["id"])
            jobs.append(job)
    return jobs


def _unread(reading: _Reading, runs: int, reason: str) -> list[dict[str, str]]:
    """What a stop left unread: the run being read (dropped whole), and the runs after those read."""
    missing = []
    if reading.current:
        missing.append({"what": f"jobs of {reading.current}, so that run is left out", "reason": reason})
    missing.append(
        {
            "what": f"runs after the {reading.listed - (1 if reading.current else 0)} read (of {runs} requested) were not listed",
            "reason": reason,
        }
    )
    return missing
