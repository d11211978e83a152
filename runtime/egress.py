"""Brokered egress: the node makes HTTP requests for sandboxed steps (``ctx.step.fetch``).

No sandbox has a network interface. A step that must call an outside API asks the
node, which sends the request only to hosts on the function's allowlist
(``allow_hosts``; empty by default) and records the response as the step's output, so
a retry of the function reuses it (memoized like any step).
"""

from __future__ import annotations

import asyncio
import fnmatch
from typing import Any
from urllib.parse import urlsplit

import aiohttp

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT_MS = 30_000


class EgressDenied(Exception):
    """The request is not allowed; the message says why (never retried)."""


def check_allowed(url: str, allow_hosts: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise EgressDenied(f"only http and https URLs can be fetched, not {url!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise EgressDenied(f"URL {url!r} has no host")
    hostport = f"{host}:{parts.port}" if parts.port else host
    for pattern in allow_hosts:
        pat = pattern.lower()
        if fnmatch.fnmatchcase(hostport, pat) or fnmatch.fnmatchcase(host, pat):
            return
    raise EgressDenied(f"host {hostport!r} is not on this function's allowlist (allow_hosts={allow_hosts!r})")


class Egress:
    """One HTTP client for the node's brokered requests. Lifecycle: ``close()`` twice is safe."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, request: dict[str, Any], allow_hosts: list[str], timeout_ms: int | None) -> dict[str, Any]:
        """Perform ``request`` ({"method","url","headers","body"}) if allowed.

        Returns {"status", "headers" (lower-case names), "body" (bytes)}; raises
        :class:`EgressDenied` or ``aiohttp.ClientError`` / ``TimeoutError`` on failure.
        """
        url = str(request.get("url") or "")
        check_allowed(url, allow_hosts)
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=True)
        body = request.get("body")
        if isinstance(body, str):
            body = body.encode()
        headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
        timeout = aiohttp.ClientTimeout(total=(timeout_ms or DEFAULT_TIMEOUT_MS) / 1000)
        async with self._session.request(str(request.get("method") or "GET").upper(), url, data=body,
                                          headers=headers, timeout=timeout, allow_redirects=False) as resp:
            raw = await resp.content.read(MAX_RESPONSE_BYTES + 1)
            if len(raw) > MAX_RESPONSE_BYTES:
                raise EgressDenied(f"response from {url!r} is over {MAX_RESPONSE_BYTES} bytes")
            return {"status": resp.status, "headers": {k.lower(): v for k, v in resp.headers.items()},
                    "body": raw}

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
            await asyncio.sleep(0)
