"""Decision rules: (a reading as observed, per-sensor state) -> verdict.

What a rule sees of a reading (`Observed`): its value and timestamp, the learned model's
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
    month's range and of surprise against the sensor's time-of-day profile once it has learned
    for a day; one alert per event. Every time scale is a duration. See `RecordEvents`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .timestamps import clock


@dataclass(frozen=True)
class Decision:
    anomaly: bool          # this reading is anomalous
    alert: bool            # it starts a new event: what an operator is paged for
    error: float
    threshold: float
    state: dict[str, float] = field(default_factory=dict)
    note: str | None = None  # why a reading was not flagged when an operator may expect it
    kinds: tuple[str, ...] = ()     # what kind of departure flagged it (rules that say)
    learning: tuple[str, ...] = ()  # which parts of the rule are still learning the sensor


@dataclass(frozen=True)
class Observed:
    value: float
    predicted: float               # the model's prediction of `value` from `window`
    timestamp: int                 # ms since the epoch
    window: tuple[float, ...] = () # the readings before it, newest first


class Rule(Protocol):
    name: str
    threshold: float
    meaning: str  # what `error` and `threshold` are under this rule, in an operator's words

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


def _threshold(decision: Mapping[str, Any], override: float | None, default: float | None = None) -> float:
    if override is not None:
        return float(override)
    return _number(decision, "threshold", 0.0, default)


class AbsError:
    name = "abs_error"
    meaning = ("error: how far the reading is from the model's prediction of it, in degrees. "
               "An anomaly when the error is above the threshold.")

    def __init__(self, decision: Mapping[str, Any], threshold_override: float | None):
        self.threshold = _threshold(decision, threshold_override)

    def judge(self, observed: Observed, state: Mapping[str, float]) -> Decision:
        error = abs(observed.value - observed.predicted)
        anomaly = error > self.threshold  # stateless: every anomalous reading is an event
        return Decision(anomaly, anomaly, error, self.threshold, dict(state))


SECOND_MS = 1000.0
HOUR_MS = 3600 * SECOND_MS
DAY_MS = 24 * HOUR_MS
NEVER = -1e18   # "no alert yet", as a finite float: the state stays a hash of numbers
NO_MAX = -1.0   # a surprise average is never negative: "no record yet"


def _weight(dt: float, tau: float) -> float:
    """Weight of a new value in an exponential average of time constant tau after dt."""
    return 1.0 - math.exp(-dt / tau) if dt > 0.0 else 0.0


class RecordEvents:
    """Records of level and of surprise, grouped into events (ours, shipped).

    Three tests, every time scale a duration from the readings' timestamps:
    1. gross departure, from the first judgement: the reading lies beyond everything the
       sensor showed this month (at least its window) and away from the model's prediction,
       both by more than `gross` scales (the largest of the window's spread, the model's
       typical error so far and `level_floor` of the level): the replaced system's
       |reading - predicted| > THRESHOLD, made scale-free;
    2. range record, after `learning_s`: beyond the highest (lowest) reading of the last
       `range_days` calendar days by more than `range_margin` of that range;
    3. pattern surprise, after `learning_s`: z = (reading - expected) / typical error (the
       smaller of the last day's and the last week's, time constants `error_memory_s` and
       `error_memory_long_s`: after a burst the week's still counts the next one), expected
       being the sensor's time-of-day profile (`profile_bin_s` bins, each an exponential
       average over `profile_memory_days` days of that bin), or the model's prediction while
       the profile has not seen this time of day; two exponential averages of min(|z|,
       `z_clip`) (time constants `fast_s`, `slow_s`) flag when they beat their own record of
       the last `fast_days` (`slow_days`) calendar days by `fast_ratio` (`slow_ratio`).
    `anomaly` is any test. `alert` (what pages an operator, what NAB scores): the reading
    starts an event. Kinds are high and low (gross or range) and pattern; a kind alerts unless
    it alerted within `holdoff_s`, a side alerts again within it when its departure beyond the
    range exceeds `escalation` times the one it alerted with, and a side's alert also holds the
    pattern kind (one spike, one page). Every reading of an excursion is anomalous while it
    stays beyond the edge of the range it broke, a record or not. error / threshold: the strongest learned test as a
    fraction of what flags it (departure / margin, average / (record x ratio)), against 1.0;
    `THRESHOLD` scales what flags every learned test (2: twice the margin and the ratios).
    Irregular cadence and gaps: each average weighs a reading by the time since the one before;
    a timestamp not after the latest one is judged but moves no average.
    State (floats, about 150 once a month and every time of day are seen): n, t0, t_last,
    gvar (model error variance), tvar, tvar_long (profile error variance over a day and a
    week), pm_<bin> (the profile),
    m_fast, m_slow, day (the UTC day of the *_today keys), fmax_/smax_ today, <j> (past days)
    and past (their maxima), lo_/hi_ today, <j>, past (the month's range), last_high,
    last_low, last_pattern (ms of each kind's last alert), mag_high, mag_low, in_high, in_low
    (1 during an excursion), edge_high, edge_low (the edge it broke).
    """

    name = "record_events"

    @property
    def meaning(self) -> str:
        margin = 100 * self.range_margin / self.threshold
        return (f"error: the strongest of the rule's learned tests as a multiple of what flags "
                f"it: how far the reading lies beyond the sensor's range of the last "
                f"{self.range_days} days (against {margin:g}% of that range), or how far its "
                "recent surprise beats its record. Those tests flag once the error reaches the "
                "threshold; a gross departure from the model and the month's range flags "
                "whatever the error, from the first reading, and an excursion stays anomalous "
                "while it stays beyond the edge it broke.")

    def __init__(self, decision: Mapping[str, Any], threshold_override: float | None):
        self.threshold = _threshold(decision, threshold_override, 1.0)
        if self.threshold <= 0.0:  # it scales what flags: 0 would flag every reading
            where = "THRESHOLD" if threshold_override is not None else "decision.threshold"
            raise ValueError(f"{where}: record_events needs a number > 0, got {self.threshold!r}")
        self.learning = _number(decision, "learning_s", 0.0) * SECOND_MS
        self.error_memory = _number(decision, "error_memory_s", 1.0) * SECOND_MS
        self.error_memory_long = _number(decision, "error_memory_long_s", 1.0) * SECOND_MS
        self.profile_bin = _whole(decision, "profile_bin_s") * SECOND_MS
        if DAY_MS % self.profile_bin:
            raise ValueError("decision.profile_bin_s: record_events needs a bin that divides "
                             f"a day (86400 s), got {decision['profile_bin_s']!r}")
        self.profile_tau = _number(decision, "profile_memory_days", 1e-3) * self.profile_bin
        self.fast = _number(decision, "fast_s", 1.0) * SECOND_MS
        self.slow = _number(decision, "slow_s", 1.0) * SECOND_MS
        self.fast_days = _whole(decision, "fast_days")
        self.slow_days = _whole(decision, "slow_days")
        self.fast_ratio = _number(decision, "fast_ratio", 1e-6) * self.threshold
        self.slow_ratio = _number(decision, "slow_ratio", 1e-6) * self.threshold
        self.range_days = _whole(decision, "range_days")
        self.range_margin = _number(decision, "range_margin", 0.0) * self.threshold
        self.gross = _number(decision, "gross", 1e-6)
        self.z_clip = _number(decision, "z_clip", 1e-6)
        self.holdoff = _number(decision, "holdoff_s", 0.0) * SECOND_MS
        self.escalation = _number(decision, "escalation", 1.0)
        self.level_floor = _number(decision, "level_floor", 1e-12)

    def judge(self, observed: Observed, state: Mapping[str, float]) -> Decision:
        s = dict(state)
        if not all(map(math.isfinite, s.values())):
            bad = next(key for key, value in s.items() if not math.isfinite(value))
            raise ValueError(f"detector state {bad!r} is not a finite number: {s[bad]!r}")
        x, t, predicted, window = observed.value, float(observed.timestamp), observed.predicted, observed.window
        mean = sum(window) / len(window)
        spread2 = sum((w - mean) ** 2 for w in window) / len(window)
        floor = max(self.level_floor * abs(mean), 1e-9)
        n = s.get("n", 0.0)
        if n == 0.0:
            self._new_sensor(s, t, window, spread2, floor)
        dt = max(t - s["t_last"], 0.0)
        self._roll_days(s, float(t // DAY_MS))
        learned = t - s["t0"] >= self.learning

        # the month's range: past days and today's readings before this one (at least the window)
        lo, hi = s["lo_past"], s["hi_past"]
        if s["lo_today"] <= s["hi_today"]:
            lo, hi = ((min(lo, s["lo_today"]), max(hi, s["hi_today"])) if lo <= hi
                      else (s["lo_today"], s["hi_today"]))
        span = max(hi - lo, self.level_floor * abs(hi), 1e-9)
        above, below = (x - hi) / span, (lo - x) / span

        # 1. gross departure: beyond the month and away from the model by `gross` scales
        model_error = x - predicted
        scale = max(math.sqrt(spread2), math.sqrt(s["gvar"]), floor)
        gross_high = x - hi > self.gross * scale and model_error > self.gross * scale
        gross_low = lo - x > self.gross * scale and -model_error > self.gross * scale
        # 2. range record of the month
        range_high = learned and above > self.range_margin
        range_low = learned and below > self.range_margin
        # 3. pattern surprise against the time-of-day profile (the model's prediction meanwhile)
        k = int((t % DAY_MS) // self.profile_bin)
        have_bin = f"pm_{k}" in s
        if have_bin:
            expected = s[f"pm_{k}"]
            z = (x - expected) / math.sqrt(min(s["tvar"], s["tvar_long"]) + floor * floor)
        else:
            expected = predicted
            z = model_error / math.sqrt(s["gvar"] + floor * floor)
        clipped = min(abs(z), self.z_clip)
        m_fast = s["m_fast"] + _weight(dt, self.fast) * (clipped - s["m_fast"])
        m_slow = s["m_slow"] + _weight(dt, self.slow) * (clipped - s["m_slow"])
        fast_record = max(s["fmax_past"], s["fmax_today"])
        slow_record = max(s["smax_past"], s["smax_today"])
        fast = m_fast / fast_record if fast_record > 0.0 else 0.0
        slow = m_slow / slow_record if slow_record > 0.0 else 0.0
        pattern = learned and (fast >= self.fast_ratio or slow >= self.slow_ratio)
        record = {"high": gross_high or range_high, "low": gross_low or range_low}
        # an excursion stays anomalous while it stays beyond the edge it broke, record or not
        edges = {"high": hi + self.range_margin * span, "low": lo - self.range_margin * span}
        beyond = {"high": s["in_high"] > 0.0 and x > s["edge_high"],
                  "low": s["in_low"] > 0.0 and x < s["edge_low"]}
        for side in ("high", "low"):
            if record[side] and not beyond[side]:  # a new excursion: remember its edge
                s[f"in_{side}"], s[f"edge_{side}"] = 1.0, edges[side]
            elif not beyond[side]:
                s[f"in_{side}"] = 0.0
        high, low = record["high"] or beyond["high"], record["low"] or beyond["low"]
        anomaly = high or low or pattern

        # alerts: one per event and kind; a much larger departure or another kind pages again
        alerted, held = [], []
        for side, flagged, departure in (("high", high, above), ("low", low, below)):
            if flagged and not record[side]:  # still beyond the edge it broke: the same event
                held.append(side)
            elif flagged:
                departure = max(departure - self.range_margin, 1e-12)
                if t - s[f"last_{side}"] >= self.holdoff or departure > self.escalation * s[f"mag_{side}"]:
                    alerted.append(side)
                    s[f"last_{side}"], s[f"mag_{side}"] = t, departure
                else:
                    held.append(side)
        if pattern:
            (alerted if t - s["last_pattern"] >= self.holdoff else held).append("pattern")
        if alerted:
            s["last_pattern"] = t

        # learn from this reading, after judging it
        s["gvar"] += _weight(dt, self.error_memory) * (model_error * model_error - s["gvar"])
        if have_bin:
            error2 = (x - expected) ** 2
            s["tvar"] += _weight(dt, self.error_memory) * (error2 - s["tvar"])
            s["tvar_long"] += _weight(dt, self.error_memory_long) * (error2 - s["tvar_long"])
            weight = _weight(min(dt, self.profile_bin), self.profile_tau)
            s[f"pm_{k}"] = expected + weight * (x - expected)
        else:
            s[f"pm_{k}"] = x
        s["m_fast"], s["m_slow"] = m_fast, m_slow
        s["fmax_today"] = max(s["fmax_today"], m_fast)
        s["smax_today"] = max(s["smax_today"], m_slow)
        if s["lo_today"] <= s["hi_today"]:
            s["lo_today"], s["hi_today"] = min(s["lo_today"], x), max(s["hi_today"], x)
        else:
            s["lo_today"] = s["hi_today"] = x
        s["n"] = n + 1.0
        s["t_last"] = max(s["t_last"], t)

        error = max(max(above, below) / self.range_margin if self.range_margin else 0.0,
                    fast / self.fast_ratio, slow / self.slow_ratio) * self.threshold
        kinds = tuple(kind for kind, flagged in (("high", high), ("low", low), ("pattern", pattern))
                      if flagged)
        return Decision(anomaly, bool(alerted), error, self.threshold, s,
                        self._held_note(s, held) if held and not alerted else None,
                        kinds, self._learning(s, learned))

    def _new_sensor(self, s: dict[str, float], t: float, window: tuple[float, ...],
                    spread2: float, floor: float) -> None:
        s["t0"] = s["t_last"] = t
        s["gvar"] = s["tvar"] = s["tvar_long"] = max(spread2, floor * floor)
        s["m_fast"] = s["m_slow"] = 0.0
        s["last_high"] = s["last_low"] = s["last_pattern"] = NEVER
        s["mag_high"] = s["mag_low"] = 0.0
        s["in_high"] = s["in_low"] = s["edge_high"] = s["edge_low"] = 0.0
        s["lo_today"], s["hi_today"] = min(window), max(window)  # the window is all it knows
        s["lo_past"], s["hi_past"] = 1.0, 0.0
        s["fmax_today"] = s["smax_today"] = s["fmax_past"] = s["smax_past"] = NO_MAX
        s["day"] = float(t // DAY_MS)

    def _roll_days(self, s: dict[str, float], day: float) -> None:
        """A new calendar day: today's maxima and range join the past-day rings (empty days
        for a gap), the oldest leave, and the past maxima are computed once."""
        shift = int(day - s["day"])
        if shift <= 0:
            return
        for name, keep in (("fmax", self.fast_days - 1), ("smax", self.slow_days - 1)):
            ring = [s.get(f"{name}_{j}", NO_MAX) for j in range(keep)]
            ring = ([s[f"{name}_today"]] + [NO_MAX] * (shift - 1) + ring)[:keep]
            for j, value in enumerate(ring):
                s[f"{name}_{j}"] = value
            s[f"{name}_today"] = NO_MAX
            s[f"{name}_past"] = max(ring + [NO_MAX])
        keep = self.range_days - 1
        los = ([s["lo_today"]] + [1.0] * (shift - 1) + [s.get(f"lo_{j}", 1.0) for j in range(keep)])[:keep]
        his = ([s["hi_today"]] + [0.0] * (shift - 1) + [s.get(f"hi_{j}", 0.0) for j in range(keep)])[:keep]
        lo_past, hi_past = math.inf, -math.inf
        for j in range(keep):
            s[f"lo_{j}"], s[f"hi_{j}"] = los[j], his[j]
            if los[j] <= his[j]:
                lo_past, hi_past = min(lo_past, los[j]), max(hi_past, his[j])
        s["lo_past"], s["hi_past"] = (lo_past, hi_past) if lo_past <= hi_past else (1.0, 0.0)
        s["lo_today"], s["hi_today"] = 1.0, 0.0
        s["day"] = day

    def _held_note(self, s: Mapping[str, float], held: list[str]) -> str:
        """Why an anomalous reading did not page: each kind's event is already alerted."""
        hours = f"{self.holdoff / HOUR_MS:g} h"
        return "; ".join(
            f"{kind}: part of the event alerted at {clock(s['last_' + kind])} (no new alert for "
            f"{hours}" + (f" unless it goes {self.escalation:g} times as far)" if kind != "pattern" else ")")
            for kind in held)

    def _learning(self, s: Mapping[str, float], learned: bool) -> tuple[str, ...]:
        parts = []
        if not learned:
            parts.append(f"the range and pattern tests learn the sensor until "
                         f"{clock(s['t0'] + self.learning)}; meanwhile only gross departures flag")
        bins = int(DAY_MS // self.profile_bin)
        seen = sum(1 for k in range(bins) if f"pm_{k}" in s)
        if seen < bins:
            parts.append(f"the time-of-day profile has seen {seen} of its {bins} "
                         f"{self.profile_bin / 60_000:g}-minute bins")
        return tuple(parts)


RULES: dict[str, Callable[[Mapping[str, Any], float | None], Rule]] = {
    "abs_error": AbsError, "record_events": RecordEvents}
