"""One python3-http request, start to finish: method, size, token, action, response.

Every failure is answered here in the caller's format; a traceback goes to the log
(`faas-cli logs`), never to the caller.
"""

from __future__ import annotations

import base64
import hmac
import logging
from typing import Any

from . import render
from .actions import Action
from .errors import MethodNotAllowed, PayloadTooLarge, Unauthorized, as_api_error
from .params import merged_params
from .services import SERVICES, Services

log = logging.getLogger(__name__)
READ_METHODS = ("GET", "HEAD", "POST")
WRITE_METHODS = ("GET", "POST")  # the replaced system wrote on GET; HEAD must not write


def _token(headers: Any) -> str:
    bearer = headers.get("Authorization") or ""
    if bearer[:7].lower() == "bearer ":
        return bearer[7:].strip()
    if bearer[:6].lower() == "basic ":
        # The token as the password of Basic auth, any user: what an event connector sends
        # when its gateway URL is http://<user>:<token>@gateway:8080 (it cannot add headers).
        try:
            decoded = base64.b64decode(bearer[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return (headers.get("X-Api-Token") or "").strip()


def _check(event: Any, action: Action, services: Services) -> None:
    if event.method.upper() not in (WRITE_METHODS if action.writes else READ_METHODS):
        raise MethodNotAllowed(f"{event.method} is not supported: use GET or POST")
    settings = services.settings
    if len(event.body or b"") > settings.max_body_bytes:
        raise PayloadTooLarge(f"body is larger than {settings.max_body_bytes} bytes")
    if action.writes and settings.api_token is not None:
        if not hmac.compare_digest(_token(event.headers).encode(), settings.api_token.encode()):
            raise Unauthorized("this function needs an API token: "
                               "send 'Authorization: Bearer <token>'")


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
        result = action.run(merged_params(event.query, event.body or b"", event.headers),
                            services, host)
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
    return render.response(result.status, result.html, False)
