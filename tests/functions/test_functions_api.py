"""The three functions through the local gateway, over real HTTP, against a real Redis: one
server, and a Redis Cluster of three masters (every test runs on both).

The replaced system's calls must keep working unchanged: GET with `dato`, HTML answers.
"""

from __future__ import annotations

import html
import math
import re
from urllib.parse import urljoin

from shared.store.keys import detector_key
from tests.conftest import ON_BOTH_LAYOUTS

WINDOW = 10
pytestmark = ON_BOTH_LAYOUTS


def stored_values(redis_client, key="mediciones"):
    if not redis_client.exists(key):
        return []
    return [v for _, v in redis_client.ts().range(key, "-", "+")]


def test_gateway_routes(api):
    assert api.http.get(f"{api.base}/healthz").status_code == 200
    listed = {f["name"]: f for f in api.http.get(f"{api.base}/system/functions").json()}
    assert sorted(listed) == ["detectar", "listar", "nuevo"]
    assert listed["nuevo"]["image"] == "anomalias/nuevo:0.1.0"  # stack.yml, envsubst applied
    assert listed["detectar"]["labels"]["com.openfaas.scale.min"] == "5"
    assert api.http.get(f"{api.base}/function/nada").status_code == 404


def test_nuevo_keeps_the_old_call_and_answers_html(api, redis_client):
    answer = api.get("nuevo", dato="25.4")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "25.4" in answer.text and "mediciones" in answer.text
    assert stored_values(redis_client) == [25.4]


def test_nuevo_answers_json_on_request(api, redis_client):
    by_param = api.json("nuevo", dato="1.5", sensor="linea-2", timestamp="1700000000000")
    assert by_param.json() == {"sensor": "linea-2", "timestamp": 1700000000000, "value": 1.5}
    by_header = api.http.get(api.url("nuevo"), params={"dato": "2"},
                             headers={"Accept": "application/json"})
    assert by_header.headers["Content-Type"] == "application/json"
    assert by_header.json()["value"] == 2.0


def test_nuevo_takes_a_json_body_an_iso_time_and_a_bare_number(api, redis_client):
    answer = api.post("nuevo", {"dato": 30.25, "sensor": "horno", "timestamp": "2024-01-31T12:00:00Z"},
                      params={"format": "json"})
    assert answer.json()["timestamp"] == 1706702400000
    # What `echo 18.5 | faas-cli invoke nuevo` sends: a text/plain body holding a number.
    plain = api.http.post(api.url("nuevo"), data=b"18.5\n", params={"format": "json"},
                          headers={"Content-Type": "text/plain"})
    assert plain.status_code == 200 and plain.json()["value"] == 18.5
    assert stored_values(redis_client, "horno") == [30.25]
    assert stored_values(redis_client) == [18.5]


def test_the_earliest_millisecond_is_a_timestamp_in_any_offset(api, redis_client):
    """1999-12-31T23:00-01:00 is EARLIEST_READING itself (2000-01-01 UTC); a moment before
    it is refused."""
    answer = api.json("nuevo", dato="1.5", sensor="epoca", timestamp="1999-12-31T23:00:00-01:00")
    assert answer.status_code == 200 and answer.json()["timestamp"] == 946_684_800_000
    early = api.json("nuevo", dato="1.5", sensor="epoca", timestamp="1999-12-31T22:59:59.999-01:00")
    assert early.status_code == 400 and "before 2000-01-01" in early.json()["error"]


def test_json_numbers_that_are_whole_count_as_whole(api, redis_client):
    for i in range(3):
        api.get("nuevo", dato=str(i), sensor="enteros")
    answer = api.post("listar", {"sensor": "enteros", "count": 2.0}, params={"format": "json"})
    assert answer.status_code == 200 and len(answer.json()["readings"]) == 2
    half = api.post("listar", {"sensor": "enteros", "count": 2.5}, params={"format": "json"})
    assert half.status_code == 400 and "count" in half.json()["error"]


def test_nuevo_stores_a_batch_in_one_call(api, redis_client):
    readings = [{"dato": 20 + i / 10, "timestamp": 1_700_000_000_000 + i * 1000} for i in range(500)]
    answer = api.post("nuevo", {"sensor": "lote", "readings": readings}, params={"format": "json"})
    assert answer.status_code == 200
    assert answer.json() == {"sensor": "lote", "stored": 500}
    assert len(stored_values(redis_client, "lote")) == 500


