"""A connection to the test Redis of the layout a test asks for (one server by default)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.config import load_settings
from shared.redis_connection import RedisConnection, connect
from tests.conftest import cluster_env


def connection_at(port: int, **settings: str) -> RedisConnection:
    """A connection to a port on this host (whether anything listens there or not)."""
    return connect(load_settings({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port),
                                  "REDIS_PASSWORD_FILE": "", **settings}))


@pytest.fixture
def connection(redis_layout, redis_client, request) -> Iterator[RedisConnection]:
    if redis_layout == "cluster":
        env = cluster_env(request.getfixturevalue("redis_cluster"))
    else:
        env = request.getfixturevalue("redis_server").env()
    opened = connect(load_settings(env))
    yield opened
    opened.close()
