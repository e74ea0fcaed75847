"""What a run of detectar over a NAB series was worth: its verdicts scored, tabled and
written as JSON (the PNG is plot.py's)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.serving.description import ModelDescription, load_description, resolve_version_dir

from . import EvaluationError
from .nab import NabSeries
from .scoring import NabResult, probationary_length, score


@dataclass
class Stream:
    """detectar's verdict on every row, in order."""

    anomaly: list[bool | None]
    alert: list[bool | None]   # the reading starts a new event: what NAB scores
    predicted: list[float | None]
    error: list[float | None]
    threshold: list[float | None]
    engine: str | None
    seconds: float
    kind: list[str | None] = field(default_factory=list)  # the event kind a reading is part of
    inside_band: list[bool | None] = field(default_factory=list)  # lower <= value <= upper
    notes: list[str | None] = field(default_factory=list)  # why it was (not) flagged, if said

    @property
    def detections(self) -> list[int]:
        """The rows that raised an alert (what an operator is paged for)."""
        return [row for row, flag in enumerate(self.alert) if flag]


@dataclass
class ModelReport:
    label: str
    model: str
    via: str
    rule: str | None
    windows_detected: int
    windows_total: int
    false_positives: list[int]
    first_detections: list[int | None]
    window_scores: list[float]
    false_positive_costs: list[float]
    score: float
    detections: list[int]
    readings: int
    readings_judged: int
    engine: str | None
    seconds: float
    sensor: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_false_positives(self) -> int:
        return len(self.false_positives)


def model_description(model_path: Path) -> ModelDescription:
    """The model's description (its model.json, or the replaced model's built-in one)."""
    try:
        return load_description(resolve_version_dir(model_path))
    except ValueError as exc:  # not a model folder, or a bad model.json
        raise EvaluationError(str(exc)) from exc


def report_of(label: str, model: str, via: str, rule: str | None, result: Stream,
              series: NabSeries, sensor: str) -> ModelReport:
    nab_result: NabResult = score(len(series), result.detections, series.windows)
    return ModelReport(
        label=label, model=model, via=via, rule=rule,
        windows_detected=nab_result.windows_detected, windows_total=len(series.windows),
        false_positives=nab_result.false_positives,
        first_detections=nab_result.first_detections,
        window_scores=[round(s, 6) for s in nab_result.window_scores],
        false_positive_costs=[round(c, 6) for c in nab_result.false_positive_costs],
        score=round(nab_result.score, 6), detections=result.detections,
        readings=len(result.anomaly),
        readings_judged=sum(flag is not None for flag in result.anomaly),
        engine=result.engine, seconds=round(result.seconds, 2), sensor=sensor)


def warm_up_warnings(label: str, model_path: Path, series: NabSeries) -> list[str]:
    """Where the model cannot see all it could: its first window is never judged, and while
    the rule learns the sensor (its `learning_s` from the first judgement) only gross
    departures flag; a series or a labelled window there is said so."""
    description = model_description(model_path)
    window = description.window
    if len(series) <= window:
        return [f"{label} ({model_path}): rows 0-{window - 1} are its first window, never "
                f"judged: the series has only {len(series)} rows, so nothing can be detected"]
    timestamps = series.stream_timestamps()
    learned_at = timestamps[window] + 1000 * description.decision.get("learning_s", 0)
    learning = sum(1 for t in timestamps[window:] if t < learned_at)
    why = (f"{label} ({model_path}) learns the sensor until row {window + learning - 1} "
           f"(only gross departures flag)")
    return [f"{why}: labelled window {k + 1} (rows {left}-{right}) starts while it learns"
            for k, (left, right) in enumerate(series.windows) if left < window + learning]


def format_rows(rows: Sequence[int | None]) -> str:
    return ", ".join("-" if r is None else str(r) for r in rows) or "none"


def format_table(reports: Sequence[ModelReport], series: NabSeries) -> str:
    lines = [f"series {series.name}: {len(series)} rows, windows (rows) "
             f"{', '.join(f'{a}-{b}' for a, b in series.windows)}, probationary rows "
             f"0-{probationary_length(len(series)) - 1}",
             f"timestamps: the file's own (median step {series.step_ms // 1000} s), a repeated "
             "one moved 1 ms past the one before; rows by position"]
    rows = [
        ("model", [r.label for r in reports]),
        ("path / via", [f"{r.model} ({r.via})" for r in reports]),
        ("rule", [r.rule or "(the gateway's)" for r in reports]),
        ("windows detected", [f"{r.windows_detected}/{r.windows_total}" for r in reports]),
        ("false positives", [str(r.n_false_positives) for r in reports]),
        ("first detections", [format_rows(r.first_detections) for r in reports]),
        ("window scores", [", ".join(f"{s:+.2f}" for s in r.window_scores) for r in reports]),
        ("NAB raw score", [f"{r.score:+.2f}" for r in reports]),
        ("false-positive rows", [format_rows(r.false_positives) for r in reports]),
        ("seconds", [f"{r.seconds:.1f}" for r in reports]),
    ]
    width = max(len(name) for name, _ in rows)
    columns = [max(len(cells[i]) for _, cells in rows) for i in range(len(reports))]
    for name, cells in rows:
        padded = [c.ljust(w) for c, w in zip(cells, columns, strict=True)]
        lines.append("  ".join([name.ljust(width), *padded]))
    return "\n".join(lines)


def write_json(path: Path, series: NabSeries, reports: Sequence[ModelReport]) -> Path:
    document = {
        "series": {"name": series.name, "csv": str(series.csv_path), "sha256": series.sha256,
                   "rows": len(series), "windows": [list(w) for w in series.windows],
                   "probationary_rows": probationary_length(len(series)),
                   "timestamps": "the file's own; a repeated or earlier one is moved 1 ms past "
                                 "the one before (rows are identified by position)"},
        "scoring": "NAB standard profile (tp 1, fp 0.11, fn 1), raw score of this file",
        "models": [{**asdict(r), "n_false_positives": r.n_false_positives} for r in reports],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path
