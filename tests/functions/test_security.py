"""Abuse over real HTTP: the write functions need calls signed with the API key, bodies have a size limit,
and whatever a caller sent (or the host name) is escaped wherever it is echoed into HTML."""

from __future__ import annotations

import html
import json
import time

import pytest
import requests

from shared import signing
from shared.store.keys import anomalies_key
from tests.support.stack import LocalStack

TOKEN = "s3cr3t-t0ken-of-the-plant"
MAX_BODY = 2048
BATCH_MAX = 50
HOST = '<script>alert("host")</script>'
WRITES = ("nuevo", "detectar")
PAYLOADS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>',
            "<svg/onload=alert('x')>"]


@pytest.fixture(scope="module")
def guarded(redis_server, tmp_path_factory):
    """The gateway with an API key file, small body and batch limits, a hostile host name."""
    folder = tmp_path_factory.mktemp("security")
    token_file = folder / "api-token"
    token_file.write_text(TOKEN + "\n")
    env = {"API_TOKEN_FILE": str(token_file), "MAX_BODY_BYTES": str(MAX_BODY),
           "BATCH_MAX_READINGS": str(BATCH_MAX), "HOSTNAME": HOST}
    with LocalStack(redis_server, folder, env=env) as stack:
        yield stack


@pytest.fixture
def api(guarded, redis_client):
    return guarded


SIGNED = signing.SigningAuth(TOKEN.encode())  # requests' auth=: signs each call


def nothing_stored(redis_client) -> bool:
    return not [k for k in redis_client.keys("*") if not k.startswith(b"/signatures/")]


def signature(function: str = "nuevo", query=(("dato", "21.5"), ("format", "json")),
              body: bytes = b"", key: str = TOKEN, now_ms: int | None = None) -> dict[str, str]:
    return {signing.HEADER: signing.sign(key.encode(), function, query, body, now_ms).header_value()}


# --- signed writes ----------------------------------------------------------------------

NOW_MS = int(time.time() * 1000)
WRONG = [
    ({}, "no signature"),
    ({"Authorization": f"Bearer {TOKEN}"}, "the key itself as a bearer token"),
    ({"X-Api-Token": TOKEN}, "the key itself in a header"),
    (signature(key="another-key"), "another key"),
    (signature(function="detectar"), "signed for the other function"),
    (signature(query=(("dato", "99"), ("format", "json"))), "signed for another query"),
    (signature(body=b"1"), "signed for another body"),
    (signature(now_ms=NOW_MS - 3_700_000), "older than SIGNATURE_MAX_AGE"),
    (signature(now_ms=NOW_MS + 3_600_000), "from the future"),
    ({signing.HEADER: "t=1,n=x"}, "malformed"),
]


@pytest.mark.parametrize("headers, what", WRONG, ids=[what for _, what in WRONG])
def test_a_write_not_signed_for_this_call_is_a_401_and_stores_nothing(api, redis_client,
                                                                    headers, what):
    answer = api.http.get(api.url("nuevo"), params={"dato": "21.5", "format": "json"},
                          headers=headers)
    assert answer.status_code == 401, what
    assert "ignature" in answer.json()["error"] or "signed" in answer.json()["error"]
    assert TOKEN not in answer.text
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function", WRITES)
def test_the_key_in_the_query_string_or_the_body_is_not_accepted(api, redis_client, function):
    by_query = api.http.get(api.url(function), params={"dato": "1", "token": TOKEN,
                                                       "api_token": TOKEN, "format": "json"})
    by_body = api.http.post(api.url(function), params={"format": "json"},
                            json={"dato": 1, "token": TOKEN, "Authorization": f"Bearer {TOKEN}"})
    assert (by_query.status_code, by_body.status_code) == (401, 401)
    assert nothing_stored(redis_client)


