"""`make up`: Redis Stack, the model and the three functions on one machine, no Docker.

    python -m infra.local [--port 8080] [--data-dir data/redis]

Starts a real redis-server with RedisTimeSeries (append-only, data kept in --data-dir)
unless REDIS_HOST names another one, loads the model, and serves the gateway's routes on
http://127.0.0.1:8080 until Ctrl-C, which stops everything cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import waitress

from shared.config import ConfigError, load_settings
from shared.errors import ApiError
from shared.services import SERVICES

from .functions import load_functions
from .gateway import Gateway
from .redis_server import REPO_ROOT, RedisServer

log = logging.getLogger("infra.local")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "data" / "redis")
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("LOCAL_REDIS_PORT", 6379)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GATEWAY_THREADS", 16)))
    return parser.parse_args(argv)


def _stop_on_sigterm() -> None:
    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _stop_on_sigterm()
    server = None
    if not os.environ.get("REDIS_HOST"):
        server = RedisServer(args.data_dir, port=args.redis_port).start()
        os.environ.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port))
        log.info("redis-server (RedisTimeSeries, AOF fsync always) on 127.0.0.1:%d, data in %s",
                 server.port, args.data_dir)
    try:
        settings = load_settings()
        SERVICES.detector  # load the model now: a broken one stops the start, not a request
        gateway = Gateway(load_functions(), ready=SERVICES.store.ping,
                          max_body_bytes=settings.max_body_bytes)
        log.info("functions %s on http://%s:%d/function/<name>  (engine: %s)",
                 ", ".join(gateway.functions), args.host, args.port, SERVICES.detector.predictor.name)
        waitress.serve(gateway, host=args.host, port=args.port, threads=args.threads,
                       max_request_body_size=settings.max_body_bytes + 1, ident="anomalias")
    except (ConfigError, ApiError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        if server:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
