"""A real Alertmanager with a webhook receiver, and the forwarder over the test's Redis."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from infra.alert_forwarder import AlertForwarder
from shared.config import load_settings
from shared.redis_connection import connect
from shared.store.reading_store import ReadingStore
from tests.conftest import cluster_env
from tests.support.alertmanager import Alertmanager, find_alertmanager, webhook

ALERTMANAGER = find_alertmanager()
needs_alertmanager = pytest.mark.skipif(
    ALERTMANAGER is None, reason="prometheus-alertmanager is not installed (`apt-get install "
                                 "prometheus-alertmanager`, as .ci/run does): these tests "
                                 "need the real Alertmanager")


@pytest.fixture
def receiver():
    with webhook() as (url, received):
        received.url = url
        yield received


@pytest.fixture
def alertmanager(receiver, tmp_path):
    manager = Alertmanager(ALERTMANAGER, tmp_path, receiver.url).start()
    yield manager
    manager.stop()


@pytest.fixture
def redis_env(redis_layout, redis_client, request) -> dict[str, str]:
    """The functions' Redis settings for the test's (emptied) Redis."""
    if redis_layout == "cluster":
        return cluster_env(request.getfixturevalue("redis_cluster"))
    return {**request.getfixturevalue("redis_server").env(), "REDIS_CLUSTER": "0"}


@pytest.fixture
def store(redis_env):
    """The store detectar writes its verdicts with, over the test's Redis."""
    store = ReadingStore(connect(load_settings(redis_env)))
    yield store
    store.connection.close()


@pytest.fixture
def forwarding(redis_env):
    """forwarding(*urls): a running forwarder to those Alertmanagers, stopped at the end."""
    @contextmanager
    def run(*urls: str, **options):
        forwarder = AlertForwarder(connect(load_settings(redis_env)), list(urls),
                                   pages_url="http://pages.example", **options).start()
        try:
            yield forwarder
        finally:
            forwarder.stop()
    return run
