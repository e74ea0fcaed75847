"""/async-function/ on the local gateway, over real HTTP, with a real callback receiver."""

from __future__ import annotations

import json


def async_post(api, function, data, headers=None, **params):
    return api.http.post(f"{api.base}/async-function/{function}", data=data, params=params,
                         headers={"Content-Type": "application/json", **(headers or {})}, timeout=10)


def test_a_queued_reading_is_stored_and_its_answer_called_back(api, redis_client, callback):
    body = json.dumps({"dato": 21.5, "sensor": "cola", "timestamp": 1_700_000_000_000})
    answer = async_post(api, "nuevo", body, {"X-Callback-Url": callback.url}, format="json")
    assert answer.status_code == 202 and answer.content == b""
    call_id = answer.headers["X-Call-Id"]
    assert call_id
    listed = api.wait_total("cola", 1)
    assert listed["readings"] == [{"timestamp": 1_700_000_000_000, "value": 21.5, "anomaly": False,
                                   "alert": False}]
    headers, sent = callback.received.get(timeout=5)
    assert json.loads(sent) == {"sensor": "cola", "timestamp": 1_700_000_000_000, "value": 21.5}
    assert headers["X-Function-Status"] == "200" and headers["X-Function-Name"] == "nuevo"
    assert headers["X-Call-Id"] == call_id and float(headers["X-Duration-Seconds"]) >= 0
    assert headers["Content-Type"] == "application/json"


def test_a_bad_reading_is_called_back_as_400_and_not_stored(api, redis_client, callback):
    answer = async_post(api, "nuevo", b'{"dato": "caliente", "sensor": "cola"}',
                        {"X-Callback-Url": callback.url, "X-Call-Id": "mi-llamada"}, format="json")
    assert answer.status_code == 202 and answer.headers["X-Call-Id"] == "mi-llamada"
    headers, sent = callback.received.get(timeout=5)
    assert headers["X-Function-Status"] == "400" and headers["X-Call-Id"] == "mi-llamada"
    assert "error" in json.loads(sent)
    assert api.json("listar", sensor="cola").json()["total"] == 0


def test_only_post_to_a_known_function(api):
    assert api.http.get(f"{api.base}/async-function/nuevo").status_code == 405
    assert api.http.put(f"{api.base}/async-function/nuevo", data=b"1").status_code == 405
    missing = async_post(api, "nada", b"1")
    assert missing.status_code == 404 and "nada" in missing.text


def test_the_simulator_runs_async_against_the_local_stack(api, redis_client, tmp_path):
    from infra.simulator.__main__ import main

    path = tmp_path / "report.json"
    assert main(["--gateway", api.base, "--async", "--sensors", "1", "--kinds", "spike",
                 "--sensor-prefix", "a", "--settle-timeout", "10", "--report", str(path),
                 "--no-progress"]) == 0
    report = json.loads(path.read_text())
    sent = report["sent"]
    assert sent["statuses"] == {"202": sent["readings"]} and report["run"]["verdicts_from"] == "listar"
    # listar marks anomalies but cannot tell a reading judged normal from one not judged
    assert report["summary"]["judged_readings"] is None
