"""A local stand-in for the OpenFaaS gateway and the python3-http template, as one WSGI app.

Routes as the gateway's: /function/<name>[/<path>], /healthz, /system/functions. Each call
builds the template's `event` and `context` from the request (the same Werkzeug objects
Flask hands the template) and shapes the handler's return value the way the template's
`format_response` does, so a handler that passes here behaves the same in its image.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from typing import Any, Callable, Iterable

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from .functions import Function

log = logging.getLogger(__name__)
TEMPLATE_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")  # HEAD runs as GET


class Event:
    """What the template's Event holds, read from the same Werkzeug request."""

    def __init__(self, request: Request, path: str):
        self.body = request.get_data()
        self.headers = request.headers
        self.method = request.method
        self.query = request.args
        self.path = path


class Context:
    def __init__(self) -> None:
        self.hostname = os.getenv("HOSTNAME", "localhost")


def template_response(returned: Any) -> Response:
    """The template's format_response: a dict gives body, statusCode and headers."""
    if returned is None:
        return Response("", 200)
    if not isinstance(returned, dict):
        return Response(str(returned), 200)
    body = returned.get("body", "")
    headers = Headers(list((returned.get("headers") or {}).items()))
    if isinstance(body, dict):  # the template's jsonify
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    headers.setdefault("Content-Type", "text/html; charset=utf-8")
    return Response(str(body), returned.get("statusCode", 200), headers)


class Gateway:
    def __init__(self, functions: dict[str, Function], ready: Callable[[], bool],
                 max_body_bytes: int):
        self.functions = functions
        self.ready = ready
        self.max_body_bytes = max_body_bytes

    def invoke(self, request: Request, name: str, rest: str) -> Response:
        function = self.functions.get(name)
        if function is None:
            return Response(f"function {name!r} not found\n", 404, content_type="text/plain")
        if request.method == "OPTIONS":  # Flask answers it without calling the handler
            return Response("", 200, headers={"Allow": ", ".join(TEMPLATE_METHODS)})
        if request.method not in TEMPLATE_METHODS + ("HEAD",):
            return Response("method not allowed\n", 405, content_type="text/plain")
        if (request.content_length or 0) > self.max_body_bytes:
            # Refused before reading; the handler's own limit covers chunked bodies.
            return Response("request body too large\n", 413, content_type="text/plain")
        function.invocations += 1
        try:
            returned = function.module.handle(Event(request, "/" + rest), Context())
        except Exception:  # what Flask does with an escaped exception: log it, answer 500
            log.exception("Exception on /function/%s [%s]", name, request.method)
            return Response("Internal Server Error\n", 500, content_type="text/plain")
        return template_response(returned)

    def route(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/function/"):
            name, _, rest = path[len("/function/"):].partition("/")
            return self.invoke(request, name, rest)
        if path == "/healthz":
            ok = self.ready()
            return Response("OK\n" if ok else "not ready\n", 200 if ok else 503,
                            content_type="text/plain")
        if path == "/system/functions" and request.method == "GET":
            return Response(json.dumps([f.summary() for f in self.functions.values()]),
                            200, content_type="application/json")
        return Response("not found\n", 404, content_type="text/plain")

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.monotonic()
        request = Request(environ)
        response = self.route(request)
        response.headers["X-Call-Id"] = request.headers.get("X-Call-Id") or str(uuid.uuid4())
        response.headers["X-Duration-Seconds"] = f"{time.monotonic() - started:.6f}"
        return response(environ, start_response)
