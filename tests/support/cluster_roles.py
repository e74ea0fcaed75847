"""Which node of a LocalCluster plays which role now: what the failover tests watch."""

from __future__ import annotations

from redis.cluster import key_slot

from infra.local.redis_cluster import LocalCluster
from infra.local.redis_server import RedisServer


def _node_on(cluster: LocalCluster, port: int) -> RedisServer:
    return next(node for node in cluster.nodes if node.port == port)


def master_of(cluster: LocalCluster, key: str) -> RedisServer:
    """The running node that is master of `key`'s slot now (a running node's CLUSTER SLOTS)."""
    slot = key_slot(key.encode())
    with cluster.running()[0].client() as client:
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return _node_on(cluster, int(master[1]))
    raise LookupError(f"no master holds slot {slot}")


def replica_of(cluster: LocalCluster, master: RedisServer) -> RedisServer:
    """The node replicating `master` (its first replica)."""
    with master.client(decode_responses=True) as client:
        return _node_on(cluster, int(client.info("replication")["slave0"]["port"]))
