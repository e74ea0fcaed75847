"""The names of the store's Redis keys (the one place that makes them; docs/architecture.md).

A sensor's readings are under its own id (`mediciones` stays the replaced system's series);
the keys derived from it carry the id as a hash tag, `{<sensor>}/...`, so that Redis Cluster
puts all of a sensor's keys in the slot of its readings key (a key without braces hashes
whole) and one script can use them together. Sensor ids cannot hold braces or `/`
(params.py), so no derived key is ever some sensor's readings key.
Layouts before this one named them `<sensor>/<kind>`: shared/migrate.py renames those.
"""

from __future__ import annotations

from ..outbox import outbox_key as outbox_key  # named there: the forwarder reads it without the store

DERIVED_KINDS = ("anomalies", "alerts", "detector")
NONCE_PREFIX = "/signatures/"  # a sensor id cannot start with "/": no clash with its keys
PROBE_KEY = "/readiness"  # '/' is never in a sensor id


def readings_key(sensor: str) -> str:
    return sensor


def derived_key(sensor: str, kind: str) -> str:
    return f"{{{sensor}}}/{kind}"


def anomalies_key(sensor: str) -> str:
    return derived_key(sensor, "anomalies")


def alerts_key(sensor: str) -> str:
    return derived_key(sensor, "alerts")


def detector_key(sensor: str) -> str:
    return derived_key(sensor, "detector")


def nonce_key(nonce: str) -> str:
    return NONCE_PREFIX + nonce


BAND_SERIES = ("expected", "lower", "upper")  # detectar's judgement of each reading
BAND_RETENTION_MS = 31 * 86_400_000  # the sensor page's longest span (docs/architecture.md)


def band_keys(sensor: str) -> list[str]:
    return [derived_key(sensor, kind) for kind in BAND_SERIES]
