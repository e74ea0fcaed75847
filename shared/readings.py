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
