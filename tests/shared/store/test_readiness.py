"""The readiness probe against a real Redis: working, unreachable, wrong password, no module."""

from __future__ import annotations

import pytest

from shared.store.readiness import problem
from shared.store.scripts import ALL
from tests.conftest import ON_BOTH_LAYOUTS
from tests.shared.store.conftest import connection_at


@ON_BOTH_LAYOUTS
def test_a_working_redis_has_no_problem_and_holds_every_script_after(connection, redis_client):
    redis_client.script_flush()
    assert problem(connection) is None
    for client in connection.masters():
        assert client.script_exists(*(client.register_script(s.source).sha for s in ALL)) == [
            True] * len(ALL)


@pytest.mark.parametrize("layout", [{}, {"REDIS_CLUSTER": "1"}], ids=["one server", "cluster"])
def test_an_unreachable_redis_is_named(layout):
    assert problem(connection_at(1, REDIS_TIMEOUT="0.5", **layout)) == "Redis is unavailable"


def test_a_wrong_password_is_named(redis_server):
    path = redis_server.data_dir / "not-the-password"
    path.write_text("not-the-password")
    assert problem(connection_at(redis_server.port, REDIS_PASSWORD_FILE=str(path))) == (
        "Redis refused our credentials")
