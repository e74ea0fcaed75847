"""`make up`: Redis Stack, the model and the three functions on one machine, no Docker.

    python -m infra.local [--port 8080] [--data-dir data/redis] [--workers N] [--threads T]
                          [--cluster MASTERS [--replicas 1]]

Starts a real redis-server with RedisTimeSeries (append-only, data kept in --data-dir;
started again if it ever exits) unless REDIS_HOST names another one, or with --cluster a
Redis Cluster of that many masters, each with --replicas replicas (nodes on --redis-port and
the ports after it, data in --data-dir/cluster-<masters>x<replicas>), renames keys left in
an older layout (shared/migrate.py), loads the model, and
serves the gateway's routes on http://127.0.0.1:8080 until Ctrl-C, which stops everything
cleanly. The Redis is the stack's own (infra/local/redis_server.py): a data folder another
stack holds, or a Redis port something else answers on, stops the start with a message.
With MQTT_BROKER set (e.g. tcp://127.0.0.1:1883) it also subscribes to the broker and hands
each message to the functions whose `topic` annotation names its topic, as OpenFaaS's
mqtt-connector does (infra/mqtt_bridge.py; MQTT_TOPIC, MQTT_QOS, MQTT_CLIENT_ID).
With ALERTMANAGER_URL set (one or more Alertmanagers, comma-separated) it also runs the alert
forwarder (infra/alert_forwarder.py) as a supervised process: detectar's alerts go to them,
with links to this gateway's pages (PAGES_URL to name another base).
POST /async-function/<name> answers 202 and runs the call later (infra/local/async_calls.py);
its X-Callback-Url must be http(s), and name one of CALLBACK_HOSTS (comma-separated host
names) when that is set.
Once serving it records its URL in data/local-stack.json, where `make simulate` and
`make evaluate ARGS=--url` find it (infra/local/stack_state.py).

The gateway runs in --workers processes (GATEWAY_WORKERS, default two per core: a worker
waits on Redis half the time) sharing one listening socket, each with --threads request
threads (GATEWAY_THREADS, default 4 as the template's waitress: more threads in one process
mostly contend for its GIL). infra/bench/RESULTS.md has the measurements.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from redis import RedisError

from shared.config import REPO_ROOT, ConfigError, Settings, load_settings
from shared.errors import ApiError
from shared.migrate import migrate
from shared.redis_connection import connect
from shared.services import SERVICES

from ..alert_forwarder import ForwarderConfigError, alertmanager_urls
from ..mqtt_bridge import BridgeConfigError, bridge_from_env, default_client_id, topics_of
from . import processes, stack_state
from .async_calls import callback_hosts
from .folder_lock import FolderInUse
from .functions import STACK_FILE, load_functions
from .gateway import Gateway
from .redis_cluster import LocalCluster
from .redis_server import RedisServer, RedisStartError
from .workers import cpu_count, listen, serve

log = logging.getLogger("infra.local")
MAX_WORKERS, MAX_THREADS = 64, 256


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, as a bad setting gets, not the usage block
        self.exit(2, f"{self.prog}: {message} (--help lists the options)\n")


def _whole(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not valid: expected a whole number "
                                             f"from {low} to {high}")
        return value
    return convert


def _stack_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file")
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="python -m infra.local", description=__doc__.split("\n")[0])

    def env(name: str, convert: Callable[[str], object], fallback: object) -> object:
        """An option's default from the environment, checked as the option itself is."""
        raw = os.environ.get(name, "").strip()
        if not raw:
            return fallback
        try:
            return convert(raw)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{name}={exc}")

    port, threads, workers = _whole(0, 65535), _whole(1, MAX_THREADS), _whole(1, MAX_WORKERS)
    queue, masters, replicas = _whole(1, 1_000_000), _whole(0, 16), _whole(0, 5)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port, default=env("PORT", port, 8080),
                        help="the gateway's port, 0 for any free one (default 8080, or PORT)")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "data" / "redis",
                        help="Redis's data folder, locked while the stack runs (default data/redis)")
    parser.add_argument("--redis-port", type=port, default=env("LOCAL_REDIS_PORT", port, 6379),
                        help="the port of the stack's own Redis, 0 for any free one "
                             "(default 6379, or LOCAL_REDIS_PORT)")
    parser.add_argument("--cluster", type=masters, default=0, metavar="MASTERS",
                        help="a local Redis Cluster of this many masters instead of one server")
    parser.add_argument("--replicas", type=replicas, default=1,
                        help="replicas per master (--cluster), 0 to 5")
    parser.add_argument("--threads", type=threads, default=env("GATEWAY_THREADS", threads, 4),
                        help=f"request threads per worker process, 1 to {MAX_THREADS} (default 4)")
    parser.add_argument("--workers", type=workers,
                        default=env("GATEWAY_WORKERS", workers, min(2 * cpu_count(), MAX_WORKERS)),
                        help=f"gateway worker processes, 1 to {MAX_WORKERS} (default: two per core)")
    parser.add_argument("--async-queue", type=queue, default=env("ASYNC_QUEUE_SIZE", queue, 10_000),
                        help="async calls queued per worker process before 429 (default 10000)")
    parser.add_argument("--stack-file", type=_stack_file,
                        default=env("STACK_FILE", _stack_file, STACK_FILE),
                        help="the faas-cli stack file whose functions are served (default stack.yml)")
    return parser.parse_args(argv)


