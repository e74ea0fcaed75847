"""An alert outbox entry (shared/outbox.py) as an Alertmanager alert (API v2): its labels,
which make re-sends idempotent, and the annotations an operator reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

DATA_QUALITY_KINDS = frozenset({"stuck"})  # the sensor, not the process, looks wrong
CRITICAL_FROM = 70  # severity score (0-100) from which the severity label is `critical`


def iso(timestamp_ms: float) -> str:
    """Alertmanager's time format (RFC 3339, UTC)."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def severity_label(score: str | None) -> str:
    return "critical" if score is not None and float(score) >= CRITICAL_FROM else "warning"


def sensor_link(pages_url: str | None, sensor: str) -> str | None:
    return f"{pages_url}/function/listar?sensor={quote(sensor)}&span=day" if pages_url else None


def two_decimals(text: str | None) -> str | None:
    return None if text is None else f"{float(text):.2f}"


def alert_of(entry: Mapping[str, str], pages_url: str | None) -> dict[str, Any]:
    """The Alertmanager alert (API v2) of an outbox `alert` entry."""
    sensor, kind = entry["sensor"], entry["kind"]
    value, expected = two_decimals(entry["value"]), two_decimals(entry.get("expected"))
    lower, upper = two_decimals(entry.get("lower")), two_decimals(entry.get("upper"))
    band = f"{lower} to {upper}" if lower is not None and upper is not None else None
    summary = f"{sensor}: {value}" + (f", expected {expected}" if expected else "") + (
        f" (normal {band})" if band else "")
    annotations = {"summary": summary, "value": value, "expected": expected, "band": band,
                   "lower": lower, "upper": upper, "severity_score": entry.get("severity"),
                   "explanation": entry.get("explanation"),
                   "link": sensor_link(pages_url, sensor)}
    alert = {"labels": {"alertname": ("SensorDataQuality" if kind in DATA_QUALITY_KINDS
                                      else "TemperatureAnomaly"),
                        "sensor": sensor, "kind": kind,
                        "severity": severity_label(entry.get("severity"))},
             "annotations": {name: text for name, text in annotations.items() if text},
             "startsAt": iso(int(entry["timestamp"]))}
    if annotations["link"]:
        alert["generatorURL"] = annotations["link"]
    return alert
