"""Readings, windows, anomaly marks and detector state in Redis TimeSeries.

Each method is one round trip in the common case (a pipeline), built with redis-py's
TimeSeries API; replies are turned into plain Python values here and nowhere else.
Key layout: docs/architecture.md.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .config import Settings
from .errors import Conflict, Unavailable
from .params import HistoryQuery, Reading

DUPLICATE = "DUPLICATE_POLICY"  # in RedisTimeSeries' error for a timestamp that is taken
EXISTS = "already exists"  # TS.CREATE of a key that is there
MISSING = "does not exist"  # reading a key that is not there
MAX_CLOCK_BUMPS = 1000  # server-clock readings move at most this many ms forward


@dataclass(frozen=True)
class StoredWindow:
    """A reading just stored, with the readings before it and the sensor's detector state."""

    timestamp: int
    window: list[float]  # newest first
    state: dict[str, float]


@dataclass(frozen=True)
class History:
    total: int
    readings: list[tuple[int, float]]  # newest first
    anomalies: set[int]  # timestamps judged anomalous


@dataclass(frozen=True)
class BatchResult:
    stored: int
    conflicts: list[int]  # explicit timestamps the sensor already had


def anomalies_key(sensor: str) -> str:
    return f"{sensor}/anomalies"


def detector_key(sensor: str) -> str:
    return f"{sensor}/detector"


def connect(settings: Settings) -> redis.Redis:
    # No automatic retries: a write whose reply was lost must not be sent twice.
    # The health check reconnects pooled connections that went stale while Redis was down.
    return redis.Redis(
        host=settings.redis_host, port=settings.redis_port, password=settings.redis_password,
        socket_timeout=settings.redis_timeout_s, socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0), health_check_interval=1, socket_keepalive=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_duplicate(reply: object) -> bool:
    return isinstance(reply, redis.ResponseError) and DUPLICATE in str(reply)


