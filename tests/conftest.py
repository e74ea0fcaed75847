"""Fixtures shared by the suite: a real Redis Stack server, a real Redis Cluster, and the real
local gateway over either.

`redis_client` and `api` are one server's unless a test is parametrized with
`ON_BOTH_LAYOUTS`: it then runs once against one server and once against the cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from infra.local.redis_cluster import LocalCluster
from infra.local.redis_server import RedisServer
from models.locations import reference_model_dir as find_reference_model
from shared.config import REPO_ROOT
from tests.support.stack import LocalStack

NAB_DATA_DIR = Path(os.environ.get("NAB_DATA_DIR") or REPO_ROOT.parent / "shared" / "data" / "nab")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """Three masters with a replica each, on free loopback ports."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


def cluster_env(cluster: LocalCluster, **more: str) -> dict[str, str]:
    """The functions' settings for a cluster (REDIS_HOST lists every node)."""
    return {**cluster.env(), **more}


ON_BOTH_LAYOUTS = pytest.mark.parametrize("redis_layout", ["one server", "cluster"])


@pytest.fixture
def redis_layout() -> str:
    return "one server"


@pytest.fixture
def redis_client(redis_layout, request):
    """An empty Redis: one server's client, or a RedisCluster client over the cluster."""
    if redis_layout == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port,
                              password=cluster.password)
    else:
        client = request.getfixturevalue("redis_server").client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def stack(redis_server, tmp_path_factory):
    """The local gateway (`python -m infra.local`) over the session's Redis, via real HTTP."""
    with LocalStack(redis_server, log_dir=tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture(scope="session")
def cluster_stack(redis_cluster, tmp_path_factory):
    """The local gateway over the session's Redis Cluster."""
    with LocalStack(None, log_dir=tmp_path_factory.mktemp("gateway-cluster"),
                    env=cluster_env(redis_cluster)) as running:
        yield running


@pytest.fixture
def api(redis_layout, redis_client, request):
    """The gateway with an empty Redis (one server, or the cluster)."""
    return request.getfixturevalue("cluster_stack" if redis_layout == "cluster" else "stack")


def reference_model_dir() -> Path:
    found = find_reference_model()
    if found is None:
        pytest.skip("the replaced system's model is not found (set REFERENCE_MODEL_DIR)")
    return found
