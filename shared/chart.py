"""A chart of a sensor's readings, the normal band, anomalies and alerts marked: no
JavaScript, no Grafana.

The lines and dots are an SVG stretched to the width of the page; the value and time labels
are HTML beside it, so they keep the page's font size on a phone as on a desktop (text
inside a scaled SVG shrinks with it), and the lines keep their width (non-scaling-stroke).
A dot is a zero-length line with round caps, which stays round however the SVG stretches.
Values a person needs (the newest reading, each alert's) are written beside their points as
HTML too, not only in hover titles, which a phone does not show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from html import escape

from .timestamps import clock

WIDTH, HEIGHT = 1000, 300  # the SVG's own units; it is drawn at the page's width
Y_TICKS = 5
MIN_SPAN = 2.0  # degrees: a flat sensor's noise must not fill the whole height
DOTS_BELOW = 50  # fewer readings than this are drawn as dots too, so each one is visible
LABELLED_ALERTS = 3  # the newest alerts get their value written beside them
Band = Mapping[int, tuple[float, float, float]]  # timestamp -> (expected, lower, upper)

CHART_STYLE = """.chart{margin:1rem 0 1.5rem;max-width:60rem}
.plot{position:relative;height:14rem;margin-left:3.6rem}
.plot svg{display:block;width:100%;height:100%;overflow:visible}
.plot .grid{stroke:#eee}.plot .frame{fill:none;stroke:#ccc}
.plot .line{fill:none;stroke:#1565c0;stroke-width:1.5px}
.plot .dot{stroke:#1565c0;stroke-width:6px;stroke-linecap:round}
.plot .dot.anomaly{stroke:#c62828;stroke-width:10px}
.plot .band{fill:#c8e6c9;stroke:none;opacity:.7}.plot .expected{fill:none;stroke:#2e7d32;
stroke-width:1px;stroke-dasharray:4 3}.plot .alert{stroke:#c62828;stroke-width:1px;stroke-dasharray:2 2}
.point-label{position:absolute;font-size:.8rem;white-space:nowrap;background:#fffc;padding:0 .2rem;
transform:translateY(-130%)}.point-label.left{transform:translate(-100%,-130%)}
.point-label.alert{color:#c62828;font-weight:bold}
.legend{font-size:.8rem;color:#555;margin:.3rem 0 0 3.6rem}.legend span{margin-right:.8rem;white-space:nowrap}
.key{display:inline-block;width:1.2rem;height:.6rem;margin-right:.25rem;vertical-align:middle}
.key.line{border-top:2px solid #1565c0;height:0}.key.band{background:#c8e6c9}
.key.expected{border-top:1px dashed #2e7d32;height:0}.key.anomaly{background:#c62828;width:.6rem;
border-radius:50%}.key.alert{border-left:1px dashed #c62828;width:0;height:.9rem}
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


def _point_label(x: float, y: float, text: str, css: str = "") -> str:
    """An HTML label beside an SVG point (x in 0..WIDTH, y in 0..HEIGHT), kept on screen."""
    side = " left" if x > WIDTH / 2 else ""
    return (f'<span class="point-label{side}{css}" style="left:{100 * x / WIDTH:.2f}%;'
            f'top:{100 * y / HEIGHT:.2f}%">{text}</span>')


def readings_chart(readings: Sequence[tuple[int, float]], anomalies: set[int],
                   band: Band | None = None, alerts: AbstractSet[int] = frozenset()) -> str:
    """The chart of readings given newest first; anomalous ones drawn as red dots, the
    normal band (where `band` has the readings' judgements) shaded around them with the
    expected value dashed, and each alert a dashed red line with its value written."""
    if not readings:
        return ""
    points = sorted(readings)
    t0, t1 = points[0][0], points[-1][0]
    judged = sorted((t, *band[t]) for t, _ in points if band and t in band)
    values = [v for _, v in points] + [v for _, _, lower, upper in judged for v in (lower, upper)]
    low, high = _value_range(min(values), max(values))
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
    shaded = ""
    if judged:
        edge = [f"{x_of(t)},{y_of(upper)}" for t, _, _, upper in judged] + \
               [f"{x_of(t)},{y_of(lower)}" for t, _, lower, _ in reversed(judged)]
        shaded = (f'<polygon class="band" points="{" ".join(edge)}"/><polyline class="expected" '
                  f'points="{" ".join(f"{x_of(t)},{y_of(e)}" for t, e, _, _ in judged)}"/>')
    shown_alerts = [(t, v) for t, v in points if t in alerts]
    marks = "".join(f'<line class="alert" x1="{x_of(t)}" x2="{x_of(t)}" y1="0" y2="{HEIGHT}"/>'
                    for t, _ in shown_alerts)
    written = "".join(_point_label(x_of(t), y_of(v), f"alert {number(v)}", " alert")
                      for t, v in shown_alerts[-LABELLED_ALERTS:])
    if t1 not in alerts:
        written += _point_label(x_of(t1), y_of(points[-1][1]), f"now {number(points[-1][1])}")
    flagged = sum(1 for t, _ in points if t in anomalies)
    return (
        f'<figure class="chart" role="img" aria-label="{counted(len(points), "reading")} from '
        f'{escape(clock(t0))} to {escape(clock(t1))}, '
        f'{counted(flagged, "flagged as an anomaly", "flagged as anomalies")}, '
        f'{counted(len(shown_alerts), "alert")}">'
        f'<div class="plot">{labels}<svg xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" aria-hidden="true">{grid}'
        f'<rect class="frame" x="0" y="0" width="{WIDTH}" height="{HEIGHT}"/>{shaded}{marks}'
        f'<polyline class="line" points="{line}"/>{dots}</svg>{written}</div>'
        f"{_time_labels(t0, t1)}{_legend(bool(judged), bool(flagged), bool(shown_alerts))}"
        "</figure>")


def _time_labels(t0: int, t1: int) -> str:
    times = [clock_html(t0)] + ([clock_html(t1)] if t1 > t0 else [])
    return f'<div class="time-labels">{"".join(f"<span>{t}</span>" for t in times)}</div>'


def _legend(band: bool, anomalies: bool, alerts: bool) -> str:
    """A key for each kind of mark the chart holds."""
    legend = ['<span><i class="key line"></i>readings</span>']
    if band:
        legend += ['<span><i class="key band"></i>normal band</span>',
                   '<span><i class="key expected"></i>expected</span>']
    if anomalies:
        legend.append('<span><i class="key anomaly"></i>anomaly</span>')
    if alerts:
        legend.append('<span><i class="key alert"></i>alert</span>')
    return f'<div class="legend">{"".join(legend)}</div>'
