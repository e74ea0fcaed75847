"""What the simulator sends: per-sensor readings, and the anomalies in them at known places.

Two sources, one shape (`SensorSeries`):
- `generate`: realistic readings of an industrial temperature (a level per sensor, a daily
  cycle, correlated noise, a slow wander), with anomalies of known kinds injected;
- `replay`: a NAB-format CSV (`timestamp,value`), whose labelled windows (a NAB windows json
  beside it) count as known anomalies, optionally with injected ones too.

Readings are sent with explicit timestamps on a simulated cadence (5 minutes, NAB's),
ending now, so a run of minutes looks like days of real time to the model. Anomalies are
placed after a warm-up (the rule learns a sensor for its `learning_s` first) and far enough
apart that the hold-off after one alert (its `holdoff_s`, in readings at the cadence) is over
before the next anomaly starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models.evaluation import nab

CADENCE_S = 300  # NAB's machine temperature: one reading every 5 minutes
READINGS_PER_DAY = 24 * 3600 // CADENCE_S


@dataclass(frozen=True)
class Kind:
    """An anomaly kind: how many readings it changes, and by how much (degrees)."""

    name: str
    length: int  # readings it changes (drift: the rise; it falls back as slowly)
    magnitude: float
    description: str


KINDS = {
    "spike": Kind("spike", 1, 12.0, "one reading far above the others (a transient)"),
    "drop": Kind("drop", 12, -10.0, "a sudden fall held for an hour, then back"),
    "stuck": Kind("stuck", 48, 0.0, "the sensor repeats its last value for 4 hours"),
    "drift": Kind("drift", 144, 8.0, "a slow rise of 8 degrees over 12 hours, and back as slowly"),
}


@dataclass
class Anomaly:
    sensor: str
    kind: str
    start: int  # index of the first reading it changes
    end: int  # index of the last reading it changes (inclusive)
    magnitude: float
    source: str = "injected"  # or "labelled" (a NAB window)
    start_timestamp: int = 0  # ms, filled in when timestamps are known
    end_timestamp: int = 0
    start_time: str = ""  # start_timestamp as ISO-8601 UTC
    label: str | None = None  # the NAB window as the CSV's own timestamps

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class SensorSeries:
    sensor: str
    values: list[float]
    anomalies: list[Anomaly] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)  # ms, one per value


@dataclass(frozen=True)
class Plan:
    """Where anomalies may go: after `warmup` readings, `spacing(kind)` readings apart."""

    warmup: int
    tolerance: int  # readings after an anomaly's end in which a flag still counts
    holdoff: int  # readings the rule stays silent after an alarm
    gap: int = 24  # readings of calm added between one anomaly's window and the next

    def affected(self, kind: Kind) -> int:
        return 2 * kind.length if kind.name == "drift" else kind.length

    def spacing(self, kind: Kind) -> int:
        return self.affected(kind) + self.tolerance + self.holdoff + self.gap

    def length(self, kinds: list[Kind]) -> int:
        return self.warmup + sum(self.spacing(k) for k in kinds)


SENSOR_PART = re.compile(r"[A-Za-z0-9._:-]+")


def sensor_names(prefix: str, run_id: str, count: int) -> list[str]:
    names = [f"{prefix}-{run_id}-{i + 1}" for i in range(count)]
    for name in names:
        if not SENSOR_PART.fullmatch(name) or len(name) > 64:
            raise ValueError(f"sensor name {name!r} is not valid: 1 to 64 letters, digits or . _ : -")
    return names


def normal_readings(n: int, rng: np.random.Generator) -> np.ndarray:
    """n readings of a healthy machine at a 5-minute cadence, degrees."""
    level = rng.uniform(60.0, 90.0)
    amplitude = rng.uniform(2.0, 5.0)
    phase = rng.uniform(0, 2 * math.pi)
    t = np.arange(n)
    daily = amplitude * np.sin(2 * math.pi * t / READINGS_PER_DAY + phase)
    noise = np.empty(n)
    innovations = rng.normal(0.0, 0.4, n)
    noise[0] = innovations[0]
    for i in range(1, n):  # AR(1): neighbouring readings are alike, as real ones are
        noise[i] = 0.7 * noise[i - 1] + innovations[i]
    wander = np.cumsum(rng.normal(0.0, 0.01, n))  # slow, harmless level changes
    return level + daily + noise + wander


def inject(values: np.ndarray, kind: Kind, start: int) -> tuple[int, float]:
    """Change values in place from `start`; returns (last index changed, magnitude)."""
    if kind.name == "spike":
        values[start] += kind.magnitude
        return start, kind.magnitude
    if kind.name == "drop":
        values[start:start + kind.length] += kind.magnitude
        return start + kind.length - 1, kind.magnitude
    if kind.name == "stuck":
        frozen = values[start - 1]
        values[start:start + kind.length] = frozen
        return start + kind.length - 1, 0.0
    if kind.name == "drift":
        rise = np.linspace(0.0, kind.magnitude, kind.length + 1)[1:]
        ramp = np.concatenate([rise, rise[::-1][1:], [0.0]])
        values[start:start + len(ramp)] += ramp
        return start + 2 * kind.length - 1, kind.magnitude
    raise ValueError(f"unknown anomaly kind {kind.name!r}; known: {', '.join(KINDS)}")


def place(series: SensorSeries, values: np.ndarray, kinds: list[Kind], plan: Plan) -> None:
    """Inject `kinds` in order after the warm-up, one per `plan.spacing` segment."""
    cursor = plan.warmup
    for kind in kinds:
        if cursor + plan.affected(kind) > len(values):
            break
        end, magnitude = inject(values, kind, cursor)
        series.anomalies.append(Anomaly(series.sensor, kind.name, cursor, end, magnitude))
        cursor += plan.spacing(kind)


def rotate(kinds: list[Kind], by: int) -> list[Kind]:
    by %= max(len(kinds), 1)
    return kinds[by:] + kinds[:by]


def generate(sensors: list[str], kinds: list[Kind], plan: Plan, seed: int) -> list[SensorSeries]:
    """Synthetic readings; sensor i gets the kinds rotated by i, so they differ in time."""
    rng = np.random.default_rng(seed)
    n = plan.length(kinds) + plan.gap
    result = []
    for i, sensor in enumerate(sensors):
        values = normal_readings(n, rng)
        series = SensorSeries(sensor, [])
        place(series, values, rotate(kinds, i), plan)
        series.values = [round(float(v), 4) for v in values]
        result.append(series)
    return result


def replay(csv_path: Path, sensors: list[str], kinds: list[Kind], plan: Plan,
           limit: int | None = None) -> tuple[list[SensorSeries], str | None]:
    """The CSV's values for each sensor (the first `limit` rows); known anomalies are its
    labelled windows (from the windows json NAB keeps beside it, if any) and the injected
    kinds. Returns the series and the windows file used."""
    windows_file = nab.windows_beside(csv_path)
    labelled: list[tuple[int, int, str]] = []
    if windows_file:  # rows of the whole file, before --limit cuts it
        data = nab.load_series(csv_path, windows_file)
        raw = data.values
        for (first, last), (a, b) in zip(data.windows, data.window_timestamps, strict=True):
            labelled.append((first, last, f"{a} .. {b}"))
    else:
        _, raw = nab.load_csv(csv_path)
    if limit:
        raw = raw[:limit]
    if len(raw) <= plan.warmup:
        raise ValueError(f"{csv_path} has {len(raw)} rows: not more than the warm-up ({plan.warmup})")
    result = []
    for i, sensor in enumerate(sensors):
        values = np.array(raw, dtype=np.float64)
        series = SensorSeries(sensor, [])
        for first, last, label in labelled:
            if first < len(values):
                series.anomalies.append(Anomaly(sensor, "nab-window", first, min(last, len(values) - 1),
                                                0.0, source="labelled", label=label))
        place(series, values, rotate(kinds, i), plan)
        series.anomalies.sort(key=lambda a: a.start)
        series.values = [float(v) for v in values]
        result.append(series)
    return result, str(windows_file) if windows_file else None


def stamp(series: list[SensorSeries], end_ms: int, cadence_s: int = CADENCE_S) -> None:
    """Explicit timestamps, `cadence_s` apart, the last reading of the longest series at end_ms."""
    step = cadence_s * 1000
    n = max(len(s.values) for s in series)
    first = end_ms - (n - 1) * step
    for s in series:
        s.timestamps = [first + i * step for i in range(len(s.values))]
        for anomaly in s.anomalies:
            anomaly.start_timestamp = s.timestamps[anomaly.start]
            anomaly.end_timestamp = s.timestamps[anomaly.end]
            anomaly.start_time = iso(anomaly.start_timestamp)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(
        timespec="minutes").replace("+00:00", "Z")
