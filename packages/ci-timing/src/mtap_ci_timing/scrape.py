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
  any run was read raises :class:`StoppedEarly` and nothing is written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import mtap_schemas
import requests
from github import Github, GithubException
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededExceedsMaxWait,
    RateLimitExceededException,
    UnknownObjectException,
)

from . import __version__
from .client import client_version
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
            when = f" (rate limit resets at {iso(datetime.fromtimestamp(int(reset), UTC))})"
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
    return f"{type(exc).__name__}: {exc}"


STOP_ERRORS = (GithubException, requests.exceptions.RequestException)


def open_repository(gh: Github, repository: str, api_url: str, authenticated: bool, max_wait: float, retries: int):
    try:
        return gh.get_repo(repository)
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


def run_record(run: Any, jobs: list[Any], rules: Rules) -> dict[str, Any]:
    job_records = []
    for job in jobs:
        raw = {
            "created_at": job.created_at,
            "started_at": job.started_at,
            "completed_at": job.completed_at,
            "steps": [
                {
                    "number": s.number,
                    "name": s.name,
                    "conclusion": s.conclusion,
                    "started_at": s.started_at,
                    "completed_at": s.completed_at,
                }
                for s in (job.steps or [])
            ],
        }
        timing = job_timing(raw, rules)
        job_records.append(
            {
                "id": job.id,
                "name": job.name,
                "tool": rules.tool_of(job.name),
                "attempt": job.run_attempt,
                "conclusion": job.conclusion,
                "started_at": iso(job.started_at),
                "completed_at": iso(job.completed_at),
                "runner": job.runner_name,
                **timing,
            }
        )
    job_records.sort(key=lambda j: (j["name"], j["attempt"] or 0, j["id"]))
    return {
        "id": run.id,
        "run_number": run.run_number,
        "run_attempt": run.run_attempt,
        "workflow": run.name,
        "event": run.event,
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "conclusion": run.conclusion,
        "created_at": iso(run.created_at),
        "html_url": run.html_url,
        "jobs": job_records,
    }


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
) -> dict[str, Any]:
    """The ci-timing v1 document for the last ``runs`` completed runs (see module doc for failures)."""
    repo = open_repository(gh, repository, api_url, authenticated, max_wait, retries)
    filters: dict[str, Any] = {"status": "completed"}
    if branch:
        filters["branch"] = branch
    if event:
        filters["event"] = event
    missing: list[dict[str, str]] = []
    records: list[dict[str, Any]] = []
    current: str | None = None  # the run being read, dropped if the scrape stops inside it
    try:
        if workflow:
            listing = repo.get_workflow(int(workflow) if workflow.isdigit() else workflow).get_runs(**filters)
        else:
            listing = repo.get_workflow_runs(**filters)
        # islice: the listing is paged lazily by PyGithub (Link headers); pages past N are never asked for.
        for run in itertools.islice(listing, runs):
            current = f"run {run.id} (#{run.run_number})"
            jobs = list(run.jobs(attempts))  # every page, or an exception: a run is kept only whole
            records.append(run_record(run, jobs, rules))
            current = None
            if progress:
                progress(1)
    except STOP_ERRORS as exc:
        reason = describe_stop(exc, max_wait, retries)
        if isinstance(exc, UnknownObjectException) and not records and workflow:
            raise AccessError(f"{api_url}: HTTP 404: workflow {workflow!r} not found in {repository}") from None
        if not records:
            raise StoppedEarly(f"{api_url}: {reason}; no run was read, nothing written") from None
        if current:
            missing.append({"what": f"jobs of {current}, so that run is left out", "reason": reason})
        missing.append(
            {
                "what": f"runs after the {len(records)} read (of {runs} requested) were not listed",
                "reason": reason,
            }
        )
    records.sort(key=lambda r: (r["created_at"] or "", r["id"]), reverse=True)
    tools, unmapped = tool_summaries(records)
    return {
        "schema": "ci-timing",
        "schema_version": mtap_schemas.version("ci-timing"),
        "scraper": {"name": "ci-timing", "version": __version__, "client": client_version()},
        "source": {
            "api_url": api_url,
            "repository": repository,
            "workflow": workflow,
            "branch": branch,
            "event": event,
            "attempts": attempts,
            "runs_requested": runs,
            "authenticated": authenticated,
            "command": command,
        },
        "rules": rules.as_dict(),
        "complete": not missing,
        "missing": missing,
        "wall_clock": {"scraped_at": iso(now or datetime.now(UTC))},
        "runs": records,
        "tools": tools,
        "unmapped_jobs": unmapped,
    }
