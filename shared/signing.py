"""Per-call signatures for the write functions: what a log holds is worth nothing.

Why not a bearer token: OpenFaaS's queue worker logs every queued call whole (headers,
query, body: nats-queue-worker `main.go`, "Received on [...]"), and its mqtt-connector logs
its gateway URL with the credentials in it. So a write carries no secret at all, only
    X-Signature: t=<unix ms>,n=<nonce>,v1=<hex HMAC-SHA256(key, signed text)>
over the function's name, the query, the body, the time and a one-time nonce. A copy read
from a log cannot sign anything else, is refused once it is older than the allowed age, and
is refused as a replay before that (the function records each nonce it accepted).

Standard library only: `python3 -m shared.signing` runs anywhere, to sign a faas-cli call:
    echo 25.4 | faas-cli invoke nuevo \
        --header "$(echo 25.4 | python3 -m shared.signing --key-file infra/.secrets/api-token nuevo)"
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

HEADER = "X-Signature"
SCHEME = "v1"
FUTURE_SKEW_MS = 300_000  # a caller's clock may run up to 5 minutes ahead of the function's


class SignatureError(ValueError):
    """Why a signature is refused (said to the caller: it names no secret)."""


@dataclass(frozen=True)
class Signature:
    timestamp_ms: int
    nonce: str
    digest: str

    def header_value(self) -> str:
        return f"t={self.timestamp_ms},n={self.nonce},{SCHEME}={self.digest}"


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """The query as signed: every (name, value) pair, percent-encoded, sorted."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(pairs))


def _digest(key: bytes, timestamp_ms: int, nonce: str, function: str, query: str,
            body: bytes) -> str:
    text = "\n".join((SCHEME, str(timestamp_ms), nonce, function, query,
                      hashlib.sha256(body).hexdigest()))
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(key: bytes, function: str, query_pairs: Iterable[tuple[str, str]], body: bytes,
         now_ms: int | None = None) -> Signature:
    timestamp_ms = int(time.time() * 1000) if now_ms is None else now_ms
    nonce = secrets.token_hex(16)
    return Signature(timestamp_ms, nonce,
                     _digest(key, timestamp_ms, nonce, function, canonical_query(query_pairs), body))


def parse(value: str) -> Signature:
    fields = dict(part.strip().partition("=")[::2] for part in value.split(","))
    try:
        timestamp_ms = int(fields["t"])
        nonce, digest = fields["n"], fields[SCHEME]
    except (KeyError, ValueError):
        raise SignatureError(f"{HEADER} must be 't=<unix ms>,n=<nonce>,{SCHEME}=<hex>'") from None
    if not (8 <= len(nonce) <= 64 and nonce.isalnum()) or len(digest) != 64:
        raise SignatureError(f"{HEADER} has a malformed nonce or digest")
    return Signature(timestamp_ms, nonce, digest.lower())


def verify(value: str | None, key: bytes, function: str, query_pairs: Iterable[tuple[str, str]],
           body: bytes, max_age_ms: int, now_ms: int | None = None) -> Signature:
    """The valid signature of this call; SignatureError otherwise. The caller must still
    claim its nonce once (a replay inside `max_age_ms` passes this check)."""
    if not value:
        raise SignatureError(f"this function needs a signed request: send {HEADER} "
                             "(python3 -m shared.signing, see README)")
    signature = parse(value)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if signature.timestamp_ms > now + FUTURE_SKEW_MS:
        raise SignatureError("the signature's time is in the future: check the caller's clock")
    if now - signature.timestamp_ms > max_age_ms:
        raise SignatureError(f"the signature is older than {max_age_ms // 1000} s: sign the call again")
    expected = _digest(key, signature.timestamp_ms, signature.nonce, function,
                       canonical_query(query_pairs), body)
    if not hmac.compare_digest(expected, signature.digest):
        raise SignatureError("the signature does not match this call (key, function, query or body)")
    return signature


def function_of(path: str) -> str:
    """`/function/nuevo.openfaas-fn/x` or `/async-function/nuevo` -> `nuevo`."""
    segment = path.split("/")[2] if path.count("/") >= 2 else ""
    return segment.partition(".")[0]


class SigningAuth:
    """For requests' `auth=`: signs every call to /function/<name> or /async-function/<name>."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def __call__(self, request: Any) -> Any:  # a requests.PreparedRequest
        parts = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        signature = sign(self.key, function_of(parts.path),
                         parse_qsl(parts.query, keep_blank_values=True), body)
        request.headers[HEADER] = signature.header_value()
        return request


def _query_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--query takes name=value, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m shared.signing",
        description="Print the X-Signature header for one call (body read from standard input).")
    parser.add_argument("function", help="nuevo or detectar")
    parser.add_argument("--key-file", type=Path, default=Path("infra/.secrets/api-token"),
                        help="the API key (default: %(default)s, written by make deploy)")
    parser.add_argument("--query", action="append", type=_query_arg, default=[],
                        metavar="NAME=VALUE", help="each query parameter the call sends")
    args = parser.parse_args(argv)
    try:
        key = args.key_file.read_bytes().strip()
    except OSError as exc:
        parser.error(f"cannot read the key file: {exc.strerror}: {args.key_file}")
    if not key:
        parser.error(f"the key file {args.key_file} is empty")
    body = sys.stdin.buffer.read()
    print(f"{HEADER}: {sign(key, args.function, args.query, body).header_value()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
