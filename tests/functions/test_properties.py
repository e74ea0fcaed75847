"""Property-based tests (hypothesis) over every parameter of every function.

No input ever yields a 5xx or a traceback; bad input (4xx) stores nothing; good input is
stored exactly as sent. The handlers run in process, on the event the template builds (the
gateway's Event over a Werkzeug request), with a real Redis; a smaller sample goes over HTTP.
"""

from __future__ import annotations

import json
import socket
import string
import time
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from infra.local.functions import load_functions
from infra.local.gateway import Context, Event, template_response
from shared.config import Settings
from shared.params import MAX_TIMESTAMP_MS
from shared.services import SERVICES
from shared.store.keys import anomalies_key

FUNCTIONS = ("nuevo", "listar", "detectar")
PARAMETERS = ("dato", "sensor", "timestamp", "count", "from", "to", "format", "readings")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_MS = 24 * 3600 * 1000
NOW_MS = int(time.time() * 1000)  # once: data generation must not depend on the clock
EARLIEST_MS = Settings.earliest_reading_ms  # readings before it are refused (EARLIEST_READING)
HISTORY_START = 1_700_000_000_000  # listar's property: 50 readings from here, a minute apart
IN_PROCESS = settings(max_examples=250, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
OVER_HTTP = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


# --- the functions in process ------------------------------------------------------------

@pytest.fixture(scope="module")
def handlers():
    return {name: function.module for name, function in load_functions().items()}


@pytest.fixture
def call(redis_server, redis_client, handlers):
    """call(function, method, query, body, headers) -> (status, body text, content type),
    through the function's handler.py and the template's response shaping, with the
    process-wide services pointed at the test Redis (and put back afterwards)."""
    saved = dict(SERVICES.__dict__)
    SERVICES.__dict__.update(_env={**redis_server.env(), "API_TOKEN_FILE": ""},
                             _detector=None)
    for cached in ("settings", "redis", "store", "replay_guard"):
        SERVICES.__dict__.pop(cached, None)

    def invoke(function: str, method: str = "GET", query: bytes | str = b"", body: bytes = b"",
               headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        environ = EnvironBuilder(path=f"/function/{function}", method=method, data=body,
                                 headers=list((headers or {}).items())).get_environ()
        # WSGI: the raw query string, bytes as latin-1 (what the server hands the app).
        environ["QUERY_STRING"] = query if isinstance(query, str) else query.decode("latin-1")
        returned = handlers[function].handle(Event(Request(environ), "/"), Context())
        response = template_response(returned)
        return response.status_code, response.get_data(as_text=True), response.content_type

    yield invoke
    if "redis" in SERVICES.__dict__:
        SERVICES.redis.close()
    SERVICES.__dict__.clear()
    SERVICES.__dict__.update(saved)


def assert_answered_deliberately(status: int, text: str, content_type: str) -> None:
    assert status < 500, (status, text[:500])
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    if content_type == "application/json":
        document = json.loads(text)
        if status >= 400:
            assert isinstance(document.get("error"), str) and document["error"]
    else:
        assert content_type.startswith("text/html"), content_type


# --- strategies ----------------------------------------------------------------------------

sensors = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", fullmatch=True)
values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
junk_text = st.text(max_size=40)
numbers_as_text = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                            st.integers(min_value=-10**20, max_value=10**20).map(str),
                            st.decimals(allow_nan=False, allow_infinity=False).map(str))
iso_texts = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                         timezones=st.one_of(st.none(), st.timezones())).map(
    lambda moment: moment.isoformat())
special = st.sampled_from(["", " ", "0", "-0", "25.4", " 25.4 ", "25,4", "1e9", "1e10", "nan",
                           "NaN", "inf", "-inf", "1e400", "0x1A", "\uff11\uff12", "true", "null", "[]",
                           "{}", "json", "html", "JSON", "1700000000000", "-5", "2999-01-01",
                           "2024-01-31T12:00:00Z", "mediciones", "a/b", "<script>", "a" * 65])
