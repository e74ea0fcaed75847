"""The readings store: readings, windows, batches, history, anomaly marks and detector state.

Each method is one round trip, one Lua script (scripts.py), atomic, so that what is stored
never depends on how requests interleave (a reading or a batch is stored whole, once, or not
at all); replies are turned into plain Python values here and nowhere else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..outbox import MAX_ENTRIES
from ..readings import HistoryQuery, Reading
from ..redis_connection import RedisConnection
from .errors import NoFreeMillisecond, TimestampTaken, store_errors
from .keys import (
    BAND_RETENTION_MS,
    alerts_key,
    anomalies_key,
    band_keys,
    detector_key,
    outbox_key,
    readings_key,
)
from .scripts import ADD, BATCH, HISTORY, VERDICT

MAX_CLOCK_BUMPS = 1000  # server-clock readings move at most this many ms forward


@dataclass(frozen=True)
class StoredWindow:
    """A reading just stored, with the readings before it and the sensor's detector state."""

    timestamp: int
    window: list[float]  # newest first
    state: dict[str, float]


@dataclass(frozen=True)
class AlreadyStored:
    """The very reading (its explicit timestamp, the same value) was stored before: a retry.
    Nothing was written; the marks say what detectar kept for it (False if never judged)."""

    timestamp: int
    anomaly: bool
    alert: bool


@dataclass(frozen=True)
class History:
    total: int
    readings: list[tuple[int, float]]  # newest first
    anomalies: set[int]  # timestamps judged anomalous
    alerts: set[int]  # timestamps whose reading started an event (a subset of anomalies)


@dataclass(frozen=True)
class BatchResult:
    stored: int
    conflicts: list[int]  # explicit timestamps the sensor already had with another value
    already_stored: int  # readings the sensor already had, value and all (retries)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fields_text(fields: Mapping[str, str]) -> str:
    """An outbox entry as the verdict script takes it: "field\nvalue\n..." (no value is
    empty or holds a newline: shared/outbox.py)."""
    return "\n".join(f"{name}\n{text}" for name, text in fields.items())


def _state_text(state: dict[str, float]) -> str:
    return "\n".join(f"{key}\n{float(value)!r}" for key, value in state.items())