def test_a_taken_timestamp_is_refused_and_never_overwritten(api, redis_client):
    assert api.json("nuevo", dato="10", timestamp="1700000000000").status_code == 200
    again = api.json("nuevo", dato="99", timestamp="1700000000000")
    assert again.status_code == 409
    assert "1700000000000" in again.json()["error"]
    assert stored_values(redis_client) == [10.0]
    batch = api.post("nuevo", {"readings": [{"dato": 1, "timestamp": 1700000000000},
                                            {"dato": 2, "timestamp": 1700000001000}]},
                     params={"format": "json"})
    assert batch.status_code == 409
    assert batch.json()["stored"] == 1 and batch.json()["conflicts"] == [1700000000000]
    assert stored_values(redis_client) == [10.0, 2.0]


def test_a_retried_reading_is_already_stored_and_stored_once(api, redis_client):
    """A retry (same sensor, timestamp and value: a lost answer, MQTT's at-least-once) is 200."""
    assert api.json("nuevo", dato="10.5", timestamp="1700000000000").status_code == 200
    again = api.json("nuevo", dato="10.50", timestamp="2023-11-14T22:13:20Z")  # the same reading
    assert again.status_code == 200
    assert again.json() == {"sensor": "mediciones", "timestamp": 1700000000000, "value": 10.5,
                            "duplicate": True, "message": again.json()["message"]}
    assert again.json()["message"].startswith("already stored")
    page = api.get("nuevo", dato="10.5", timestamp="1700000000000")
    assert page.status_code == 200 and "Reading already stored" in page.text
    assert api.json("nuevo", dato="10.6", timestamp="1700000000000").status_code == 409
    assert stored_values(redis_client) == [10.5]


def test_detectar_answers_a_retry_with_the_kept_verdict_and_judges_it_once(api, redis_client):
    next_time = feed(api, [70.0] * WINDOW)
    verdict = api.json("detectar", dato="95", timestamp=str(next_time)).json()
    assert verdict["anomaly"] is True and verdict["alert"] is True
    state = redis_client.hgetall(detector_key("mediciones"))
    again = api.json("detectar", dato="95", timestamp=str(next_time))
    assert again.status_code == 200
    assert {key: again.json()[key] for key in ("timestamp", "value", "duplicate", "anomaly",
                                               "alert")} == {
        "timestamp": next_time, "value": 95.0, "duplicate": True, "anomaly": True, "alert": True}
    assert "not judged twice" in again.json()["message"] and "window" not in again.json()
    assert redis_client.hgetall(detector_key("mediciones")) == state  # the rule saw it once
    page = api.get("detectar", dato="95", timestamp=str(next_time)).text
    assert "Reading already stored" in page and "Kept as an anomaly that started an event" in page
    calm = api.json("detectar", dato="70", timestamp=str(next_time + 300_000)).json()
    retried = api.json("detectar", dato="70", timestamp=str(next_time + 300_000)).json()
    assert calm["anomaly"] is False and (retried["anomaly"], retried["alert"]) == (False, False)
    refused = api.json("detectar", dato="96", timestamp=str(next_time))
    assert refused.status_code == 409 and "different reading" in refused.json()["error"]
    assert api.json("listar").json()["total"] == WINDOW + 2


def test_a_batch_counts_readings_stored_before_as_already_stored(api, redis_client):
    start = 1_700_000_000_000
    readings = [{"dato": 20 + i, "timestamp": start + i * 1000} for i in range(3)]
    assert api.post("nuevo", {"sensor": "lote", "readings": readings},
                    params={"format": "json"}).json() == {"sensor": "lote", "stored": 3}
    retried = api.post("nuevo", {"sensor": "lote", "readings": [
        *readings, {"dato": 30, "timestamp": start + 3000}]}, params={"format": "json"})
    assert retried.status_code == 200
    assert retried.json() == {"sensor": "lote", "stored": 1, "already_stored": 3}
    mixed = api.post("nuevo", {"sensor": "lote", "readings": [
        readings[0], {"dato": 99, "timestamp": start + 1000}]}, params={"format": "json"})
    assert mixed.status_code == 409
    assert {key: mixed.json()[key] for key in ("stored", "already_stored", "conflicts")} == {
        "stored": 0, "already_stored": 1, "conflicts": [start + 1000]}
    page = api.post("nuevo", {"sensor": "lote", "readings": readings}).text
    assert "3 readings were already stored" in page
    assert stored_values(redis_client, "lote") == [20.0, 21.0, 22.0, 30.0]


def test_listar_is_newest_first_with_total_count_and_range(api, redis_client):
    for i in range(30):
        api.get("nuevo", dato=str(i), timestamp=str(1_700_000_000_000 + i * 1000))
    everything = api.json("listar").json()
    assert everything["sensor"] == "mediciones" and everything["total"] == 30
    assert [r["value"] for r in everything["readings"][:3]] == [29.0, 28.0, 27.0]
    three = api.json("listar", count="3").json()
    assert len(three["readings"]) == 3 and three["total"] == 30
    ranged = api.json("listar", **{"from": "1700000005000", "to": "1700000007000"}).json()
    assert [r["timestamp"] for r in ranged["readings"]] == [1700000007000, 1700000006000,
                                                            1700000005000]
    assert api.json("listar", sensor="otro").json() == {"sensor": "otro", "total": 0, "readings": [],
                                                        "flagged_total": 0, "alerts": []}


