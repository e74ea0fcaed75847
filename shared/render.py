"""Results as the caller's format: HTML by default (the replaced system's), JSON on request.

Everything a caller sent that is echoed into HTML goes through `escape`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Any

from .chart import readings_chart

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse}td,th{padding:.2rem .8rem;border-bottom:1px solid #eee;text-align:right}
.verdict{font-size:3rem;font-weight:bold}.true{color:#c62828}.false{color:#2e7d32}
.unknown{color:#777}.anomaly td{color:#c62828;font-weight:bold}.chart{max-width:100%}
.meta{color:#666;font-size:.9rem}"""


def wants_json(query: Any, headers: Any) -> bool:
    """`?format=json` or an Accept header that asks for JSON rather than HTML."""
    chosen = (query.get("format") or "").lower()
    if chosen in ("json", "html"):
        return chosen == "json"
    accept = (headers.get("Accept") or "").lower()
    return JSON_TYPE in accept and "text/html" not in accept


def iso(timestamp: int) -> str:
    moment = datetime.fromtimestamp(timestamp / 1000, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def response(status: int, body: Any, as_json: bool) -> dict[str, Any]:
    """The python3-http response dict; bodies are always strings with an explicit type."""
    if as_json:
        return {"statusCode": status, "body": json.dumps(body, allow_nan=False),
                "headers": {"Content-Type": JSON_TYPE}}
    return {"statusCode": status, "body": body, "headers": {"Content-Type": HTML_TYPE}}


def page(title: str, content: str, host: str) -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{content}"
            f"<p class=\"meta\">answered by {escape(host)}</p></body></html>")


def error_html(status: int, message: str, host: str) -> str:
    return page(f"Error {status}", f"<h1>Error {status}</h1><p>{escape(message)}</p>", host)


def reading_html(sensor: str, timestamp: int, value: float) -> str:
    return (f"<tr><th>sensor</th><td>{escape(sensor)}</td></tr>"
            f"<tr><th>value</th><td>{value:g}</td></tr>"
            f"<tr><th>time</th><td>{iso(timestamp)} ({timestamp})</td></tr>")


def stored_html(sensor: str, timestamp: int, value: float, host: str) -> str:
    return page("Reading stored", f"<h1>Reading stored</h1><table>"
                f"{reading_html(sensor, timestamp, value)}</table>", host)


def batch_html(sensor: str, stored: int, conflicts: list[int], host: str) -> str:
    refused = (f"<p>{len(conflicts)} readings were refused: their timestamps were taken "
               f"({', '.join(str(t) for t in conflicts[:20])})</p>" if conflicts else "")
    return page("Readings stored", f"<h1>{stored} readings stored for sensor "
                f"{escape(sensor)}</h1>{refused}", host)


def history_html(sensor: str, total: int, readings: list[tuple[int, float]],
                 anomalies: set[int], host: str) -> str:
    rows = "".join(
        f'<tr class="anomaly"><td>{iso(t)}</td><td>{v:g}</td><td>anomaly</td></tr>'
        if t in anomalies else f"<tr><td>{iso(t)}</td><td>{v:g}</td><td></td></tr>"
        for t, v in readings)
    table = (f"<table><tr><th>time</th><th>value</th><th></th></tr>{rows}</table>"
             if readings else "<p>No readings yet.</p>")
    return page(f"Readings of {sensor}",
                f"<h1>Readings of {escape(sensor)}</h1><p>{len(readings)} shown, newest first, "
                f"of {total} stored.</p>{readings_chart(readings, anomalies)}{table}", host)


def verdict_html(result: dict[str, Any], host: str) -> str:
    anomaly = result["anomaly"]
    word, css = {True: ("TRUE", "true"), False: ("FALSE", "false")}.get(anomaly, ("UNKNOWN", "unknown"))
    details = "".join(
        f"<tr><th>{name}</th><td>{result[key]:g}</td></tr>"
        for name, key in (("predicted", "predicted"), ("error", "error"), ("threshold", "threshold"))
        if result.get(key) is not None)
    window = ", ".join(f"{v:g}" for v in result["window"]) or "(none)"
    message = f"<p>{escape(result['message'])}</p>" if result.get("message") else ""
    return page(f"Anomaly: {word}",
                f"<div class=\"verdict {css}\">{word}</div>{message}<table>"
                f"{reading_html(result['sensor'], result['timestamp'], result['value'])}"
                f"{details}<tr><th>window (newest first)</th><td>{window}</td></tr>"
                f"<tr><th>engine</th><td>{escape(str(result.get('engine') or '-'))}</td></tr>"
                f"</table>", host)