@contextmanager
def _answering_errors(sensor: str) -> Iterator[None]:
    """Redis failures as the errors the caller is answered with."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable("Redis is unavailable; nothing was stored, try again") from exc
    except redis.AuthenticationError as exc:
        raise Unavailable("Redis refused our credentials") from exc
    except redis.ResponseError as exc:
        if "not a TSDB key" in str(exc) or "WRONGTYPE" in str(exc):
            raise Conflict(f"sensor {sensor!r} names a Redis key that is not a time series") from exc
        raise


def _raise_first_error(replies: Sequence[object], ignore: tuple[str, ...] = ()) -> None:
    for reply in replies:
        if isinstance(reply, redis.ResponseError) and not any(t in str(reply) for t in ignore):
            raise reply


class ReadingStore:
    def __init__(self, client: redis.Redis):
        self.client = client
        self.ts = client.ts()

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def _add_commands(self, pipe, sensor: str, timestamp: int, value: float) -> None:
        # CREATE fails harmlessly once the key exists. It is separate from ADD because
        # redis-py 6 places ON_DUPLICATE after LABELS, where Redis reads it as a label.
        # ON_DUPLICATE BLOCK also guards keys the replaced system created, policy unknown.
        pipe.create(sensor, duplicate_policy="block", labels={"kind": "reading", "sensor": sensor})
        pipe.add(sensor, timestamp, value, on_duplicate="block")

    def _store_with(self, sensor: str, reading: Reading, extra) -> tuple[int, list]:
        """Add the reading (plus the commands `extra` queues) in one MULTI/EXEC.

        A server-clock reading whose millisecond is taken moves to the next free one, so
        concurrent readings are all kept; an explicit timestamp that is taken is a Conflict.
        """
        timestamp = now_ms() if reading.timestamp is None else reading.timestamp
        with _answering_errors(sensor):
            for _ in range(MAX_CLOCK_BUMPS):
                pipe = self.ts.pipeline(transaction=True)
                self._add_commands(pipe, sensor, timestamp, reading.value)
                extra(pipe, timestamp)
                created, added, *replies = pipe.execute(raise_on_error=False)
                if not _is_duplicate(added):
                    _raise_first_error([created], ignore=(EXISTS,))
                    _raise_first_error([added, *replies])
                    return timestamp, replies
                if reading.timestamp is not None:
                    raise Conflict(f"sensor {sensor!r} already has a reading at timestamp "
                                   f"{timestamp}; it was not overwritten")
                timestamp += 1
        raise Unavailable("could not find a free millisecond for the reading; try again")

    def add(self, sensor: str, reading: Reading) -> int:
        """Store one reading; returns the timestamp it was stored at."""
        timestamp, _ = self._store_with(sensor, reading, lambda pipe, ts: None)
        return timestamp

    def add_and_window(self, sensor: str, reading: Reading, size: int) -> StoredWindow:
        """Store a reading and read the `size` readings before it and the detector state."""

        def window_and_state(pipe, timestamp: int) -> None:
            # COUNT bounds the read: the cost stays flat however long the history grows.
            pipe.revrange(sensor, "-", max(timestamp - 1, 0), count=size)
            pipe.hgetall(detector_key(sensor))

        timestamp, (window, state) = self._store_with(sensor, reading, window_and_state)
        if timestamp == 0:  # nothing can come before the epoch's first millisecond
            window = []
        # The TimeSeries pipeline leaves HGETALL's reply flat: key, value, key, value...
        pairs = zip(state[::2], state[1::2])
        return StoredWindow(timestamp, [float(value) for _, value in window],
                            {key.decode(): float(value) for key, value in pairs})

    def add_batch(self, sensor: str, readings: Sequence[Reading]) -> BatchResult:
        """Store a batch in one round trip; server-clock readings end at the current ms."""
        now = now_ms()
        samples = [(sensor, now - len(readings) + 1 + i if r.timestamp is None else r.timestamp,
                    r.value) for i, r in enumerate(readings)]
        with _answering_errors(sensor):
            pipe = self.ts.pipeline(transaction=False)
            pipe.create(sensor, duplicate_policy="block", labels={"kind": "reading", "sensor": sensor})
            pipe.madd(samples)  # MADD never creates keys, hence the CREATE before it
            created, replies = pipe.execute(raise_on_error=False)
            _raise_first_error([created], ignore=(EXISTS,))
            if isinstance(replies, redis.ResponseError):
                raise replies
        conflicts, stored = [], 0
        for reading, reply in zip(readings, replies):
            if not _is_duplicate(reply):
                _raise_first_error([reply])
                stored += 1
            elif reading.timestamp is None:  # its millisecond was taken: move it on
                self.add(sensor, reading)
                stored += 1
            else:
                conflicts.append(reading.timestamp)
        return BatchResult(stored, conflicts)

    def history(self, sensor: str, query: HistoryQuery) -> History:
        with _answering_errors(sensor):
            pipe = self.ts.pipeline(transaction=False)
            pipe.revrange(sensor, query.start, query.end, count=query.count)
            pipe.info(sensor)
            # The newest `count` anomalies in the range cover every one among the readings.
            pipe.revrange(anomalies_key(sensor), query.start, query.end, count=query.count)
            readings, info, anomalies = pipe.execute(raise_on_error=False)
            _raise_first_error([readings, info, anomalies], ignore=(MISSING,))
        if isinstance(info, redis.ResponseError):  # no such sensor yet
            return History(0, [], set())
        marks = set() if isinstance(anomalies, redis.ResponseError) else {t for t, _ in anomalies}
        return History(int(info.total_samples), [(int(t), float(v)) for t, v in readings], marks)

    def record_verdict(self, sensor: str, timestamp: int, value: float, anomaly: bool,
                       old_state: dict[str, float], new_state: dict[str, float]) -> None:
        """Mark an anomalous reading and keep the detector's updated state."""
        if not anomaly and new_state == old_state:
            return
        with _answering_errors(sensor):
            pipe = self.ts.pipeline(transaction=True)
            if anomaly:
                pipe.add(anomalies_key(sensor), timestamp, value,
                         labels={"kind": "anomaly", "sensor": sensor})
            if new_state != old_state:
                pipe.hset(detector_key(sensor), mapping={k: repr(float(v)) for k, v in new_state.items()})
            pipe.execute()
