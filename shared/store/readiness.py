"""The readiness probe: can the functions work with this Redis now?"""

from __future__ import annotations

import redis

from ..redis_connection import RedisConnection
from .keys import PROBE_KEY
from .scripts import ALL, PROBE


def problem(connection: RedisConnection) -> str | None:
    """What would keep the functions from working with this Redis now, or None: it is
    unreachable, refuses our password, lacks RedisTimeSeries, or cannot run our scripts."""
    try:
        for client in connection.masters():
            for script in ALL:
                client.script_load(script.source)
        PROBE.run(connection, probe_key=PROBE_KEY)
    except redis.AuthenticationError:  # a ConnectionError too: test it first
        return "Redis refused our credentials"
    except (redis.ConnectionError, redis.TimeoutError):
        return "Redis is unavailable"
    except redis.ResponseError as exc:
        if "unknown" in str(exc).lower() and "command" in str(exc).lower():
            return "Redis has no RedisTimeSeries module (TS.* commands unknown)"
        return f"Redis cannot run our scripts: {str(exc)[:200]}"
    except redis.RedisError as exc:  # e.g. a cluster without a master for a slot
        return f"Redis cannot serve: {str(exc)[:200]}"
    return None
