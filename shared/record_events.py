"""`record_events`, the shipped decision rule: records of level and of surprise against the
sensor's own normal, grouped into events, with what normal is in every verdict.

Tests on each reading (every time scale a duration from the timestamps):
1. gross departure, from the first judgement: beyond the sensor's normal range (see below;
   at least its window) and away from the
   model's prediction, both by more than `gross` scales (the largest of the window's spread
   without its farthest reading, the model's typical error and `level_floor` of the level);
2. range record, once learned (after `learning_s`): beyond that normal range of the last
   `range_days` calendar days by more than `range_margin` of its span, and at least
   `record_z` typical errors from the time-of-day profile (a slow wander or a season's new
   high that the profile follows is no event);
3. pattern surprise, once learned: z = (reading - the time-of-day profile, or the model's
   prediction before the profile has seen this time of day) / the typical error (the smaller
   of a day's and a week's); two averages of min(|z|, `z_clip`) (`fast_s`, `slow_s`) flag
   when they beat their own records of the last `fast_days` (`slow_days`) days by
   `fast_ratio` (`slow_ratio`);
4. stuck: the same value for `stuck_factor` times longer (in readings and in time) than any
   run of one value the sensor showed before, and at least `min_readings` readings.

Events after events: the range leaves out a past day whose extreme stands out from all the
others (beyond them by more than they span), so one spike's day does not hide a similar spike
the next day; a level shift that stays is in the range from its second day; a spike does not
inflate the typical errors (their updates are capped at `z_clip` typical errors).
Each kind (high, low, pattern, stuck) pages once per event: not again within `holdoff_s`
unless its departure grows `escalation` fold. A reading after a silence of more than
`gap_factor` times the sensor's usual cadence says so in its note.

What normal is: `expected` (the profile, or the model's prediction), `lower`/`upper` (the band
outside which this reading alone is anomalous: the range test's edges once learned, the gross
test's before), `severity` 0-100 (50 where a test flags), `explanation` in words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .record_memory import (
    DAY_MS,
    NEVER,
    SECOND_MS,
    SIDES,
    checked,
    extend_today,
    new_sensor,
    roll_days,
)
from .record_words import duration, explanation, held_note, learning_notes, meaning
from .verdict import Decision, Observed, number, threshold, whole


def _weight(dt: float, tau: float) -> float:
    """Weight of a new value in an exponential average of time constant tau after dt."""
    return 1.0 - math.exp(-dt / tau) if dt > 0.0 else 0.0


def _spread(window: tuple[float, ...]) -> float:
    """The standard deviation of the window without its reading farthest from the median:
    one spike in the window does not widen it (a window of one reading has none)."""
    if len(window) < 3:
        return 0.0
    median = sorted(window)[len(window) // 2]
    farthest = max(range(len(window)), key=lambda i: abs(window[i] - median))
    rest = [w for i, w in enumerate(window) if i != farthest]
    mean = sum(rest) / len(rest)
    return math.sqrt(sum((w - mean) ** 2 for w in rest) / len(rest))


@dataclass(frozen=True)
class Normal:
    """What the sensor's normal is when a reading arrives, before it is judged."""

    lo: float         # the normal range of the last `range_days` days
    hi: float
    span: float       # its width (floored)
    expected: float   # the time-of-day profile, or the model's prediction
    sigma: float      # the typical error against `expected`
    scale: float      # the gross test's scale
    bin: int          # the time-of-day bin
    have_bin: bool    # the profile has seen this time of day


@dataclass(frozen=True)
class Tests:
    """What each test says of a reading."""

    record: dict[str, bool]   # a new excursion beyond the range (gross or range record), per side
    beyond: dict[str, bool]   # still beyond the edge an excursion broke, per side
    above: float              # departure beyond the range, in spans
    below: float
    pattern: bool
    fast: float               # surprise averages against their records
    slow: float
    m_fast: float
    m_slow: float
    z: float
    stuck: bool

    def flagged(self, side: str) -> bool:
        return self.record[side] or self.beyond[side]

    @property
    def excursion(self) -> bool:
        return any(self.flagged(side) for side in SIDES)

    @property
    def kinds(self) -> tuple[str, ...]:
        flags = (("stuck", self.stuck), ("high", self.flagged("high")),
                 ("low", self.flagged("low")), ("pattern", self.pattern))
        return tuple(kind for kind, flagged in flags if flagged)


