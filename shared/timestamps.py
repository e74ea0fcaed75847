"""Times in one place: ISO-8601 text -> milliseconds since the epoch, exactly (the one
time parser), and milliseconds -> the text people read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_to_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 time (UTC when it names no offset).

    ValueError when the text is no ISO-8601 time."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Integer arithmetic: moment.timestamp() * 1000 is a float, 1 ms early for some times.
    return (moment - EPOCH) // timedelta(milliseconds=1)


def clock(timestamp: float) -> str:
    """A reading's time as people read it, with its zone (the store keeps UTC ms)."""
    return datetime.fromtimestamp(timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
