"""Fixtures shared by the suite: a real Redis Stack server and the real local gateway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture
def redis_client(redis_server):
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def stack(redis_server, tmp_path_factory):
    """The local gateway (`python -m infra.local`) over the session's Redis, via real HTTP."""
    with LocalStack(redis_server.port, log_dir=tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture
def api(stack, redis_client):
    """The gateway with an empty Redis."""
    return stack


def reference_model_dir() -> Path:
    found = find_reference_model()
    if found is None:
        pytest.skip("the replaced system's model is not found (set REFERENCE_MODEL_DIR)")
    return found