class RecordEvents:
    """See the module's docstring. State: a flat dict of floats (the store's hash), its keys
    listed in record_memory's `new_sensor` and `roll_days`; about 140 floats once a month
    is seen."""

    name = "record_events"

    @property
    def meaning(self) -> str:
        return meaning(self.range_days, 100 * self.range_margin / self.threshold)

    def __init__(self, decision: Mapping[str, Any], threshold_override: float | None):
        self.threshold = threshold(decision, threshold_override, 1.0)
        if self.threshold <= 0.0:  # it scales what flags: 0 would flag every reading
            where = "THRESHOLD" if threshold_override is not None else "decision.threshold"
            raise ValueError(f"{where}: record_events needs a number > 0, got {self.threshold!r}")
        self.learning = number(decision, "learning_s", 0.0) * SECOND_MS
        self.min_readings = number(decision, "min_readings", 1.0, 1.0)
        self.error_memory = number(decision, "error_memory_s", 1.0) * SECOND_MS
        self.error_memory_long = number(decision, "error_memory_long_s", 1.0) * SECOND_MS
        self.profile_bin = whole(decision, "profile_bin_s") * SECOND_MS
        if DAY_MS % self.profile_bin:
            raise ValueError("decision.profile_bin_s: record_events needs a bin that divides "
                             f"a day (86400 s), got {decision['profile_bin_s']!r}")
        self.profile_tau = number(decision, "profile_memory_days", 1e-3) * self.profile_bin
        self.fast = number(decision, "fast_s", 1.0) * SECOND_MS
        self.slow = number(decision, "slow_s", 1.0) * SECOND_MS
        self.fast_days = whole(decision, "fast_days")
        self.slow_days = whole(decision, "slow_days")
        self.fast_ratio = number(decision, "fast_ratio", 1e-6) * self.threshold
        self.slow_ratio = number(decision, "slow_ratio", 1e-6) * self.threshold
        self.range_days = whole(decision, "range_days")
        self.range_margin = number(decision, "range_margin", 0.0) * self.threshold
        self.gross = number(decision, "gross", 1e-6)
        self.z_clip = number(decision, "z_clip", 1e-6)
        self.holdoff = number(decision, "holdoff_s", 0.0) * SECOND_MS
        self.escalation = number(decision, "escalation", 1.0)
        self.level_floor = number(decision, "level_floor", 1e-12)
        self.stuck_factor = number(decision, "stuck_factor", 1.0, math.inf)
        self.gap_factor = number(decision, "gap_factor", 1.0, math.inf)
        self.record_z = number(decision, "record_z", 0.0, 0.0)

    def judge(self, observed: Observed, state: Mapping[str, float]) -> Decision:
        s = checked(state)
        t = float(observed.timestamp)
        if s.get("n", 0.0) == 0.0:
            new_sensor(s, t, observed.window, self.level_floor)
        dt = max(t - s["t_last"], 0.0)
        silence = self._silence(s, dt)
        roll_days(s, float(t // DAY_MS), self.fast_days, self.slow_days, self.range_days)
        learned = t - s["t0"] >= self.learning
        normal = self._normal(s, observed)
        tests = self._tests(s, observed, normal, dt, learned)
        alerted, held, resolved = self._events(s, t, tests)
        self._learn(s, observed, normal, tests, dt, learned)
        return self._decision(s, observed, normal, tests, learned, alerted, held, resolved,
                              silence)

    # -- the steps of a judgement -------------------------------------------------------

    def _silence(self, s: dict[str, float], dt: float) -> str | None:
        """The sensor's usual cadence learned; a reading after a long silence says so."""
        cadence = s.get("cadence", 0.0)
        note = None
        if cadence > 0.0 and dt > self.gap_factor * cadence:
            note = (f"first reading after a silence of {duration(dt)} (this sensor usually "
                    f"sends one every {duration(cadence)})")
        if dt > 0.0:
            s["cadence"] = dt if cadence == 0.0 else cadence + 0.05 * (
                min(dt, self.gap_factor * cadence) - cadence)
        return note

    def _normal(self, s: Mapping[str, float], observed: Observed) -> Normal:
        lo, hi = s["lo_past"], s["hi_past"]
        if s["lo_today"] <= s["hi_today"]:
            lo, hi = ((min(lo, s["lo_today"]), max(hi, s["hi_today"])) if lo <= hi
                      else (s["lo_today"], s["hi_today"]))
        span = max(hi - lo, self.level_floor * abs(hi), 1e-9)
        floor = max(self.level_floor * abs(sum(observed.window) / len(observed.window)), 1e-9)
        k = int((observed.timestamp % DAY_MS) // self.profile_bin)
        have_bin = f"pm_{k}" in s
        if have_bin:
            expected = s[f"pm_{k}"]
            sigma = math.sqrt(min(s["tvar"], s["tvar_long"]) + floor * floor)
        else:
            expected = observed.predicted
            sigma = math.sqrt(s["gvar"] + floor * floor)
        scale = max(_spread(observed.window), math.sqrt(s["gvar"]), floor)
        return Normal(lo, hi, span, expected, sigma, scale, k, have_bin)

    def _tests(self, s: dict[str, float], observed: Observed, normal: Normal, dt: float,
               learned: bool) -> Tests:
        x, t = observed.value, float(observed.timestamp)
        above, below = (x - normal.hi) / normal.span, (normal.lo - x) / normal.span
        model_error = x - observed.predicted
        gross = self.gross * normal.scale
        z = (x - normal.expected) / normal.sigma
        surprising = abs(z) >= self.record_z
        record = {"high": (x - normal.hi > gross and model_error > gross)
                  or (learned and above > self.range_margin and surprising),
                  "low": (normal.lo - x > gross and -model_error > gross)
                  or (learned and below > self.range_margin and surprising)}
        beyond = {"high": s["in_high"] > 0.0 and x > s["edge_high"],
                  "low": s["in_low"] > 0.0 and x < s["edge_low"]}
        clipped = min(abs(z), self.z_clip)
        m_fast = s["m_fast"] + _weight(dt, self.fast) * (clipped - s["m_fast"])
        m_slow = s["m_slow"] + _weight(dt, self.slow) * (clipped - s["m_slow"])
        fast_record = max(s["fmax_past"], s["fmax_today"])
        slow_record = max(s["smax_past"], s["smax_today"])
        fast = m_fast / fast_record if fast_record > 0.0 else 0.0
        slow = m_slow / slow_record if slow_record > 0.0 else 0.0
        pattern = learned and (fast >= self.fast_ratio or slow >= self.slow_ratio)
        stuck = learned and self._stuck(s, x, t, observed.window[0])
        return Tests(record, beyond, above, below, pattern, fast, slow, m_fast, m_slow, z, stuck)

    def _stuck(self, s: dict[str, float], x: float, t: float, before: float) -> bool:
        """The run of this one value against the longest the sensor showed before."""
        if x != before:
            return False
        readings = s["run_n"] + 1.0
        return (readings >= max(self.stuck_factor * s["run_max_n"], self.min_readings)
                and t - s["run_t0"] >= self.stuck_factor * s["run_max_ms"])

    def _events(self, s: dict[str, float], t: float,
                tests: Tests) -> tuple[list[str], list[str], str | None]:
        """Which kinds page (one alert per event and kind), which are part of an event
        already paged, and which paged event this reading closes."""
        alerted: list[str] = []
        held: list[str] = []
        for side, departure in (("high", tests.above), ("low", tests.below)):
            if not tests.flagged(side):
                continue
            if not tests.record[side]:  # still beyond the edge it broke: the same event
                held.append(side)
                continue
            departure = max(departure - self.range_margin, 1e-12)
            if t - s[f"last_{side}"] >= self.holdoff or departure > self.escalation * s[f"mag_{side}"]:
                alerted.append(side)
                s[f"last_{side}"], s[f"mag_{side}"] = t, departure
            else:
                held.append(side)
        for kind, flagged in (("stuck", tests.stuck), ("pattern", tests.pattern)):
            if kind == "pattern" and (alerted or tests.stuck):
                s["last_pattern"] = t  # one spike, one page: its surprise is the same event
            if flagged and s.get(f"open_{kind}", 0.0) == 0.0 and \
                    t - s.get(f"last_{kind}", NEVER) >= self.holdoff:
                alerted.append(kind)
                s[f"last_{kind}"] = t
            elif flagged:
                held.append(kind)
        resolved = None
        flagged_now = set(tests.kinds)
        for kind in ("stuck", "high", "low", "pattern"):
            if kind in alerted:
                s[f"open_{kind}"] = 1.0
            elif s.get(f"open_{kind}", 0.0) > 0.0 and kind not in flagged_now:
                s[f"open_{kind}"] = 0.0
                resolved = resolved or kind
        return alerted, held, resolved

    def _learn(self, s: dict[str, float], observed: Observed, normal: Normal, tests: Tests,
               dt: float, learned: bool) -> None:
        """Learn from the reading, after judging it."""
        x, t = observed.value, float(observed.timestamp)
        edges = {"high": normal.hi + self.range_margin * normal.span,
                 "low": normal.lo - self.range_margin * normal.span}
        for side in SIDES:
            if tests.record[side] and not tests.beyond[side]:  # a new excursion: its edge
                s[f"in_{side}"], s[f"edge_{side}"] = 1.0, edges[side]
            elif not tests.beyond[side]:
                s[f"in_{side}"] = 0.0
        extend_today(s, x)
        self._learn_errors(s, observed, normal, dt)
        s["fmax_today"] = max(s["fmax_today"], tests.m_fast)
        s["smax_today"] = max(s["smax_today"], tests.m_slow)
        s["m_fast"], s["m_slow"] = tests.m_fast, tests.m_slow
        self._learn_runs(s, x, t, observed.window[0], learned)
        s["n"] += 1.0
        s["t_last"] = max(s["t_last"], t)

    def _learn_errors(self, s: dict[str, float], observed: Observed, normal: Normal,
                      dt: float) -> None:
        x = observed.value
        model_error = x - observed.predicted
        s["gvar"] += _weight(dt, self.error_memory) * (
            min(model_error ** 2, self.z_clip ** 2 * s["gvar"]) - s["gvar"])
        key = f"pm_{normal.bin}"
        if normal.have_bin:
            error2 = (x - normal.expected) ** 2
            s["tvar"] += _weight(dt, self.error_memory) * (error2 - s["tvar"])
            s["tvar_long"] += _weight(dt, self.error_memory_long) * (error2 - s["tvar_long"])
            weight = _weight(min(dt, self.profile_bin), self.profile_tau)
            s[key] = normal.expected + weight * (x - normal.expected)
        else:
            s[key] = x

    def _learn_runs(self, s: dict[str, float], x: float, t: float, before: float,
                    learned: bool) -> None:
        """The current run of one value, and the longest the sensor showed (while it
        learns, the current run counts as shown)."""
        if x == before:
            s["run_n"] += 1.0
        else:
            s["run_max_n"] = max(s["run_max_n"], s["run_n"])
            s["run_max_ms"] = max(s["run_max_ms"], s["t_last"] - s["run_t0"])
            s["run_n"], s["run_t0"] = 1.0, t
        if not learned:
            s["run_max_n"] = max(s["run_max_n"], s["run_n"])
            s["run_max_ms"] = max(s["run_max_ms"], t - s["run_t0"])

    def _decision(self, s: dict[str, float], observed: Observed, normal: Normal, tests: Tests,
                  learned: bool, alerted: list[str], held: list[str], resolved: str | None,
                  silence: str | None) -> Decision:
        kinds = tests.kinds
        anomaly = bool(kinds)
        error = max(max(tests.above, tests.below) / self.range_margin if self.range_margin else 0.0,
                    tests.fast / self.fast_ratio, tests.slow / self.slow_ratio) * self.threshold
        if learned:
            lower = normal.lo - self.range_margin * normal.span
            upper = normal.hi + self.range_margin * normal.span
        else:
            lower = normal.lo - self.gross * normal.scale
            upper = normal.hi + self.gross * normal.scale
        ratio = error / self.threshold
        severity = round(100 * ratio / (1 + ratio))
        severity = max(severity, 50) if anomaly else min(severity, 49)
        why_held = held_note(s, held, self.holdoff, self.escalation) if held and not alerted else None
        notes = [part for part in (silence, why_held) if part]
        return Decision(
            anomaly, bool(alerted), error, self.threshold, s, "; ".join(notes) or None, kinds,
            learning_notes(s, learned, self.learning, self.profile_bin),
            expected=normal.expected, lower=lower, upper=upper,
            severity=severity, kind=kinds[0] if kinds else None, resolved=resolved,
            explanation=explanation(s, observed, normal, tests, lower, upper))
