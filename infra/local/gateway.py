"""A local stand-in for the OpenFaaS gateway and the python3-http template, as one WSGI app.

Routes as the gateway's: /function/<name>[/<path>], /async-function/<name>[/<path>] (queued
in the worker process and run later, infra/local/async_calls.py), /healthz, /system/functions,
/system/function/<name> (what `faas-cli describe` reads).
Every call gets an `X-Call-Id` on its request and answer: the caller's when it is a short id
(CALL_ID: a UUID, a name), else a new UUID, so nothing the caller chose is echoed beyond that.
Every answer says `X-Content-Type-Options: nosniff`; the gateway's own never repeat the path.
Each call builds the template's `event` and `context` from the request (the same Werkzeug
objects Flask hands the template) and shapes the handler's return value the way the template's
`format_response` does, so a handler that passes here behaves the same in its image.
infra/local/workers.py serves it from several processes.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal, overload

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request, Response

from .async_calls import AsyncCalls, capture
from .functions import Function

log = logging.getLogger(__name__)
TEMPLATE_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")  # HEAD runs as GET
# Flask answers OPTIONS itself, without calling the handler, with what the template's route
# takes (it adds HEAD and OPTIONS): what a function accepts is in the Allow of its 405.
TEMPLATE_ALLOW = ", ".join(sorted({*TEMPLATE_METHODS, "HEAD", "OPTIONS"}))
# faas-cli >= 0.16.30 always calls /function/<name>.openfaas-fn (go-sdk `InvokeFunction`
# adds the default namespace). On Swarm that name resolves because the functions' network
# is named openfaas-fn (infra/swarm/openfaas.yml); here the suffix is dropped. Other
# namespaces do not exist on either.
NAMESPACE = "openfaas-fn"
CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # what a caller's X-Call-Id may be


def function_name(segment: str) -> str:
    """`nuevo` or `nuevo.openfaas-fn` -> `nuevo`; anything else is left as it is."""
    name, dot, namespace = segment.rpartition(".")
    return name if dot and namespace == NAMESPACE else segment


class Event:
    """What the template's Event holds, read from the same Werkzeug request."""

    def __init__(self, request: Request, path: str):
        self.body = request.get_data()
        self.headers = request.headers
        self.method = request.method
        self.query = request.args
        self.path = path


class Context:
    """The template's Context: the same for every call of a process (made once)."""

    def __init__(self) -> None:
        self.hostname = os.getenv("HOSTNAME", "localhost")