any_value = st.one_of(junk_text, numbers_as_text, iso_texts, special)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
# A reading as sent in a batch: sometimes well formed, sometimes not.
batch_items = st.one_of(
    st.fixed_dictionaries({"dato": st.one_of(st.floats(-2e9, 2e9), any_value, json_values)},
                          optional={"timestamp": st.one_of(st.integers(-10, 2**62), any_value,
                                                           json_values)}),
    json_values)
recent_ms = st.integers(min_value=EARLIEST_MS, max_value=NOW_MS)
# Valid but for what hypothesis spoils: a function that stores before it has checked every
# parameter shows up here, as a 4xx that stored something.
nearly_valid = st.fixed_dictionaries(
    {"dato": st.one_of(values.map(repr), any_value)},
    optional={"sensor": st.one_of(sensors, any_value),
              "timestamp": st.one_of(recent_ms.map(str), any_value),
              "count": st.one_of(st.integers(1, 100).map(str), any_value),
              "from": st.one_of(recent_ms.map(str), any_value),
              "to": st.one_of(recent_ms.map(str), any_value),
              "format": st.one_of(st.sampled_from(["json", "html"]), any_value)})
json_bodies = st.one_of(
    nearly_valid,
    st.fixed_dictionaries({"readings": st.lists(st.fixed_dictionaries(
        {"dato": values}, optional={"timestamp": recent_ms}), min_size=1, max_size=4).flatmap(
        lambda good: st.lists(batch_items, max_size=2).map(lambda bad: good + bad))},
        optional={"sensor": st.one_of(sensors, any_value)}),
    st.dictionaries(st.sampled_from(PARAMETERS), st.one_of(any_value, json_values), max_size=5),
    st.fixed_dictionaries({"readings": st.lists(batch_items, max_size=6)},
                          optional={"sensor": any_value}),
    json_values)
bodies = st.one_of(st.just(b""), st.binary(max_size=200),
                   json_bodies.map(lambda body: json.dumps(body).encode()),
                   st.sampled_from([b"25.4", b"25.4\n", b"NaN", b"Infinity", b"-Infinity",
                                    b"{", b"\xff\xfe", b'{"dato": 1e999}', b"[1, 2]", b'"25.4"']))
queries = st.one_of(  # any bytes, raw where UTF-8 (as the template can parse), else %XX
    nearly_valid.map(urlencode),
    st.dictionaries(st.one_of(st.sampled_from(PARAMETERS), st.text(max_size=8)), any_value,
                    max_size=6).map(urlencode),
    st.text(max_size=60).map(lambda text: text.encode()),
    st.binary(max_size=60).map(lambda raw: "".join(f"%{b:02X}" for b in raw)))
latin1 = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
headers = st.fixed_dictionaries({}, optional={
    "Accept": st.one_of(st.sampled_from(["application/json", "text/html", "*/*",
                                         "application/json, text/html"]), latin1),
    "Content-Type": st.one_of(st.sampled_from(["application/json", "text/plain"]), latin1),
    "X-Topic": st.one_of(st.sampled_from(["planta/horno-1/temperatura", "planta/x"]), latin1),
    "Authorization": latin1, "X-Api-Token": latin1})
methods = st.sampled_from(["GET", "POST", "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH"])


@IN_PROCESS
@given(function=st.sampled_from(FUNCTIONS), method=methods, query=queries, body=bodies,
       headers=headers)
def test_no_input_yields_a_5xx_or_a_traceback_and_bad_input_stores_nothing(
        call, redis_client, function, method, query, body, headers):
    redis_client.flushall()
    status, text, content_type = call(function, method, query, body, headers)
    assert_answered_deliberately(status, text, content_type)
    if status >= 400 or function == "listar":
        assert redis_client.dbsize() == 0, (status, text[:300])


# --- good input is stored exactly as sent --------------------------------------------------



