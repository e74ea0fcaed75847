"""A chart of a sensor's readings, anomalies marked: no JavaScript, no Grafana.

The lines and dots are an SVG stretched to the width of the page; the value and time labels
are HTML beside it, so they keep the page's font size on a phone as on a desktop (text
inside a scaled SVG shrinks with it), and the lines keep their width (non-scaling-stroke).
A dot is a zero-length line with round caps, which stays round however the SVG stretches.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

from .timestamps import clock

WIDTH, HEIGHT = 1000, 300  # the SVG's own units; it is drawn at the page's width
Y_TICKS = 5
MIN_SPAN = 2.0  # degrees: a flat sensor's noise must not fill the whole height
DOTS_BELOW = 50  # fewer readings than this are drawn as dots too, so each one is visible

CHART_STYLE = """.chart{margin:1rem 0 1.5rem;max-width:60rem}
.plot{position:relative;height:14rem;margin-left:3.6rem}
.plot svg{display:block;width:100%;height:100%;overflow:visible}
.plot .grid{stroke:#eee}.plot .frame{fill:none;stroke:#ccc}
.plot .line{fill:none;stroke:#1565c0;stroke-width:1.5px}
.plot .dot{stroke:#1565c0;stroke-width:6px;stroke-linecap:round}
.plot .dot.anomaly{stroke:#c62828;stroke-width:10px}
.plot line,.plot path,.plot polyline,.plot rect{vector-effect:non-scaling-stroke}
.value-label{position:absolute;right:100%;margin-right:.3rem;transform:translateY(-50%);
font-size:.8rem;white-space:nowrap}
.time-labels{display:flex;justify-content:space-between;margin-left:3.6rem;font-size:.8rem}
.time-labels span:last-child{text-align:right}.time-labels span:only-child{margin:auto}"""


def clock_html(timestamp: int) -> str:
    """clock() as HTML that may break between the date and the time on a narrow screen."""
    day, _, time_of_day = clock(timestamp).partition(" ")
    return f'<span class="nowrap">{day}</span> <span class="nowrap">{time_of_day}</span>'


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 reading`, `2 readings`: the number with its noun in the right form."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


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
    """The chart of readings given newest first; anomalous ones drawn as red dots."""
    if not readings:
        return ""
    points = sorted(readings)
    t0, t1 = points[0][0], points[-1][0]
    low, high = _value_range(min(v for _, v in points), max(v for _, v in points))
    span_t, span_v = (t1 - t0) or 1, high - low

    def x_of(timestamp: int) -> float:
        # a single reading sits in the middle rather than on the left edge
        share = (timestamp - t0) / span_t if t1 > t0 else 0.5
        return round(share * WIDTH, 1)

    def y_of(value: float) -> float:
        return round(HEIGHT - (value - low) / span_v * HEIGHT, 1)

    levels = [low + k * span_v / (Y_TICKS - 1) for k in range(Y_TICKS)]
    grid = "".join(f'<line class="grid" x1="0" x2="{WIDTH}" y1="{y_of(v)}" y2="{y_of(v)}"/>'
                   for v in levels)
    labels = "".join(f'<span class="value-label" style="top:{100 * k / (Y_TICKS - 1):g}%">'
                     f"{number(v)}</span>" for k, v in enumerate(reversed(levels)))
    line = " ".join(f"{x_of(t)},{y_of(v)}" for t, v in points)
    small = len(points) < DOTS_BELOW
    dots = "".join(
        f'<path class="dot{" anomaly" if t in anomalies else ""}" d="M{x_of(t)} {y_of(v)}h0">'
        f'<title>{escape(clock(t))}: {number(v)}{" (anomaly)" if t in anomalies else ""}'
        f"</title></path>"
        for t, v in points if small or t in anomalies)
    flagged = sum(1 for t, _ in points if t in anomalies)
    times = [clock_html(t0)] + ([clock_html(t1)] if t1 > t0 else [])
    return (
        f'<figure class="chart" role="img" aria-label="{counted(len(points), "reading")} from '
        f'{escape(clock(t0))} to {escape(clock(t1))}, '
        f'{counted(flagged, "flagged as an anomaly", "flagged as anomalies")}">'
        f'<div class="plot">{labels}<svg xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" aria-hidden="true">{grid}'
        f'<rect class="frame" x="0" y="0" width="{WIDTH}" height="{HEIGHT}"/>'
        f'<polyline class="line" points="{line}"/>{dots}</svg></div>'
        f'<div class="time-labels">{"".join(f"<span>{t}</span>" for t in times)}</div></figure>')
