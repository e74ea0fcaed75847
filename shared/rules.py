"""Decision rules: (a reading as observed, per-sensor state) -> verdict.

What a rule sees of a reading (`Observed`): its value and timestamp, the learned model's
prediction of it and the readings just before it.

A rule is built once from the model description's `decision` object (docs/architecture.md),
which is where its parameters are checked: a description whose rule cannot work does not
load, and the error names the parameter. Judging is then a pure function: the per-sensor
state is a flat dict of floats (the runtime keeps it in the Redis hash `<sensor>/detector`),
given in and returned updated, never mutated in place.

Rules
-----
`abs_error` (the replaced system's): anomaly when |value - predicted| > threshold (degrees).
    Stateless. error and threshold are in degrees; `THRESHOLD` replaces `decision.threshold`.

`record_level` (ours): an extreme-level test against the sensor's own range of readings.
    Per reading x with the model's prediction p of it:
      range   lo, hi = the lowest and highest reading of the last `blocks` completed blocks of
              `block` readings, plus the current, partly filled block (block 288 = a day,
              blocks 30 = a month: the sensor's range over the last 30 to 31 days);
      tested  `test` "reading": x; "prediction": p, so the model's output decides; "both": x
              and p beyond the range on the same side (the smaller of the two excesses
              counts); "either" (shipped): x or p beyond it (the larger counts);
      error   = max(lo - t, t - hi) for the tested value t: how far beyond the range, in
              degrees (negative inside it);
      verdict anomaly when the statistics hold >= min_count readings, no hold-off is running,
              error > threshold (a margin in degrees, 0: a record low or a record high) and
              the side broken is armed. A side disarms when it alarms and re-arms once a
              reading is back at or across the running mean level of the readings (memory
              `memory`, weight max(1/count, 1/memory): the exact mean until `memory`
              readings, then exponential forgetting): one excursion, one alarm.
              The range, level and re-arming always use readings, whatever `test`.
    Under exchangeable readings the chance that x is a record among n previous ones is 1/(n+1)
    per side (a rank test: no distribution assumed, the same for every sensor's range).
    Parameters: threshold (margin, degrees, >= 0), memory (>= 1), block, blocks (whole >= 1),
    min_count, holdoff (>= 0), sides ("both", "low" or "high"; default "both"), test
    ("reading", "prediction", "both" or "either"; default "reading"). `THRESHOLD` replaces
    the margin.
    State keys (all floats): count, level_mean, block_n, block_lo, block_hi (the current
    block), days (completed blocks held), lo_0 .. lo_{blocks-1}, hi_0 .. (newest first),
    armed_low, armed_high (1.0 or 0.0), holdoff.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Decision:
    anomaly: bool          # this reading is anomalous
    alert: bool            # it starts a new event: what an operator is paged for
    error: float
    threshold: float
    state: dict[str, float] = field(default_factory=dict)
    note: str | None = None  # why a reading was not flagged when an operator may expect it


@dataclass(frozen=True)
class Observed:
    value: float
    predicted: float               # the model's prediction of `value` from `window`
    timestamp: int                 # ms since the epoch
    window: tuple[float, ...] = () # the readings before it, newest first


class Rule(Protocol):
    name: str
    threshold: float

    def judge(self, observed: Observed, state: Mapping[str, float]) -> Decision:
        """The verdict on one reading, given the sensor's state."""


def build(decision: Mapping[str, Any], threshold_override: float | None = None) -> Rule:
    """The rule the description's `decision` names, its parameters checked (ValueError
    names the first bad one)."""
    name = decision.get("rule")
    try:
        make = RULES[name]
    except KeyError:
        raise ValueError(f"decision.rule: unknown rule {name!r}; known: {sorted(RULES)}") from None
    return make(decision, threshold_override)


def _number(decision: Mapping[str, Any], key: str, minimum: float,
            default: float | None = None) -> float:
    value = decision.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < minimum:
        raise ValueError(f"decision.{key}: {decision.get('rule')} needs a number >= {minimum:g}, "
                         f"got {value!r}")
    return float(value)


def _whole(decision: Mapping[str, Any], key: str) -> int:
    value = decision.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"decision.{key}: {decision.get('rule')} needs a whole number >= 1, "
                         f"got {value!r}")
    return value


