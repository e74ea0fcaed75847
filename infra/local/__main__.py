"""`make up`: Redis Stack, the model and the three functions on one machine, no Docker.

    python -m infra.local [--port 8080] [--data-dir data/redis] [--workers N] [--threads T]
                          [--cluster MASTERS [--replicas 1]]

Starts a real redis-server with RedisTimeSeries (append-only, data kept in --data-dir;
started again if it ever exits) unless REDIS_HOST names another one, or with --cluster a
Redis Cluster of that many masters, each with --replicas replicas (nodes on --redis-port and
the ports after it, data in --data-dir/cluster-<masters>x<replicas>), renames keys left in
an older layout (shared/migrate.py), loads the model, and
serves the gateway's routes on http://127.0.0.1:8080 until Ctrl-C, which stops everything
cleanly. With MQTT_BROKER set (e.g. tcp://127.0.0.1:1883) it also subscribes to the broker and hands each message to the
functions whose `topic` annotation names its topic, as OpenFaaS's mqtt-connector does
(infra/mqtt_bridge.py; MQTT_TOPIC, MQTT_QOS, MQTT_CLIENT_ID).
POST /async-function/<name> answers 202 and runs the call later (infra/local/async_calls.py).

The gateway runs in --workers processes (GATEWAY_WORKERS, default two per core: a worker
waits on Redis half the time) sharing one listening socket, each with --threads request
threads (GATEWAY_THREADS, default 4 as the template's waitress: more threads in one process
mostly contend for its GIL). infra/bench/RESULTS.md has the measurements.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from redis import RedisError

from shared.config import REPO_ROOT, ConfigError, Settings, load_settings
from shared.errors import ApiError
from shared.migrate import migrate
from shared.redis_connection import connect
from shared.services import SERVICES

from .functions import STACK_FILE, load_functions
from .gateway import Gateway
from .workers import cpu_count, listen, serve
from ..mqtt_bridge import BridgeConfigError, bridge_from_env, default_client_id, topics_of
from .redis_cluster import LocalCluster
from .redis_server import RedisServer

log = logging.getLogger("infra.local")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "data" / "redis")
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("LOCAL_REDIS_PORT", 6379)))
    parser.add_argument("--cluster", type=int, default=0, metavar="MASTERS",
                        help="a local Redis Cluster of this many masters instead of one server")
    parser.add_argument("--replicas", type=int, default=1, help="replicas per master (--cluster)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GATEWAY_THREADS") or 4),
                        help="request threads per worker process (default 4)")
    parser.add_argument("--workers", type=int,
                        default=int(os.environ.get("GATEWAY_WORKERS") or 0) or 2 * cpu_count(),
                        help="gateway worker processes (default: two per core)")
    parser.add_argument("--async-queue", type=int,
                        default=int(os.environ.get("ASYNC_QUEUE_SIZE") or 10_000),
                        help="async calls queued per worker process before 429 (default 10000)")
    parser.add_argument("--stack-file", type=Path,
                        default=Path(os.environ.get("STACK_FILE") or STACK_FILE),
                        help="the faas-cli stack file whose functions are served (default stack.yml)")
    return parser.parse_args(argv)


def _stop_on_sigterm() -> None:
    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)


def start_redis(args: argparse.Namespace) -> RedisServer | LocalCluster:
    """This machine's Redis, started again whenever it exits; REDIS_HOST names it."""
    if args.cluster:
        folder = args.data_dir / f"cluster-{args.cluster}x{args.replicas}"
        server = LocalCluster(folder, args.cluster, args.replicas, base_port=args.redis_port)
        server.start()
        os.environ.update(REDIS_CLUSTER="1", REDIS_HOST=server.seeds())
        if not args.replicas:  # nothing to wait for: writes would all time out
            os.environ.setdefault("REDIS_WAIT_REPLICAS", "0")
        log.info("Redis Cluster: %d masters, %d replicas each, on 127.0.0.1:%d-%d, data in %s",
                 args.cluster, args.replicas, args.redis_port, server.nodes[-1].port, folder)
    else:
        server = RedisServer(args.data_dir, port=args.redis_port).start()
        os.environ.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port))
        log.info("redis-server (RedisTimeSeries, AOF fsync always) on 127.0.0.1:%d, data in %s",
                 server.port, args.data_dir)
    server.keep_running()
    return server


def rename_old_keys(settings: Settings) -> None:
    """Keys of the layout before hash tags get their new names before any request comes."""
    try:
        done = migrate(connect(settings))
    except RedisError as exc:
        log.warning("could not check the key layout (%s): run `python -m shared.migrate` "
                    "once Redis answers", exc)
        return
    if done["renamed"] or done["merged"]:
        log.info("key layout: renamed %d keys, merged %d (shared/migrate.py)",
                 done["renamed"], done["merged"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _stop_on_sigterm()
    server = bridge = None
    try:
        if not os.environ.get("REDIS_HOST"):
            server = start_redis(args)
        settings = load_settings()
        rename_old_keys(settings)
        SERVICES.detector  # load the model now: a broken one stops the start, not a request
        sock = listen(args.host, args.port)
        args.port = sock.getsockname()[1]  # the one the system chose for --port 0
        gateway = Gateway(load_functions(args.stack_file), ready=SERVICES.store.ping,
                          max_body_bytes=settings.max_body_bytes, max_async_queued=args.async_queue)
        log.info("functions %s on http://%s:%d/function/<name>  (engine: %s)",
                 ", ".join(gateway.functions), args.host, args.port, SERVICES.detector.predictor.name)
        own_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        bridge = bridge_from_env(os.environ, f"http://{own_host}:{args.port}",
                                 topics_of(gateway.functions.values()), settings.api_key,
                                 default_client_id(args.port))
        serve(gateway, sock, workers=args.workers, on_ready=bridge.start if bridge else None,
              on_stop=gateway.async_calls.stop,
              # Bodies a little over MAX_BODY_BYTES reach the function, which refuses them in
              # the caller's format as it does behind OpenFaaS; waitress refuses far larger
              # ones (plain text) before they fill memory.
              threads=args.threads, max_request_body_size=16 * settings.max_body_bytes,
              ident="anomalias")
    except (ConfigError, ApiError, BridgeConfigError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    except OSError as exc:  # e.g. the port is taken
        log.error("cannot start: %s", exc)
        return 2
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        if bridge:
            bridge.stop()
        if server:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