class Answer:
    """A function's answer as Werkzeug's Response would send it (status line, headers in
    order, Content-Length, no body to HEAD or to a 1xx, 204 or 304), without its
    per-call machinery: a tenth of a detectar call went to building and sending one.
    `headers` is a dict, so the gateway's own are set as on a Response."""

    def __init__(self, body: str, status: int, headers: dict[str, str]):
        self.body = body.encode()
        self.status_code = status
        self.headers = headers

    @property
    def content_type(self) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")

    @overload
    def get_data(self, as_text: Literal[False] = False) -> bytes: ...
    @overload
    def get_data(self, as_text: Literal[True]) -> str: ...

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.body.decode() if as_text else self.body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        code = self.status_code
        status = f"{code} {HTTP_STATUS_CODES.get(code, 'unknown').upper()}"
        headers = list(self.headers.items())
        if 100 <= code < 200 or code in (204, 304):
            start_response(status, headers)
            return []
        headers.append(("Content-Length", str(len(self.body))))
        start_response(status, headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [self.body]


def template_response(returned: Any) -> Answer:
    """The template's format_response: a dict gives body, statusCode and headers."""
    if not isinstance(returned, dict):
        return Answer("" if returned is None else str(returned), 200,
                      {"Content-Type": "text/plain; charset=utf-8"})  # Werkzeug's default
    body = returned.get("body", "")
    headers = {str(k): str(v) for k, v in (returned.get("headers") or {}).items()}
    typed = any(key.lower() == "content-type" for key in headers)
    if isinstance(body, dict):  # the template's jsonify
        body = json.dumps(body)
        if not typed:
            headers["Content-Type"] = "application/json"
    elif not typed:
        headers["Content-Type"] = "text/html; charset=utf-8"
    return Answer(str(body), returned.get("statusCode", 200), headers)


def _plain(text: str, status: int, **headers: str) -> Response:
    """A text/plain answer of the gateway itself (not of a function)."""
    return Response(text + "\n", status, content_type="text/plain", headers=headers)


def call_id(environ: dict) -> str:
    """The caller's X-Call-Id when it is a short id, else a new one."""
    given = environ.get("HTTP_X_CALL_ID", "")
    return given if CALL_ID.fullmatch(given) else str(uuid.uuid4())


class Gateway:
    def __init__(self, functions: dict[str, Function], ready: Callable[[], str | None],
                 max_body_bytes: int, max_async_queued: int = 10_000,
                 callback_hosts: frozenset[str] = frozenset()):
        self.functions = functions
        self.context = Context()
        self.ready = ready
        self.max_body_bytes = max_body_bytes
        # Invocation counts in shared memory, so /system/functions counts every worker's calls.
        self._invocations = {name: multiprocessing.Value("q", f.invocations)
                             for name, f in functions.items()}
        self.async_calls = AsyncCalls(self.invoke, max_async_queued, callback_hosts)  # per worker

    def _not_found(self) -> Response:
        return _plain(f"no such function: the functions are {', '.join(sorted(self.functions))}",
                      404)

    def status(self, name: str, namespace: str) -> Response:
        """GET /system/function/<name>, as faas-swarm's ReplicaReader answers it: the
        function's FunctionStatus (faas-provider types) as JSON, or 404 with no body."""
        function = self.functions.get(name)
        if function is None or namespace != NAMESPACE:
            return Response(b"", 404)
        return Response(json.dumps(self._summary(function)), 200, content_type="application/json")

    def _summary(self, function: Function) -> dict[str, Any]:
        """Its entry of /system/functions, counting every worker's calls."""
        function.invocations = self._invocations[function.name].value
        return function.summary()

    def _count(self, name: str) -> None:
        counter = self._invocations[name]
        with counter.get_lock():
            counter.value += 1

    def invoke(self, request: Request, name: str, rest: str) -> Response | Answer:
        function = self.functions.get(name)
        if function is None:
            return self._not_found()
        if request.method == "OPTIONS":
            return Response("", 200, headers={"Allow": TEMPLATE_ALLOW})
        if request.method not in (*TEMPLATE_METHODS, "HEAD"):  # the template's Flask route
            return _plain("method not allowed", 405)
        self._count(name)
        try:
            returned = function.module.handle(Event(request, "/" + rest), self.context)
        except Exception:  # what Flask does with an escaped exception: log it, answer 500
            log.exception("Exception on /function/%s [%s]", name, request.method)
            return _plain("Internal Server Error", 500)
        return template_response(returned)

    def invoke_async(self, request: Request, name: str, rest: str) -> Response:
        """Queue a call to /function/<name>/<rest> (POST only) and answer 202 at once."""
        if request.method != "POST":
            return _plain("method not allowed", 405, Allow="POST")
        if name not in self.functions:
            return self._not_found()
        if (request.content_length or 0) > self.max_body_bytes:
            return _plain("request body too large", 413)
        body = request.get_data()
        if len(body) > self.max_body_bytes:  # a chunked body
            return _plain("request body too large", 413)
        refusal = self.async_calls.refusal(request.headers.get("X-Callback-Url"))
        if refusal:
            return _plain(refusal, 400)
        call = capture(request, request.headers["X-Call-Id"], name, rest, body)
        return self.async_calls.submit(call)

    def route(self, request: Request) -> Response | Answer:
        path = request.path
        if path.startswith("/function/"):
            name, _, rest = path[len("/function/"):].partition("/")
            return self.invoke(request, function_name(name), rest)
        if path.startswith("/async-function/"):
            name, _, rest = path[len("/async-function/"):].partition("/")
            return self.invoke_async(request, function_name(name), rest)
        if path == "/healthz":  # `ready` says what keeps the functions from working, if anything
            problem = self.ready()
            return _plain(f"not ready: {problem}", 503) if problem else _plain("OK", 200)
        if path.startswith("/system/function/") and request.method == "GET":
            return self.status(path[len("/system/function/"):],
                               request.args.get("namespace", NAMESPACE))
        if path == "/system/functions" and request.method == "GET":
            return Response(json.dumps([self._summary(f) for f in self.functions.values()]),
                            200, content_type="application/json")
        return _plain("not found", 404)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.monotonic()
        environ["HTTP_X_CALL_ID"] = this_call = call_id(environ)  # on the request too
        request = Request(environ)
        response = self.route(request)
        response.headers["X-Call-Id"] = this_call
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Duration-Seconds"] = f"{time.monotonic() - started:.6f}"
        return response(environ, start_response)
