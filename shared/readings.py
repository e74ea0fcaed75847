"""The domain's plain values: what a reading is and what a history query asks for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    """One reading to store; timestamp None means the server's clock."""

    value: float
    timestamp: int | None


@dataclass(frozen=True)
class HistoryQuery:
    count: int
    start: int | str  # ms, or "-" for the earliest
    end: int | str  # ms, or "+" for the latest


# detectar's judgement of each reading (expected value and normal band) is kept this long:
# the sensor page's longest span (docs/architecture.md has what it costs).
BAND_KEPT_DAYS = 31


@dataclass(frozen=True)
class SensorSummary:
    """A line of the sensors overview."""

    sensor: str
    last_reading: int  # ms
    last_value: float
    state: str  # "in an event", "normal" or "not judged"
    last_alert: int | None  # ms of the newest reading that raised an alert
    last_alert_kind: str | None
