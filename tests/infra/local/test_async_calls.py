"""/async-function/ on the local gateway, over real HTTP, with a real callback receiver."""

from __future__ import annotations

import json
import socket
import time

import pytest

from infra.local.async_calls import CALLBACK_TIMEOUT_S
from tests.support.stack import LocalStack


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
    assert missing.status_code == 404 and "nada" not in missing.text  # the functions are named
    assert "detectar, listar, nuevo" in missing.text


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:6379/_",
                                 "http:///no-host", "/relative"])
def test_a_callback_that_is_not_an_http_url_is_refused_and_nothing_runs(api, redis_client, url):
    body = json.dumps({"dato": 1.5, "sensor": "cola"})
    answer = async_post(api, "nuevo", body, {"X-Callback-Url": url}, format="json")
    assert answer.status_code == 400 and "http:// or https://" in answer.text
    assert url not in answer.text
    time.sleep(0.3)
    assert api.json("listar", sensor="cola").json()["total"] == 0


def test_callback_hosts_limits_where_answers_go(redis_server, redis_client, callback, tmp_path):
    with LocalStack(redis_server, tmp_path, env={"CALLBACK_HOSTS": "localhost, Example.org"}) as stack:
        body = json.dumps({"dato": 1.5, "sensor": "cola"})
        refused = async_post(stack, "nuevo", body, {"X-Callback-Url": callback.url})
        assert refused.status_code == 400 and "example.org, localhost" in refused.text
        allowed = callback.url.replace("127.0.0.1", "localhost")
        assert async_post(stack, "nuevo", body, {"X-Callback-Url": allowed}).status_code == 202
        headers, _ = callback.received.get(timeout=5)
        assert headers["X-Function-Status"] == "200"


@pytest.fixture
def silent_url():
    """A URL whose server takes connections and never answers (the kernel accepts them)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/never"
    sock.close()


def test_a_callback_that_never_answers_delays_no_other_call(api, redis_client, callback, silent_url):
    """12 calls whose callback hangs (CALLBACK_TIMEOUT_S per attempt, two attempts), then an
    unrelated call: it is stored and called back at once, not after theirs time out."""
    for i in range(12):
        body = json.dumps({"dato": i + 0.5, "sensor": "lento"})
        assert async_post(api, "nuevo", body, {"X-Callback-Url": silent_url}).status_code == 202
    time.sleep(0.5)  # the hanging callbacks are under way
    started = time.monotonic()
    body = json.dumps({"dato": 99.5, "sensor": "aparte"})
    assert async_post(api, "nuevo", body, {"X-Callback-Url": callback.url},
                      format="json").status_code == 202
    assert api.wait_total("aparte", 1, deadline_s=3)["total"] == 1
    headers, sent = callback.received.get(timeout=3)
    assert json.loads(sent)["value"] == 99.5
    assert time.monotonic() - started < 3 < CALLBACK_TIMEOUT_S
    assert api.wait_total("lento", 12, deadline_s=3)["total"] == 12


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
