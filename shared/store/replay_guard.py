"""The replay guard: each signed call's nonce is accepted once (shared/signing.py)."""

from __future__ import annotations

from ..redis_connection import RedisConnection
from .errors import store_errors
from .keys import nonce_key
from .scripts import NONCE


class ReplayGuard:
    def __init__(self, connection: RedisConnection):
        self.connection = connection

    def claim(self, nonce: str, ttl_ms: int) -> bool:
        """Record a signed call's nonce for `ttl_ms`; False when it was recorded before."""
        with store_errors(nonce, writing=False):
            return bool(NONCE.run(self.connection, nonce_key=nonce_key(nonce), ttl_ms=ttl_ms))
