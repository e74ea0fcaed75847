"""shared/render.py without HTTP: what each page says, and that nothing a caller chose is
written into HTML unescaped."""

from __future__ import annotations

from typing import Any

from shared import render
from shared.readings import SensorSummary

T = 1_706_702_400_000  # 2024-01-31 12:00:00 UTC


def judged(**fields: Any) -> dict[str, Any]:
    """A detectar answer as actions.py builds it, judged and normal unless told."""
    return {"sensor": "horno-3", "timestamp": T, "value": 71.2, "anomaly": False, "alert": False,
            "kinds": [], "learning": [], "predicted": 71.0, "error": 0.2, "threshold": 1.0,
            "expected": 71.1, "lower": 64.2, "upper": 78.9, "severity": 8, "kind": None,
            "resolved": None, "explanation": "71.2, as usual for 12:00 UTC",
            "window": [71.0, 70.9], "engine": "embedded", **fields}


def test_a_normal_verdict_says_false_no_alert_and_what_normal_is():
    html = render.verdict_html(judged(), "error: how far", "fn-host")
    assert 'class="verdict false">FALSE' in html
    assert "alert: no" in html and "normal range" in html and "64.20 to 78.90" in html
    assert "71.2, as usual for 12:00 UTC" in html and "12:00:00 UTC" in html


def test_an_alerting_verdict_says_true_and_which_event_pages():
    html = render.verdict_html(judged(anomaly=True, alert=True, kind="high", kinds=["high"],
                                      severity=76), "m", "h")
    assert 'class="verdict true">TRUE' in html
    assert "alert: yes" in html and "(high)" in html and "76" in html


def test_an_unjudged_verdict_says_why_and_that_it_pages_no_one():
    html = render.verdict_html({"sensor": "s", "timestamp": T, "value": 1.0, "anomaly": None,
                                "alert": None, "window": [], "message": "needs 10 readings"},
                               "m", "h")
    assert "UNKNOWN" in html and "needs 10 readings" in html and "alert: no" in html


def test_a_closing_reading_says_its_event_is_over():
    assert "closes the high event" in render.verdict_html(judged(resolved="high"), "m", "h")


def test_caller_chosen_text_is_escaped_everywhere():
    evil = "<script>alert(1)</script>"
    pages = [render.verdict_html(judged(sensor=evil, explanation=evil), "m", "h"),
             render.error_html(400, f"bad sensor {evil}", "h"),
             render.overview_html([SensorSummary(evil, T, 1.0, "normal", None, None)], "h")]
    for html in pages:
        assert evil not in html and "&lt;script&gt;" in html


def test_the_overview_counts_sensors_in_an_event_and_links_each_page():
    sensors = [SensorSummary("a", T, 80.5, "in an event", T, "high"),
               SensorSummary("b", T, 20.0, "normal", None, None)]
    html = render.overview_html(sensors, "h")
    assert "2 sensors, 1 in an event" in html
    assert "/function/listar?sensor=a&amp;span=day" in html or "/function/listar?sensor=a&span=day" in html
    assert "(high)" in html and "none" in html
    assert "No sensor has readings yet" in render.overview_html([], "h")


def test_json_or_html_as_the_caller_asks():
    assert render.wants_json({"format": "json"}, {})
    assert not render.wants_json({"format": "html"}, {"Accept": "application/json"})
    assert render.wants_json({}, {"Accept": "application/json"})
    assert not render.wants_json({}, {})