def _one_of(decision: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    """A choice parameter; its default is the first of `choices`."""
    value = decision.get(key, choices[0])
    if value not in choices:
        raise ValueError(f"decision.{key}: {decision.get('rule')} needs one of {choices}, "
                         f"got {value!r}")
    return value


def _threshold(decision: Mapping[str, Any], override: float | None, default: float | None = None) -> float:
    if override is not None:
        return float(override)
    return _number(decision, "threshold", 0.0, default)


def _float(state: Mapping[str, float], key: str, default: float) -> float:
    value = float(state.get(key, default))
    if not math.isfinite(value):
        raise ValueError(f"detector state {key!r} is not a finite number: {value!r}")
    return value


def _running(count: float, mean: float, x: float, memory: float) -> tuple[float, float]:
    """Absorb x into a running mean of `count` values: exact until `memory` values, then an
    exponential forgetting of weight 1/memory."""
    count += 1.0
    return count, mean + max(1.0 / count, 1.0 / memory) * (x - mean)


class AbsError:
    name = "abs_error"

    def __init__(self, decision: Mapping[str, Any], threshold_override: float | None):
        self.threshold = _threshold(decision, threshold_override)

    def judge(self, observed: Observed, state: Mapping[str, float]) -> Decision:
        error = abs(observed.value - observed.predicted)
        anomaly = error > self.threshold  # stateless: every anomalous reading is an event
        return Decision(anomaly, anomaly, error, self.threshold, dict(state))


RECORD_SIDES = ("both", "low", "high")
RECORD_TESTS = ("reading", "prediction", "both", "either")


class RecordLevel:
    name = "record_level"

    def __init__(self, decision: Mapping[str, Any], threshold_override: float | None):
        self.threshold = _threshold(decision, threshold_override, 0.0)
        self.memory = _number(decision, "memory", 1.0)
        self.min_count = _number(decision, "min_count", 0.0)
        self.holdoff = _number(decision, "holdoff", 0.0)
        self.block = _whole(decision, "block")
        self.blocks = _whole(decision, "blocks")
        self.sides = _one_of(decision, "sides", RECORD_SIDES)
        self.test = _one_of(decision, "test", RECORD_TESTS)

    def state_keys(self) -> tuple[str, ...]:
        return ("count", "level_mean", "block_n", "block_lo", "block_hi", "days",
                *(f"lo_{k}" for k in range(self.blocks)), *(f"hi_{k}" for k in range(self.blocks)),
                "armed_low", "armed_high", "holdoff")

    def _excess(self, value: float, predicted: float, lo: float, hi: float) -> tuple[float, float]:
        """How far the tested value lies below lo and above hi (negative inside)."""
        below, above = lo - value, value - hi
        if self.test == "reading":
            return below, above
        below_p, above_p = lo - predicted, predicted - hi
        if self.test == "prediction":
            return below_p, above_p
        if self.test == "both":  # the reading and the prediction beyond the range, same side
            return min(below, below_p), min(above, above_p)
        return max(below, below_p), max(above, above_p)  # "either"

    def judge(self, observed: Observed, state: Mapping[str, float]) -> Decision:
        value, predicted = observed.value, observed.predicted
        count = _float(state, "count", 0.0)
        level = _float(state, "level_mean", 0.0)
        block_n = _float(state, "block_n", 0.0)
        block_lo = _float(state, "block_lo", 0.0)
        block_hi = _float(state, "block_hi", 0.0)
        days = int(min(max(_float(state, "days", 0.0), 0.0), float(self.blocks)))
        los = [_float(state, f"lo_{k}", 0.0) for k in range(self.blocks)]
        his = [_float(state, f"hi_{k}", 0.0) for k in range(self.blocks)]
        armed_low = _float(state, "armed_low", 1.0) > 0.0
        armed_high = _float(state, "armed_high", 1.0) > 0.0
        holdoff = _float(state, "holdoff", 0.0)

        if count > 0.0:  # back at or across the running level: that side may alarm again
            armed_low = armed_low or value >= level
            armed_high = armed_high or value <= level
        seen_lo = los[:days] + ([block_lo] if block_n > 0.0 else [])
        seen_hi = his[:days] + ([block_hi] if block_n > 0.0 else [])
        if seen_lo:
            below, above = self._excess(value, predicted, min(seen_lo), max(seen_hi))
        else:
            below = above = -math.inf
        error = max(below, above)
        beyond_low = self.sides in ("both", "low") and below > self.threshold
        beyond_high = self.sides in ("both", "high") and above > self.threshold
        low, high = armed_low and beyond_low, armed_high and beyond_high
        anomaly = count >= self.min_count and holdoff <= 0.0 and (low or high)
        note = self._why_quiet(count, holdoff, beyond_low or beyond_high)
        if note is None and not anomaly and (beyond_low or beyond_high):
            side = "low" if beyond_low else "high"
            note = (f"beyond the range, but part of the excursion already flagged: the {side} "
                    f"side alarms again once a reading is back at the sensor's mean level "
                    f"({level:.2f})")
        if anomaly:
            armed_low, armed_high = armed_low and not low, armed_high and not high

        count, level = _running(count, level, value, self.memory)
        block_lo = min(block_lo, value) if block_n > 0.0 else value
        block_hi = max(block_hi, value) if block_n > 0.0 else value
        block_n += 1.0
        if block_n >= self.block:
            los, his = [block_lo] + los[:-1], [block_hi] + his[:-1]
            days = min(days + 1, self.blocks)
            block_n, block_lo, block_hi = 0.0, 0.0, 0.0
        holdoff = self.holdoff if anomaly else max(0.0, holdoff - 1.0)
        new_state = {"count": count, "level_mean": level, "block_n": block_n,
                     "block_lo": block_lo, "block_hi": block_hi, "days": float(days),
                     **{f"lo_{k}": x for k, x in enumerate(los)},
                     **{f"hi_{k}": x for k, x in enumerate(his)},
                     "armed_low": 1.0 if armed_low else 0.0,
                     "armed_high": 1.0 if armed_high else 0.0, "holdoff": holdoff}
        # one alarm per excursion already: each anomalous reading starts an event
        return Decision(anomaly, anomaly, error if math.isfinite(error) else 0.0,
                        self.threshold, new_state, note)

    def _why_quiet(self, count: float, holdoff: float, beyond: bool) -> str | None:
        """The warm-up and the hold-off, in words (None when neither applies)."""
        if count < self.min_count:
            return (f"learning: the sensor has {int(count)} of the {int(self.min_count)} judged "
                    "readings it needs before it may alarm")
        if beyond and holdoff > 0:
            return (f"beyond the threshold, but within the hold-off after the last alarm "
                    f"({int(holdoff)} readings left)")
        return None


RULES: dict[str, Callable[[Mapping[str, Any], float | None], Rule]] = {
    "abs_error": AbsError, "record_level": RecordLevel}