class ReadingStore:
    def __init__(self, connection: RedisConnection):
        self.connection = connection

    def _store(self, sensor: str, reading: Reading, size: int) -> list[Any] | AlreadyStored:
        """Run ADD: the reading stored (and, with `size`, its window and state).

        A server-clock reading whose millisecond is taken moves to the next free one, so
        concurrent readings are all kept; an explicit timestamp that is taken is TimestampTaken,
        or AlreadyStored when it holds this very value.
        """
        explicit = reading.timestamp is not None
        timestamp = reading.timestamp if reading.timestamp is not None else now_ms()
        with store_errors(sensor):
            reply = ADD.run(self.connection, readings_key=readings_key(sensor),
                            detector_key=detector_key(sensor),
                            anomalies_key=anomalies_key(sensor), alerts_key=alerts_key(sensor),
                            timestamp=timestamp,
                            value=repr(float(reading.value)), explicit=int(explicit),
                            max_bumps=MAX_CLOCK_BUMPS, sensor=sensor, window_size=size)
        if reply[0] == -3:
            return AlreadyStored(timestamp, reply[1] == 1, reply[2] == 1)
        if reply[0] == -1:
            raise TimestampTaken(f"sensor {sensor!r} already has a different reading at timestamp "
                                 f"{timestamp}; it was not overwritten")
        if reply[0] == -2:
            raise NoFreeMillisecond(f"sensor {sensor!r} has no free millisecond near the server's "
                                    "clock (at most one server-clock reading per ms); nothing "
                                    "was stored, retry after 1 s or send a timestamp",
                                    retry_after_s=1)
        return list(reply)

    def add(self, sensor: str, reading: Reading) -> int | AlreadyStored:
        """Store one reading; returns the timestamp it was stored at."""
        stored = self._store(sensor, reading, 0)
        return stored if isinstance(stored, AlreadyStored) else int(stored[0])

    def add_and_window(self, sensor: str, reading: Reading,
                       size: int) -> StoredWindow | AlreadyStored:
        """Store a reading and read the `size` readings before it and the detector state."""
        if size < 1:
            raise ValueError(f"a window holds at least one reading, got size {size}")
        stored = self._store(sensor, reading, size)
        if isinstance(stored, AlreadyStored):
            return stored
        timestamp, window, state = stored
        fields = state.decode().split("\n") if state else []
        return StoredWindow(int(timestamp), [float(value) for value in window.split()],
                            dict(zip(fields[::2], map(float, fields[1::2]), strict=True)))

    def add_batch(self, sensor: str, readings: Sequence[Reading]) -> BatchResult:
        """Store a batch in one round trip, atomically: server-clock readings end at the
        current millisecond (reading i of n at now - n + 1 + i) or move to the next free
        one; explicit timestamps the sensor already has are reported, not stored (as conflicts,
        or counted as already stored when they hold the same value). When the
        server-clock readings cannot all be placed, nothing is stored (NoFreeMillisecond: the
        clock must move on by about one ms per reading first)."""
        pairs: list[Any] = []
        for reading in readings:
            pairs += ("" if reading.timestamp is None else reading.timestamp, repr(reading.value))
        with store_errors(sensor):
            reply = BATCH.run(self.connection, pairs, readings_key=readings_key(sensor),
                              sensor=sensor, first_slot=now_ms() - len(readings) + 1,
                              max_bumps=MAX_CLOCK_BUMPS)
        if reply[0] == -2:
            retry = max(1, math.ceil(len(readings) / 1000))
            raise NoFreeMillisecond(f"sensor {sensor!r} has no room for {len(readings)} "
                                    "server-clock readings near the server's clock (one per "
                                    f"ms); nothing was stored, retry after {retry} s or send "
                                    "timestamps", retry_after_s=retry)
        return BatchResult(int(reply[0]), [int(t) for t in reply[1]], int(reply[2]))

    def history(self, sensor: str, query: HistoryQuery) -> History:
        with store_errors(sensor, writing=False):
            reply = HISTORY.run(self.connection, readings_key=readings_key(sensor),
                                anomalies_key=anomalies_key(sensor),
                                alerts_key=alerts_key(sensor), range_start=query.start,
                                range_end=query.end, count=query.count)
        if not reply:  # no such sensor yet
            return History(0, [], set(), set())
        total, readings, anomalies, alerts = reply
        flat = readings.split()
        return History(int(total), list(zip(map(int, flat[::2]), map(float, flat[1::2]), strict=True)),
                       set(map(int, anomalies.split())), set(map(int, alerts.split())))

    def record_verdict(self, sensor: str, timestamp: int, value: float, anomaly: bool,
                       alert: bool, old_state: dict[str, float], new_state: dict[str, float],
                       judgement: tuple[float, float, float] | None = None,
                       entries: Sequence[Mapping[str, str]] = ()) -> None:
        """Mark an anomalous reading (and one that starts an event), keep the detector's
        updated state, the judgement (expected value, lower and upper edge of the band: kept
        BAND_RETENTION_MS) and the outbox entries (shared/outbox.py: alerts and ends of
        events for the forwarder), atomically.

        Only the fields that changed are written: the hash ends up the same, and a reading
        costs Redis (and the append-only file) a few fields, not the whole state.
        """
        changed = {field: number for field, number in new_state.items()
                   if field not in old_state or old_state[field] != number}
        if not anomaly and not changed and judgement is None and not entries:
            return
        expected_key, lower_key, upper_key = band_keys(sensor)
        with store_errors(sensor):
            VERDICT.run(self.connection, [_fields_text(entry) for entry in entries],
                        anomalies_key=anomalies_key(sensor), alerts_key=alerts_key(sensor),
                        detector_key=detector_key(sensor), expected_key=expected_key,
                        lower_key=lower_key, upper_key=upper_key, outbox_key=outbox_key(sensor),
                        timestamp=timestamp, value=repr(float(value)), sensor=sensor,
                        anomaly=int(anomaly), alert=int(alert), state=_state_text(changed),
                        judgement=" ".join(repr(float(v)) for v in judgement) if judgement else "",
                        band_retention=BAND_RETENTION_MS, max_entries=MAX_ENTRIES)
