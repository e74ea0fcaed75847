"""The Lua scripts' contracts: each file binds the names of scripts.py to the same KEYS and
ARGV positions, and a call must name every one of them."""

from __future__ import annotations

import re

import pytest

from shared.readings import Reading
from shared.store.reading_store import ReadingStore
from shared.store.scripts import ALL, LUA_DIR, NONCE
from tests.conftest import ON_BOTH_LAYOUTS

BINDING = re.compile(r"^local (\w+) = (KEYS|ARGV)\[(\d+)\]", re.MULTILINE)


@pytest.mark.parametrize("script", ALL, ids=lambda script: script.name)
def test_each_file_binds_the_named_positions_in_order(script):
    bound = {"KEYS": [], "ARGV": []}
    for name, table, position in BINDING.findall(script.source):
        assert int(position) == len(bound[table]) + 1, (script.name, name)
        bound[table].append(name)
    assert tuple(bound["KEYS"]) == script.keys
    assert tuple(bound["ARGV"]) == script.args


def test_every_lua_file_has_a_contract():
    assert sorted(path.stem for path in LUA_DIR.glob("*.lua")) == sorted(s.name for s in ALL)


@ON_BOTH_LAYOUTS
def test_a_call_names_every_position_and_only_those(connection):
    with pytest.raises(TypeError, match="ARGV"):
        NONCE.run(connection, nonce_key="/signatures/x")
    with pytest.raises(TypeError, match="ARGV"):
        NONCE.run(connection, nonce_key="/signatures/x", ttl_ms=1000, extra=1)
    assert NONCE.run(connection, nonce_key="/signatures/x", ttl_ms=1000) == 1


@ON_BOTH_LAYOUTS
def test_a_script_redis_lost_is_loaded_again(connection, redis_client):
    """A read runs alone, a write on the cluster with WAIT after it: both reload."""
    store = ReadingStore(connection)
    assert NONCE.run(connection, nonce_key="/signatures/a", ttl_ms=1000) == 1
    store.add("s1", Reading(1.0, 1_000))
    redis_client.script_flush()  # e.g. a restart or a failover to a node that never ran it
    assert NONCE.run(connection, nonce_key="/signatures/b", ttl_ms=1000) == 1
    store.add("s1", Reading(2.0, 2_000))
    assert redis_client.ts().range("s1", "-", "+") == [(1_000, 1.0), (2_000, 2.0)]
