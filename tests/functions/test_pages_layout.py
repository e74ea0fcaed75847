"""The HTML pages in a real browser, at a phone's 360 px and a desktop's 1280 px: nothing wider
than the screen (the anomaly column and the chart's labels visible), no text under 12 px, no
number broken over two lines.

Screenshots go to tmp_path, or to $PAGE_SCREENSHOTS when set, for a person to look at.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support.browser import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (`apt-get install chromium`, as .ci/run "
                             "does): the page layout tests need a real browser")
WIDTHS = (360, 1280)
LONG_SENSOR = "horno-" + "x" * 58  # the longest id there is: 64 characters, no break in it
WINDOW = 10

# Every element with text of its own: where it lies and how large its text is.
LAYOUT = """(() => {
  const width = document.documentElement.clientWidth;
  const texts = [...document.body.querySelectorAll('*')].filter(e =>
      [...e.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim()));
  const shown = texts.filter(e => e.getBoundingClientRect().width > 0);
  return {
    width, scrollWidth: document.documentElement.scrollWidth,
    outside: shown.filter(e => { const r = e.getBoundingClientRect();
                                 return r.left < -0.5 || r.right > width + 0.5; })
                  .map(e => e.textContent.trim().slice(0, 60)),
    small: shown.filter(e => parseFloat(getComputedStyle(e).fontSize) < 12)
                .map(e => e.textContent.trim().slice(0, 60)),
    broken: shown.filter(e => /^[-+]?[0-9.]+$/.test(e.textContent.trim())).filter(e => {
                const lines = document.createRange(); lines.selectNodeContents(e);
                return lines.getClientRects().length > 1; })
              .map(e => e.textContent.trim()),
    texts: shown.length,
  };
})()"""


@pytest.fixture(scope="module")
def browser():
    with Browser(CHROMIUM) as running:
        yield running


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("PAGE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pages(api, redis_client) -> dict[str, str]:
    """A URL of each kind of page, over a sensor with a history and one flagged reading."""
    start = 1_700_000_000_000
    for sensor in ("horno-3", LONG_SENSOR):
        readings = [{"dato": 70 + (i % 7) / 2, "timestamp": start + i * 300_000} for i in range(300)]
        assert api.post("nuevo", {"sensor": sensor, "readings": readings}).status_code == 200
    for k, value in enumerate((250.5, 70.5)):  # a gross departure, then a reading back in range
        verdict = api.json("detectar", sensor="horno-3", dato=str(value),
                           timestamp=str(start + (300 + k) * 300_000)).json()
        assert verdict["anomaly"] is (k == 0), verdict

    def url(function: str, **params: str) -> str:
        return f"{api.url(function)}?{urlencode(params)}"

    return {
        "listar": url("listar", sensor="horno-3", count="400"),
        "listar-long-id": url("listar", sensor=LONG_SENSOR),
        "listar-one": url("listar", sensor="horno-3", count="1"),
        "listar-week": url("listar", sensor="horno-3", span="week"),
        "overview": url("listar", sensors="all"),
        "detectar": url("detectar", sensor=LONG_SENSOR, dato="71.25"),
        "detectar-not-judged": url("detectar", sensor="nuevo-1", dato="20.5"),
        "nuevo": url("nuevo", sensor=LONG_SENSOR, dato="71.25"),
        "error": url("listar", sensor="no such sensor"),
    }


def test_every_page_fits_a_phone_and_a_desktop(api, redis_client, browser, shots):
    problems = {}
    for name, url in pages(api, redis_client).items():
        for width in WIDTHS:
            browser.open(url, width)
            browser.screenshot(shots / f"{name}-{width}.png")
            layout = browser.evaluate(LAYOUT)
            assert layout["width"] == width and layout["texts"] >= 3, (name, layout)
            if (layout["scrollWidth"] > width or layout["outside"] or layout["small"]
                    or layout["broken"]):
                problems[f"{name} at {width} px"] = layout
    assert not problems, problems


def test_the_chart_labels_and_the_anomaly_column_are_on_screen_at_360_px(api, redis_client, browser):
    browser.open(pages(api, redis_client)["listar"], 360)
    placed = browser.evaluate("""(() => {
      const width = document.documentElement.clientWidth;
      const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.right]; };
      return {width,
              labels: [...document.querySelectorAll('.chart span')].map(box),
              anomaly: box(document.querySelector('tr.anomaly td:last-child')),
              dots: document.querySelectorAll('.chart .dot.anomaly').length};
    })()""")
    width = placed["width"]
    assert len(placed["labels"]) >= 5 + 2  # the value ticks and the first and last times
    assert all(left >= 0 and right <= width for left, right in placed["labels"]), placed
    assert placed["anomaly"][0] >= 0 and placed["anomaly"][1] <= width, placed
    assert placed["dots"] == 1
