"""``ctx.step.fetch``: the request a sandbox asks the node to make, and the response it gets back.

A sandbox has no network. The node makes the request for it (brokered egress), only to
hosts on the function's ``allow_hosts``, and memoizes the response like any step output.
``json`` is imported only when a body is JSON-encoded or decoded.
"""

from __future__ import annotations

from sluice._context import AttrDict

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from typing import Any

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_URL = 8_192
#: Timeout of a fetch when the caller gives none (ms); the host may cap it.
DEFAULT_TIMEOUT_MS = 30_000
_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")


def build_request(step: str, url: object, method: object, headers: object, body: object) -> dict[str, Any]:
    """The op's ``request`` map: ``{"method", "url", "headers": {str: str}, "body": bytes | None}``.

    ``body`` may be ``str`` (sent as UTF-8), ``bytes``, or a ``dict``/``list`` (sent as JSON,
    with ``content-type: application/json`` unless a content-type header is given).
    Raises ``ValueError`` naming the step and the bad argument.
    """
    if (not isinstance(url, str) or len(url) > MAX_URL or not url.lower().startswith(("http://", "https://"))
            or any(c <= " " or c == "\x7f" for c in url)):
        raise ValueError(f"fetch {step!r}: bad url {url!r}: use an http:// or https:// URL without spaces, "
                         f"at most {MAX_URL} characters")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ValueError(f"fetch {step!r}: bad method {method!r}: use one of {', '.join(sorted(METHODS))}")
    out_headers: dict[str, str] = {}
    if headers is not None:
        if not isinstance(headers, dict):
            raise ValueError(f"fetch {step!r}: bad headers {headers!r}: use a dict of str to str")
        for key, value in headers.items():
            if (not isinstance(key, str) or not key or not _TOKEN.issuperset(key) or not isinstance(value, str)
                    or "\r" in value or "\n" in value):
                raise ValueError(f"fetch {step!r}: bad header {key!r}: {value!r}: names are HTTP tokens, "
                                 f"values strings without line breaks")
            out_headers[key.lower()] = value
    data: bytes | None
    if body is None or isinstance(body, bytes):
        data = body
    elif isinstance(body, bytearray | memoryview):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, dict | list):
        import json

        try:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"fetch {step!r}: body is not JSON-serialisable: {exc}") from None
        out_headers.setdefault("content-type", "application/json")
    else:
        raise ValueError(f"fetch {step!r}: bad body of type {type(body).__name__}: use str, bytes, "
                         f"a dict or a list (sent as JSON), or None")
    return {"method": method.upper(), "url": url, "headers": out_headers, "body": data}


class FetchResponse(AttrDict):
    """What ``ctx.step.fetch`` returns: a dict ``{"status", "headers", "body"}`` that also
    reads as attributes.

    - ``status``: the HTTP status code (int); a 404 or 500 is a response, not an error;
    - ``headers``: response headers, names in lower case (repeats joined with ``", "``);
    - ``body``: the body decoded as UTF-8 (undecodable bytes replaced);
    - ``content``: the body as bytes; ``ok``: ``200 <= status < 300``; ``json()``: the body parsed.
    """

    __slots__ = ("content",)

    def __init__(self, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        raw = data.get("body")
        content = raw if isinstance(raw, bytes) else (raw or "").encode("utf-8") if isinstance(raw, str) else b""
        status = data.get("status")
        headers = data.get("headers")
        super().__init__(status=status if isinstance(status, int) else 0,
                         headers=AttrDict(headers) if isinstance(headers, dict) else AttrDict(),
                         body=content.decode("utf-8", "replace"))
        self.content = content

    @property
    def ok(self) -> bool:
        status: int = self["status"]
        return 200 <= status < 300

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` (``json.JSONDecodeError``) if it is not."""
        import json

        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"FetchResponse(status={self['status']}, body={len(self.content)} bytes)"
