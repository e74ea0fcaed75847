"""The connection to Redis: one server, or a Redis Cluster (REDIS_CLUSTER=1).

Every store operation is one Lua script whose keys share one hash slot (shared/store/keys.py
names them so). It runs on the master that holds the slot. With REDIS_WAIT_REPLICAS=n, the script is
followed on the same connection by `WAIT n` (WAIT counts the writes made on its own
connection; inside a script it would not block), and the write counts as done only once n
replicas have it. Redis replicates asynchronously: without the wait, a replica promoted
after its master died can lack writes that were already acknowledged.

No automatic retries: a write whose reply was lost must not be sent twice. Redirections are
followed (MOVED, ASK: Redis refused the command without running it, so sending it again
cannot store anything twice).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.exceptions import AskError, ClusterDownError, MovedError, NoScriptError, RedisClusterException
from redis.retry import Retry
from redis.typing import EncodableT

from .config import Settings

REDIRECTIONS = 5  # a slot moved during resharding or a failover: a few hops at most

Keys = Sequence[str]
Args = Sequence[EncodableT]
Reply = Any  # whatever the script returns, as redis-py decodes Redis's reply


class NotReplicated(redis.TimeoutError):
    """The write is on the master, but fewer replicas than asked confirmed it in time."""


class RedisConnection:
    """Runs scripts on the master of their keys' slot; one server is a cluster of one."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.wait_replicas = settings.redis_wait_replicas
        # WAIT answers before the socket timeout, so a slow replica is told apart from a dead link
        self.wait_ms = max(1, int(settings.redis_timeout_s * 500))
        self._scripts: dict[str, Script] = {}

    def client_options(self) -> dict[str, Any]:
        s = self.settings
        # The health check reconnects pooled connections that went stale while Redis was down.
        return {"password": s.redis_password, "socket_timeout": s.redis_timeout_s,
                "socket_connect_timeout": s.redis_timeout_s, "health_check_interval": 1,
                "socket_keepalive": True}

    def run(self, source: str, keys: Keys, args: Args, writes: bool = True) -> Reply:
        """Run the script `source` on the master of its first key (EVALSHA, loaded again if
        Redis lost it: NOSCRIPT means it did not run); a script that `writes` waits for the
        replicas."""
        wait = self.wait_replicas if writes else 0
        try:
            return self._on_master(keys[0], source, keys, args, wait)
        except NoScriptError:  # Redis restarted without it: load it, then run it again
            for client in self.masters():  # wherever a redirection may lead
                client.script_load(source)
            return self._on_master(keys[0], source, keys, args, wait)

    def _script(self, client: redis.Redis, source: str) -> Script:
        """redis-py's Script for `source` (its SHA1), registered once on the first client
        that runs it; every call names the client it runs on."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts.setdefault(source, client.register_script(source))
        return script

    def _execute(self, client: redis.Redis, source: str, keys: Keys, args: Args, wait: int,
                 asking: bool = False) -> Reply:
        script = self._script(client, source)
        # EVALSHA as a plain command: redis-py's Script.__call__ costs more than the command
        # (and its arguments are typed as str; ours may be numbers, as EVALSHA takes)
        if not wait and not asking:
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        with client.pipeline(transaction=False) as pipe:  # one connection, in order
            if asking:
                pipe.execute_command("ASKING")
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            if wait:
                pipe.execute_command("WAIT", wait, self.wait_ms)
            replies = pipe.execute()
        if wait and replies[-1] < wait:
            raise NotReplicated(f"{replies[-1]} of {wait} replicas confirmed the write within "
                                f"{self.wait_ms} ms")
        return replies[1 if asking else 0]

    def _on_master(self, key: str, source: str, keys: Keys, args: Args, wait: int) -> Reply:
        raise NotImplementedError

    def master_client(self, key: str) -> redis.Redis:
        """The client of the master holding `key`."""
        raise NotImplementedError

    def masters(self) -> list[redis.Redis]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class OneServer(RedisConnection):
    def __init__(self, settings: Settings):
        super().__init__(settings)
        (host, port), = settings.redis_nodes
        self.client = redis.Redis(host=host, port=port, retry=Retry(NoBackoff(), 0),
                                  **self.client_options())

    def _on_master(self, key: str, source: str, keys: Keys, args: Args, wait: int) -> Reply:
        return self._execute(self.client, source, keys, args, wait)

    def master_client(self, key: str) -> redis.Redis:
        return self.client

    def masters(self) -> list[redis.Redis]:
        return [self.client]

    def close(self) -> None:
        self.client.close()


class Cluster(RedisConnection):
    """redis-py's RedisCluster for the slot map; each command goes to the slot's master
    through that node's own client, so that WAIT follows it on the same connection.

    The seed nodes stay the configured ones (dynamic_startup_nodes=False): redis-py
    disconnects every pooled connection of a seed when it reads the slot map from it, which
    would cut the requests other threads have in flight on a working node."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self._cluster: RedisCluster | None = None
        self._building = threading.Lock()
        self._refreshing = threading.Lock()

    @property
    def cluster(self) -> RedisCluster:
        """Built on first use: a cluster that is down at start is a 503, not a crash."""
        if self._cluster is not None:
            return self._cluster
        with self._building:
            if self._cluster is None:
                try:
                    self._cluster = RedisCluster(
                        startup_nodes=[ClusterNode(h, p) for h, p in self.settings.redis_nodes],
                        dynamic_startup_nodes=False, retry=Retry(NoBackoff(), 0),
                        **self.client_options())
                except RedisClusterException as exc:
                    raise redis.ConnectionError(f"Redis Cluster unreachable: {exc}") from exc
            return self._cluster

    def _refresh(self) -> None:
        """Read the slot map again (a failover moved a slot); one thread at a time."""
        if self._refreshing.acquire(blocking=False):
            try:
                self.cluster.nodes_manager.initialize()
            except (redis.RedisError, RedisClusterException):
                pass  # still down: the next request tries again
            finally:
                self._refreshing.release()

    def master_client(self, key: str) -> redis.Redis:
        try:
            node = self.cluster.get_node_from_key(key)
        except RedisClusterException as exc:  # the slot has no master known
            self._refresh()
            raise redis.ConnectionError(f"no master known for key {key!r}") from exc
        return self.cluster.get_redis_connection(node)

    def _on_master(self, key: str, source: str, keys: Keys, args: Args, wait: int) -> Reply:
        asked = None
        for _ in range(REDIRECTIONS):
            try:
                if asked:
                    client = self.cluster.get_redis_connection(
                        self.cluster.nodes_manager.get_node(asked.host, asked.port)
                        or ClusterNode(asked.host, asked.port))
                else:
                    client = self.master_client(key)
                return self._execute(client, source, keys, args, wait,
                                     asking=asked is not None)
            except MovedError as exc:  # the slot has a new master: send it there
                asked = None
                self.cluster.nodes_manager.update_moved_exception(exc)
            except AskError as exc:  # the slot is migrating and the key already left
                asked = exc
            except (redis.ConnectionError, redis.TimeoutError, ClusterDownError):
                self._refresh()  # a failover may be under way: the next request finds the new master
                raise
        raise redis.ConnectionError(f"key {key!r} kept moving between nodes")

    def masters(self) -> list[redis.Redis]:
        return [self.cluster.get_redis_connection(node) for node in self.cluster.get_primaries()]

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()


def connect(settings: Settings) -> RedisConnection:
    return Cluster(settings) if settings.redis_cluster else OneServer(settings)
