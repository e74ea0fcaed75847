"""The operator scenario suite: what a plant's sensors do, at 1-minute, 5-minute and 1-hour
cadences, and whether detectar pages for the events and only for them.

Every sensor is a healthy temperature (a level, a daily cycle, noise correlated over half an
hour, a slow wander) at one cadence; one scenario per sensor:
- clean: nothing happens (its alerts are false alerts); `gaps`: clean, with a 12-hour and a
  3-day silence (the reading after each must say so); `seasonal` (1-hour cadence): clean,
  its level moving 16 degrees over four months;
- obvious events: `spike` (+25 degrees, one reading), then a second spike of +20 the next
  morning; `drop` (-15 for half an hour, at least a reading); `spike-then-drop` (a spike,
  then a drop 3 hours later);
- subtle events: `stuck` (the sensor repeats one value for 6 hours), `missing-cycle` (a day
  without the daily cycle), `level-shift` (+8 degrees that then stays), `drift` (+10
  degrees over two days, then stays).
Events start after `learn_days` of clean readings. An event is caught when a reading from
its start up to its deadline raises an alert (a reading that starts an event: what pages).
Alerts on clean sensors, after the first day, count as false alerts per sensor-week.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC: days and times of day are UTC
OBVIOUS = ("spike", "second spike", "drop", "drop after a spike")
SUBTLE = ("stuck", "missing cycle", "level shift", "drift")


@dataclass(frozen=True)
class Event:
    kind: str
    start_ms: int
    deadline_ms: int  # an alert up to here catches it


@dataclass
class Scenario:
    name: str
    cadence_s: int
    timestamps: list[int]
    values: list[float]
    events: list[Event] = field(default_factory=list)
    silences: list[int] = field(default_factory=list)  # rows that follow a long silence

    @property
    def clean(self) -> bool:
        return not self.events


@dataclass(frozen=True)
class Cadence:
    seconds: int
    days: int        # how long each sensor runs
    learn_days: int  # clean days before the first event


CADENCES = (Cadence(60, 12, 8), Cadence(300, 16, 8), Cadence(3600, 35, 14))


def healthy(times: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(readings without their daily cycle, the daily cycle) at `times` (ms)."""
    n = len(times)
    dt = np.diff(times, prepend=times[0]) / HOUR_MS
    level = rng.uniform(60.0, 90.0)
    amplitude = rng.uniform(3.0, 6.0)
    phase = rng.uniform(0.0, 2 * math.pi)
    daily = amplitude * np.sin(2 * math.pi * (times % DAY_MS) / DAY_MS + phase)
    keep = np.exp(-dt / 0.5)  # noise correlated over half an hour, 0.5 degrees
    shocks = rng.normal(0.0, 0.5, n) * np.sqrt(1.0 - keep ** 2)
    correlated = np.empty(n)
    correlated[0] = rng.normal(0.0, 0.5)
    for i in range(1, n):
        correlated[i] = keep[i] * correlated[i - 1] + shocks[i]
    wander = np.cumsum(rng.normal(0.0, 0.3, n) * np.sqrt(dt / 24.0))  # 0.3 degrees a day
    return level + correlated + rng.normal(0.0, 0.15, n) + wander, daily


def _rows(times: np.ndarray, start: int, end: int) -> np.ndarray:
    return np.flatnonzero((times >= start) & (times < end))


def _pulse(times: np.ndarray, values: np.ndarray, start: int, minutes: float,
           change: float) -> None:
    rows = _rows(times, start, start + int(minutes * 60_000))
    if not len(rows):  # slower than the pulse: its first reading
        rows = np.flatnonzero(times >= start)[:1]
    values[rows] += change


def build(name: str, cadence: Cadence, rng: np.random.Generator) -> Scenario:
    """One sensor's readings with its scenario `name` in them."""
    step = cadence.seconds * 1000
    days = 120 if name == "seasonal" else cadence.days
    times = np.arange(START_MS, START_MS + days * DAY_MS, step, dtype=np.int64)
    base, daily = healthy(times, rng)
    at = START_MS + cadence.learn_days * DAY_MS
    later = max(HOUR_MS, 2 * step)  # a reading or two after a short event
    events: list[Event] = []
    silences: list[int] = []
    if name == "seasonal":
        base += 8.0 * np.sin(2 * math.pi * (times - START_MS) / (240 * DAY_MS))
    elif name == "missing-cycle":
        daily[_rows(times, at, at + DAY_MS)] = 0.0
        events.append(Event("missing cycle", at, at + DAY_MS + 6 * HOUR_MS))
    elif name == "level-shift":
        shift = at + 12 * HOUR_MS
        base[times >= shift] += 8.0
        events.append(Event("level shift", shift, shift + DAY_MS))
    elif name == "drift":
        base += np.clip((times - at) / (2 * DAY_MS), 0.0, 1.0) * 10.0
        events.append(Event("drift", at, at + 3 * DAY_MS))
    values = base + daily
    if name == "spike":
        first, second = at + 14 * HOUR_MS, at + DAY_MS + 7 * HOUR_MS
        _pulse(times, values, first, 0, 25.0)
        _pulse(times, values, second, 0, 20.0)
        events += [Event("spike", first, first + later), Event("second spike", second, second + later)]
    elif name == "drop":
        start = at + 10 * HOUR_MS
        _pulse(times, values, start, 30, -15.0)
        events.append(Event("drop", start, start + 30 * 60_000 + later))
    elif name == "spike-then-drop":
        spike, drop = at + 14 * HOUR_MS, at + 17 * HOUR_MS
        _pulse(times, values, spike, 0, 25.0)
        _pulse(times, values, drop, 30, -15.0)
        events += [Event("spike", spike, spike + later),
                   Event("drop after a spike", drop, drop + 30 * 60_000 + later)]
    elif name == "stuck":
        rows = _rows(times, at + 9 * HOUR_MS, at + 15 * HOUR_MS)
        values[rows] = values[rows[0] - 1]
        events.append(Event("stuck", int(times[rows[0]]), int(times[rows[-1]]) + later))
    elif name == "gaps":
        keep = np.ones(len(times), dtype=bool)
        for start, length in ((at, 12 * HOUR_MS), (at + 3 * DAY_MS, 3 * DAY_MS)):
            keep[_rows(times, start, start + length)] = False
        times, values = times[keep], values[keep]
        silences = [int(i) for i in np.flatnonzero(np.diff(times) > 6 * HOUR_MS) + 1]
    return Scenario(f"{name} @ {cadence.seconds // 60} min" if cadence.seconds < 3600
                    else f"{name} @ {cadence.seconds // 3600} h", cadence.seconds,
                    [int(t) for t in times], [round(float(v), 3) for v in values], events, silences)


