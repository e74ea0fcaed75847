"""Child processes of `make up`: bound to their parent's life, stopped politely first."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:  # resolved here, not in a freshly forked child (no loader lock taken after the fork)
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: children may outlive a killed parent
    _prctl = None


def die_with(parent: int, signum: int = signal.SIGTERM) -> None:
    """Called in a child: it gets `signum` when `parent` dies, even by SIGKILL (Linux).

    The kernel sends it when the thread that forked the child ends: fork from a thread that
    lives as long as the process (the main thread, or a watcher that runs until the stop).
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
        os._exit(1)


def stop(process: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; a no-op if it is gone."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Supervised:
    """A command run as a child of `make up`, started again whenever it exits (as Swarm's
    restart policy does for a service) until stop(); a child that keeps exiting waits longer
    each time, up to `longest_wait_s`. Its output goes to ours. The restarts are forked from
    the watching thread, which lives until stop() (see die_with)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str],
                 longest_wait_s: float = 30.0):
        self.name, self.command, self.env = name, command, env
        self.longest_wait_s = longest_wait_s
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.process = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                        start_new_session=True,
                                        preexec_fn=functools.partial(die_with, os.getpid()))
        return self.process

    def _watch(self) -> None:
        wait = 0.5
        child = self._spawn()
        while not self._stopping.wait(wait):
            if child.poll() is None:
                wait = 0.5
                continue
            wait = min(2 * wait, self.longest_wait_s)
            log.error("%s exited (%s); starting it again", self.name, child.returncode)
            child = self._spawn()

    def start(self) -> Supervised:
        self._thread = threading.Thread(target=self._watch, name=f"{self.name}-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        stop(self.process)
