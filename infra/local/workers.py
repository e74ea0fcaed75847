"""Serve a WSGI app with waitress in several worker processes sharing one listening socket.

One process runs Python on one core at a time; the kernel hands each new connection to one of
the workers, as the OpenFaaS gateway spreads calls over a function's replicas. Each worker is
plain waitress, configured through its documented settings only (infra/bench/RESULTS.md has
the servers measured before choosing it, and why).
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import time
from typing import Any, Callable

import waitress.server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError

from . import processes

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0  # a worker still busy after this is killed
# Idle or slow connections (keep-alive clients gone quiet, a slowloris) must never shut a new
# caller out, and must not hold memory without bound. waitress reads requests in its main loop,
# never in a request thread, so a half-sent request holds no thread; a worker takes up to
# MAX_CONNECTIONS connections (past that, new callers wait in the listen backlog), and closes
# any that has neither sent nor received a byte for CHANNEL_TIMEOUT_S. Each holds at most
# MAX_HEADER_BYTES of a request's head and IN_MEMORY_BODY_BYTES of its body (the rest of a
# body goes to a temporary file), so a worker's connections stay under 2000 * 128 KiB.
MAX_CONNECTIONS = 2000
CHANNEL_TIMEOUT_S = 10
MAX_HEADER_BYTES = 64 * 1024
IN_MEMORY_BODY_BYTES = 64 * 1024
SPARE_DESCRIPTORS = 256  # beside the connections: Redis's pool, the listening socket, files


def cpu_count() -> int:
    """The cores this process may run on (a container's CPU set, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """The listening socket every worker accepts on (port 0: an ephemeral one)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    info = next((i for i in found if i[0] == socket.AF_INET), found[0])  # "localhost": IPv4
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(info[4])
    sock.listen(backlog)
    return sock


class _FramingParser(HTTPRequestParser):
    """waitress 3.0.2's parser, refusing a request framed by both Content-Length and
    Transfer-Encoding (RFC 9112 section 6.1: a sign of request smuggling; the server must
    close the connection after it). 3.0.2 decodes the chunks, ignores the Content-Length
    and keeps the connection, so a request pipelined behind it would run; a parsing error
    makes waitress answer 400, drop what is pipelined and close. Waitress's next release
    closes such connections itself (Pylons/waitress#475): then this class can go."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise ParsingError("both Content-Length and Transfer-Encoding: chunked")


class _Channel(HTTPChannel):
    parser_class = _FramingParser


def _waitress(app: Callable, sock: socket.socket, adjustments: dict[str, Any],
              on_stop: Callable[[], None] | None = None) -> None:
    """waitress on a bound socket until SIGINT/SIGTERM (_become_worker); then on_stop."""
    server = waitress.server.create_server(
        app, sockets=[sock], connection_limit=connection_limit(),
        channel_timeout=CHANNEL_TIMEOUT_S, cleanup_interval=1,
        max_request_header_size=MAX_HEADER_BYTES, inbuf_overflow=IN_MEMORY_BODY_BYTES,
        asyncore_use_poll=True,  # select() takes no descriptor past 1023
        **adjustments)
    server.channel_class = _Channel
    server.print_listen("Serving on http://{}:{}")
    try:
        server.run()
    finally:
        if on_stop:
            on_stop()


def serve(app: Callable, sock: socket.socket, workers: int = 1,
          on_ready: Callable[[], None] | None = None,
          on_stop: Callable[[], None] | None = None, **adjustments: Any) -> None:
    """Serve `app` with waitress on `sock` until SIGINT or SIGTERM, then stop cleanly.

    workers == 1: in this process. workers > 1: in that many forked processes (the model
    and the handlers are loaded once, before the fork, and shared copy-on-write); this
    process only supervises them: it forwards SIGTERM, restarts a worker that died, and
    returns once all have stopped. `on_ready` runs once the workers are started; `on_stop`
    in each serving process once its server has stopped (e.g. to stop its async queue).
    """
    # Waitress warns on every request that waits for a thread: under load, a flood of log
    # lines that costs more than it tells.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    _allow_descriptors(MAX_CONNECTIONS + SPARE_DESCRIPTORS)
    if workers <= 1:
        if on_ready:
            on_ready()
        _waitress(app, sock, adjustments, on_stop=on_stop)
        return
    parent = os.getpid()
    children: dict[int, float] = {}  # pid -> started at

    def spawn() -> None:
        pid = os.fork()
        if pid:
            children[pid] = time.monotonic()
            return
        code = 0
        try:
            _become_worker(parent)
            _waitress(app, sock, adjustments, on_stop)
        except BaseException:  # noqa: BLE001 - whatever it was, this process ends here
            log.exception("gateway worker %d failed", os.getpid())
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)  # never return into the parent's code (it would stop Redis)

    for _ in range(workers):
        spawn()
    log.info("%d gateway workers (pids %s), %s threads each", workers,
             " ".join(map(str, children)), adjustments.get("threads", 4))
    if on_ready:
        on_ready()
    try:
        while True:
            time.sleep(0.2)
            for pid, started in list(children.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
                del children[pid]
                code = os.waitstatus_to_exitcode(status)
                log.error("gateway worker %d %s; starting another", pid,
                          f"was killed by signal {-code}" if code < 0 else f"exited with {code}")
                if time.monotonic() - started < 1.0:
                    time.sleep(1.0)  # a worker that dies at once: do not spin
                spawn()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_workers(list(children))


def _allow_descriptors(wanted: int) -> None:
    """Raise the soft limit of open files (often 1024) to `wanted`, as far as the hard allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def connection_limit() -> int:
    """MAX_CONNECTIONS, or fewer when the open-file limit would not leave room for the rest
    (an accept() failing for want of a descriptor would spin waitress's loop)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - SPARE_DESCRIPTORS))


def _ignore(signum, frame) -> None:
    pass


def _become_worker(parent: int) -> None:
    def stop(signum, frame):
        # One stop is enough (Ctrl-C sends SIGINT to all, then the supervisor SIGTERM):
        # later signals do nothing. A no-op handler, not SIG_IGN: a signal already on its
        # way to a handler switched to SIG_IGN raises OSError ("ignored due to race").
        signal.signal(signal.SIGTERM, _ignore)
        signal.signal(signal.SIGINT, _ignore)
        raise KeyboardInterrupt  # waitress ends its loop cleanly

    signal.signal(signal.SIGTERM, stop)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # e.g. a background job's
        signal.signal(signal.SIGINT, stop)
    processes.die_with(parent)  # if the supervisor dies, even by SIGKILL, its workers stop too


def _stop_workers(children: list[int]) -> None:
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while children and time.monotonic() < deadline:
        for pid in list(children):
            if os.waitpid(pid, os.WNOHANG)[0]:
                children.remove(pid)
        time.sleep(0.05)
    for pid in children:
        log.warning("gateway worker %d did not stop in %.0f s: killing it", pid, STOP_TIMEOUT_S)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
