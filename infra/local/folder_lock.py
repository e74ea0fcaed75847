"""An exclusive lock on a data folder, so that two stacks never share one append-only file.

flock(2) on a file in the folder: the kernel drops it when every process holding the file
open has exited, whatever killed them, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "stack.lock"


class FolderInUse(RuntimeError):
    """Another process holds the folder's lock."""


def lock_folder(folder: Path, holder: str) -> int:
    """Lock `folder` for this process (and the children it passes the descriptor to); the
    descriptor is returned. `holder` is written in the lock file for whoever finds it taken."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise FolderInUse(f"{folder} is in use by {other}: stop that stack, or give this one "
                          "a data folder of its own (--data-dir)") from None
    os.ftruncate(fd, 0)
    os.write(fd, holder.encode())
    return fd
