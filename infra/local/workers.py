"""Serve a WSGI app with waitress in several worker processes sharing one listening socket.

One process runs Python on one core at a time; the kernel hands each new connection to one of
the workers, as the OpenFaaS gateway spreads calls over a function's replicas.
"""

from __future__ import annotations

import heapq
import logging
import multiprocessing
import os
import resource
import signal
import socket
import time
from typing import Any, Callable

import waitress
import waitress.server
from waitress import wasyncore
from waitress.channel import HTTPChannel

from . import processes

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0  # a worker still busy after this is killed
# Connections per worker process. Past IDLE_KEPT, each new connection (and each worker, once
# a second) closes the ones idle longest, so idle or slow sockets (keep-alive clients gone quiet, a slowloris) can never
# shut a new caller out. Only those quiet for IDLE_GRACE_S count: a busy client between two
# requests, or a new one whose request is not read yet, is never cut off (under 500 busy
# clients that churn closed newcomers). MAX_CONNECTIONS bounds the rest, and with them the
# memory (waitress buffers a request's body in memory up to inbuf_overflow, 512 KiB, then on
# disk); past it new callers wait in the listen backlog. waitress's loop visits every
# connection on each pass, so the idle ones kept are few.
IDLE_KEPT = 100
IDLE_GRACE_S = 2.0
MAX_CONNECTIONS = 1000
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


def _close_idlest(channels: dict[int, HTTPChannel], keep: int) -> None:
    """Close the connections idle longest until at most `keep` remain (a tenth fewer, so that
    this runs once per many accepts). Idle: nothing received or sent for IDLE_GRACE_S, no
    request queued or running, no answer left to send; a request only partly received (a
    slow or stalled sender) counts as idle."""
    if len(channels) <= keep:
        return
    quiet_since = time.time() - IDLE_GRACE_S  # waitress's last_activity is time.time()
    idle = [c for c in channels.values() if c.last_activity < quiet_since
            and not c.requests and not c.total_outbufs_len]
    excess = len(channels) - keep + keep // 10
    for channel in heapq.nsmallest(excess, idle, key=lambda c: c.last_activity):
        channel.handle_close()


class _Channel(HTTPChannel):
    """waitress's connection, without a busy wait of its main loop, making room for itself.

    While a request thread writes an answer it holds the connection's output lock. The main
    loop meanwhile sees output pending, select() says the socket is writable at once, the
    loop cannot take the lock and selects again: it spins through every connection, holding
    the GIL the writer needs, until the write is over (measured under load: 11 to 16 passes
    of the loop per request; 2 with this). So the connection is not writable while the lock
    is held: the writer sends the data itself and wakes the loop (pull_trigger) when it
    could not.
    """

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map)
        _close_idlest(server.active_channels, IDLE_KEPT)

    def writable(self):
        pending = super().writable()
        if pending and self.requests and not (self.will_close or self.close_when_flushed):
            if not self.outbuf_lock.acquire(False):
                return False
            self.outbuf_lock.release()
        return pending


class _Wakeup(wasyncore.file_dispatcher):
    """The read end of a worker's wake-up pipe in its loop: a byte ends its poll()."""

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        try:
            self.recv(512)
        except BlockingIOError:
            pass


class _Balance:
    """Connections held by each worker, in shared memory, so that new ones go to the workers
    that hold fewest. Every worker is woken by a new connection on the shared socket and
    the first to call accept() gets it: with keep-alive clients (wrk's 16 connections open
    at once) one worker could end up with many and another with none, idle while the
    others queue. A worker accepts only while it holds at most one more than the least
    loaded; whoever is free first takes the connection among those.

    A worker that stops accepting wakes the least loaded one through its pipe: that one
    may be asleep in a poll() without the listening socket (it had stopped accepting
    earlier), and would otherwise take new connections only at its loop's 1 s timeout (a
    burst of connections then queued for seconds, and the backlog overflowed)."""

    DEAD = 1 << 30  # the slot of a worker that is being replaced: never the least loaded

    def __init__(self, workers: int):
        self.counts = multiprocessing.RawArray("i", workers)
        self.pipes = [os.pipe() for _ in range(workers)]  # made before the fork: shared
        for _, write_end in self.pipes:
            os.set_blocking(write_end, False)

    def _wake(self, slot: int) -> None:
        try:
            os.write(self.pipes[slot][1], b"!")
        except BlockingIOError:  # its pipe is full: it will wake anyway
            pass

    def gate(self, server: Any, slot: int) -> None:
        counts, accepting = self.counts, server.readable
        _Wakeup(self.pipes[slot][0], server._map)
        was_accepting = [True]

        def readable() -> bool:
            counts[slot] = mine = len(server.active_channels)
            least = min(counts)
            accepts = accepting() and mine <= least + 1
            if was_accepting[0] and not accepts:
                self._wake(list(counts).index(least))
            was_accepting[0] = accepts
            return accepts

        server.readable = readable


def _waitress(app: Callable, sock: socket.socket, adjustments: dict[str, Any],
              balance: _Balance | None = None, slot: int = 0,
              on_stop: Callable[[], None] | None = None) -> None:
    """waitress.serve on a bound socket, with _Channel for its connections; then on_stop."""
    server = waitress.server.create_server(
        app, sockets=[sock], connection_limit=connection_limit(),
        asyncore_use_poll=True,  # select() takes no descriptor past 1023
        cleanup_interval=1,  # its maintenance, below, also trims the idle connections
        **adjustments)
    server.channel_class = _Channel
    maintain = server.maintenance

    def maintenance(now: float) -> None:
        # Also once a second, not only when a connection arrives: new ones go to the least
        # loaded worker, so another could otherwise keep its idle sockets indefinitely.
        maintain(now)
        _close_idlest(server.active_channels, IDLE_KEPT)

    server.maintenance = maintenance
    if balance is not None:
        balance.gate(server, slot)
    server.print_listen("Serving on http://{}:{}")
    try:
        server.run()  # returns on KeyboardInterrupt (SIGINT, or SIGTERM via _become_worker)
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
    balance = _Balance(workers)
    children: dict[int, tuple[int, float]] = {}  # pid -> (slot, started at)

    def spawn(slot: int) -> None:
        balance.counts[slot] = 0
        pid = os.fork()
        if pid:
            children[pid] = (slot, time.monotonic())
            return
        code = 0
        try:
            _become_worker(parent)
            _waitress(app, sock, adjustments, balance, slot, on_stop)
        except BaseException:  # noqa: BLE001 - whatever it was, this process ends here
            log.exception("gateway worker %d failed", os.getpid())
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)  # never return into the parent's code (it would stop Redis)

    for slot in range(workers):
        spawn(slot)
    log.info("%d gateway workers (pids %s), %s threads each", workers,
             " ".join(map(str, children)), adjustments.get("threads", 4))
    if on_ready:
        on_ready()
    try:
        while True:
            time.sleep(0.2)
            for pid, (slot, started) in list(children.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
                del children[pid]
                balance.counts[slot] = _Balance.DEAD
                code = os.waitstatus_to_exitcode(status)
                log.error("gateway worker %d %s; starting another", pid,
                          f"was killed by signal {-code}" if code < 0 else f"exited with {code}")
                if time.monotonic() - started < 1.0:
                    time.sleep(1.0)  # a worker that dies at once: do not spin
                spawn(slot)
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
    return max(IDLE_KEPT + 1, min(MAX_CONNECTIONS, soft - SPARE_DESCRIPTORS))


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
