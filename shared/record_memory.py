"""What `record_events` keeps of a sensor between readings (a flat dict of floats, the
store's hash): the constants of that state, a new sensor's first state, the upgrade of a state
from before the stuck test, and the calendar-day rings of past ranges and surprise records."""

from __future__ import annotations

import math
from collections.abc import Mapping

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


def checked(state: Mapping[str, float]) -> dict[str, float]:
    """A copy of the stored state: refused if a value is not finite, upgraded if it is
    from before the stuck test."""
    s = dict(state)
    if not all(map(math.isfinite, s.values())):
        bad = next(key for key, value in s.items() if not math.isfinite(value))
        raise ValueError(f"detector state {bad!r} is not a finite number: {s[bad]!r}")
    if s.get("n", 0.0) > 0.0 and "run_n" not in s:  # judged before the stuck test
        for key, default in UPGRADE.items():
            s.setdefault(key, s.get("t_last", 0.0) if default is None else default)
    return s


def new_sensor(s: dict[str, float], t: float, window: tuple[float, ...],
               level_floor: float) -> None:
    """The state of a sensor's first reading: all it knows is the window."""
    mean = sum(window) / len(window)
    spread2 = sum((w - mean) ** 2 for w in window) / len(window)
    floor = max(level_floor * abs(mean), 1e-9)
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


def roll_days(s: dict[str, float], day: float, fast_days: int, slow_days: int,
              range_days: int) -> None:
    """A new calendar day: today's maxima and range join the past-day rings (empty days
    for a gap), the oldest leave, and the past maxima are computed once."""
    shift = int(day - s["day"])
    if shift <= 0:
        return
    for name, keep in (("fmax", fast_days - 1), ("smax", slow_days - 1)):
        ring = [s.get(f"{name}_{j}", NO_MAX) for j in range(keep)]
        ring = ([s[f"{name}_today"]] + [NO_MAX] * (shift - 1) + ring)[:keep]
        for j, value in enumerate(ring):
            s[f"{name}_{j}"] = value
        s[f"{name}_today"] = NO_MAX
        s[f"{name}_past"] = max([*ring, NO_MAX])
    keep = range_days - 1
    los = ([s["lo_today"]] + [1.0] * (shift - 1) + [s.get(f"lo_{j}", 1.0) for j in range(keep)])[:keep]
    his = ([s["hi_today"]] + [0.0] * (shift - 1) + [s.get(f"hi_{j}", 0.0) for j in range(keep)])[:keep]
    days = []
    for j in range(keep):
        s[f"lo_{j}"], s[f"hi_{j}"] = los[j], his[j]
        if los[j] <= his[j]:
            days.append((los[j], his[j]))
    s["lo_past"], s["hi_past"] = trimmed_range(days)
    s["lo_today"], s["hi_today"] = 1.0, 0.0
    s["day"] = day


def trimmed_range(days: list[tuple[float, float]]) -> tuple[float, float]:
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


def extend_today(s: dict[str, float], x: float) -> None:
    """Today's range with reading x in it."""
    if s["lo_today"] <= s["hi_today"]:
        s["lo_today"], s["hi_today"] = min(s["lo_today"], x), max(s["hi_today"], x)
    else:
        s["lo_today"] = s["hi_today"] = x
