"""What each function does, from validated parameters to a result in both formats.

An action returns the JSON document (the documented shapes) and how to render the HTML page of
its result; endpoint.py picks one (a page is rendered only when it is the answer). Handlers
name their action and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from . import outbox, render
from .errors import StoredButNotJudged
from .params import SPANS, parse_batch, parse_history, parse_reading, parse_sensor, parse_span, wants_overview
from .readings import HistoryQuery
from .services import Services
from .store.keys import BAND_SERIES
from .store.reading_store import AlreadyStored


@dataclass(frozen=True)
class Result:
    status: int
    document: dict[str, Any]
    page: Callable[[], str]  # the HTML answer, rendered on demand


@dataclass(frozen=True)
class Action:
    name: str
    writes: bool  # write actions can require a signed call (shared/signing.py)
    run: Callable[[Mapping[str, Any], Services, str], Result]
    parameters: frozenset[str]  # every other name is refused (`format` aside, shared/params.py)


def _already_stored(sensor: str, already: AlreadyStored, value: float, judged: bool,
                    host: str) -> Result:
    """A retry of a reading stored before (same timestamp, same value): 200, nothing written,
    and for detectar what was kept of its verdict instead of a second judgement."""
    message = (f"already stored: sensor {sensor!r} has this very reading at timestamp "
               f"{already.timestamp}; nothing was stored again"
               + ("; the marks kept for it are given, it is not judged twice" if judged else ""))
    document: dict[str, Any] = {"sensor": sensor, "timestamp": already.timestamp,
                                "value": value, "duplicate": True, "message": message}
    if judged:
        document.update(anomaly=already.anomaly, alert=already.alert)
    return Result(200, document, lambda: render.already_stored_html(document, host))


def _nuevo(params: Mapping[str, Any], services: Services, host: str) -> Result:
    sensor = parse_sensor(params.get("sensor"))
    if "readings" in params:
        readings = parse_batch(params, services.settings.batch_max_readings,
                               services.settings.earliest_reading_ms)
        outcome = services.store.add_batch(sensor, readings)
        document: dict[str, Any] = {"sensor": sensor, "stored": outcome.stored}
        if outcome.already_stored:  # retried readings: stored before, value and all
            document["already_stored"] = outcome.already_stored
        if outcome.conflicts:  # partial: say exactly which readings were refused
            document.update(error=f"{len(outcome.conflicts)} readings were not stored: "
                            "the sensor already has other values at their timestamps",
                            conflicts=outcome.conflicts)
        return Result(409 if outcome.conflicts else 200, document,
                      lambda: render.batch_html(sensor, outcome.stored, outcome.conflicts,
                                                outcome.already_stored, host))
    reading = parse_reading(params, services.settings.earliest_reading_ms)
    timestamp = services.store.add(sensor, reading)
    if isinstance(timestamp, AlreadyStored):
        return _already_stored(sensor, timestamp, reading.value, False, host)
    return Result(200, {"sensor": sensor, "timestamp": timestamp, "value": reading.value},
                  lambda: render.stored_html(sensor, timestamp, reading.value, host))


def _overview(services: Services, host: str) -> Result:
    sensors = services.views.overview()
    return Result(200, {"sensors": [asdict(s) for s in sensors]},
                  lambda: render.overview_html(sensors, host))


def _listar(params: Mapping[str, Any], services: Services, host: str) -> Result:
    if wants_overview(params):
        return _overview(services, host)
    sensor = parse_sensor(params.get("sensor"))
    settings = services.settings
    span = parse_span(params)
    if span:  # the span up to the newest reading: a quiet sensor still shows its last day
        newest = services.views.newest(sensor)
        query = (HistoryQuery(settings.list_max_count, max(0, newest - SPANS[span]), newest)
                 if newest is not None else HistoryQuery(settings.list_max_count, "-", "+"))
    else:
        query = parse_history(params, settings.list_default_count, settings.list_max_count)
    history = services.store.history(sensor, query)
    shown = (history.readings[-1][0], history.readings[0][0]) if history.readings else (0, 0)
    extras = services.views.extras(sensor, *shown)
    readings = []
    for t, v in history.readings:
        reading = {"timestamp": t, "value": v, "anomaly": t in history.anomalies,
                   "alert": t in history.alerts}
        if t in extras.band:
            reading.update(zip(BAND_SERIES, extras.band[t], strict=True))
        readings.append(reading)
    document = {"sensor": sensor, "total": history.total, "readings": readings,
                "flagged_total": extras.flagged_total, "alerts": extras.events}
    return Result(200, document, lambda: render.history_html(
        sensor, history.total, history.readings, history.anomalies, history.alerts, query, host,
        band=extras.band, events=extras.events, flagged_total=extras.flagged_total, span=span))


def _judgement_and_alerts(document: dict[str, Any]
                          ) -> tuple[tuple[float, float, float] | None, list[dict[str, str]]]:
    """What detectar keeps of a judged verdict beside its marks: the expected value and its
    band, and the outbox entries that tell Alertmanager (shared/outbox.py)."""
    band = [float(v) for v in (document.get(name) for name in BAND_SERIES)
            if isinstance(v, int | float)]
    judgement = (band[0], band[1], band[2]) if len(band) == 3 else None
    return judgement, outbox.entries(document)


def _detectar(params: Mapping[str, Any], services: Services, host: str) -> Result:
    sensor = parse_sensor(params.get("sensor"))
    reading = parse_reading(params, services.settings.earliest_reading_ms)
    detector = services.detector  # loaded before storing: a broken model stores nothing
    stored = services.store.add_and_window(sensor, reading, detector.window_size)
    if isinstance(stored, AlreadyStored):
        return _already_stored(sensor, stored, reading.value, True, host)
    base = {"sensor": sensor, "timestamp": stored.timestamp, "value": reading.value}
    try:
        verdict = detector.judge(reading.value, stored.timestamp, stored.window, stored.state)
        document = {**base, **verdict.fields(), "window": stored.window}
        if verdict.anomaly is not None:
            services.store.record_verdict(sensor, stored.timestamp, reading.value,
                                          verdict.anomaly, bool(verdict.alert), stored.state,
                                          verdict.state, *_judgement_and_alerts(document))
    except Exception as exc:  # the reading is stored: say so, so that nobody sends it again
        raise StoredButNotJudged(base, exc) from exc
    return Result(200, document, lambda: render.verdict_html(document, detector.rule.meaning, host))


NUEVO = Action("nuevo", writes=True, run=_nuevo,
               parameters=frozenset({"dato", "sensor", "timestamp", "readings"}))
LISTAR = Action("listar", writes=False, run=_listar,
                parameters=frozenset({"sensor", "count", "from", "to", "span", "sensors"}))
DETECTAR = Action("detectar", writes=True, run=_detectar,
                  parameters=frozenset({"dato", "sensor", "timestamp"}))
