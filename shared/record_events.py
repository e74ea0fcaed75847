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

from .timestamps import clock
from .verdict import Decision, Observed, number, threshold, whole

SECOND_MS = 1000.0
HOUR_MS = 3600 * SECOND_MS
DAY_MS = 24 * HOUR_MS
NEVER = -1e18   # "no alert yet", as a finite float: the state stays a hash of numbers
NO_MAX = -1.0   # a surprise average is never negative: "no record yet"
SIDES = ("high", "low")
# keys a state from before the stuck test lacks (None: the latest reading's time)
UPGRADE: dict[str, float | None] = {
    "last_stuck": NEVER,
    "run_n": 1.0, "run_t0": None, "run_max_n": 1.0, "run_max_ms": 0.0}


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


def _duration(ms: float) -> str:
    hours = ms / HOUR_MS
    return f"{ms / 60_000:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 \
        else f"{hours / 24:.1f} days"


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
    listed in `_new_sensor` and `_roll_days`; about 140 floats once a month is seen."""

    name = "record_events"

    @property
    def meaning(self) -> str:
        margin = 100 * self.range_margin / self.threshold
        return (f"error: the strongest of the rule's learned tests as a multiple of what flags "
                f"it: how far the reading lies beyond the sensor's normal range of the last "
                f"{self.range_days} days (against {margin:g}% of that range), or how far its "
                "recent surprise beats its record. Those tests flag once the error reaches the "
                "threshold; a gross departure from the model and the normal range flags "
                "whatever the error, from the first reading, and a stuck sensor flags when it "
                "repeats one value far longer than it ever did. lower and upper: the band "
                "outside which this reading alone is anomalous.")

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
        s = self._checked(state)
        t = float(observed.timestamp)
        if s.get("n", 0.0) == 0.0:
            self._new_sensor(s, t, observed.window)
        dt = max(t - s["t_last"], 0.0)
        silence = self._silence(s, dt)
        self._roll_days(s, float(t // DAY_MS))
        learned = t - s["t0"] >= self.learning
        normal = self._normal(s, observed)
        tests = self._tests(s, observed, normal, dt, learned)
        alerted, held, resolved = self._events(s, t, tests)
        self._learn(s, observed, normal, tests, dt, learned)
        return self._decision(s, observed, normal, tests, learned, alerted, held, resolved,
                              silence)

    # -- the steps of a judgement -------------------------------------------------------

    @staticmethod
    def _checked(state: Mapping[str, float]) -> dict[str, float]:
        s = dict(state)
        if not all(map(math.isfinite, s.values())):
            bad = next(key for key, value in s.items() if not math.isfinite(value))
            raise ValueError(f"detector state {bad!r} is not a finite number: {s[bad]!r}")
        if s.get("n", 0.0) > 0.0 and "run_n" not in s:  # judged before the stuck test
            for key, default in UPGRADE.items():
                s.setdefault(key, s.get("t_last", 0.0) if default is None else default)
        return s

    def _silence(self, s: dict[str, float], dt: float) -> str | None:
        """The sensor's usual cadence learned; a reading after a long silence says so."""
        cadence = s.get("cadence", 0.0)
        note = None
        if cadence > 0.0 and dt > self.gap_factor * cadence:
            note = (f"first reading after a silence of {_duration(dt)} (this sensor usually "
                    f"sends one every {_duration(cadence)})")
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
        self._extend_today(s, x)
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

    @staticmethod
    def _extend_today(s: dict[str, float], x: float) -> None:
        if s["lo_today"] <= s["hi_today"]:
            s["lo_today"], s["hi_today"] = min(s["lo_today"], x), max(s["hi_today"], x)
        else:
            s["lo_today"] = s["hi_today"] = x

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
        notes = [part for part in (silence, self._held_note(s, held) if held and not alerted
                                   else None) if part]
        return Decision(
            anomaly, bool(alerted), error, self.threshold, s, "; ".join(notes) or None, kinds,
            self._learning(s, learned), expected=normal.expected, lower=lower, upper=upper,
            severity=severity, kind=kinds[0] if kinds else None, resolved=resolved,
            explanation=self._explanation(s, observed, normal, tests, lower, upper))

    def _explanation(self, s: Mapping[str, float], observed: Observed, normal: Normal,
                     tests: Tests, lower: float, upper: float) -> str:
        x, expected = observed.value, normal.expected
        usual = (f"the usual {expected:.1f} for {clock(observed.timestamp)[11:16]} UTC"
                 if normal.have_bin else f"the model's prediction {expected:.1f}")
        if tests.stuck:
            return (f"{x:g} repeated {s['run_n']:.0f} times over "
                    f"{_duration(observed.timestamp - s['run_t0'])}; this sensor never held "
                    f"one value longer than {s['run_max_n']:.0f} readings "
                    f"({_duration(s['run_max_ms'])}) before")
        side = "above" if x >= expected else "below"
        text = (f"{x:.1f}, {abs(x - expected):.1f} {side} {usual}; "
                f"{abs(tests.z):.1f} times this sensor's typical deviation; "
                f"normal range {lower:.1f} to {upper:.1f}")
        if tests.pattern and not tests.excursion:
            text += "; its recent readings depart from its usual pattern more than ever this week"
        return text

    # -- bookkeeping ----------------------------------------------------------------------

    def _new_sensor(self, s: dict[str, float], t: float, window: tuple[float, ...]) -> None:
        mean = sum(window) / len(window)
        spread2 = sum((w - mean) ** 2 for w in window) / len(window)
        floor = max(self.level_floor * abs(mean), 1e-9)
        s["n"] = 0.0
        s["t0"] = s["t_last"] = t
        s["gvar"] = s["tvar"] = s["tvar_long"] = max(spread2, floor * floor)
        s["m_fast"] = s["m_slow"] = 0.0
        s["last_high"] = s["last_low"] = s["last_pattern"] = s["last_stuck"] = NEVER
        s["mag_high"] = s["mag_low"] = 0.0
        s["in_high"] = s["in_low"] = s["edge_high"] = s["edge_low"] = 0.0
        s["lo_today"], s["hi_today"] = min(window), max(window)  # the window is all it knows
        s["lo_past"], s["hi_past"] = 1.0, 0.0
        s["fmax_today"] = s["smax_today"] = s["fmax_past"] = s["smax_past"] = NO_MAX
        s["day"] = float(t // DAY_MS)
        s["run_n"], s["run_t0"], s["run_max_n"], s["run_max_ms"] = 1.0, t, 1.0, 0.0

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
            s[f"{name}_past"] = max([*ring, NO_MAX])
        keep = self.range_days - 1
        los = ([s["lo_today"]] + [1.0] * (shift - 1) + [s.get(f"lo_{j}", 1.0) for j in range(keep)])[:keep]
        his = ([s["hi_today"]] + [0.0] * (shift - 1) + [s.get(f"hi_{j}", 0.0) for j in range(keep)])[:keep]
        days = []
        for j in range(keep):
            s[f"lo_{j}"], s[f"hi_{j}"] = los[j], his[j]
            if los[j] <= his[j]:
                days.append((los[j], his[j]))
        s["lo_past"], s["hi_past"] = self._trimmed_range(days)
        s["lo_today"], s["hi_today"] = 1.0, 0.0
        s["day"] = day

    @staticmethod
    def _trimmed_range(days: list[tuple[float, float]]) -> tuple[float, float]:
        """The past days' range, without a day whose extreme stands out: a day whose high lies
        further above every other day's high than those days span is left out of the high
        side (and the same below), so one event's day does not hide the next similar event
        for a month ((1, 0): no range yet)."""
        if not days:
            return 1.0, 0.0
        los, his = sorted(lo for lo, _ in days), sorted(hi for _, hi in days)
        if len(days) < 3:
            return los[0], his[-1]
        hi = his[-2] if his[-1] - his[-2] > his[-2] - los[0] else his[-1]
        lo = los[1] if los[1] - los[0] > his[-1] - los[1] else los[0]
        return lo, hi

    def _held_note(self, s: Mapping[str, float], held: list[str]) -> str:
        """Why an anomalous reading did not page: each kind's event is already alerted."""
        hours = f"{self.holdoff / HOUR_MS:g} h"
        return "; ".join(
            f"{kind}: part of the event alerted at {clock(s['last_' + kind])} (no new alert for "
            f"{hours}" + (f" unless it goes {self.escalation:g} times as far)" if kind in SIDES
                          else ")")
            for kind in held)

    def _learning(self, s: Mapping[str, float], learned: bool) -> tuple[str, ...]:
        parts = []
        if not learned:
            parts.append(f"the range, pattern and stuck tests learn the sensor until "
                         f"{clock(s['t0'] + self.learning)}; meanwhile only gross departures flag")
        bins = int(DAY_MS // self.profile_bin)
        seen = sum(1 for k in range(bins) if f"pm_{k}" in s)
        if seen < bins:
            parts.append(f"the time-of-day profile has seen {seen} of its {bins} "
                         f"{self.profile_bin / 60_000:g}-minute bins")
        return tuple(parts)
