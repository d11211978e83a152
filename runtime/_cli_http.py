"""The CLI's HTTP client: stdlib urllib, JSON in and out, errors a person can act on."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT_S = 30.0


class ApiError(Exception):
    """The request failed; the message is the server's, or says why it could not be made."""


def request(method: str, base_url: str, path: str, body: Any = None, *,
            query: dict[str, str | None] | None = None) -> Any:
    url = base_url.rstrip("/") + urllib.parse.quote(path, safe="/:")
    params = {k: v for k, v in (query or {}).items() if v is not None}
    if params:
        url += "?" + urllib.parse.urlencode(params)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            message = json.loads(raw)["error"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode("utf-8", "replace")[:500] or err.reason
        raise ApiError(f"{message} (HTTP {err.code})") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ApiError(f"cannot reach Sluice at {base_url}: {reason}. Is `sluice dev` running?") from None