def test_detectar_stores_and_waits_for_a_full_window(api, redis_client):
    answer = api.json("detectar", dato="80.5").json()
    assert answer["anomaly"] is None and "needs 10 previous readings" in answer["message"]
    assert stored_values(redis_client) == [80.5]


def feed(api, values, sensor="mediciones", start=1_700_000_000_000):
    for i, value in enumerate(values):
        api.get("nuevo", dato=repr(value), sensor=sensor, timestamp=str(start + i * 300_000))
    return start + len(values) * 300_000


def test_detectar_judges_against_the_previous_window(api, redis_client):
    history = [70.0 + (i % 3) for i in range(WINDOW + 5)]
    next_time = feed(api, history)
    answer = api.json("detectar", dato="71.0", timestamp=str(next_time)).json()
    assert answer["window"] == list(reversed(history))[:WINDOW]  # newest first
    assert answer["anomaly"] is False and answer["alert"] is False
    assert set(answer) >= {"sensor", "timestamp", "value", "anomaly", "predicted", "error",
                           "threshold", "window", "engine"}
    assert 68 < answer["predicted"] < 73 and answer["engine"] == "embedded"
    assert stored_values(redis_client)[-1] == 71.0
    state = redis_client.hgetall(detector_key("mediciones"))
    assert float(state[b"n"]) == 1.0  # the sensor's statistics learnt this reading


def test_detectar_html_says_true_in_red_or_false_in_green(api, redis_client):
    next_time = feed(api, [70.0] * WINDOW)
    normal = api.get("detectar", dato="70.0", timestamp=str(next_time))
    assert 'class="verdict false">FALSE' in normal.text
    assert ".false{color:#2e7d32}" in normal.text and ".true{color:#c62828}" in normal.text
    huge = api.get("detectar", dato="95.0", timestamp=str(next_time + 300_000)).text
    assert 'class="verdict true">TRUE' in huge
    assert "answered by" in huge and api.json("listar").json()["total"] == WINDOW + 2


def test_a_new_sensor_flags_a_gross_departure_from_its_first_judgement(api, redis_client):
    """Ten readings around 80, then 250: TRUE at once (the replaced system's judgement from
    the first full window), an alert, and the answer says which parts are still learning."""
    next_time = feed(api, [80.0, 80.3, 79.8, 80.1, 80.2, 79.9, 80.0, 80.4, 79.7, 80.1])
    calm = api.json("detectar", dato="80.2", timestamp=str(next_time)).json()
    assert calm["anomaly"] is False and calm["alert"] is False and "note" not in calm
    assert any("only gross departures flag" in part for part in calm["learning"])
    gross = api.json("detectar", dato="250", timestamp=str(next_time + 300_000)).json()
    assert gross["anomaly"] is True and gross["alert"] is True and gross["kinds"] == ["high"]
    page = api.get("detectar", dato="260", timestamp=str(next_time + 600_000)).text
    assert 'class="verdict true">TRUE' in page and "Still learning:" in page


def test_a_reading_of_an_event_already_paged_is_true_without_a_new_alert(api, redis_client):
    """Past its day of learning, a record high alerts; the next reading, a little further,
    is TRUE in red too, says which event it belongs to, and pages no one."""
    start, step = 1_700_000_000_000, 300_000
    for i in range(WINDOW + 300):  # a day and a bit of judged readings, around 100
        value = 100.0 + 5.0 * math.sin(i / 12.0)
        assert api.json("detectar", dato=repr(value), timestamp=str(start + i * step)).status_code == 200
    next_time = start + (WINDOW + 300) * step
    first = api.json("detectar", dato="112.5", timestamp=str(next_time)).json()
    assert first["anomaly"] is True and first["alert"] is True and first["learning"] == []
    second = api.json("detectar", dato="115", timestamp=str(next_time + step)).json()
    assert second["anomaly"] is True and second["alert"] is False
    assert second["note"].startswith("high: part of the event alerted at")
    page = api.get("detectar", dato="115.5", timestamp=str(next_time + 2 * step)).text
    assert 'class="verdict true">TRUE' in page and "part of the event alerted at" in page
    marks = api.json("listar", count="3").json()["readings"]
    assert [(r["anomaly"], r["alert"]) for r in marks] == [(True, False), (True, False), (True, True)]


