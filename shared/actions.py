"""What each function does, from validated parameters to a result in both formats.

An action returns the JSON document (the documented shapes) and the HTML page of its result;
endpoint.py picks one. Handlers name their action and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import render
from .errors import StoredButNotJudged
from .params import parse_batch, parse_history, parse_reading, parse_sensor
from .services import Services


@dataclass(frozen=True)
class Result:
    status: int
    document: dict[str, Any]
    html: str


@dataclass(frozen=True)
class Action:
    name: str
    writes: bool  # write actions can require a signed call (shared/signing.py)
    run: Callable[[Mapping[str, Any], Services, str], Result]
    parameters: frozenset[str]  # every other name is refused (`format` aside, shared/params.py)


def _nuevo(params: Mapping[str, Any], services: Services, host: str) -> Result:
    sensor = parse_sensor(params.get("sensor"))
    if "readings" in params:
        readings = parse_batch(params, services.settings.batch_max_readings)
        outcome = services.store.add_batch(sensor, readings)
        document = {"sensor": sensor, "stored": outcome.stored}
        if outcome.conflicts:  # partial: say exactly which readings were refused
            document.update(error=f"{len(outcome.conflicts)} readings were not stored: "
                            "the sensor already has readings at their timestamps",
                            conflicts=outcome.conflicts)
        return Result(409 if outcome.conflicts else 200, document,
                      render.batch_html(sensor, outcome.stored, outcome.conflicts, host))
    reading = parse_reading(params)
    timestamp = services.store.add(sensor, reading)
    return Result(200, {"sensor": sensor, "timestamp": timestamp, "value": reading.value},
                  render.stored_html(sensor, timestamp, reading.value, host))


def _listar(params: Mapping[str, Any], services: Services, host: str) -> Result:
    sensor = parse_sensor(params.get("sensor"))
    settings = services.settings
    query = parse_history(params, settings.list_default_count, settings.list_max_count)
    history = services.store.history(sensor, query)
    document = {"sensor": sensor, "total": history.total,
                "readings": [{"timestamp": t, "value": v, "anomaly": t in history.anomalies,
                              "alert": t in history.alerts} for t, v in history.readings]}
    return Result(200, document, render.history_html(
        sensor, history.total, history.readings, history.anomalies, history.alerts, query, host))


def _detectar(params: Mapping[str, Any], services: Services, host: str) -> Result:
    sensor = parse_sensor(params.get("sensor"))
    reading = parse_reading(params)
    detector = services.detector  # loaded before storing: a broken model stores nothing
    stored = services.store.add_and_window(sensor, reading, detector.window_size)
    base = {"sensor": sensor, "timestamp": stored.timestamp, "value": reading.value}
    try:
        verdict = detector.judge(reading.value, stored.timestamp, stored.window, stored.state)
        if verdict.anomaly is not None:
            services.store.record_verdict(sensor, stored.timestamp, reading.value,
                                          verdict.anomaly, verdict.alert, stored.state,
                                          verdict.state)
    except Exception as exc:  # the reading is stored: say so, so that nobody sends it again
        raise StoredButNotJudged(base, exc) from exc
    document = {**base, **verdict.fields(), "window": stored.window}
    return Result(200, document, render.verdict_html(document, detector.rule.meaning, host))


NUEVO = Action("nuevo", writes=True, run=_nuevo,
               parameters=frozenset({"dato", "sensor", "timestamp", "readings"}))
LISTAR = Action("listar", writes=False, run=_listar,
                parameters=frozenset({"sensor", "count", "from", "to"}))
DETECTAR = Action("detectar", writes=True, run=_detectar,
                  parameters=frozenset({"dato", "sensor", "timestamp"}))
