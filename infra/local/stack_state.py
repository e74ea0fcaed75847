"""Where the running `make up` answers, for the tools that talk to it (simulate, evaluate,
`make redis-cli`).

`make up` writes data/local-stack.json once its gateway serves and removes it when it stops
(LOCAL_STACK_FILE names another file): the gateway's URL, and the Redis the functions use
(its nodes, whether it is a cluster, and the file holding its password: never the password).
A file left by a stack that was killed names a process that is gone, and is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shared.config import REPO_ROOT, Settings

# LOCAL_STACK_FILE moves it (the tests' stacks use their own, never the checkout's).
STATE_FILE = Path(os.environ.get("LOCAL_STACK_FILE") or REPO_ROOT / "data" / "local-stack.json")
FALLBACK_URL = "http://127.0.0.1:8080"


def redis_record(settings: Settings, password_file: str | None) -> dict[str, Any]:
    """How to reach the functions' Redis, as `announce` records it."""
    return {"nodes": [[host, port] for host, port in settings.redis_nodes],
            "cluster": settings.redis_cluster, "password_file": password_file or None}


def announce(url: str, redis: dict[str, Any] | None = None, path: Path | None = None) -> None:
    """Record that this process serves the gateway at `url`, its functions using `redis`
    (replacing any earlier record)."""
    path = path or STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"url": url, "pid": os.getpid(), "redis": redis}) + "\n")
    partial.replace(path)  # atomic: a reader never sees half a file


def withdraw(path: Path | None = None) -> None:
    """Remove the record if it is this process's (a later stack may have replaced it)."""
    path = path or STATE_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running(path: Path | None = None) -> dict[str, Any] | None:
    """The record of the `make up` in `path`, if that process still runs."""
    path = path or STATE_FILE
    try:
        record = json.loads(path.read_text())
        pid, url = int(record["pid"]), str(record["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's process: it runs
        pass
    return {**record, "url": url}


def running_url(path: Path | None = None) -> str | None:
    """The URL of the `make up` recorded in `path`, if that process still runs."""
    record = running(path)
    return None if record is None else str(record["url"])


def gateway_url(explicit: str | None, path: Path | None = None) -> tuple[str, str | None]:
    """The gateway a tool should use: `explicit` (an option or OPENFAAS_URL) if given, else
    the running `make up`, else FALLBACK_URL; with a line saying why when it was not given."""
    path = path or STATE_FILE
    if explicit:
        return explicit.rstrip("/"), None
    found = running_url(path)
    if found:
        return found, f"gateway {found}: the running `make up` ({path})"
    return FALLBACK_URL, f"gateway {FALLBACK_URL}: no running `make up` is recorded in {path}"
