"""The stack under test: a redis-server (or a Redis Cluster) and `python -m infra.local`, on
free ports.

Also reads what the benchmark reports about each process: CPU time and memory (/proc).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from infra.local.redis_cluster import LocalCluster
from infra.local.redis_server import RedisServer, free_port
from shared.config import REPO_ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NOT_STARTED = "the stack is not started: use it in a `with` block"


@dataclass
class Stack:
    data_dir: Path
    fsync: str = "always"
    workers: int | None = None
    threads: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cluster_masters: int = 0  # a Redis Cluster of this many masters, a replica each
    label: str = ""  # names this stack's files beside others' in data_dir
    redis: RedisServer | None = None
    cluster: LocalCluster | None = None
    gateway: subprocess.Popen | None = None
    base: str = ""

    def __enter__(self) -> Stack:
        if self.cluster_masters:
            self.cluster = LocalCluster(self.data_dir / f"cluster-{self.label}",
                                        self.cluster_masters).start()
        else:
            self.redis = RedisServer(self.data_dir / f"redis-{self.fsync}", fsync=self.fsync).start()
        redis_env = self.redis_env()
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "infra.local", "--port", str(port)]
        if self.workers:
            command += ["--workers", str(self.workers)]
        if self.threads:
            command += ["--threads", str(self.threads)]
        env = {**os.environ, **redis_env, "API_TOKEN_FILE": "", "MQTT_BROKER": "",
               "ALERTMANAGER_URL": "",
               "LOCAL_STACK_FILE": str(self.data_dir / f"stack-{self.label or self.fsync}.json"),
               **self.env}
        self.log_path = self.data_dir / f"gateway-{self.label or self.fsync}.log"
        with open(self.log_path, "wb") as log:
            self.gateway = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        wait_for_200(f"{self.base}/healthz", self.gateway, deadline, "the gateway", self.log)
        # Every worker answers /healthz once it serves; give the slower ones a moment.
        wanted = self.workers or 0
        while wanted > 1 and len(self.worker_pids()) < wanted and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        if self.gateway and self.gateway.poll() is None:
            self.gateway.terminate()  # the runner stops its workers and waits for them
            try:
                self.gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()
        if self.redis:
            self.redis.stop()
        if self.cluster:
            self.cluster.stop()

    def redis_env(self) -> dict[str, str]:
        """The settings that name this stack's Redis (or cluster) to its clients."""
        if self.cluster:
            return self.cluster.env()
        if self.redis is None:
            raise RuntimeError(NOT_STARTED)
        return self.redis.env()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def url(self, path: str) -> str:
        return self.base + path

    def gateway_settings(self) -> dict[str, int]:
        """Workers and threads as the runner reports them in its log."""
        found = re.search(r"(\d+) gateway workers \(pids [\d ]+\), (\d+) threads each", self.log())
        if found:
            return {"gateway_workers": int(found[1]), "gateway_threads": int(found[2])}
        return {"gateway_workers": 1, "gateway_threads": self.threads or 0}

    def worker_pids(self) -> list[int]:
        return children(self.gateway.pid) if self.gateway else []

    def processes(self) -> dict[str, int]:
        """Role -> pid of every process of the stack."""
        if self.cluster:
            roles = {f"redis node {i + 1}": pid_of(node.process)
                     for i, node in enumerate(self.cluster.nodes)}
        else:
            roles = {"redis-server": pid_of(self.redis.process if self.redis else None)}
        workers = self.worker_pids()
        if workers:
            roles["gateway supervisor"] = pid_of(self.gateway)
            roles.update({f"gateway worker {i + 1}": pid for i, pid in enumerate(workers)})
        else:
            roles["gateway"] = pid_of(self.gateway)
        return roles


def pid_of(process: subprocess.Popen[Any] | None) -> int:
    if process is None:
        raise RuntimeError(NOT_STARTED)
    return process.pid


def wait_for_200(url: str, process: subprocess.Popen, deadline: float, what: str,
                 log: Callable[[], str] = lambda: "") -> None:
    """Until `url` answers 200; RuntimeError (with the log) if `process` exits or time is up."""
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready:\n{log()}")
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the thread has ended
            found += [int(p) for p in (task / "children").read_text().split()]
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mib(pid: int) -> dict[str, float]:
    """RSS and PSS (forked workers share pages: PSS splits them fairly) in MiB."""
    result = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("Rss", "Pss"):
                result[name.lower()] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return result


def machine_busy_seconds() -> float:
    """CPU time every process of the machine has spent so far (all cores, /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
