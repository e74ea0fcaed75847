"""`faas-cli invoke`, sync and --async, against the local gateway: the requests it sends."""

from __future__ import annotations

import json

from tests.support import faas_cli


def test_invoke_stores_a_bare_number_read_from_standard_input(api, redis_client):
    # echo 25.4 | faas-cli invoke nuevo -g ... --query sensor=horno-3 --query format=json
    answer = faas_cli.invoke(api.base, "nuevo", b"25.4\n",
                             query=[("sensor", "horno-3"), ("format", "json")])
    assert answer.status == 200, answer.body
    stored = json.loads(answer.body)
    assert stored["sensor"] == "horno-3" and stored["value"] == 25.4
    assert api.json("listar", sensor="horno-3").json()["total"] == 1


def test_invoke_reaches_listar_and_detectar(api, redis_client):
    faas_cli.invoke(api.base, "nuevo", b'{"dato": 70.0, "sensor": "h", "timestamp": 1700000000000}',
                    content_type="application/json")
    listed = faas_cli.invoke(api.base, "listar", method="GET",
                             query=[("sensor", "h"), ("count", "20"), ("format", "json")])
    assert listed.status == 200 and json.loads(listed.body)["total"] == 1
    judged = faas_cli.invoke(api.base, "detectar", b'{"dato": 80.5, "sensor": "h"}',
                             content_type="application/json", query=[("format", "json")])
    assert judged.status == 200, judged.body
    assert json.loads(judged.body)["value"] == 80.5
    page = faas_cli.invoke(api.base, "listar", method="GET", query=[("sensor", "h")])
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")


def test_invoke_async_is_queued_and_stored(api, redis_client):
    answer = faas_cli.invoke(api.base, "nuevo", b"21.5\n", asynchronous=True,
                             query=[("sensor", "cola")])
    assert answer.status == 202 and answer.body == b""  # "Function submitted asynchronously."
    assert api.wait_total("cola", 1)["total"] == 1


def test_a_failed_async_call_reaches_its_callback(api, redis_client, callback):
    # faas-cli invoke nuevo --async -H "X-Callback-Url: ..." < bad: 202 at once, the 400 later
    answer = faas_cli.invoke(api.base, "nuevo", b"caliente\n", asynchronous=True,
                             headers={"X-Callback-Url": callback.url}, query=[("sensor", "cola")])
    assert answer.status == 202
    headers, sent = callback.received.get(timeout=5)
    assert headers["X-Function-Status"] == "400" and headers["X-Function-Name"] == "nuevo"
    assert b"not valid JSON" in sent  # the reason, in the format the call asked for
    assert api.json("listar", sensor="cola").json()["total"] == 0


def test_a_namespace_other_than_openfaas_fn_is_not_found(api):
    other = api.http.post(f"{api.base}/function/nuevo.dev", data=b"1", timeout=10)
    assert other.status_code == 404
    queued = api.http.post(f"{api.base}/async-function/nuevo.dev", data=b"1", timeout=10)
    assert queued.status_code == 404
