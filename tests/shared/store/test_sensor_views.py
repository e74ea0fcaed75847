"""What detectar keeps of a verdict beside its marks (the judgement, the outbox entries) and
what listar reads back of it, on one server and on a cluster."""

from __future__ import annotations

import time

from shared.outbox import CHANNEL, entries, outbox_key
from shared.readings import HistoryQuery, Reading
from shared.store.keys import BAND_RETENTION_MS, band_keys
from shared.store.reading_store import ReadingStore
from shared.store.sensor_views import SensorViews
from tests.conftest import ON_BOTH_LAYOUTS

T0 = 1_700_000_000_000


def judge(store: ReadingStore, sensor: str, t: int, value: float, alert: bool = False,
          resolved: str | None = None) -> None:
    store.add(sensor, Reading(value, t))
    document = {"sensor": sensor, "timestamp": t, "value": value, "alert": alert,
                "resolved": resolved, "kind": "high", "severity": 80, "expected": 70.0,
                "lower": 68.5, "upper": 71.5, "explanation": "far above\nthe band"}
    store.record_verdict(sensor, t, value, alert, alert, {}, {}, (70.0, 68.5, 71.5),
                         entries(document))


@ON_BOTH_LAYOUTS
def test_a_verdict_keeps_its_band_and_its_alerts_in_one_step(connection, redis_client):
    store, views = ReadingStore(connection), SensorViews(connection)
    pubsub = connection.masters()[0].pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    judge(store, "horno-1", T0, 70.2)
    judge(store, "horno-1", T0 + 60_000, 95.0, alert=True)
    judge(store, "horno-1", T0 + 120_000, 70.1, resolved="high")
    extras = views.extras("horno-1", T0, T0 + 120_000)
    assert extras.band == {T0 + k * 60_000: (70.0, 68.5, 71.5) for k in range(3)}
    assert [(e["event"], e["timestamp"]) for e in extras.events] == [
        ("alert", str(T0 + 60_000)), ("resolved", str(T0 + 120_000))]
    assert extras.events[0]["explanation"] == "far above the band"  # one line, as sent
    assert extras.flagged_total == 1
    assert views.extras("horno-1", T0 + 100_000, T0 + 200_000).events[0]["event"] == "resolved"
    heard, deadline = [], time.monotonic() + 2
    while len(heard) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message:
            heard.append(message["data"])
    assert heard == [b"horno-1", b"horno-1"]  # the forwarder is told, once per entry's verdict
    pubsub.close()
    info = redis_client.ts().info(band_keys("horno-1")[0])
    assert info.retention_msecs == BAND_RETENTION_MS and info.labels["kind"] == "expected"
    assert redis_client.xlen(outbox_key("horno-1")) == 2


@ON_BOTH_LAYOUTS
def test_the_overview_tells_events_judged_and_unjudged_sensors_apart(connection, redis_client):
    store, views = ReadingStore(connection), SensorViews(connection)
    judge(store, "in-event", T0, 95.0, alert=True)
    judge(store, "calm", T0, 70.0)
    judge(store, "closed", T0, 95.0, alert=True)
    judge(store, "closed", T0 + 1, 70.0, resolved="high")
    store.add("raw", Reading(20.0, T0))
    states = {s.sensor: (s.state, s.last_alert) for s in views.overview()}
    assert states == {"in-event": ("in an event", T0), "calm": ("normal", None),
                      "closed": ("normal", T0), "raw": ("not judged", None)}
    assert views.overview()[0].sensor == "in-event"  # events first
    assert views.newest("closed") == T0 + 1 and views.newest("nobody") is None
    assert store.history("closed", HistoryQuery(10, "-", "+")).alerts == {T0}
