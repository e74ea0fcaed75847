"""What `record_events` says of a reading: the sentence an operator reads, why an anomaly
did not page, and what the sensor's detector has still to learn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .record_memory import DAY_MS, HOUR_MS, SIDES
from .timestamps import clock
from .verdict import Observed

if TYPE_CHECKING:  # record_events imports this module
    from .record_events import Normal, Tests


def meaning(range_days: int, margin: float) -> str:
    """What the rule's error means; `margin`: the range test's margin, % of the range."""
    return (f"error: the strongest of the rule's learned tests as a multiple of what flags "
            f"it: how far the reading lies beyond the sensor's normal range of the last "
            f"{range_days} days (against {margin:g}% of that range), or how far its "
            "recent surprise beats its record. Those tests flag once the error reaches the "
            "threshold; a gross departure from the model and the normal range flags "
            "whatever the error, from the first reading, and a stuck sensor flags when it "
            "repeats one value far longer than it ever did. lower and upper: the band "
            "outside which this reading alone is anomalous.")


def duration(ms: float) -> str:
    hours = ms / HOUR_MS
    return f"{ms / 60_000:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 \
        else f"{hours / 24:.1f} days"


def explanation(s: Mapping[str, float], observed: Observed, normal: Normal, tests: Tests,
                lower: float, upper: float) -> str:
    """The verdict in one sentence an operator reads."""
    x, expected = observed.value, normal.expected
    usual = (f"the usual {expected:.1f} for {clock(observed.timestamp)[11:16]} UTC"
             if normal.have_bin else f"the model's prediction {expected:.1f}")
    if tests.stuck:
        return (f"{x:g} repeated {s['run_n']:.0f} times over "
                f"{duration(observed.timestamp - s['run_t0'])}; this sensor never held "
                f"one value longer than {s['run_max_n']:.0f} readings "
                f"({duration(s['run_max_ms'])}) before")
    side = "above" if x >= expected else "below"
    text = (f"{x:.1f}, {abs(x - expected):.1f} {side} {usual}; "
            f"{abs(tests.z):.1f} times this sensor's typical deviation; "
            f"normal range {lower:.1f} to {upper:.1f}")
    if tests.pattern and not tests.excursion:
        text += "; its recent readings depart from its usual pattern more than ever this week"
    return text


def held_note(s: Mapping[str, float], held: list[str], holdoff: float, escalation: float) -> str:
    """Why an anomalous reading did not page: each kind's event is already alerted."""
    hours = f"{holdoff / HOUR_MS:g} h"
    return "; ".join(
        f"{kind}: part of the event alerted at {clock(s['last_' + kind])} (no new alert for "
        f"{hours}" + (f" unless it goes {escalation:g} times as far)" if kind in SIDES
                      else ")")
        for kind in held)


def learning_notes(s: Mapping[str, float], learned: bool, learning: float,
                   profile_bin: float) -> tuple[str, ...]:
    """What the sensor's tests and profile have still to learn."""
    parts = []
    if not learned:
        parts.append(f"the range, pattern and stuck tests learn the sensor until "
                     f"{clock(s['t0'] + learning)}; meanwhile only gross departures flag")
    bins = int(DAY_MS // profile_bin)
    seen = sum(1 for k in range(bins) if f"pm_{k}" in s)
    if seen < bins:
        parts.append(f"the time-of-day profile has seen {seen} of its {bins} "
                     f"{profile_bin / 60_000:g}-minute bins")
    return tuple(parts)
