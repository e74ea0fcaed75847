"""One python3-http request, start to finish: method, size, signature, action, response.

Every failure is answered here in the caller's format; a traceback goes to the log
(`faas-cli logs`), never to the caller.
"""

from __future__ import annotations

import logging
from typing import Any

from . import render, signing
from .actions import Action
from .errors import MethodNotAllowed, PayloadTooLarge, Unauthorized, as_api_error
from .params import merged_params, parse_format
from .services import SERVICES, Services

log = logging.getLogger(__name__)
READ_METHODS = ("GET", "HEAD", "POST")
WRITE_METHODS = ("GET", "POST")  # the replaced system wrote on GET; HEAD must not write


def _query_pairs(query: Any) -> list[tuple[str, str]]:
    """Every (name, value) of the query: a Werkzeug MultiDict (the template's) or a dict."""
    return list(query.items(multi=True) if hasattr(query, "getlist") else query.items())


def _authorise(event: Any, action: Action, services: Services, api_key: str) -> None:
    """A write must be signed with `api_key` for this call (shared/signing.py), and only once."""
    max_age_ms = services.settings.signature_max_age_s * 1000
    try:
        signature = signing.verify(event.headers.get(signing.HEADER), api_key.encode(),
                                   action.name, _query_pairs(event.query), event.body or b"",
                                   max_age_ms)
    except signing.SignatureError as exc:
        raise Unauthorized(str(exc)) from None
    # Kept as long as the signature could pass the age check, so a copy is never accepted.
    if not services.replay_guard.claim(signature.nonce, max_age_ms + signing.FUTURE_SKEW_MS):
        raise Unauthorized("this signature was already used: sign each call anew")


def _check(event: Any, action: Action, services: Services) -> None:
    methods = WRITE_METHODS if action.writes else READ_METHODS
    if event.method.upper() not in methods:
        raise MethodNotAllowed(f"{event.method} is not supported: use "
                               f"{', '.join(methods[:-1])} or {methods[-1]}", methods)
    parse_format(event.query)
    settings = services.settings
    if len(event.body or b"") > settings.max_body_bytes:
        raise PayloadTooLarge(f"body is larger than {settings.max_body_bytes} bytes")
    if action.writes and settings.api_key is not None:
        _authorise(event, action, services, settings.api_key)


def _failure(status: int, message: str, as_json: bool, host: str,
             extra: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    if as_json:
        answer = render.response(status, {"error": message, **(extra or {})}, True)
    else:
        answer = render.response(status, render.error_html(status, message, host), False)
    answer["headers"].update(headers or {})
    return answer


def serve(event: Any, context: Any, action: Action, services: Services = SERVICES) -> dict[str, Any]:
    """Run `action` for a python3-http event; always returns a response dict."""
    host = getattr(context, "hostname", "localhost")
    as_json = render.wants_json(event.query, event.headers)
    try:
        _check(event, action, services)
        params = merged_params(event.query, event.body or b"", event.headers, action.parameters)
        result = action.run(params, services, host)
    except Exception as exc:
        error = as_api_error(exc)
        if error is None or error.unexpected:
            log.exception("%s failed", action.name)
        if error is None:
            return _failure(500, "internal error; the details are in the function's log",
                            as_json, host)
        return _failure(error.status, error.message, as_json, host, error.fields(),
                        error.headers())
    if as_json:
        return render.response(result.status, result.document, True)
    return render.response(result.status, result.page(), False)
