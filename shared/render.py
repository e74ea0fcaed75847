"""Results as the caller's format: HTML by default (the replaced system's), JSON on request.

Everything a caller sent that is echoed into HTML goes through `escape`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from .chart import CHART_STYLE, Band, clock_html, counted, number, readings_chart
from .params import FORMATS, SPANS
from .readings import BAND_KEPT_DAYS, HistoryQuery, SensorSummary
from .timestamps import clock

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"

# Phones (360 px and up) and desktops: nothing wider than the screen; a time breaks between
# its date and its clock when a column is narrow; tables scroll inside .wide if they must.
STYLE = """body{font-family:system-ui,sans-serif;margin:1rem 2rem;color:#222;max-width:60rem}
table{border-collapse:collapse}td,th{padding:.2rem .8rem;border-bottom:1px solid #eee}
td{text-align:right}th{text-align:left}.facts td,td.time{text-align:left}.nowrap{white-space:nowrap}
.verdict{font-size:3rem;font-weight:bold;margin:.5rem 0}.true{color:#c62828}.false{color:#2e7d32}
.unknown{color:#777}.anomaly td{color:#c62828;font-weight:bold}
.wide{overflow-x:auto}.meta{color:#666;font-size:.9rem}h1,p,.id{overflow-wrap:anywhere}
td.kind,td.text,td.verdict-cell,td.id{text-align:left}.nav a,.nav b{white-space:nowrap}
@media (max-width:600px){body{margin:.5rem}h1{font-size:1.5rem}td,th{padding:.2rem .4rem}}
""" + CHART_STYLE
TABLE_ROWS = 500  # a page stays readable; the chart and the JSON answer hold every reading


def wants_json(query: Any, headers: Any) -> bool:
    """`?format=json` or an Accept header that asks for JSON rather than HTML (an unknown
    `format`, refused by parse_format, is answered as Accept asks)."""
    chosen = (query.get("format") or "").lower()
    if chosen in FORMATS:
        return chosen == "json"
    accept = (headers.get("Accept") or "").lower()
    return JSON_TYPE in accept and "text/html" not in accept


def response(status: int, body: Any, as_json: bool) -> dict[str, Any]:
    """The python3-http response dict; bodies are always strings with an explicit type."""
    if as_json:
        return {"statusCode": status, "body": json.dumps(body, allow_nan=False),
                "headers": {"Content-Type": JSON_TYPE}}
    return {"statusCode": status, "body": body, "headers": {"Content-Type": HTML_TYPE}}


def page(title: str, content: str, host: str) -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{content}"
            f"<p class=\"meta\">answered by {escape(host)}</p></body></html>")


def error_html(status: int, message: str, host: str) -> str:
    return page(f"Error {status}", f"<h1>Error {status}</h1><p>{escape(message)}</p>", host)


def _time(timestamp: int) -> str:
    return f'<td class="time" title="{timestamp} ms since the epoch">{clock_html(timestamp)}</td>'


def _history_link(sensor: str) -> str:
    # From the root: a relative link would break under /function/nuevo/ (a trailing slash).
    return (f'<p><a href="/function/listar?sensor={quote(sensor)}">History of '
            f"{escape(sensor)}</a></p>")


def reading_html(sensor: str, timestamp: int, value: float) -> str:
    return (f'<tr><th>sensor</th><td class="id">{escape(sensor)}</td></tr>'
            f"<tr><th>value</th><td>{number(value)}</td></tr>"
            f"<tr><th>time</th>{_time(timestamp)}</tr>")


def stored_html(sensor: str, timestamp: int, value: float, host: str) -> str:
    return page("Reading stored", f"<h1>Reading stored</h1><table class=\"facts\">"
                f"{reading_html(sensor, timestamp, value)}</table>{_history_link(sensor)}", host)


def already_stored_html(result: dict[str, Any], host: str) -> str:
    """A retry's page: the reading was there already, and what detectar kept for it."""
    marks = ""
    if "anomaly" in result:
        marks = ("<p>Kept as an anomaly" + (" that started an event" if result["alert"] else "")
                 + ".</p>" if result["anomaly"] else "<p>Not marked as an anomaly.</p>")
    return page("Reading already stored",
                f"<h1>Reading already stored</h1><p>{escape(result['message'])}</p>{marks}"
                f"<table class=\"facts\">"
                f"{reading_html(result['sensor'], result['timestamp'], result['value'])}</table>"
                f"{_history_link(result['sensor'])}", host)


def batch_html(sensor: str, stored: int, conflicts: list[int], already_stored: int,
               host: str) -> str:
    refused = (f"<p>{counted(len(conflicts), 'reading was', 'readings were')} refused: their "
               f"timestamps hold other values ({', '.join(str(t) for t in conflicts[:20])})</p>"
               if conflicts else "")
    before = (f"<p>{counted(already_stored, 'reading was', 'readings were')} already stored "
              "(the same timestamp and value): not stored again.</p>" if already_stored else "")
    return page("Readings stored", f"<h1>{counted(stored, 'reading')} stored for sensor "
                f"{escape(sensor)}</h1>{before}{refused}{_history_link(sensor)}", host)


def _shown(total: int, shown: int, query: HistoryQuery, span: str | None = None) -> str:
    """What the page shows of the sensor's readings, in words: the range and the count cut."""
    if span:
        where = f" of the last {span} up to the newest reading"
    elif isinstance(query.start, int) or isinstance(query.end, int):
        since = clock(query.start) if isinstance(query.start, int) else "the first reading"
        until = clock(query.end) if isinstance(query.end, int) else "the last"
        where = f" from {since} to {until}"
    else:
        where = ""
    cut = f" (at most count={query.count})" if shown == query.count else ""
    return f"{counted(shown, 'reading')}{where}, newest first{cut}, of {total:,} stored."


def _listar_url(**params: str) -> str:
    return "/function/listar?" + "&amp;".join(f"{k}={quote(v)}" for k, v in params.items())


def _spans(sensor: str, chosen: str | None) -> str:
    """Links to the sensor's last day, week and month, the newest readings, and every sensor."""
    links = [f"<b>{name}</b>" if name == chosen
             else f'<a href="{_listar_url(sensor=sensor, span=name)}">{name}</a>' for name in SPANS]
    newest = ("<b>newest readings</b>" if chosen is None
              else f'<a href="{_listar_url(sensor=sensor)}">newest readings</a>')
    return (f'<p class="nav">Show: {" · ".join(links)} · {newest} · '
            f'<a href="{_listar_url(sensors="all")}">all sensors</a></p>')


def event_kinds(events: Sequence[Mapping[str, Any]]) -> Callable[[int], str | None]:
    """The kind of the event a reading at time t belongs to, from the sensor's alert log
    (an alert opens an event of its kind, `resolved` closes it): None outside every event."""
    spans: list[tuple[int, float, str]] = []
    opened: dict[str, int] = {}
    for entry in sorted(events, key=lambda e: int(e["timestamp"])):
        t, kind = int(entry["timestamp"]), entry["kind"]
        if entry["event"] == "alert":
            opened.setdefault(kind, t)
        elif kind in opened:
            spans.append((opened.pop(kind), t, kind))
    spans += [(start, math.inf, kind) for kind, start in opened.items()]

    def kind_at(t: int) -> str | None:
        return next((kind for start, end, kind in spans if start <= t < end), None)
    return kind_at


def _band_text(judged: tuple[float, float, float] | None) -> str:
    if judged is None:
        return ""
    expected, lower, upper = judged
    return (f'<br><span class="meta">expected {number(expected)}, normal '
            f'{number(lower)} to {number(upper)}</span>')


def _verdict_cell(t: int, anomalies: set[int], alerts: set[int], band: Band | None,
                  kind_at: Callable[[int], str | None]) -> str:
    """What detectar made of the reading, in words (an empty cell would mean nothing), with
    what it expected when that is kept."""
    kind = kind_at(t)
    of_kind = f" ({escape(kind)})" if kind else ""
    judged = band.get(t) if band else None
    if t in alerts:
        verdict = f"alert: new event{of_kind}"
    elif t in anomalies:
        verdict = f"anomaly{of_kind}"
    elif judged is not None:
        verdict = "normal"
    else:
        return '<td class="verdict-cell unknown">not judged</td>'
    return f'<td class="verdict-cell">{verdict}{_band_text(judged)}</td>'


def _alerts_table(events: Sequence[Mapping[str, Any]], kind_at: Callable[[int], str | None]) -> str:
    """The sensor's alerts in the range, newest first, each with its explanation and when
    its event closed."""
    closes: dict[str, list[int]] = {}
    for entry in events:
        if entry["event"] == "resolved":
            closes.setdefault(entry["kind"], []).append(int(entry["timestamp"]))
    rows = []
    for entry in sorted((e for e in events if e["event"] == "alert"),
                        key=lambda e: -int(e["timestamp"])):
        t = int(entry["timestamp"])
        closed = min((c for c in closes.get(entry["kind"], []) if c > t), default=None)
        what = escape(entry["kind"]) + (f", severity {escape(entry['severity'])}"
                                        if "severity" in entry else "")
        expected = (f'<br><span class="meta">expected {number(float(entry["expected"]))}'
                    + (f', normal {number(float(entry["lower"]))} to {number(float(entry["upper"]))}'
                       if "lower" in entry and "upper" in entry else "") + "</span>"
                    if "expected" in entry else "")
        ended = f"closed {clock_html(closed)}" if closed else "open"
        rows.append(
            f'<tr><td class="time">{clock_html(t)}<br><span class="kind">{what}</span></td>'
            f'<td>{number(float(entry["value"]))}{expected}</td>'
            f'<td class="text">{escape(entry.get("explanation", ""))}<br>'
            f'<span class="meta">{ended}</span></td></tr>')
    if not rows:
        return ""
    return (f'<h2>Alerts</h2><div class="wide"><table class="alerts"><tr><th>time, kind</th>'
            f'<th>value</th><th>explanation</th></tr>{"".join(rows)}</table></div>')


def history_html(sensor: str, total: int, readings: list[tuple[int, float]],
                 anomalies: set[int], alerts: set[int], query: HistoryQuery, host: str,
                 band: Band | None = None, events: Sequence[Mapping[str, Any]] = (),
                 flagged_total: int | None = None, span: str | None = None) -> str:
    """A sensor's page. `band`: the judged readings' (expected, lower, upper), None when the
    store keeps none; `events`: its alert log (alerts and closed events) in the range;
    `flagged_total`: every anomaly the sensor has, to say how many are off the page."""
    kind_at = event_kinds(events)
    rows = "".join(
        f'<tr{" class=anomaly" if t in anomalies else ""}>{_time(t)}<td>{number(v)}</td>'
        f"{_verdict_cell(t, anomalies, alerts, band, kind_at)}</tr>"
        for t, v in readings[:TABLE_ROWS])
    more = (f"<p>The table lists the newest {TABLE_ROWS}; the chart and the JSON answer "
            f"(<code>format=json</code>) hold all {len(readings)}.</p>"
            if len(readings) > TABLE_ROWS else "")
    flagged = sum(1 for t, _ in readings if t in anomalies)
    table = (f"<table><tr><th>time</th><th>value</th><th>detectar</th></tr>{rows}</table>{more}"
             if readings else "<p>No readings yet.</p>")
    flagged_text = (f"{counted(flagged, 'of them was', 'of them were')} flagged as "
                    f"{'an anomaly' if flagged == 1 else 'anomalies'} by detectar")
    elsewhere = (flagged_total or 0) - flagged
    if elsewhere > 0:
        flagged_text += (f"; {counted(elsewhere, 'more reading', 'more readings')} of the sensor "
                         f"{'was' if elsewhere == 1 else 'were'} flagged outside this range")
    legend = ('<p class="meta">detectar: <i>normal</i> judged and not anomalous; <i>not judged</i>: '
              "stored without a verdict (by nuevo, while the sensor had too few readings, or "
              f"judged longer ago than the {BAND_KEPT_DAYS} days verdicts are kept).</p>"
              if readings else "")
    return page(f"Readings of {sensor}",
                f"<h1>Readings of {escape(sensor)}</h1>{_spans(sensor, span)}"
                f"<p>{_shown(total, len(readings), query, span)} {flagged_text}.</p>"
                f"{readings_chart(readings, anomalies, band, alerts)}"
                f"{_alerts_table(events, kind_at)}"
                f'<h2>Readings</h2><div class="wide">{table}</div>{legend}', host)


def overview_html(sensors: Sequence[SensorSummary], host: str) -> str:
    """Every sensor: its newest reading, its state, its last alert, a link to its page."""
    def row(s: SensorSummary) -> str:
        alert = (f'{clock_html(s.last_alert)}{f" ({escape(s.last_alert_kind)})" if s.last_alert_kind else ""}'
                 if s.last_alert is not None else "none")
        css = ' class="anomaly"' if s.state == "in an event" else ""
        return (f'<tr{css}><td class="id"><a href="{_listar_url(sensor=s.sensor, span="day")}">'
                f'{escape(s.sensor)}</a><br><span class="state">{escape(s.state)}</span></td>'
                f'<td class="time"><span class="nowrap">{number(s.last_value)}</span><br>'
                f'<span class="meta" title="{s.last_reading} ms since the epoch">'
                f'{clock_html(s.last_reading)}</span></td><td class="time">{alert}</td></tr>')
    in_event = sum(1 for s in sensors if s.state == "in an event")
    table = (f'<div class="wide"><table class="sensors"><tr><th>sensor, state</th>'
             f'<th>last reading</th><th>last alert</th></tr>'
             f'{"".join(row(s) for s in sensors)}</table></div>' if sensors
             else "<p>No sensor has readings yet.</p>")
    return page("Sensors", f"<h1>Sensors</h1><p>{counted(len(sensors), 'sensor')}, "
                f"{in_event:,} in an event. State: <i>in an event</i> an alert is open (its "
                f"readings are not back inside the normal band yet); <i>normal</i> the newest "
                f"reading was judged normal; <i>not judged</i> it has no verdict (learning the "
                f"sensor, or stored by nuevo).</p>{table}", host)


def verdict_html(result: dict[str, Any], meaning: str, host: str) -> str:
    """detectar's page (the answer's fields, shared/verdict.py); `meaning` says in words what
    error and threshold are under the rule."""
    anomaly = result["anomaly"]
    word, css = {True: ("TRUE", "true"), False: ("FALSE", "false")}.get(anomaly, ("UNKNOWN", "unknown"))
    normal = ""
    if result.get("lower") is not None and result.get("upper") is not None:
        normal = (f"<tr><th>normal range</th><td>{number(result['lower'])} to "
                  f"{number(result['upper'])}</td></tr>")
    details = "".join(
        f"<tr><th>{name}</th><td>{number(result[key])}</td></tr>"
        for name, key in (("expected", "expected"), ("model's prediction", "predicted"),
                          ("error", "error"), ("threshold", "threshold"))
        if result.get(key) is not None)
    if result.get("severity") is not None:
        details += f"<tr><th>severity (0-100)</th><td>{int(result['severity'])}</td></tr>"
    window = ", ".join(number(v) for v in result["window"]) or "(none)"
    lines = []
    kind = f" ({escape(result['kind'])})" if result.get("kind") else ""
    lines.append(f"<p><strong>alert: {'yes' if result.get('alert') else 'no'}</strong>"
                 + (f": a new event{kind}, this reading pages" if result.get("alert") else "")
                 + "</p>")  # a reading not judged pages no one either
    if result.get("explanation"):
        lines.append(f"<p>{escape(result['explanation'])}</p>")
    if result.get("resolved"):
        lines.append(f"<p>Back to normal: this reading closes the {escape(result['resolved'])} "
                     "event that paged.</p>")
    why = "".join(f"<p>{escape(result[key])}</p>" for key in ("message", "note") if result.get(key))
    why += "".join(f"<p>Still learning: {escape(part)}.</p>" for part in result.get("learning", ()))
    explained = f'<p class="meta">{escape(meaning)}</p>' if result.get("error") is not None else ""
    return page(f"{result['sensor']}: anomaly {word}",
                f"<h1 class=\"verdict {css}\">{word}</h1>{''.join(lines)}{why}<table class=\"facts\">"
                f"{reading_html(result['sensor'], result['timestamp'], result['value'])}"
                f"{normal}{details}<tr><th>previous readings (newest first)</th><td>{window}</td></tr>"
                f"<tr><th>engine</th><td>{escape(str(result.get('engine') or '-'))}</td></tr>"
                f"</table>{explained}{_history_link(result['sensor'])}", host)