def as_text(value: float, style: int) -> str:
    """A decimal text the replaced system's callers send, e.g. 25.4, 25.399999999999999,
    2.54e+01 (with spaces around it, it is refused: tests/functions/test_bad_input.py)."""
    return [repr(value), f"{value:.17g}", f"{value:.17e}"][style % 3]


def millis(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


@st.composite
def timestamps(draw) -> tuple[object, int | None]:
    """(what is sent, the milliseconds it means): None, ms as int / float / text, ISO-8601
    with or without an offset (no offset = UTC), to the millisecond."""
    ms = draw(st.integers(min_value=EARLIEST_MS, max_value=NOW_MS + DAY_MS // 2))
    kind = draw(st.sampled_from(["none", "int", "float", "text", "iso", "iso-offset"]))
    if kind == "none":
        return None, None
    if kind in ("int", "float", "text"):
        return {"int": ms, "float": float(ms), "text": str(ms)}[kind], ms
    moment = EPOCH + timedelta(milliseconds=ms)
    if kind == "iso":
        return moment.replace(tzinfo=None).isoformat(timespec="milliseconds"), ms
    offset = timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
    assume(moment.astimezone(offset).year > 1969)
    return moment.astimezone(offset).isoformat(timespec="milliseconds"), ms


@IN_PROCESS
@given(function=st.sampled_from(["nuevo", "detectar"]), sensor=sensors, value=values,
       style=st.integers(0, 5), stamp=timestamps(), how=st.sampled_from(["query", "json"]))
def test_a_good_reading_is_stored_exactly_as_sent(call, redis_client, function, sensor, value,
                                                  style, stamp, how):
    redis_client.flushall()
    sent, expected_ms = stamp
    params = {"sensor": sensor, "dato": as_text(value, style)}
    if sent is not None:  # a query string carries whole milliseconds as digits
        params["timestamp"] = sent if isinstance(sent, str) else str(int(sent))
    if how == "json":  # numbers as JSON numbers, or as text
        body = {**params, "dato": value if style % 2 else params["dato"]}
        if sent is not None:
            body["timestamp"] = sent
        status, text, _ = call(function, "POST", "format=json", json.dumps(body).encode(),
                               {"Content-Type": "application/json"})
    else:
        status, text, _ = call(function, "GET", urlencode({**params, "format": "json"}))
    assert status == 200, text
    answer = json.loads(text)
    assert answer["sensor"] == sensor and answer["value"] == value
    if expected_ms is not None:
        assert answer["timestamp"] == expected_ms
    assert redis_client.ts().range(sensor, "-", "+") == [(answer["timestamp"], value)]


@IN_PROCESS
@given(sensor=sensors, readings=st.lists(st.tuples(values, timestamps()), min_size=1, max_size=30))
def test_a_good_batch_is_stored_exactly_as_sent(call, redis_client, sensor, readings):
    redis_client.flushall()
    explicit = [ms for _, (_, ms) in readings if ms is not None]
    assume(len(explicit) == len(set(explicit)))  # the same timestamp twice is a bad batch
    body = {"sensor": sensor, "readings": [
        {"dato": value} if sent is None else {"dato": value, "timestamp": sent}
        for value, (sent, _) in readings]}
    status, text, _ = call("nuevo", "POST", "format=json", json.dumps(body).encode())
    assert status == 200, text
    assert json.loads(text) == {"sensor": sensor, "stored": len(readings)}
    stored = redis_client.ts().range(sensor, "-", "+")
    assert sorted(v for _, v in stored) == sorted(value for value, _ in readings)
    by_time = dict(stored)
    for value, (_, ms) in readings:
        if ms is not None:
            assert by_time[ms] == value


def test_an_iso_timestamp_to_the_millisecond_is_exact_on_the_earliest_day_too(call, redis_client):
    redis_client.flushall()
    status, text, _ = call("nuevo", "GET", urlencode(
        {"dato": "1", "timestamp": "2000-01-01T09:06:55.215", "format": "json"}))
    assert status == 200 and json.loads(text)["timestamp"] == EARLIEST_MS + 32_815_215


# --- listar over any range ---------------------------------------------------------------

@pytest.fixture
def history(call, redis_client):
    """A sensor with 50 readings one minute apart, the 10th marked anomalous."""
    redis_client.flushall()
    start = HISTORY_START
    readings = [{"dato": 20 + i / 8, "timestamp": start + i * 60_000} for i in range(50)]
    status, text, _ = call("nuevo", "POST", "", json.dumps({"sensor": "s", "readings": readings}).encode())
    assert status == 200, text
    redis_client.ts().add(anomalies_key("s"), start + 9 * 60_000, 21.125)
    return start, readings


bounds = st.one_of(st.none(),  # mostly around the history (50 minutes), else anywhere
                   st.integers(HISTORY_START - 600_000, HISTORY_START + 3_600_000),
                   st.integers(min_value=-10, max_value=NOW_MS + 2 * DAY_MS), any_value)
counts = st.one_of(st.none(), st.integers(1, 60), st.integers(-5, 20_000), any_value)


@IN_PROCESS
@given(count=counts, start=bounds, end=bounds, as_json=st.booleans())
def test_listar_answers_any_range_and_count_without_changing_anything(
        call, redis_client, history, count, start, end, as_json):
    query = {"sensor": "s", "format": "json" if as_json else "html"}
    for name, value in (("count", count), ("from", start), ("to", end)):
        if value is not None:
            query[name] = str(value)
    status, text, content_type = call("listar", "GET", urlencode(query))
    assert_answered_deliberately(status, text, content_type)
    assert redis_client.dbsize() == 2 and redis_client.ts().info("s").total_samples == 50
    if not all(v is None or isinstance(v, int) for v in (count, start, end)):
        return  # text: only "never a 5xx, nothing changed"
    valid = ((count is None or 1 <= count <= 10_000)  # a range may end in the future
             and all(v is None or 0 <= v <= MAX_TIMESTAMP_MS for v in (start, end))
             and (start is None or end is None or start <= end))
    assert status == (200 if valid else 400), text[:300]
    if not valid or not as_json:
        return
    base, readings = history
    inside = [(r["timestamp"], r["dato"]) for r in reversed(readings)
              if (start is None or r["timestamp"] >= start) and (end is None or r["timestamp"] <= end)]
    answer = json.loads(text)
    assert answer["sensor"] == "s" and answer["total"] == 50
    assert [(r["timestamp"], r["value"]) for r in answer["readings"]] == inside[:count or 100]
    for reading in answer["readings"]:
        assert reading["anomaly"] == (reading["timestamp"] == base + 9 * 60_000)


# --- a smaller sample over real HTTP -------------------------------------------------------

@pytest.mark.parametrize("function", FUNCTIONS)
@OVER_HTTP
@given(method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
       query=st.binary(max_size=80).map(lambda raw: "".join(f"%{b:02X}" if chr(b) not in
                                                            string.ascii_letters + "=&" else chr(b)
                                                            for b in raw)),
       params=nearly_valid,
       body=st.one_of(st.just(b""), st.just(b""), bodies))  # a body overrides the query
def test_over_http_no_input_yields_a_5xx_and_bad_input_stores_nothing(
        api, redis_client, function, method, query, params, body):
    redis_client.flushall()
    url = f"{api.url(function)}?{query}&{urlencode(params)}"
    answer = api.http.request(method, url, data=body, timeout=10)
    assert answer.status_code < 500, answer.text[:300]
    assert "Traceback" not in answer.text
    if answer.status_code >= 400:
        assert redis_client.dbsize() == 0


@pytest.mark.parametrize("function", FUNCTIONS)
def test_over_http_a_query_string_that_is_not_utf8_is_a_400(api, redis_client, function):
    """Raw bytes in the request line, which no client library sends but a socket can:
    refused before anything runs (waitress: "Bad URI"; Werkzeug could not even decode it)."""
    request = (f"GET /function/{function}?dato=1&sensor=\xff\xfe HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nConnection: close\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert redis_client.dbsize() == 0
