"""An inline SVG chart of a sensor's readings, anomalies marked: no JavaScript, no Grafana."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from typing import Sequence

WIDTH, HEIGHT, MARGIN = 720, 240, 40
LEFT = 64  # room for the value labels


def _clock(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def readings_chart(readings: Sequence[tuple[int, float]], anomalies: set[int]) -> str:
    """SVG of readings given newest first; anomalous ones drawn as red dots."""
    if not readings:
        return ""
    points = sorted(readings)
    t0, t1 = points[0][0], points[-1][0]
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span_t, span_v = (t1 - t0) or 1, (high - low) or 1.0

    def xy(timestamp: int, value: float) -> tuple[float, float]:
        x = LEFT + (timestamp - t0) / span_t * (WIDTH - LEFT - MARGIN)
        y = HEIGHT - MARGIN - (value - low) / span_v * (HEIGHT - 2 * MARGIN)
        return round(x, 1), round(y, 1)

    line = " ".join(f"{x},{y}" for x, y in (xy(t, v) for t, v in points))
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="4" fill="#c62828"><title>{escape(_clock(t))}: '
        f"{v:g} (anomaly)</title></circle>"
        for t, v in points if t in anomalies for x, y in [xy(t, v)])
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="readings chart" class="chart">'
        f'<rect x="{LEFT}" y="{MARGIN}" width="{WIDTH - LEFT - MARGIN}" '
        f'height="{HEIGHT - 2 * MARGIN}" fill="none" stroke="#ccc"/>'
        f'<text x="{LEFT - 4}" y="{MARGIN + 4}" text-anchor="end" font-size="11">{high:.1f}</text>'
        f'<text x="{LEFT - 4}" y="{HEIGHT - MARGIN}" text-anchor="end" font-size="11">{low:.1f}</text>'
        f'<text x="{LEFT}" y="{HEIGHT - MARGIN + 16}" font-size="11">{escape(_clock(t0))}</text>'
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - MARGIN + 16}" text-anchor="end" '
        f'font-size="11">{escape(_clock(t1))}</text>'
        f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="1.5"/>'
        f"{dots}</svg>")
