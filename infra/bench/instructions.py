"""Instructions per in-process call of a function, counted by valgrind's callgrind: a cost
that the load of a shared host does not move (a rate does).

    python -m infra.bench.instructions [--function detectar] [--calls 200] [--warm 30]
    python -m infra.bench.instructions --profile [--calls 2000]   # cProfile, no valgrind

Starts its own redis-server on a free port, then runs itself twice under
`valgrind --tool=callgrind`: `--warm` calls and no more, then the same and `--calls` more;
the difference over `--calls` is one call's instructions, Python's start-up and the model's
loading left out. Each call goes through the local gateway's WSGI app (infra/local/gateway.py:
the template's event and context, the handler, the answer as the template shapes it), as
`make bench` sends it: a JSON answer, dato 21.5, a new timestamp 1 ms after the last, one
sensor; the HTTP server itself (waitress) and Redis are not counted. Redis is emptied
before each run, so both runs start from the same state.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local.redis_server import RedisServer
from shared.config import REPO_ROOT

SENSOR = "bench-instructions"
PATHS = {"detectar": "/function/detectar?sensor={sensor}&dato=21.5&format=json&timestamp={t}",
         "nuevo": "/function/nuevo?sensor={sensor}&dato=21.5&format=json&timestamp={t}",
         "listar": "/function/listar?sensor={sensor}&count=20&format=json"}
COLLECTED = re.compile(r"Collected : (\d+)")


def _environ(path: str) -> dict[str, Any]:
    """What waitress hands the app for `GET path` (the headers wrk sends)."""
    route, _, query = path.partition("?")
    return {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": route,
            "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_HOST": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8080", "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
            "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False}


def calls(function: str) -> Callable[[int], None]:
    """A function that makes n calls of `function` through the gateway app, in process."""
    from infra.local.functions import load_functions
    from infra.local.gateway import Gateway
    from shared.services import SERVICES

    settings = SERVICES.settings
    if function == "detectar":
        SERVICES.detector  # noqa: B018 - loaded now, as `python -m infra.local` does
    gateway = Gateway(load_functions(), ready=SERVICES.problem,
                      max_body_bytes=settings.max_body_bytes)
    clock = [int(time.time() * 1000) - 3_600_000]
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        statuses.append(status)

    def make(n: int) -> None:
        for _ in range(n):
            clock[0] += 1
            path = PATHS[function].format(sensor=SENSOR, t=clock[0])
            b"".join(gateway(_environ(path), start_response))
            if not statuses.pop().startswith("200"):
                raise SystemExit(f"{path} was not answered 200")
    return make


def _inner(args: argparse.Namespace) -> int:
    make = calls(args.function)
    make(args.warm)
    if args.profile:
        profile = cProfile.Profile(time.process_time)  # CPU: not the waits for Redis
        profile.runcall(make, args.calls)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    else:
        make(args.calls)
    return 0


def _counted(args: argparse.Namespace, env: dict[str, str], calls_: int, out_dir: Path) -> int:
    """Instructions of one run under callgrind (all of it: start-up, warm-up, calls)."""
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.%p",
               sys.executable, "-m", "infra.bench.instructions", "--inner", "--function",
               args.function, "--warm", str(args.warm), "--calls", str(calls_)]
    # The same start-up in both runs: no bytecode written by the first for the second, one
    # hash seed (the order of sets and dicts of strings).
    env = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    found = COLLECTED.search(done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"the callgrind run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bench.instructions",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--function", choices=sorted(PATHS), default="detectar")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warm", type=int, default=30, help="calls before the counted ones")
    parser.add_argument("--profile", action="store_true", help="cProfile the calls instead")
    parser.add_argument("--top", type=int, default=40, help="functions --profile lists")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.inner:
        return _inner(args)
    with tempfile.TemporaryDirectory(prefix="instructions-") as folder:
        redis = RedisServer(Path(folder) / "redis", fsync="no").start()
        try:
            env = {**os.environ, **redis.env(), "API_TOKEN_FILE": "", "MQTT_BROKER": ""}
            if args.profile:
                return subprocess.run([sys.executable, "-m", "infra.bench.instructions",
                                       "--inner", "--profile", "--function", args.function,
                                       "--warm", str(args.warm), "--calls", str(args.calls),
                                       "--top", str(args.top)],
                                      cwd=REPO_ROOT, env=env).returncode
            totals = []
            for calls_ in (0, args.calls):
                redis.client().flushall()
                totals.append(_counted(args, env, calls_, Path(folder)))
        finally:
            redis.stop()
    per_call = (totals[1] - totals[0]) / args.calls
    print(f"{args.function}: {per_call:,.0f} instructions per call "
          f"({args.calls} calls after {args.warm}; runs of {totals[0]:,} and {totals[1]:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
