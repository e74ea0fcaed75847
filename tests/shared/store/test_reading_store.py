"""The readings store against a real Redis with the TimeSeries module: one server, and the
cluster where a test says ON_BOTH_LAYOUTS."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.readings import HistoryQuery, Reading
from shared.store import reading_store
from shared.store.errors import NotATimeSeries, StoreUnavailable, TimestampTaken
from shared.store.reading_store import AlreadyStored, ReadingStore
from tests.conftest import ON_BOTH_LAYOUTS
from tests.shared.store.conftest import connection_at


@pytest.fixture
def store(connection):
    return ReadingStore(connection)


@ON_BOTH_LAYOUTS
def test_a_reading_is_stored_with_its_labels_and_never_overwritten(store, redis_client):
    assert store.add("s1", Reading(21.5, 1_000)) == 1_000
    with pytest.raises(TimestampTaken, match="already has a different reading at timestamp 1000"):
        store.add("s1", Reading(99.0, 1_000))
    assert redis_client.ts().range("s1", "-", "+") == [(1_000, 21.5)]
    info = redis_client.ts().info("s1")
    assert info.labels == {"kind": "reading", "sensor": "s1"}


@ON_BOTH_LAYOUTS
def test_the_very_same_reading_again_is_already_stored_with_its_marks(store, redis_client):
    assert store.add("s1", Reading(21.5, 1_000)) == 1_000
    assert store.add("s1", Reading(21.5, 1_000)) == AlreadyStored(1_000, False, False)
    store.add("s1", Reading(30.0, 2_000))
    store.record_verdict("s1", 2_000, 30.0, True, True, {}, {"n": 1.0})
    assert store.add_and_window("s1", Reading(30.0, 2_000), 5) == AlreadyStored(2_000, True, True)
    with pytest.raises(TimestampTaken):
        store.add_and_window("s1", Reading(30.000001, 2_000), 5)
    assert redis_client.ts().range("s1", "-", "+") == [(1_000, 21.5), (2_000, 30.0)]


@ON_BOTH_LAYOUTS
def test_a_batch_counts_readings_it_holds_already_apart_from_conflicts(store, redis_client):
    store.add_batch("s1", [Reading(0.1 + 0.2, 1_000), Reading(2.0, 2_000)])
    result = store.add_batch("s1", [Reading(0.1 + 0.2, 1_000), Reading(2.5, 2_000),
                                    Reading(3.0, 3_000), Reading(3.0, 3_000)])
    assert (result.stored, result.conflicts, result.already_stored) == (1, [2_000], 2)
    assert [v for _, v in redis_client.ts().range("s1", "-", "+")] == [0.1 + 0.2, 2.0, 3.0]


@ON_BOTH_LAYOUTS
def test_readings_in_the_same_millisecond_are_all_kept(store, redis_client, monkeypatch):
    monkeypatch.setattr(reading_store, "now_ms", lambda: 5_000)
    stamps = [store.add("s1", Reading(float(i), None)) for i in range(3)]
    assert stamps == [5_000, 5_001, 5_002]
    assert [v for _, v in redis_client.ts().range("s1", "-", "+")] == [0.0, 1.0, 2.0]


@ON_BOTH_LAYOUTS
def test_concurrent_writers_lose_nothing_and_store_nothing_twice(store, redis_client):
    values = [float(i) for i in range(600)]
    with ThreadPoolExecutor(16) as pool:
        stamps = list(pool.map(lambda v: store.add("busy", Reading(v, None)), values))
    stored = redis_client.ts().range("busy", "-", "+")
    assert len(set(stamps)) == len(values)
    assert sorted(v for _, v in stored) == values


@ON_BOTH_LAYOUTS
def test_a_window_is_the_readings_just_before_the_new_one(store):
    for t in range(1, 21):
        store.add("s1", Reading(float(t), t * 1000))
    # A late reading, with its own timestamp: its window is what came before it.
    stored = store.add_and_window("s1", Reading(55.0, 7_500), size=4)
    assert stored.timestamp == 7_500
    assert stored.window == [7.0, 6.0, 5.0, 4.0]
    assert stored.state == {}


def test_a_window_is_short_while_the_sensor_is_new(store):
    store.add("s1", Reading(1.0, 1_000))
    assert store.add_and_window("s1", Reading(2.0, 2_000), size=10).window == [1.0]


@ON_BOTH_LAYOUTS
def test_detector_state_and_anomaly_marks_are_kept(store):
    store.add("s1", Reading(1.0, 1_000))
    store.record_verdict("s1", 1_000, 1.0, True, True, {}, {"mean": 1.5, "n": 3.0})
    stored = store.add_and_window("s1", Reading(2.0, 2_000), size=10)
    assert stored.state == {"mean": 1.5, "n": 3.0}
    store.record_verdict("s1", 2_000, 2.0, True, False, stored.state, {**stored.state, "n": 4.0})
    history = store.history("s1", HistoryQuery(10, "-", "+"))
    assert history.anomalies == {1_000, 2_000} and history.alerts == {1_000}
    assert history.total == 2


@ON_BOTH_LAYOUTS
def test_history_is_newest_first_bounded_and_ranged(store):
    for t in range(1, 11):
        store.add("s1", Reading(float(t), t * 1000))
    assert store.history("s1", HistoryQuery(3, "-", "+")).readings == [
        (10_000, 10.0), (9_000, 9.0), (8_000, 8.0)]
    ranged = store.history("s1", HistoryQuery(100, 2_000, 4_000))
    assert ranged.readings == [(4_000, 4.0), (3_000, 3.0), (2_000, 2.0)]
    assert ranged.total == 10


def test_history_of_an_unknown_sensor_is_empty(store):
    history = store.history("nobody", HistoryQuery(10, "-", "+"))
    assert (history.total, history.readings, history.anomalies, history.alerts) == (0, [], set(), set())


@ON_BOTH_LAYOUTS
def test_a_batch_is_stored_in_one_go_and_conflicts_are_reported(store, redis_client):
    store.add("s1", Reading(1.0, 2_000))
    result = store.add_batch("s1", [Reading(5.0, 1_000), Reading(6.0, 2_000), Reading(7.0, None)])
    assert (result.stored, result.conflicts, result.already_stored) == (2, [2_000], 0)
    values = [v for _, v in redis_client.ts().range("s1", "-", "+")]
    assert sorted(values) == [1.0, 5.0, 7.0]


def test_a_sensor_named_like_another_redis_key_is_a_conflict(store, redis_client):
    redis_client.set("plain", "x")
    with pytest.raises(NotATimeSeries, match="not a time series"):
        store.add("plain", Reading(1.0, 1_000))


@pytest.mark.parametrize("layout", [{}, {"REDIS_CLUSTER": "1"}], ids=["one server", "cluster"])
def test_an_unreachable_redis_is_unavailable(layout):
    # a cluster down at start too
    dead = ReadingStore(connection_at(1, REDIS_TIMEOUT="0.5", **layout))
    with pytest.raises(StoreUnavailable, match="Redis is unavailable"):
        dead.add("s1", Reading(1.0, None))
    with pytest.raises(StoreUnavailable, match="Redis is unavailable"):
        dead.history("s1", HistoryQuery(start="-", end="+", count=1))
