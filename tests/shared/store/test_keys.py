"""Key names: every key of a sensor in one cluster slot, none of them another sensor's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.cluster import key_slot

from shared.params import SENSOR_RE
from shared.store.keys import NONCE_PREFIX, PROBE_KEY, alerts_key, anomalies_key, detector_key, readings_key


@given(st.from_regex(SENSOR_RE, fullmatch=True))
def test_a_sensors_keys_share_the_cluster_slot_of_its_readings(sensor):
    keys = (readings_key(sensor), anomalies_key(sensor), alerts_key(sensor), detector_key(sensor))
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert len(set(keys)) == 4


@given(st.from_regex(SENSOR_RE, fullmatch=True), st.from_regex(SENSOR_RE, fullmatch=True))
def test_no_key_of_a_sensor_is_another_sensors_readings_key(sensor, other):
    for key in (anomalies_key(sensor), alerts_key(sensor), detector_key(sensor)):
        assert key != readings_key(other)
    assert not readings_key(other).startswith(NONCE_PREFIX) and readings_key(other) != PROBE_KEY
