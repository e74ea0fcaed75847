"""Results as the caller's format: HTML by default (the replaced system's), JSON on request.

Everything a caller sent that is echoed into HTML goes through `escape`.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote

from .chart import CHART_STYLE, clock_html, counted, number, readings_chart
from .params import FORMATS
from .readings import HistoryQuery
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


def batch_html(sensor: str, stored: int, conflicts: list[int], host: str) -> str:
    refused = (f"<p>{counted(len(conflicts), 'reading was', 'readings were')} refused: their "
               f"timestamps were taken ({', '.join(str(t) for t in conflicts[:20])})</p>"
               if conflicts else "")
    return page("Readings stored", f"<h1>{counted(stored, 'reading')} stored for sensor "
                f"{escape(sensor)}</h1>{refused}{_history_link(sensor)}", host)


def _shown(total: int, shown: int, query: HistoryQuery) -> str:
    """What the page shows of the sensor's readings, in words: the range and the count cut."""
    if isinstance(query.start, int) or isinstance(query.end, int):
        since = clock(query.start) if isinstance(query.start, int) else "the first reading"
        until = clock(query.end) if isinstance(query.end, int) else "the last"
        where = f" from {since} to {until}"
    else:
        where = ""
    cut = f" (at most count={query.count})" if shown == query.count else ""
    return f"{counted(shown, 'reading')}{where}, newest first{cut}, of {total:,} stored."


def history_html(sensor: str, total: int, readings: list[tuple[int, float]],
                 anomalies: set[int], alerts: set[int], query: HistoryQuery, host: str) -> str:
    rows = "".join(
        f'<tr class="anomaly">{_time(t)}<td>{number(v)}</td>'
        f'<td>{"anomaly: new event" if t in alerts else "anomaly"}</td></tr>'
        if t in anomalies else f"<tr>{_time(t)}<td>{number(v)}</td><td></td></tr>"
        for t, v in readings[:TABLE_ROWS])
    more = (f"<p>The table lists the newest {TABLE_ROWS}; the chart and the JSON answer "
            f"(<code>format=json</code>) hold all {len(readings)}.</p>"
            if len(readings) > TABLE_ROWS else "")
    flagged = sum(1 for t, _ in readings if t in anomalies)
    table = (f"<table><tr><th>time</th><th>value</th><th>detectar</th></tr>{rows}</table>{more}"
             if readings else "<p>No readings yet.</p>")
    flagged_text = counted(flagged, "flagged as an anomaly", "flagged as anomalies")
    return page(f"Readings of {sensor}",
                f"<h1>Readings of {escape(sensor)}</h1><p>{_shown(total, len(readings), query)} "
                f"{flagged_text} by detectar.</p>{readings_chart(readings, anomalies)}"
                f'<div class="wide">{table}</div>', host)


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
    if anomaly is not None:
        kind = f" ({escape(result['kind'])})" if result.get("kind") else ""
        lines.append(f"<p><strong>alert: {'yes' if result.get('alert') else 'no'}</strong>"
                     + (f": a new event{kind}, this reading pages" if result.get("alert") else "")
                     + "</p>")
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
