"""Two reference apps served exactly as the gateway is, so that `make bench` measures the
functions against what this machine and this server can do at all.

    python -m infra.bench.baseline --app hello|redis --port N [--workers W] [--threads T]

`hello` answers a constant, doing nothing: the server's own cost per request. `redis` does one
Redis round trip (GET of a key) through the functions' own client (shared/redis_connection.py,
the settings of the environment): the least a function that reads or writes can cost. Both run
under infra/local/workers.py's `serve`, with `python -m infra.local`'s defaults for workers and
threads.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Iterable

from infra.local.workers import cpu_count, listen, serve
from shared.config import load_settings
from shared.redis_connection import connect

KEY = "bench-baseline"
APPS = ("hello", "redis")


def hello(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
    return [b"hello world\n"]


def redis_round_trip() -> Callable:
    client = connect(load_settings()).master_client(KEY)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = b"%d\n" % len(client.get(KEY) or b"")
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bench.baseline",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--app", choices=APPS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=0, help="default: two per core, as make up")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    app = hello if args.app == "hello" else redis_round_trip()
    serve(app, listen("127.0.0.1", args.port), workers=args.workers or 2 * cpu_count(),
          threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
