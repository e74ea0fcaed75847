"""An inline SVG chart of a sensor's readings, anomalies marked: no JavaScript, no Grafana."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from html import escape
from typing import Sequence

WIDTH, HEIGHT, MARGIN = 720, 240, 40
LEFT = 72  # room for the value labels
Y_TICKS = 5
MIN_SPAN = 2.0  # degrees: a flat sensor's noise must not fill the whole height
DOTS_BELOW = 50  # fewer readings than this are drawn as dots too, so each one is visible


def clock(timestamp: int) -> str:
    """A reading's time as people read it, with its zone (the store keeps UTC ms)."""
    return datetime.fromtimestamp(timestamp / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: float) -> str:
    """One format for every reading shown: two decimals, or three significant digits with an
    exponent past what fits a label."""
    return f"{value:.2f}" if abs(value) < 1e6 else f"{value:.3g}"


def _value_range(low: float, high: float) -> tuple[float, float]:
    """[low, high] widened to at least MIN_SPAN and to round tick steps."""
    middle, span = (low + high) / 2, max(high - low, MIN_SPAN)
    low, high = middle - span / 2, middle + span / 2
    raw_step = span / (Y_TICKS - 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    return math.floor(low / step) * step, math.ceil(high / step) * step


def readings_chart(readings: Sequence[tuple[int, float]], anomalies: set[int]) -> str:
    """SVG of readings given newest first; anomalous ones drawn as red dots."""
    if not readings:
        return ""
    points = sorted(readings)
    t0, t1 = points[0][0], points[-1][0]
    low, high = _value_range(min(v for _, v in points), max(v for _, v in points))
    span_t, span_v = (t1 - t0) or 1, high - low
    bottom, right = HEIGHT - MARGIN, WIDTH - MARGIN

    def x_of(timestamp: int) -> float:
        # a single reading sits in the middle rather than on the left edge
        share = (timestamp - t0) / span_t if t1 > t0 else 0.5
        return round(LEFT + share * (right - LEFT), 1)

    def y_of(value: float) -> float:
        return round(bottom - (value - low) / span_v * (bottom - MARGIN), 1)

    ticks = "".join(
        f'<line x1="{LEFT}" x2="{right}" y1="{y}" y2="{y}" stroke="#eee"/>'
        f'<text x="{LEFT - 4}" y="{y + 4}" text-anchor="end" font-size="11">{number(v)}</text>'
        for v in (low + k * span_v / (Y_TICKS - 1) for k in range(Y_TICKS)) for y in [y_of(v)])
    line = " ".join(f"{x_of(t)},{y_of(v)}" for t, v in points)
    small = len(points) < DOTS_BELOW
    dots = "".join(
        f'<circle cx="{x_of(t)}" cy="{y_of(v)}" r="{4 if t in anomalies else 2.5}" '
        f'fill="{"#c62828" if t in anomalies else "#1565c0"}"><title>{escape(clock(t))}: '
        f'{number(v)}{" (anomaly)" if t in anomalies else ""}</title></circle>'
        for t, v in points if small or t in anomalies)
    flagged = sum(1 for t, _ in points if t in anomalies)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{len(points)} readings from {escape(clock(t0))} to {escape(clock(t1))}, '
        f'{flagged} flagged as anomalies" class="chart">{ticks}'
        f'<rect x="{LEFT}" y="{MARGIN}" width="{right - LEFT}" height="{bottom - MARGIN}" '
        f'fill="none" stroke="#ccc"/>'
        f'<text x="{LEFT}" y="{bottom + 16}" font-size="11">{escape(clock(t0))}</text>'
        f'<text x="{right}" y="{bottom + 16}" text-anchor="end" font-size="11">'
        f"{escape(clock(t1))}</text>"
        f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="1.5"/>'
        f"{dots}</svg>")