def test_an_unsigned_batch_is_a_401_and_stores_nothing(api, redis_client):
    answer = api.http.post(api.url("nuevo"), params={"format": "json"},
                           json={"sensor": "s", "readings": [{"dato": 1}, {"dato": 2}]})
    assert answer.status_code == 401
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function", WRITES)
def test_a_signed_write_is_stored(api, redis_client, function):
    answer = api.http.get(api.url(function), params={"dato": "21.5", "sensor": "s", "format": "json"},
                          auth=SIGNED)
    assert answer.status_code == 200, answer.text
    assert [v for _, v in redis_client.ts().range("s", "-", "+")] == [21.5]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_what_a_log_holds_of_a_signed_call_authorises_nothing(api, redis_client, asynchronous):
    """The queue worker logs a queued call whole, headers and body: replaying exactly that,
    or signing anything else with it, is refused."""
    query = (("sensor", "s"), ("format", "json"))
    headers = {**signature(query=query, body=b"21.5"), "Content-Type": "text/plain"}
    route = f"{api.base}/{'async-function' if asynchronous else 'function'}/nuevo"
    first = api.http.post(route, params=dict(query), data=b"21.5", headers=headers)
    assert first.status_code == (202 if asynchronous else 200), first.text
    assert api.wait_total("s", 1)["total"] == 1
    again = api.http.post(api.url("nuevo"), params=dict(query), data=b"21.5", headers=headers)
    assert again.status_code == 401 and "already used" in again.json()["error"]
    other = api.http.post(api.url("nuevo"), params=dict(query), data=b"99", headers=headers)
    assert other.status_code == 401
    assert [v for _, v in redis_client.ts().range("s", "-", "+")] == [21.5]


def test_listar_needs_no_signature(api, redis_client):
    assert api.http.get(api.url("nuevo"), params={"dato": "3", "sensor": "s"},
                        auth=SIGNED).status_code == 200
    answer = api.json("listar", sensor="s")
    assert answer.status_code == 200 and answer.json()["total"] == 1


def test_the_401_page_names_the_way_to_sign(api):
    page = api.http.get(api.url("nuevo"), params={"dato": "1"})
    assert page.status_code == 401 and page.headers["Content-Type"].startswith("text/html")
    assert "X-Signature" in html.unescape(page.text)


# --- body size ----------------------------------------------------------------------------

@pytest.mark.parametrize("function", ["nuevo", "detectar", "listar"])
def test_a_body_over_the_limit_is_a_413_and_stores_nothing(api, redis_client, function):
    body = json.dumps({"dato": 1, "pad": "x" * MAX_BODY}).encode()
    answer = api.http.post(api.url(function), data=body, params={"format": "json"},
                           headers={"Content-Type": "application/json"}, auth=SIGNED)
    assert answer.status_code == 413
    assert nothing_stored(redis_client)


