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



def seasoned(redis_client, sensor: str = "mediciones") -> None:
    """Give a sensor the detector state of one that has judged enough readings to alarm under
    the shipped rule (`record_level`, test "either", shared/rules.py): 30 days seen, every
    day's readings within 60..80 degrees, level 70, both sides armed. A reading is an anomaly
    when it, or the model's prediction of it, lies outside 60..80: after ten readings of 70, a
    70 is normal and a 95 is an anomaly."""
    days = 30
    redis_client.hset(f"{sensor}/detector", mapping={
        "count": 288.0 * days, "level_mean": 70.0, "block_n": 0.0, "block_lo": 0.0,
        "block_hi": 0.0, "days": float(days),
        **{f"lo_{k}": 60.0 for k in range(days)}, **{f"hi_{k}": 80.0 for k in range(days)},
        "armed_low": 1.0, "armed_high": 1.0, "holdoff": 0.0})
