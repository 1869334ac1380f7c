"""The GitHub API client: PyGithub, configured once here.

Pagination (``Link`` headers), retries with backoff on 5xx and dropped connections, and the
rate-limit wait all come from PyGithub and urllib3. ``BoundedRetry`` adds two things to
PyGithub's ``GithubRetry``, which already waits for ``X-RateLimit-Reset`` on a 403 whose body
says "API rate limit exceeded" and refuses waits longer than ``max_rate_limit_wait``:

- 429 is retried too (GitHub documents it for secondary limits), waiting ``Retry-After`` or,
  failing that, until ``X-RateLimit-Reset`` when ``X-RateLimit-Remaining`` is 0;
- the ``max_rate_limit_wait`` bound also applies to waits that come from headers
  (``Retry-After`` on a 403/429), which urllib3 would otherwise honour without limit.

The token comes from the caller (GITHUB_TOKEN) and goes only into PyGithub's ``Auth.Token``;
nothing here prints, logs or stores it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from github import Auth, Github, GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait

DEFAULT_API_URL = "https://api.github.com"

#: called with (seconds to wait, HTTP status) before a rate-limit wait
WaitCallback = Callable[[float, int], None]


def header_wait(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the response headers ask a client to wait: ``Retry-After``, else the time until
    ``X-RateLimit-Reset`` (+1 s, the reset second is not exact) when ``X-RateLimit-Remaining`` is 0."""
    retry_after = headers.get("Retry-After")
    if retry_after is not None and str(retry_after).strip().isdigit():
        return float(retry_after)
    remaining, reset = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset")
    if str(remaining).strip() == "0" and reset is not None and str(reset).strip().isdigit():
        now = now or datetime.now(UTC)
        return max(0.0, int(reset) - now.timestamp()) + 1.0
    return None


class BoundedRetry(GithubRetry):
    """``GithubRetry`` that also retries 429 and bounds header-driven waits (see module doc)."""

    def __init__(self, on_wait: WaitCallback | None = None, **kwargs: Any) -> None:
        self.on_wait = on_wait
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> BoundedRetry:
        kw["on_wait"] = self.on_wait
        return super().new(**kw)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # type: ignore[override]
        if response is None or response.status not in (403, 429):
            return super().increment(method, url, response, error, _pool, _stacktrace)
        wait = header_wait(response.headers)
        if wait is not None and self.max_rate_limit_wait is not None and wait > self.max_rate_limit_wait:
            try:
                data: Any = GithubRetry.get_content(response, url or "")
            except Exception:  # noqa: BLE001 - the body is only context for the message
                data = None
            raise RateLimitExceededExceedsMaxWait(response.status, data, dict(response.headers), wait=wait)
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if response.status == 429 and wait is not None and "Retry-After" not in response.headers:
            retry.get_backoff_time = lambda: wait  # type: ignore[method-assign]
        if self.on_wait is not None:
            planned = wait if "Retry-After" in response.headers else retry.get_backoff_time()
            self.on_wait(planned or 0.0, response.status)
        return retry


def make_client(
    api_url: str = DEFAULT_API_URL,
    token: str | None = None,
    *,
    max_wait: float = 600.0,
    retries: int = 5,
    timeout: float = 30.0,
    request_interval: float = 0.25,
    on_wait: WaitCallback | None = None,
    user_agent: str = "mtap-ci-timing",
) -> Github:
    retry = BoundedRetry(
        on_wait=on_wait,
        total=retries,
        backoff_factor=1.0,
        status_forcelist=[*range(500, 600), 429],
        max_rate_limit_wait=max_wait,
        secondary_rate_wait=min(60.0, max_wait),
    )
    return Github(
        base_url=api_url.rstrip("/"),
        auth=Auth.Token(token) if token else None,
        retry=retry,
        timeout=int(max(1, timeout)),
        per_page=100,
        user_agent=user_agent,
        seconds_between_requests=request_interval or None,
        seconds_between_writes=None,
    )


def client_version() -> str:
    try:
        return f"PyGithub {metadata.version('PyGithub')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored or renamed install
        return "PyGithub"


__all__ = ["DEFAULT_API_URL", "BoundedRetry", "client_version", "header_wait", "make_client"]
