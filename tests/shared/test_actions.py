"""shared/actions.py without HTTP: each function's action on validated parameters, against a
real Redis, giving the documented JSON and its page."""

from __future__ import annotations

import pytest

from shared.actions import DETECTAR, LISTAR, NUEVO
from shared.errors import BadRequest
from shared.services import Services

T = 1_706_702_400_000  # 2024-01-31 12:00:00 UTC
STEP = 300_000  # five minutes


@pytest.fixture
def services(redis_server):
    redis_server.client().flushall()
    built = Services(redis_server.env())
    yield built
    built.redis.close()


def feed(services: Services, sensor: str, values: list[float]) -> None:
    for i, value in enumerate(values):
        NUEVO.run({"sensor": sensor, "dato": str(value), "timestamp": str(T + i * STEP)},
                  services, "h")


def test_nuevo_stores_a_reading_and_answers_it_in_both_formats(services, redis_server):
    result = NUEVO.run({"sensor": "s1", "dato": "25.4", "timestamp": str(T)}, services, "h")
    assert (result.status, result.document) == (200, {"sensor": "s1", "timestamp": T,
                                                      "value": 25.4})
    assert "25.40" in result.page()
    assert redis_server.client().execute_command("TS.GET", "s1") == [T, b"25.4"]


def test_a_bad_parameter_is_refused_before_anything_is_stored(services, redis_server):
    with pytest.raises(BadRequest):
        NUEVO.run({"sensor": "s1", "dato": "warm"}, services, "h")
    assert redis_server.client().exists("s1") == 0


def test_detectar_judges_after_ten_readings_and_says_what_normal_is(services, redis_server):
    feed(services, "s2", [70.0 + (i % 3) / 10 for i in range(10)])
    result = DETECTAR.run({"sensor": "s2", "dato": "250", "timestamp": str(T + 10 * STEP)},
                          services, "h")
    verdict = result.document
    assert verdict["anomaly"] is True and verdict["alert"] is True
    assert verdict["lower"] <= verdict["expected"] <= verdict["upper"] < 250
    assert 50 <= verdict["severity"] <= 100 and verdict["explanation"]
    assert len(verdict["window"]) == 10 and "TRUE" in result.page()
    assert redis_server.client().execute_command("TS.GET", "{s2}/alerts")[0] == T + 10 * STEP
    again = DETECTAR.run({"sensor": "s2", "dato": "250", "timestamp": str(T + 10 * STEP)},
                         services, "h").document
    assert again["duplicate"] is True and again["anomaly"] is True and "window" not in again


def test_detectar_before_ten_readings_stores_but_does_not_judge(services):
    feed(services, "s3", [70.0, 70.1])
    verdict = DETECTAR.run({"sensor": "s3", "dato": "71", "timestamp": str(T + 2 * STEP)},
                           services, "h").document
    assert verdict["anomaly"] is None and "10 previous readings" in verdict["message"]


def test_listar_gives_the_history_newest_first_and_the_overview(services):
    feed(services, "s4", [1.0, 2.0, 3.0])
    history = LISTAR.run({"sensor": "s4", "count": "2"}, services, "h").document
    assert history["total"] == 3
    assert [r["value"] for r in history["readings"]] == [3.0, 2.0]
    overview = LISTAR.run({"sensors": "all"}, services, "h")
    assert [(s["sensor"], s["last_value"]) for s in overview.document["sensors"]] == [("s4", 3.0)]
    assert "s4" in overview.page()
