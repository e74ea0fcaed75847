"""Decision rules: (a reading as observed, per-sensor state) -> verdict.

What a rule sees of a reading (`Observed`, shared/verdict.py): its value and timestamp, the learned model's
prediction of it and the readings just before it.

A rule is built once from the model description's `decision` object (docs/architecture.md),
which is where its parameters are checked: a description whose rule cannot work does not
load, and the error names the parameter. Judging is then a pure function: the per-sensor
state is a flat dict of floats (the runtime keeps it in the Redis hash `{<sensor>}/detector`),
given in and returned updated, never mutated in place.

Rules
-----
`abs_error` (the replaced system's): anomaly when |value - predicted| > threshold (degrees).
    Stateless. error and threshold are in degrees; `THRESHOLD` replaces `decision.threshold`.

`record_events` (ours, shipped): gross departures from the first judgement; records of the
    sensor's normal range and of surprise against its time-of-day profile once it has
    learned; a stuck sensor; one alert per event, and what normal is in every verdict.
    Every time scale is a duration. See shared/record_events.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .record_events import RecordEvents
from .verdict import Decision, Observed, threshold

__all__ = ["RULES", "Decision", "Observed", "Rule", "build"]


class Rule(Protocol):
    name: str
    threshold: float

    @property
    def meaning(self) -> str:
        """What `error` and `threshold` are under this rule, in an operator's words."""

    def judge(self, observed: Observed, state: Mapping[str, float]) -> Decision:
        """The verdict on one reading, given the sensor's state."""


def build(decision: Mapping[str, Any], threshold_override: float | None = None) -> Rule:
    """The rule the description's `decision` names, its parameters checked (ValueError
    names the first bad one)."""
    name = decision.get("rule")
    try:
        make = RULES[str(name)]
    except KeyError:
        raise ValueError(f"decision.rule: unknown rule {name!r}; known: {sorted(RULES)}") from None
    return make(decision, threshold_override)


class AbsError:
    name = "abs_error"
    meaning: str = ("error: how far the reading is from the model's prediction of it, in degrees. "
               "An anomaly when the error is above the threshold.")

    def __init__(self, decision: Mapping[str, Any], threshold_override: float | None):
        self.threshold = threshold(decision, threshold_override)

    def judge(self, observed: Observed, state: Mapping[str, float]) -> Decision:
        x, expected = observed.value, observed.predicted
        error = abs(x - expected)
        anomaly = error > self.threshold  # stateless: every anomalous reading is an event
        kind = ("high" if x > expected else "low") if anomaly else None
        side = "above" if x >= expected else "below"
        return Decision(
            anomaly, anomaly, error, self.threshold, dict(state), expected=expected,
            lower=expected - self.threshold, upper=expected + self.threshold,
            severity=min(100, round(50 * error / self.threshold)) if self.threshold else 100,
            kind=kind, kinds=(kind,) if kind else (),
            explanation=(f"{x:.1f}, {error:.1f} {side} the model's prediction {expected:.1f}; "
                         f"normal range {expected - self.threshold:.1f} to "
                         f"{expected + self.threshold:.1f}"))


RULES: dict[str, Callable[[Mapping[str, Any], float | None], Rule]] = {
    "abs_error": AbsError, "record_events": RecordEvents}
