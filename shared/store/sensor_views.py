"""What listar's pages read beside a sensor's readings: the sensors overview, and a sensor's
judgements (expected value and normal band), alert log and anomaly count over a range.

Reads only: a few commands per Redis master (the overview) or one script on the sensor's
slot (lua/extras.lua); nothing here waits for replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from ..outbox import outbox_key
from ..readings import SensorSummary
from ..redis_connection import RedisConnection
from .errors import store_errors
from .keys import anomalies_key, band_keys, readings_key
from .scripts import EXTRAS


@dataclass(frozen=True)
class SensorExtras:
    band: dict[int, tuple[float, float, float]]  # timestamp -> (expected, lower, upper)
    flagged_total: int  # every reading of the sensor flagged as an anomaly
    events: list[dict[str, str]]  # the alert log entries of the range, oldest first


def _mget(client: redis.Redis, kind: str) -> list[tuple[str, int, float]]:
    """(sensor, timestamp, value) of the newest sample of every series of `kind` there."""
    reply: Any = client.execute_command("TS.MGET", "SELECTED_LABELS", "sensor", "FILTER", f"kind={kind}")
    found = []
    for _, labels, sample in reply:
        if sample and labels and labels[0][1] is not None:
            found.append((labels[0][1].decode(), int(sample[0]), float(sample[1])))
    return found


class SensorViews:
    def __init__(self, connection: RedisConnection):
        self.connection = connection

    def overview(self) -> list[SensorSummary]:
        """Every sensor with readings: its newest reading, its state and its last alert;
        those in an event first, then by name."""
        with store_errors("(all)", writing=False):
            newest, judged, alerted = {}, {}, {}
            for client in self.connection.masters():
                newest.update({s: (t, v) for s, t, v in _mget(client, "reading")})
                judged.update({s: t for s, t, _ in _mget(client, "expected")})
                alerted.update({s: t for s, t, _ in _mget(client, "alert")})
            last_entries = {}
            for sensor in alerted:
                key = outbox_key(sensor)
                entry: Any = self.connection.master_client(key).xrevrange(key, count=1)
                if entry:
                    last_entries[sensor] = {k.decode(): v.decode() for k, v in entry[0][1].items()}
        summaries = []
        for sensor, (t, value) in newest.items():
            entry = last_entries.get(sensor)
            if entry and entry["event"] == "alert":
                state = "in an event"
            elif judged.get(sensor) == t:
                state = "normal"
            else:
                state = "not judged"
            summaries.append(SensorSummary(sensor, t, value, state, alerted.get(sensor),
                                           entry["kind"] if entry else None))
        return sorted(summaries, key=lambda s: (s.state != "in an event", s.sensor))

    def extras(self, sensor: str, start: int | str, end: int | str) -> SensorExtras:
        expected, lower, upper = band_keys(sensor)
        with store_errors(sensor, writing=False):
            band, total, log = EXTRAS.run(self.connection, expected_key=expected, lower_key=lower,
                                          upper_key=upper, anomalies_key=anomalies_key(sensor),
                                          outbox_key=outbox_key(sensor), range_start=start,
                                          range_end=end)
        numbers = band.split()
        judged = {int(numbers[i]): (float(numbers[i + 1]), float(numbers[i + 2]), float(numbers[i + 3]))
                  for i in range(0, len(numbers), 4)}
        low = start if isinstance(start, int) else 0
        high = end if isinstance(end, int) else float("inf")
        events = []
        for text in log:
            fields = text.decode().split("\n")
            entry = dict(zip(fields[::2], fields[1::2], strict=True))
            if low <= int(entry.get("timestamp", -1)) <= high:
                events.append(entry)
        return SensorExtras(judged, int(total), events)

    def newest(self, sensor: str) -> int | None:
        """The time of the sensor's newest reading, None when it has none."""
        key = readings_key(sensor)
        with store_errors(sensor, writing=False):
            client = self.connection.master_client(key)
            if not client.exists(key):
                return None
            newest: Any = client.execute_command("TS.GET", key)
            return int(newest[0])

