"""The CLI's HTTP client: stdlib urllib (no extra dependency), JSON in and out, and
errors a person can act on.

Every failure is an :class:`ApiError` whose message is ready to print: the server's own
``{"error": ...}`` message for a 4xx/5xx, or why the request could not be made.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT_S = 30.0
DEFAULT_URL = "http://127.0.0.1:8288"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ApiError(Exception):
    """The request failed. ``status`` is the HTTP status, or ``None`` if there was no answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a Sluice API base URL, or ``None`` if it can."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// URL, e.g. {DEFAULT_URL}"
    return None


def segment(value: str) -> str:
    """``value`` quoted as one path segment (an id with a ``/`` stays one segment)."""
    return urllib.parse.quote(value, safe="")


def request(method: str, base_url: str, path: str, body: Any = None, *,
            query: dict[str, str | None] | None = None, timeout_s: float = TIMEOUT_S) -> Any:
    """Send ``body`` as JSON to ``base_url + path`` and return the decoded JSON answer.

    ``path`` must already be quoted (see :func:`segment`); ``query`` values of ``None``
    are left out. Raises :class:`ApiError`.
    """
    url = base_url.rstrip("/") + path
    params = {k: v for k, v in (query or {}).items() if v is not None}
    if params:
        url += "?" + urllib.parse.urlencode(params)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", "accept": "application/json"})
    # A proxy from the environment must not swallow requests to this machine.
    host = urllib.parse.urlsplit(base_url).hostname or ""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if host in _LOOPBACK \
        else urllib.request.build_opener()
    try:
        with opener.open(req, timeout=timeout_s) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raise ApiError(_server_message(err), err.code) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError):
            raise ApiError(f"Sluice at {base_url} did not answer within {timeout_s:g} s") from None
        raise ApiError(f"cannot reach Sluice at {base_url}: is `sluice dev` running? ({reason})") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(f"{base_url} answered HTTP {status} with something that is not JSON: "
                       f"is it a Sluice API? ({raw[:80]!r})", status) from None


def _server_message(err: urllib.error.HTTPError) -> str:
    try:
        raw = err.read()
    except OSError:
        raw = b""
    try:
        message = json.loads(raw)["error"]
        if isinstance(message, str) and message:
            return message
    except (ValueError, KeyError, TypeError):
        pass
    text = raw.decode("utf-8", "replace").strip()[:300]
    return f"HTTP {err.code} {err.reason}" + (f": {text}" if text else "")