def test_a_chunked_body_over_the_limit_is_a_413_and_stores_nothing(api, redis_client):
    """No Content-Length to refuse it by: the limit holds while reading."""
    def chunks():
        yield b'{"dato": 1, "pad": "'
        for _ in range(MAX_BODY // 100 + 2):
            yield b"x" * 100
        yield b'"}'

    # unsigned: a stream cannot be signed, and the size is refused before the signature
    answer = api.http.post(api.url("nuevo"), data=chunks(), params={"format": "json"},
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert nothing_stored(redis_client)


def test_a_body_at_the_limit_is_accepted(api, redis_client):
    body = json.dumps({"dato": 7.5, "sensor": "s"}).encode()
    body = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"
    assert len(body) == MAX_BODY
    answer = api.http.post(api.url("nuevo"), data=body, params={"format": "json"}, auth=SIGNED)
    assert answer.status_code == 200, answer.text
    assert [v for _, v in redis_client.ts().range("s", "-", "+")] == [7.5]


def test_a_batch_over_the_reading_limit_is_a_400_and_stores_nothing(api, redis_client):
    readings = [{"dato": i} for i in range(BATCH_MAX + 1)]
    answer = api.http.post(api.url("nuevo"), params={"format": "json"}, auth=SIGNED,
                           data=json.dumps({"readings": readings}, separators=(",", ":")))
    assert answer.status_code == 400 and str(BATCH_MAX) in answer.json()["error"]
    assert nothing_stored(redis_client)


def test_json_nested_deeper_than_the_parser_goes_is_a_400(api, redis_client):
    body = b"[" * (MAX_BODY - 1)  # 2,047 levels: past Python's recursion limit
    answer = api.http.post(api.url("nuevo"), data=body, params={"format": "json"}, auth=SIGNED)
    assert answer.status_code == 400, answer.text[:200]
    assert nothing_stored(redis_client)


def test_an_enormous_url_is_refused_without_a_5xx(api, redis_client):
    answer = api.http.get(api.url("nuevo"), params={"dato": "1", "sensor": "s" * 300_000},
                          auth=SIGNED)
    assert 400 <= answer.status_code < 500
    assert nothing_stored(redis_client)


# --- everything echoed into HTML is escaped -------------------------------------------------

def assert_escaped(page: requests.Response, *sent: str) -> None:
    assert page.headers["Content-Type"].startswith("text/html"), page.headers["Content-Type"]
    for text in (HOST, *sent):
        assert text not in page.text, f"{text!r} echoed raw (status {page.status_code})"
    assert html.escape(HOST) in page.text  # "answered by <host>", escaped


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("function", ["nuevo", "detectar", "listar"])
@pytest.mark.parametrize("name", ["dato", "sensor", "timestamp", "count", "from", "to", "format"])
def test_a_hostile_parameter_is_never_echoed_raw(api, redis_client, function, name, payload):
    params = {"dato": "21.5", "sensor": "s", name: payload}
    page = api.http.get(api.url(function), params=params, auth=SIGNED)
    assert page.status_code in (200, 400), page.text[:200]
    assert_escaped(page, payload)


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("function", ["nuevo", "detectar"])
def test_a_hostile_json_body_is_never_echoed_raw(api, redis_client, function, payload):
    for body in ({"dato": payload}, {"dato": 1, "sensor": payload}, {"dato": 1, "timestamp": payload},
                 {"readings": [{"dato": payload}]}, {"readings": [{"dato": 1, "timestamp": payload}]}):
        page = api.http.post(api.url(function), json=body, auth=SIGNED)
        assert page.status_code == 400, (body, page.text[:200])
        assert_escaped(page, payload)
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function", ["nuevo", "detectar"])
def test_a_hostile_topic_is_never_echoed_raw(api, redis_client, function):
    """An event connector's X-Topic names the sensor; one that is no sensor id is refused
    with the topic in the message."""
    payload = PAYLOADS[1]  # no "/": the topic keeps its three levels
    page = api.http.post(api.url(function), data=b"21.5",
                         headers={"X-Topic": f"planta/{payload}/temperatura"}, auth=SIGNED)
    assert page.status_code == 400
    assert "topic" in page.text
    assert_escaped(page, payload)
    assert nothing_stored(redis_client)


def test_every_page_escapes_the_host_name(api, redis_client):
    """Pages of stored readings, verdicts, histories with anomalies and of refusals."""
    for i in range(12):
        assert api.http.get(api.url("nuevo"), params={"dato": str(70 + i % 2), "sensor": "s",
                                                      "timestamp": str(1_700_000_000_000 + i * 1000)},
                            auth=SIGNED).status_code == 200
    redis_client.ts().add(anomalies_key("s"), 1_700_000_000_000, 70.0)
    pages = [api.http.get(api.url("nuevo"), params={"dato": "1", "sensor": "t"}, auth=SIGNED),
             api.http.get(api.url("detectar"), params={"dato": "71", "sensor": "s"}, auth=SIGNED),
             api.http.get(api.url("listar"), params={"sensor": "s"}),
             api.http.get(api.url("listar"), params={"sensor": "nadie"}),
             api.http.post(api.url("nuevo"), json={"sensor": "u", "readings": [{"dato": 1}]},
                           auth=SIGNED),
             api.http.get(api.url("nuevo"), params={"dato": "1"}),  # 401
             api.http.get(api.url("listar"), params={"count": "0"}),  # 400
             api.http.put(api.url("nuevo"), auth=SIGNED)]  # 405
    assert [p.status_code for p in pages] == [200, 200, 200, 200, 200, 401, 400, 405]
    for page in pages:
        assert_escaped(page)
    assert "<script" not in pages[2].text.lower()  # the history's inline SVG chart included


def test_json_answers_are_never_served_as_html(api, redis_client):
    for function in ("nuevo", "detectar", "listar"):
        for params in ({"format": "json", "sensor": PAYLOADS[0]}, {"format": "json", "dato": "1"}):
            answer = api.http.get(api.url(function), params=params, auth=SIGNED)
            assert answer.headers["Content-Type"] == "application/json"
            json.loads(answer.text)
