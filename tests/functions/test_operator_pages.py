"""The pages an operator starts from, over real HTTP and a real Redis: the sensors overview
(`listar?sensors=all`), a sensor's last day, week or month (`span`), its alerts with their
explanations, and what each reading's verdict was in words."""

from __future__ import annotations

from tests.conftest import ON_BOTH_LAYOUTS
from tests.functions.test_functions_api import text_of

DAY_MS = 86_400_000
T0 = 1_700_000_000_000


def load(api, sensor: str, count: int, step_ms: int, start: int = T0, value: float = 70.0) -> int:
    """`count` steady readings `step_ms` apart; the time after the last."""
    readings = [{"dato": value + (i % 3) / 10, "timestamp": start + i * step_ms} for i in range(count)]
    assert api.post("nuevo", {"sensor": sensor, "readings": readings}).status_code == 200
    return start + count * step_ms


@ON_BOTH_LAYOUTS
def test_the_overview_lists_every_sensor_with_its_newest_reading_and_state(api, redis_client):
    after = load(api, "horno-1", 30, 300_000)
    load(api, "horno-2", 30, 300_000, value=40.0)
    assert api.json("detectar", sensor="horno-1", dato="250", timestamp=str(after)).json()["alert"]
    load(api, "horno-3", 5, 300_000)  # never judged
    sensors = {s["sensor"]: s for s in api.json("listar", sensors="all").json()["sensors"]}
    assert sorted(sensors) == ["horno-1", "horno-2", "horno-3"]
    assert (sensors["horno-1"]["last_reading"], sensors["horno-1"]["last_value"]) == (after, 250.0)
    assert sensors["horno-1"]["last_alert"] == after
    assert sensors["horno-3"]["state"] == "not judged" and sensors["horno-3"]["last_alert"] is None
    page = text_of(api.get("listar", sensors="all").text)
    assert "3 sensors" in page and "horno-2" in page
    assert 'href="/function/listar?sensor=horno-2&amp;span=day"' in api.get("listar", sensors="all").text


def test_the_seeds_listar_without_parameters_is_still_the_mediciones_history(api, redis_client):
    load(api, "mediciones", 3, 1000)
    answer = api.json("listar").json()
    assert answer["sensor"] == "mediciones" and answer["total"] == 3


def test_a_span_is_the_last_day_week_or_month_up_to_the_newest_reading(api, redis_client):
    after = load(api, "horno-1", 24 * 40, 3_600_000)  # hourly for 40 days
    newest = after - 3_600_000
    for span, days in (("day", 1), ("week", 7), ("month", 31)):
        readings = api.json("listar", sensor="horno-1", span=span).json()["readings"]
        assert readings[0]["timestamp"] == newest
        assert readings[-1]["timestamp"] == newest - days * DAY_MS, span
        assert len(readings) == 24 * days + 1
    page = text_of(api.get("listar", sensor="horno-1", span="week").text)
    assert "169 readings of the last week up to the newest reading" in page


def test_span_and_sensors_refuse_what_they_cannot_mean(api, redis_client):
    for params in ({"span": "year"}, {"span": "day", "count": "5"}, {"span": "day", "from": "0"},
                   {"sensors": "some"}, {"sensors": "all", "sensor": "horno-1"}):
        answer = api.json("listar", **params)
        assert answer.status_code == 400, params
        assert answer.json()["error"]


def test_earlier_anomalies_off_the_page_are_counted_and_the_kind_is_in_words(api, redis_client):
    after = load(api, "horno-1", 30, 300_000)
    assert api.json("detectar", sensor="horno-1", dato="250", timestamp=str(after)).json()["alert"]
    load(api, "horno-1", 10, 300_000, start=after + 300_000)
    page = text_of(api.get("listar", sensor="horno-1", count="5").text)
    assert "0 of them were flagged as anomalies" in page
    assert "1 more reading of the sensor was flagged outside this range" in page
    whole = text_of(api.get("listar", sensor="horno-1").text)
    assert "alert: new event" in whole and "not judged" in whole


def test_the_verdict_page_says_alert_yes_or_no(api, redis_client):
    after = load(api, "horno-1", 30, 300_000)
    spike = text_of(api.get("detectar", sensor="horno-1", dato="250", timestamp=str(after)).text)
    assert "alert: yes" in spike
    calm = text_of(api.get("detectar", sensor="horno-2", dato="20").text)  # not judged yet
    assert "alert: no" in calm