def _stop_on_signals() -> None:
    """SIGTERM (docker stop, kill) and SIGHUP (the terminal closed) stop as Ctrl-C does."""
    def stop(signum: int, frame: object) -> NoReturn:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


def start_redis(args: argparse.Namespace) -> RedisServer | LocalCluster:
    """This machine's Redis, started again whenever it exits; REDIS_HOST names it."""
    server = _start_cluster(args) if args.cluster else _start_server(args)
    os.environ.update(server.env())
    server.keep_running()
    return server


def _start_cluster(args: argparse.Namespace) -> LocalCluster:
    folder = args.data_dir / f"cluster-{args.cluster}x{args.replicas}"
    cluster = LocalCluster(folder, args.cluster, args.replicas, base_port=args.redis_port).start()
    if not args.replicas:  # nothing to wait for: writes would all time out
        os.environ.setdefault("REDIS_WAIT_REPLICAS", "0")
    log.info("Redis Cluster: %d masters, %d replicas each, on 127.0.0.1:%d-%d, data in %s",
             args.cluster, args.replicas, args.redis_port, cluster.nodes[-1].port, folder)
    return cluster


def _start_server(args: argparse.Namespace) -> RedisServer:
    server = RedisServer(args.data_dir, port=args.redis_port).start()
    log.info("redis-server (RedisTimeSeries, AOF fsync always) on 127.0.0.1:%d, data "
             "in %s, password in %s", server.port, args.data_dir, server.password_file)
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


def alert_forwarder(gateway_url: str) -> processes.Supervised | None:
    """The forwarder ALERTMANAGER_URL asks for (checked now), or None when it is unset."""
    raw = os.environ.get("ALERTMANAGER_URL", "").strip()
    if not raw:
        log.info("alerts: ALERTMANAGER_URL is not set: detectar's alerts stay in Redis "
                 "(the outbox) and listar, nobody is notified")
        return None
    urls = alertmanager_urls(raw)
    log.info("alerts: detectar's alerts go to Alertmanager %s (infra/alert_forwarder.py)",
             ", ".join(urls))
    env = {**os.environ, "PAGES_URL": os.environ.get("PAGES_URL", "").strip() or gateway_url}
    return processes.Supervised("alert forwarder", [sys.executable, "-m", "infra.alert_forwarder"],
                                env)


def claim_port(host: str, port: int) -> socket.socket | None:
    """The listening socket, or None (and why, logged) when another server holds the port."""
    try:
        return listen(host, port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.error("cannot start: port %d is already in use (another `make up`?): choose "
                  "another with --port", port)
        return None


def build_gateway(args: argparse.Namespace, settings: Settings) -> Gateway:
    return Gateway(load_functions(args.stack_file), ready=SERVICES.problem,
                   max_body_bytes=settings.max_body_bytes, max_async_queued=args.async_queue,
                   callback_hosts=callback_hosts(os.environ.get("CALLBACK_HOSTS", "")))


def own_url(host: str, port: int) -> str:
    """The gateway's URL as this machine's own clients reach it (not 0.0.0.0)."""
    own_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{own_host}:{port}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _stop_on_signals()
    server: RedisServer | LocalCluster | None = None
    bridge = None
    forwarder = None
    try:
        if not os.environ.get("REDIS_HOST"):
            server = start_redis(args)
        settings = load_settings()
        rename_old_keys(settings)
        detector = SERVICES.detector  # the model loads now: a broken one stops the start
        sock = claim_port(args.host, args.port)
        if sock is None:
            return 2
        args.port = sock.getsockname()[1]  # the one the system chose for --port 0
        gateway = build_gateway(args, settings)
        url = own_url(args.host, args.port)
        log.info("functions %s on %s/function/<name>  (engine: %s)",
                 ", ".join(gateway.functions), url, detector.predictor.name)
        bridge = bridge_from_env(os.environ, url, topics_of(gateway.functions.values()),
                                 settings.api_key, default_client_id(args.port))
        forwarder = alert_forwarder(url)

        def ready() -> None:
            # the password file is make up's own Redis's, or the one REDIS_HOST's came with
            stack_state.announce(url, stack_state.redis_record(
                settings, os.environ.get("REDIS_PASSWORD_FILE")))
            if bridge:
                bridge.start()
            if forwarder:
                forwarder.start()

        serve(gateway, sock, workers=args.workers, on_ready=ready,
              on_stop=gateway.async_calls.stop,
              # Bodies a little over MAX_BODY_BYTES reach the function, which refuses them in
              # the caller's format as it does behind OpenFaaS; waitress refuses far larger
              # ones (plain text) before they fill memory.
              threads=args.threads, max_request_body_size=16 * settings.max_body_bytes,
              ident="anomalias")
    except (ConfigError, ApiError, BridgeConfigError, ForwarderConfigError, RedisStartError,
            FolderInUse) as exc:
        log.error("cannot start: %s", exc)
        return 2
    except OSError as exc:  # e.g. the host does not exist
        log.error("cannot start: %s", exc)
        return 2
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        stack_state.withdraw()
        if bridge:
            bridge.stop()
        if forwarder:
            forwarder.stop()
        if server:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