NAMES = ("clean", "clean-2", "gaps", "spike", "drop", "spike-then-drop", "stuck",
         "missing-cycle", "level-shift", "drift")


def scenarios(seed: int = 17, cadences: Sequence[Cadence] = CADENCES) -> list[Scenario]:
    rng = np.random.default_rng(seed)
    out = []
    for cadence in cadences:
        names = NAMES + (("seasonal",) if cadence.seconds >= 3600 else ())
        out += [build(name.removesuffix("-2"), cadence, rng) for name in names]
    return out


# what detectar answered for each reading of a scenario: (alert, kind, note)
Answers = Sequence[tuple[bool | None, str | None, str | None]]


def score(runs: Sequence[tuple[Scenario, Answers]]) -> dict[str, Any]:
    """Events caught (and by which kind of alert), false alerts per sensor-week on clean
    sensors, and whether each reading after a long silence said so; per cadence."""
    by_cadence: dict[int, dict[str, Any]] = {}
    for scenario, answers in runs:
        entry = by_cadence.setdefault(scenario.cadence_s, {
            "events": [], "false_alerts": 0, "clean_weeks": 0.0, "silences_noted": [0, 0],
            "alerts_outside_events": 0})
        alerts = [i for i, (alert, _, _) in enumerate(answers) if alert]
        times = scenario.timestamps
        for event in scenario.events:
            hits = [i for i in alerts if event.start_ms <= times[i] <= event.deadline_ms]
            entry["events"].append({
                "sensor": scenario.name, "kind": event.kind, "caught": bool(hits),
                "alerted_as": answers[hits[0]][1] if hits else None,
                "delay_minutes": round((times[hits[0]] - event.start_ms) / 60_000, 1) if hits else None})
        if scenario.clean:  # after its first day, when every test may flag
            watched = [i for i in alerts if times[i] - times[0] >= DAY_MS]
            entry["false_alerts"] += len(watched)
            entry["clean_weeks"] += (times[-1] - times[0] - DAY_MS) / WEEK_MS
        else:
            entry["alerts_outside_events"] += sum(
                1 for i in alerts if times[i] - times[0] >= DAY_MS and not any(
                    e.start_ms <= times[i] <= e.deadline_ms for e in scenario.events))
        for row in scenario.silences:
            entry["silences_noted"][1] += 1
            note = answers[row][2] or ""
            entry["silences_noted"][0] += "silence" in note
    for entry in by_cadence.values():
        entry["false_alerts_per_sensor_week"] = (entry["false_alerts"] / entry["clean_weeks"]
                                                 if entry["clean_weeks"] else 0.0)
        caught = {e["kind"] for e in entry["events"] if e["caught"]}
        kinds = {e["kind"] for e in entry["events"]}
        entry["obvious_caught"] = all(all(e["caught"] for e in entry["events"] if e["kind"] == k)
                                      for k in OBVIOUS if k in kinds)
        entry["subtle_caught"] = sorted(
            k for k in SUBTLE if k in caught and all(
                e["caught"] for e in entry["events"] if e["kind"] == k))
    return {str(c): v for c, v in sorted(by_cadence.items())}


def format_score(report: dict[str, Any]) -> str:
    lines = ["operator scenarios: events caught (kind of the alert, delay), false alerts on "
             "clean sensors"]
    for cadence, entry in report.items():
        seconds = int(cadence)
        name = f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h"
        events = ", ".join(
            f"{e['kind']} " + (f"yes ({e['alerted_as']}, {e['delay_minutes']:g} min)"
                               if e["caught"] else "NO") for e in entry["events"])
        noted, silences = entry["silences_noted"]
        lines.append(f"  {name:<6} {events}")
        lines.append(f"         obvious all caught: {'yes' if entry['obvious_caught'] else 'no'}; "
                     f"subtle caught: {len(entry['subtle_caught'])}/4 "
                     f"({', '.join(entry['subtle_caught']) or 'none'}); false alerts on clean "
                     f"sensors: {entry['false_alerts']} ({entry['false_alerts_per_sensor_week']:.2f}"
                     f" per sensor-week); alerts outside events on event sensors: "
                     f"{entry['alerts_outside_events']}; silences noted {noted}/{silences}")
    return "\n".join(lines)


def run(judge: Callable[[Scenario], Answers], seed: int = 17,
        cadences: Sequence[Cadence] = CADENCES) -> dict[str, Any]:
    """Every scenario through `judge` (detectar, reading by reading), scored."""
    return score([(s, judge(s)) for s in scenarios(seed, cadences)])
