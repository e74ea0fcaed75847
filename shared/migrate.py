"""`python -m shared.migrate`: rename a sensor's derived keys from the layout before hash tags
(`<sensor>/anomalies`, `<sensor>/alerts`, `<sensor>/detector`) to today's
(`{<sensor>}/anomalies`, ...: see store/keys.py). Readings keys never move. Idempotent: a second
run finds nothing to do.

`make up` runs it at start; on a swarm, run it once in a function's container (README).
Configured like the functions (REDIS_HOST, REDIS_CLUSTER, REDIS_PASSWORD_FILE, ...).

A key whose new name is free is renamed (RENAMENX on one server; DUMP, RESTORE and DEL on a
cluster, where the two names hash to different slots). When the new name exists too,
functions of the new layout have already written there: anomaly and alert marks are merged
into it (a mark the new series already has stays), the detector state under the new name is
kept (it is the one in use), and the old key is deleted.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterator
from typing import cast

import redis

from .config import ConfigError, load_settings
from .params import SENSOR_RE
from .redis_connection import RedisConnection, connect
from .store.keys import DERIVED_KINDS, derived_key

log = logging.getLogger(__name__)


def old_keys(client: redis.Redis) -> Iterator[tuple[str, str, str]]:
    """(old key, sensor, kind) of every derived key in the old layout on one server."""
    for kind in DERIVED_KINDS:
        for raw in client.scan_iter(match=f"*/{kind}", count=1000):
            key = raw.decode()
            sensor = key[: -len(kind) - 1]
            if SENSOR_RE.fullmatch(sensor):  # `{s}/kind` has braces: already migrated
                yield key, sensor, kind


def _merge(src: redis.Redis, dst: redis.Redis, old: str, new: str, kind: str) -> None:
    if kind != "detector":  # marks: a time series
        for timestamp, value in src.ts().range(old, "-", "+"):
            dst.execute_command("TS.ADD", new, timestamp, value, "ON_DUPLICATE", "FIRST")
    src.delete(old)


def move(connection: RedisConnection, old: str, new: str, kind: str) -> str:
    """Rename one key; 'renamed', 'merged' or 'gone' (someone else moved it meanwhile)."""
    src, dst = connection.master_client(old), connection.master_client(new)
    if not connection.settings.redis_cluster:  # on a cluster the two names' slots differ
        if src.renamenx(old, new):
            return "renamed"
    else:
        # redis-py types a reply as sync-or-async; a sync client's DUMP is bytes or None
        payload = cast(bytes | None, src.dump(old))
        if payload is None:
            return "gone"
        try:
            dst.restore(new, 0, payload)
            src.delete(old)
            return "renamed"
        except redis.ResponseError as exc:
            if "BUSYKEY" not in str(exc):
                raise
    if not src.exists(old):
        return "gone"
    _merge(src, dst, old, new, kind)
    return "merged"


def migrate(connection: RedisConnection) -> Counter[str]:
    done: Counter[str] = Counter()
    for client in connection.masters():
        for old, sensor, kind in list(old_keys(client)):
            outcome = move(connection, old, derived_key(sensor, kind), kind)
            done[outcome] += 1
            if outcome == "merged":
                log.warning("%s and %s both existed: merged into the new name", old,
                            derived_key(sensor, kind))
    return done


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        done = migrate(connect(load_settings()))
    except ConfigError as exc:
        log.error("invalid setting: %s", exc)
        return 2
    except redis.RedisError as exc:
        log.error("Redis: %s", exc)
        return 1
    log.info("key layout: %d renamed, %d merged, %d moved by someone else meanwhile",
             done["renamed"], done["merged"], done["gone"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