def text_of(page: str) -> str:
    """What a reader sees of a page: its text without the markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_pages_show_times_in_utc_with_two_decimals_and_link_the_history(api, redis_client):
    answer = api.http.get(api.url("nuevo") + "/", params={  # a trailing slash, as browsers add
        "dato": "25.4", "sensor": "horno-1", "timestamp": "2024-01-31T12:00:00Z"})
    stored = answer.text
    assert "2024-01-31 12:00:00 UTC" in text_of(stored) and "<td>25.40</td>" in stored
    link = re.search(r'href="([^"]+)">History of horno-1', stored)[1]
    assert urljoin(answer.url, link) == f"{api.base}/function/listar?sensor=horno-1"
    assert '<meta name="viewport"' in stored


def test_listar_says_what_it_shows_of_a_range_and_caps_its_table(api, redis_client):
    for i in range(30):
        api.get("nuevo", dato=str(i), sensor="rango", timestamp=str(1_700_000_000_000 + i * 1000))
    page = api.get("listar", sensor="rango", count="5",
                   **{"from": "1700000002000", "to": "1700000020000"}).text
    assert ("5 readings from 2023-11-14 22:13:22 UTC to 2023-11-14 22:13:40 UTC, newest first "
            "(at most count=5), of 30 stored.") in text_of(page)
    assert page.count("<tr>") == 6  # a header and five readings
    big = [{"dato": float(i), "timestamp": 1_600_000_000_000 + i} for i in range(600)]
    assert api.post("nuevo", {"sensor": "grande", "readings": big}).status_code == 200
    page = api.get("listar", sensor="grande", count="600").text
    assert page.count("<tr>") == 501 and "the JSON answer (<code>format=json</code>) hold all 600" in page


def test_listar_marks_what_detectar_judged_anomalous(api, redis_client):
    next_time = feed(api, [70.0] * WINDOW)
    verdict = api.json("detectar", dato="95", timestamp=str(next_time)).json()
    assert verdict["anomaly"] is True and verdict["error"] > verdict["threshold"]
    listed = api.json("listar").json()["readings"]
    assert {k: listed[0][k] for k in ("timestamp", "value", "anomaly", "alert")} == {
        "timestamp": next_time, "value": 95.0, "anomaly": True, "alert": True}
    assert not any(r["anomaly"] for r in listed[1:])
    page = api.get("listar").text
    assert "<svg" in page and "<script" not in page
    assert page.count('class="dot anomaly"') == 1  # one red dot: the anomaly
    assert "1 of them was flagged as an anomaly by detectar" in page
    one = text_of(api.get("listar", count="1", to=str(next_time - 1)).text)  # before it
    assert "1 reading from the first reading to" in one and "0 of them were flagged as anomalies" in one
    assert "1 more reading of the sensor was flagged outside this range" in one  # not hidden
    verdict_page = text_of(api.get("detectar", dato="71", timestamp=str(next_time + 300_000)).text)
    assert "error: the strongest of the rule's learned tests as a multiple of what flags it" in verdict_page


def test_detectar_says_what_normal_is_and_judges_a_gross_reading_against_the_sensor(api, redis_client):
    """Issue 17 end to end: 200 readings around 80, then 250, 80.7 and 500: 500 is TRUE
    (judged against the sensor's normal, not a window holding the 250); every judged answer
    has expected, lower, upper, severity, explanation, kind and resolved, and the page shows
    them with a plain alert line; a reading after a long silence says so."""
    step = 300_000
    values = [80.0 + math.sin(i * 1.7) for i in range(WINDOW + 200)]
    next_time = feed(api, values[:WINDOW])
    for i, value in enumerate(values[WINDOW:]):
        answer = api.json("detectar", dato=repr(value), timestamp=str(next_time + i * step)).json()
    assert {"expected", "lower", "upper", "severity", "explanation", "kind", "resolved"} <= set(answer)
    assert answer["lower"] <= answer["value"] <= answer["upper"] and answer["kind"] is None
    next_time += 200 * step
    spike, after, gross = (api.json("detectar", dato=value, timestamp=str(next_time + k * step)).json()
                           for k, value in enumerate(("250", "80.7", "500")))
    assert spike["anomaly"] is True and spike["alert"] is True and spike["kind"] == "high"
    assert after["anomaly"] is False
    assert gross["anomaly"] is True and gross["kind"] == "high" and gross["severity"] >= 50
    assert "above the usual" in gross["explanation"] or "above the model's" in gross["explanation"]
    silent_until = next_time + 3 * step + 12 * 3_600_000
    page = text_of(api.get("detectar", dato="80.2", timestamp=str(silent_until)).text)
    assert "alert: no" in page and "normal range" in page and "expected" in page
    assert "silence of 12.1 h" in page  # 12 h and a 5-minute step
