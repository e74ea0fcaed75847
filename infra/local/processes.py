"""Child processes of `make up`: bound to their parent's life, stopped politely first."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Callable

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
