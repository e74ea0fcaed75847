"""The gateway's /async-function/ route and its queue worker, in each gateway worker process.

As on Swarm (docs: gateway `/async-function/{name}`, nats-queue-worker): the call is taken,
queued and answered 202 with an empty body and its `X-Call-Id` at once; later the call runs
as a POST to /function/<name> with the same path suffix, query, headers and body, through
the same code as a synchronous call (`Gateway.invoke`), and, if the request had an
`X-Callback-Url`, the function's answer (body and headers) is POSTed there with
`X-Call-Id`, `X-Function-Status`, `X-Function-Name` and `X-Duration-Seconds`.
Callbacks go only to http:// and https:// URLs (a call naming another is refused with 400 and
not queued), and, when CALLBACK_HOSTS lists host names, only to those; redirects are not
followed. They are delivered by a pool of CALLBACK_THREADS threads, beside the queue: a
callback that is slow or never answers (CALLBACK_TIMEOUT_S per attempt) delays no other call.

Each gateway worker process has its own bounded queue and one thread draining it, so calls
run one at a time per worker, in arrival order (the Swarm queue worker's `max_inflight: 1`
is one at a time across all functions; with --workers 1 this is the same). A full queue
answers 429 and queues nothing. The queue is in memory only: calls still queued when the
gateway stops (Ctrl-C, SIGTERM) are logged as dropped and lost, as NATS Streaming with
`--store memory` loses them when `func_nats` restarts. A callback that fails is tried once
more, then logged; the function has run either way.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

CALLBACK_TIMEOUT_S = 5.0
CALLBACK_THREADS = 16  # per gateway worker process: callbacks in flight at once
STOP_WAIT_S = 5.0  # how long stop() waits for the call in progress (the supervisor waits 10)
_FUNCTION_HEADERS_DROPPED = {"content-length", "transfer-encoding", "connection"}


@dataclass
class Call:
    call_id: str
    name: str
    rest: str
    environ: dict[str, Any]  # the request's CGI and HTTP keys, without its stream
    body: bytes
    callback_url: str | None

    def request(self) -> Request:
        """The request the queue worker sends: POST /function/<name>/<rest>, same the rest."""
        environ = dict(self.environ)
        environ["wsgi.input"] = io.BytesIO(self.body)
        environ["CONTENT_LENGTH"] = str(len(self.body))
        environ["PATH_INFO"] = f"/function/{self.name}" + (f"/{self.rest}" if self.rest else "")
        return Request(environ)


def capture(request: Request, call_id: str, name: str, rest: str, body: bytes) -> Call:
    keep: dict[str, Any] = {k: v for k, v in request.environ.items()
                            if isinstance(v, str) and not k.startswith(("wsgi.", "waitress."))}
    keep["HTTP_X_CALL_ID"] = call_id
    keep.update({"wsgi.version": (1, 0), "wsgi.url_scheme": request.environ.get("wsgi.url_scheme", "http"),
                 "wsgi.errors": request.environ.get("wsgi.errors"), "wsgi.multithread": True,
                 "wsgi.multiprocess": True, "wsgi.run_once": False})
    return Call(call_id, name, rest, keep, body, request.headers.get("X-Callback-Url") or None)


def callback_hosts(setting: str) -> frozenset[str]:
    """CALLBACK_HOSTS: comma-separated host names; empty: any host."""
    return frozenset(h.strip().lower() for h in setting.split(",") if h.strip())


class _InProcess:
    """One process's queue, the thread that drains it, and the callbacks' threads and HTTP
    session."""

    def __init__(self, max_queued: int, drain: Callable[[_InProcess], None]):
        self.pid = os.getpid()
        self.queue: queue.Queue[Call | None] = queue.Queue(max_queued)
        self.http = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=CALLBACK_THREADS)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.callbacks = ThreadPoolExecutor(CALLBACK_THREADS, "async-callback")
        self.thread = threading.Thread(target=drain, args=(self,), name="async-calls", daemon=True)


class Answered(Protocol):
    """What a synchronous call answers (a Werkzeug Response, or the gateway's Answer)."""

    status_code: int

    @property
    def headers(self) -> Any: ...

    def get_data(self) -> bytes: ...


class AsyncCalls:
    """A bounded queue and its drain thread, and the callbacks' threads, created in the
    process that first uses them (the gateway is built before the worker processes are
    forked: a thread would not survive the fork)."""

    def __init__(self, run: Callable[[Request, str, str], Answered], max_queued: int,
                 hosts: frozenset[str] = frozenset()):
        self.run = run  # Gateway.invoke
        self.max_queued = max_queued
        self.hosts = hosts
        self._here: _InProcess | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def _started(self) -> _InProcess:
        with self._lock:
            if self._here is None or self._here.pid != os.getpid():
                self._stopping = threading.Event()
                self._here = _InProcess(self.max_queued, self._drain)
                self._here.thread.start()
            return self._here

    def refusal(self, callback_url: str | None) -> str | None:
        """Why a call may not name this X-Callback-Url, or None (the URL is not repeated)."""
        if not callback_url:
            return None
        parts = urlsplit(callback_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "X-Callback-Url must be an http:// or https:// URL: nothing queued"
        if self.hosts and parts.hostname not in self.hosts:
            return (f"X-Callback-Url must name one of the hosts of CALLBACK_HOSTS "
                    f"({', '.join(sorted(self.hosts))}): nothing queued")
        return None

    def submit(self, call: Call) -> Response:
        """Queue the call: 202 with an empty body, or 429 (full) / 503 (stopping)."""
        if self._stopping.is_set():
            return Response("the gateway is stopping: async call not queued\n", 503,
                            content_type="text/plain")
        try:
            self._started().queue.put_nowait(call)
        except queue.Full:
            log.warning("async queue full (%d calls waiting): %s refused", self.max_queued, call.name)
            return Response(f"async queue full ({self.max_queued} calls waiting in this gateway "
                            "worker): nothing queued, try again later\n", 429,
                            content_type="text/plain", headers={"Retry-After": "1"})
        return Response(b"", 202)

    def _drain(self, here: _InProcess) -> None:
        while True:
            call = here.queue.get()
            if call is None:
                return
            if self._stopping.is_set():
                log.warning("async call %s to %s dropped at shutdown", call.call_id, call.name)
                continue
            try:
                self._execute(here, call)
            except Exception:  # the thread must outlive any one call
                log.exception("async call %s to %s failed", call.call_id, call.name)

    def _execute(self, here: _InProcess, call: Call) -> None:
        started = time.monotonic()
        response = self.run(call.request(), call.name, call.rest)
        duration = time.monotonic() - started
        # a line per call would flood the log under load; a refused call is worth one
        log.log(logging.WARNING if response.status_code >= 400 else logging.DEBUG,
                "async call %s: %s answered %d in %.3f s", call.call_id, call.name,
                response.status_code, duration)
        url = call.callback_url
        if not url:
            return
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in _FUNCTION_HEADERS_DROPPED}
        headers.update({"X-Call-Id": call.call_id, "X-Function-Status": str(response.status_code),
                        "X-Function-Name": call.name, "X-Duration-Seconds": f"{duration:.6f}"})
        here.callbacks.submit(_call_back, here.http, call.call_id, url, headers, response.get_data())


    def stop(self) -> None:
        """Stop the drain thread (after the call in progress); log the queued calls dropped."""
        here = self._here
        if here is None or here.pid != os.getpid():
            return  # never used in this process
        self._stopping.set()
        dropped = []
        while True:
            try:
                call = here.queue.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                dropped.append(call)
        for call in dropped:
            log.warning("async call %s to %s dropped: the gateway stopped before running it "
                        "(the queue is in memory only)", call.call_id, call.name)
        if dropped:
            log.warning("%d queued async calls dropped at shutdown", len(dropped))
        # a call that slipped in as it stopped leaves no room: the thread sees _stopping anyway
        with contextlib.suppress(queue.Full):
            here.queue.put(None, timeout=1)
        here.thread.join(STOP_WAIT_S)
        if here.thread.is_alive():
            log.warning("async call still running after %.0f s: abandoned", STOP_WAIT_S)
        here.callbacks.shutdown(wait=False, cancel_futures=True)  # callbacks not yet sent are lost
        here.http.close()


def _call_back(http: requests.Session, call_id: str, url: str, headers: dict[str, str],
               body: bytes) -> None:
    for attempt in (1, 2):  # one retry at most
        try:
            answer = http.post(url, data=body, headers=headers, timeout=CALLBACK_TIMEOUT_S,
                               allow_redirects=False)
        except requests.RequestException as exc:
            log.warning("async call %s: callback to %s failed (attempt %d): %s",
                        call_id, url, attempt, exc)
            continue
        if answer.status_code < 500:
            log.debug("async call %s: callback to %s answered %d", call_id, url, answer.status_code)
            return
        log.warning("async call %s: callback to %s answered %d (attempt %d)", call_id, url,
                    answer.status_code, attempt)
