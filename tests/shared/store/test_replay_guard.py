"""The replay guard against a real Redis: a nonce is accepted once, until it expires."""

from __future__ import annotations

import time

from shared.store.replay_guard import ReplayGuard
from tests.conftest import ON_BOTH_LAYOUTS


@ON_BOTH_LAYOUTS
def test_a_nonce_is_accepted_once_until_it_expires(connection):
    guard = ReplayGuard(connection)
    assert guard.claim("n-1", 300) is True
    assert guard.claim("n-1", 300) is False
    assert guard.claim("n-2", 300) is True  # another nonce is another call
    time.sleep(0.4)
    assert guard.claim("n-1", 300) is True
