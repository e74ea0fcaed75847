"""The local gateway's own edges, over real HTTP: request framing, what it echoes, and
/system/function/<name> as the OpenFaaS gateway answers it (what `faas-cli describe` reads)."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests


def raw_exchange(port: int, data: bytes, timeout_s: float = 5.0) -> tuple[bytes, bool]:
    """Send `data` on a new connection; what came back, and whether the server closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
    return received, True


def test_a_request_framed_by_both_length_and_chunks_is_refused_and_the_connection_closed(
        api, redis_client):
    """RFC 9112 section 6.1: Content-Length and Transfer-Encoding together may smuggle a
    request: a 400, the connection closed, and the GET pipelined behind it never runs."""
    body = b'{"sensor": "colado", "dato": 1.5}'
    smuggler = (b"POST /function/nuevo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                % (len(body) + 9, len(body), body))
    behind = b"GET /function/nuevo?sensor=colado&dato=2.5 HTTP/1.1\r\nHost: x\r\n\r\n"
    received, closed = raw_exchange(api.port, smuggler + behind)
    assert received.startswith(b"HTTP/1.1 400 ") and received.count(b"HTTP/1.1 ") == 1
    assert closed
    assert api.json("listar", sensor="colado").json()["total"] == 0


def test_a_chunked_body_alone_is_still_taken(api, redis_client):
    body = b'{"sensor": "troceado", "dato": 1.5}'
    chunked = (b"POST /function/nuevo?format=json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    received, _ = raw_exchange(api.port, chunked)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert api.json("listar", sensor="troceado").json()["total"] == 1


@pytest.mark.parametrize("route", ["function", "async-function"])
def test_an_unknown_path_is_not_echoed_and_nothing_is_sniffed(api, route):
    answer = api.http.post(f"{api.base}/{route}/<script>alert(1)</script>", data=b"1", timeout=10)
    assert answer.status_code == 404
    assert "<script" not in answer.text and "alert" not in answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "nosniff" == api.get("listar").headers["X-Content-Type-Options"]  # functions' too


def test_a_short_call_id_is_kept(api):
    for given in ("mi-llamada", str(uuid.uuid4()), "A" * 64):
        assert api.get("listar", format="json").headers["X-Call-Id"] != given
        answer = api.http.get(api.url("listar"), headers={"X-Call-Id": given}, timeout=10)
        assert answer.headers["X-Call-Id"] == given


@pytest.mark.parametrize("given", ['"><script>x</script>', "A" * 65, "x" * 60_000,
                                   "caf\xe9", "a b", "-leading"])
def test_any_other_call_id_is_replaced_by_a_new_one(api, given):
    answer = api.http.get(api.url("listar"), headers={"X-Call-Id": given}, timeout=10)
    assert answer.status_code == 200
    assert str(uuid.UUID(answer.headers["X-Call-Id"])) == answer.headers["X-Call-Id"]


def test_system_function_answers_as_the_openfaas_gateway(api):
    """faas-swarm's ReplicaReader: the function's FunctionStatus as JSON, the entry
    /system/functions lists; 404 with no body for a function (or namespace) not there.
    `faas-cli describe` shows it as Ready when availableReplicas > 0."""
    api.get("listar")
    listed = {f["name"]: f for f in api.http.get(f"{api.base}/system/functions", timeout=10).json()}
    for name in ("nuevo", "listar", "detectar"):
        answer = api.http.get(f"{api.base}/system/function/{name}", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/json"
        status = answer.json()
        assert status["name"] == name and status["availableReplicas"] >= 1
        assert {"image", "replicas", "invocationCount", "envProcess", "labels",
                "annotations"} <= set(status)
        assert {k: v for k, v in status.items() if k != "invocationCount"} == \
            {k: v for k, v in listed[name].items() if k != "invocationCount"}
    assert api.http.get(f"{api.base}/system/function/listar", timeout=10).json()[
        "invocationCount"] >= listed["listar"]["invocationCount"] >= 1
    described = api.http.get(f"{api.base}/system/function/nuevo",
                             params={"namespace": "openfaas-fn"}, timeout=10)
    assert described.status_code == 200
    for missing in (f"{api.base}/system/function/nada",
                    f"{api.base}/system/function/nuevo?namespace=other"):
        answer = api.http.get(missing, timeout=10)
        assert answer.status_code == 404 and answer.content == b""
