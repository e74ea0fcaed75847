"""The HTTP request `faas-cli invoke` sends, byte for byte, without needing faas-cli.

What faas-cli 0.16.30 to 0.18.12 sends (commands/invoke.go `runInvoke`, go-sdk
`Client.InvokeFunction`, Go's net/http client):
- `<METHOD> /function/<name>.openfaas-fn?<query>` (`/async-function/` with --async): the
  namespace is always added, `openfaas-fn` when none is given;
- the query as Go's `url.Values.Encode`: sorted by name, `+` for spaces;
- headers: Host, User-Agent `faas-cli/<version> (openfaas; linux; amd64)`, Content-Length,
  Content-Type (`--content-type`, default text/plain), the `--header` ones, and
  `Accept-Encoding: gzip`; the body is standard input as it is.
faas-cli then fails on any status outside 200-299, and with --async says "Function submitted
asynchronously." on 202.
"""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus, urlsplit

VERSION = "0.18.12"
NAMESPACE = "openfaas-fn"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def query_string(pairs: list[tuple[str, str]]) -> str:
    """Go's url.Values.Encode: sorted by key (values in order given), QueryEscape'd."""
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(pairs, key=lambda p: p[0]))


def invoke(gateway: str, function: str, body: bytes = b"", *, query: Sequence[tuple[str, str]] = (),
           headers: dict[str, str] | None = None, method: str = "POST", asynchronous: bool = False,
           content_type: str = "text/plain", timeout_s: float = 30.0) -> Answer:
    base = urlsplit(gateway)
    path = f"/{'async-function' if asynchronous else 'function'}/{function}.{NAMESPACE}"
    qs = query_string(list(query))
    assert base.hostname, f"{gateway!r} names no host"
    connection = http.client.HTTPConnection(base.hostname, base.port or 80, timeout=timeout_s)
    try:
        connection.putrequest(method, path + (f"?{qs}" if qs else ""), skip_accept_encoding=True)
        connection.putheader("User-Agent", f"faas-cli/{VERSION} (openfaas; linux; amd64)")
        connection.putheader("Content-Length", str(len(body)))
        connection.putheader("Content-Type", content_type)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.putheader("Accept-Encoding", "gzip")
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()
