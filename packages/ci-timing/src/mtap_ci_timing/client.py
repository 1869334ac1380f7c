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
nothing here prints, logs or stores it. Credentials written into the API URL itself
(``https://user:token@host``, ``?access_token=``) are never used nor recorded: :func:`public_url`
strips them before the URL reaches PyGithub or any output.

Listings are read with :class:`RawListing`: PyGithub's ``PaginatedList`` (Link-header paging,
the retries above) yielding each element exactly as the API sent it. The elements are checked
by ``parse.py``, not by PyGithub's typed objects, whose attribute access raises on a bad value
and sends an extra request to "complete" an object that lacks a field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from github import Auth, Github, GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait
from github.PaginatedList import PaginatedList
from github.Requester import Requester

DEFAULT_API_URL = "https://api.github.com"

#: called with (seconds to wait, HTTP status) before a rate-limit wait
WaitCallback = Callable[[float, int], None]


#: query parameters that carry a credential; dropped from every URL that is recorded or printed
SECRET_QUERY = re.compile(r"token|secret|passw|pwd|auth|key|sig|credential|code", re.IGNORECASE)


class MalformedResponse(Exception):
    """A whole API response has the wrong shape; ``str()`` is one line naming the URL and what was expected."""


def public_url(url: str, *, query: bool = True) -> tuple[str, bool]:
    """``url`` without user info (``user:token@``), credential-like query parameters (all of
    the query with ``query=False``), fragment and trailing slash; and whether anything secret
    was removed. Used for every URL this package records or prints."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc
    removed = "@" in netloc
    netloc = netloc.rpartition("@")[2]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not SECRET_QUERY.search(k)]
    removed = removed or len(kept) != len(pairs)
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), urlencode(kept) if query else "", "")), removed


def scrub(text: str) -> str:
    """``text`` with the user info of any URL in it removed (``//user:token@host`` -> ``//host``)."""
    return re.sub(r"//[^/@\s<>]*@", "//", text)


def check_api_url(url: str) -> str | None:
    """Why ``url`` cannot be an API root (one phrase), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http(s) URL such as https://api.github.com or https://HOST/api/v3"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "the port is not a number"
    return None


def shape(data: Any) -> str:
    """A short description of a JSON value, for "expected X, got Y" messages."""
    if isinstance(data, dict):
        keys = sorted(k for k in data if k != "url")  # PyGithub adds "url" to every object it GETs
        if keys == ["data"] and isinstance(data["data"], str):
            return "a body that is not JSON"  # PyGithub wraps a non-JSON text body as {"data": text}
        return f"an object with keys {', '.join(keys)[:120]}" if keys else "an empty object"
    if isinstance(data, list):
        return f"an array of {len(data)}"
    return "null" if data is None else f"{type(data).__name__} {json.dumps(data)[:40]}"


class RawItem:
    """One element of a listing exactly as the API sent it (``value``): no typed attributes."""

    def __init__(self, requester: Requester, headers: dict[str, Any], attributes: dict[str, Any]) -> None:
        self.value = attributes["value"]


class RawListing(PaginatedList):
    """PyGithub's ``PaginatedList`` over ``path`` yielding :class:`RawItem` s, each element of the
    page's ``list_item`` array in order, ``null`` elements included (PyGithub would drop them).

    A page that is not an object holding that array, a body that is not JSON, or a ``Link``
    header that PyGithub could not follow (malformed, a next page outside the API root) or that
    loops back to a page already read raises :class:`MalformedResponse` naming ``where``.
    """

    def __init__(self, requester: Requester, path: str, params: dict[str, Any], list_item: str, where: str, api_url: str) -> None:
        self._item, self._where, self._api = list_item, where, urlsplit(api_url)
        self._next_pages: set[str] = set()
        super().__init__(RawItem, requester, path, params, list_item=list_item)

    def _fetchNextPage(self) -> list[Any]:
        try:
            return super()._fetchNextPage()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedResponse(f"{self._where}: the response is not valid JSON ({type(exc).__name__})") from None

    def _getPage(self, data: Any, headers: dict[str, Any] | None) -> list[Any]:
        if data:  # PyGithub turns an empty body into []
            items = data.get(self._item) if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise MalformedResponse(f'{self._where}: expected an object {{"{self._item}": [...]}}, got {shape(data)}')
            self._check_link((headers or {}).get("link"))
            data = {**data, self._item: [{"value": element} for element in items]}
        return super()._getPage(data, headers)

    def _check_link(self, link: Any) -> None:
        if not isinstance(link, str) or not link:
            return
        for part in link.split(", "):
            pieces = part.split("; ")
            if len(pieces) < 2 or not (pieces[0].startswith("<") and pieces[0].endswith(">")) or not re.fullmatch(r'rel="\w+"', pieces[1]):
                raise MalformedResponse(f'{self._where}: Link header: expected <URL>; rel="next", got {scrub(part)[:80]!r}')
            if pieces[1] == 'rel="next"':
                url = pieces[0][1:-1]
                if not self._allowed(url):
                    raise MalformedResponse(f"{self._where}: Link header: next page {public_url(url)[0]} is outside the API root {urlunsplit(self._api)}")
                if url in self._next_pages:  # paging would never end
                    raise MalformedResponse(f"{self._where}: Link header: next page {public_url(url)[0]} was already read (the pages loop)")
                self._next_pages.add(url)

    def _allowed(self, url: str) -> bool:
        """PyGithub's own rule for following a URL (it asserts it): same host, port and path
        prefix as the API root, or a host under the API root's domain."""
        try:
            o = urlsplit(url)
            host, port = o.hostname, o.port
        except ValueError:
            return False
        if not host:
            return False
        if host == self._api.hostname:
            return port == self._api.port and o.path.startswith(self._api.path.rstrip("/"))
        domains = {self._api.hostname, (self._api.hostname or "").removeprefix("api.")}
        return any(host == d or host.endswith("." + d) for d in domains if d)


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


__all__ = [
    "DEFAULT_API_URL",
    "BoundedRetry",
    "MalformedResponse",
    "RawListing",
    "check_api_url",
    "client_version",
    "header_wait",
    "make_client",
    "public_url",
    "scrub",
    "shape",
]
