"""Bad input gets a clear 4xx in the caller's format, and nothing is stored."""

from __future__ import annotations

import pytest

BAD_DATOS = ["", "   ", "abc", "nan", "NaN", "inf", "-Infinity", "1e400", "-1e999", "25,4",
             "1_000", "0x1A", "\uff11\uff12", "2.5.1", "1e10", "9" * 70, "25.4 ; DROP", "<b>1</b>",
             " 25.4", "25.4\n", "\t25.4", "\xa025.4", "1e-400", "-0.0001e-330"]


def nothing_stored(redis_client):
    return redis_client.dbsize() == 0


@pytest.mark.parametrize("function", ["nuevo", "detectar"])
@pytest.mark.parametrize("dato", BAD_DATOS)
def test_a_bad_dato_is_refused_in_json(api, redis_client, function, dato):
    answer = api.json(function, dato=dato)
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/json"
    assert "dato" in answer.json()["error"]
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function", ["nuevo", "detectar"])
def test_a_missing_dato_is_refused_in_html_by_default(api, redis_client, function):
    answer = api.http.get(api.url(function))
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "dato is required" in answer.text
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("params, word", [
    ({"dato": "1", "sensor": "a b"}, "sensor"),
    ({"dato": "1", "sensor": "x" * 65}, "sensor"),
    ({"dato": "1", "sensor": "planta/1"}, "sensor"),
    ({"dato": "1", "sensor": "<script>"}, "sensor"),
    ({"dato": "1", "timestamp": "yesterday"}, "timestamp"),
    ({"dato": "1", "timestamp": "-5"}, "timestamp"),
    ({"dato": "1", "timestamp": "99999999999999999"}, "timestamp"),
    ({"dato": "1", "timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
    ({"dato": "1", "timestamp": " 1700000000000"}, "timestamp"),
    ({"dato": "1", "timestamp": ""}, "timestamp"),
    ({"dato": "1", "sensor": ""}, "sensor"),
    ({"dato": "1", "sensor": "."}, "sensor"),
    ({"dato": "1", "sensor": ".."}, "sensor"),
    ({"dato": "1", "sensor": "-"}, "sensor"),
    ({"dato": "1", "sensor": "-x"}, "sensor"),
])
def test_bad_sensor_or_timestamp_is_refused(api, redis_client, params, word):
    answer = api.json("nuevo", **params)
    assert answer.status_code == 400 and word in answer.json()["error"]
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function", ["nuevo", "detectar"])
@pytest.mark.parametrize("number", ["2" * 65, "25." + "4" * 1_000_000, "1" * 4000, "1e" + "0" * 70])
def test_a_json_number_of_more_than_64_characters_is_refused(api, redis_client, function, number):
    """The README's limit on `dato` holds for a JSON number as for text: a million digits
    would otherwise be read, and rounded to a float no one sent."""
    for body in (f'{{"dato": {number}, "sensor": "largo"}}', number):
        answer = api.http.post(api.url(function), data=body, params={"format": "json"}, timeout=30)
        assert answer.status_code == 400
        assert "more than 64 characters" in answer.json()["error"]
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function", ["nuevo", "detectar"])
@pytest.mark.parametrize("sent, hint", [("1706702400", "did you mean 1706702400000"), ("0", ""),
                                        ("946684799999", ""), ("1999-12-31T23:59:59Z", "")])
def test_a_timestamp_before_the_earliest_reading_is_refused_as_a_likely_mistake(
        api, redis_client, function, sent, hint):
    """Seconds sent for milliseconds land in January 1970: refused before EARLIEST_READING
    (default 2000-01-01), with a message that says timestamps are milliseconds."""
    answer = api.json(function, dato="21.5", timestamp=sent)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "before 2000-01-01 00:00:00 UTC" in error and "milliseconds" in error and hint in error
    batch = api.http.post(api.url("nuevo"), params={"format": "json"}, timeout=10, json={
        "readings": [{"dato": 1, "timestamp": 1_700_000_000_000}, {"dato": 2, "timestamp": sent}]})
    assert batch.status_code == 400 and "readings[1]: timestamp" in batch.json()["error"]
    assert nothing_stored(redis_client)
    assert api.json(function, dato="21.5", timestamp="946684800000").status_code == 200


@pytest.mark.parametrize("params, word", [
    ({"count": "0"}, "count"), ({"count": "-1"}, "count"), ({"count": "abc"}, "count"),
    ({"count": "10000001"}, "count"), ({"from": "5000", "to": "1000"}, "from"),
    ({"from": "ayer"}, "from"), ({"sensor": "a;b"}, "sensor"), ({"count": ""}, "count"),
    ({"count": " 5"}, "count"), ({"sensor": ".."}, "sensor"),
])
def test_bad_listar_parameters_are_refused(api, params, word):
    answer = api.json("listar", **params)
    assert answer.status_code == 400 and word in answer.json()["error"]


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b'"25.4"', b"NaN", b"Infinity",
                                  b'{"dato": NaN}', b'{"dato": true}', b'{"dato": [1]}',
                                  b"\xff\xfe", b'{"readings": []}', b'{"readings": [{"dato": 1}, 5]}',
                                  b'{"readings": [{"dato": 1}, {"dato": "x"}]}',
                                  b'{"readings": [{"dato": 1, "timestamp": 1700000000005}, '
                                  b'{"dato": 2, "timestamp": 1700000000005}]}'])
def test_malformed_bodies_are_refused_and_nothing_is_stored(api, redis_client, body):
    answer = api.http.post(api.url("nuevo"), data=body, params={"format": "json"},
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function, body, word", [
    ("nuevo", b'{"dato": ' + b"9" * 5000 + b"}", "more than 64 characters"),
    ("detectar", b'{"dato": ' + b"9" * 5000 + b"}", "more than 64 characters"),
    ("nuevo", b'{"dato": 1, "timestamp": ' + b"9" * 4400 + b"}", "more than 64 characters"),
    ("nuevo", b'{"readings": [{"dato": 1, "sensor": "horno-9"}]}', "sensor"),
    ("nuevo", b'{"readings": [{"dato": 1, "valor": 2}]}', "valor"),
    ("nuevo", b'{"dato": 5, "readings": [{"dato": 1}]}', "dato"),
    ("nuevo", b'{"timestamp": 1700000000000, "readings": [{"dato": 1}]}', "timestamp"),
    ("listar", b'{"count": ' + b"9" * 5000 + b"}", "more than 64 characters"),
    ("nuevo", b'{"dato": 25.4, "dato": 30}', "dato is given more than once"),
    ("detectar", b'{"dato": 25.4, "sensor": "a", "sensor": "b"}', "sensor is given more than once"),
    ("nuevo", b'{"readings": [{"dato": 1, "dato": 2}]}', "more than once"),
    ("nuevo", b'{"dato": 25.4, "sensr": "horno-1"}', "sensr"),
    ("listar", b'{"cuont": 5}', "cuont"),
    ("nuevo", b'{"dato": 25.4, "format": "json"}', "format goes in the query string"),
    ("nuevo", b'{"dato": 1e-400}', "too small"),
    ("detectar", b'{"dato": " 25.4"}', "dato"),
    ("nuevo", b'{"readings": [{"dato": "25.4\\n"}]}', "dato"),
    ("nuevo", b'{"readings": [{"dato": 1, "timestamp": " 1700000000000"}]}', "timestamp"),
    ("nuevo", b'{"dato": 1, "sensor": ""}', "sensor"),
])
def test_bodies_that_say_more_or_other_than_we_can_store_are_refused(api, redis_client, function,
                                                                     body, word):
    """A number too long to read, a batch item naming another sensor or field, a dato beside
    a batch: 400 naming the problem, in JSON and in HTML, and nothing stored."""
    for params in ({"format": "json"}, {}):
        answer = api.http.post(api.url(function), data=body, params=params,
                               headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text
        assert word in (answer.json()["error"] if params else answer.text)
        assert answer.headers["Content-Type"].startswith(
            "application/json" if params else "text/html")
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function, query", [
    ("nuevo", "dato=25.4&dato=abc"), ("nuevo", "dato=1&dato=2"),
    ("detectar", "dato=1&dato=1"), ("nuevo", "dato=1&sensor=a&sensor=b"),
    ("listar", "count=5&count=6"),
])
def test_a_parameter_given_twice_is_refused(api, redis_client, function, query):
    answer = api.http.get(f"{api.url(function)}?{query}&format=json")
    assert answer.status_code == 400
    assert "more than once" in answer.json()["error"]
    assert nothing_stored(redis_client)


def test_an_oversized_body_is_refused_in_the_callers_format(api, redis_client):
    body = b" " * (2 << 20) + b"1"
    answer = api.http.post(api.url("nuevo"), data=body, params={"format": "json"})
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]
    page = api.http.post(api.url("detectar"), data=body)
    assert page.status_code == 413 and page.headers["Content-Type"].startswith("text/html")
    chunked = api.http.post(api.url("nuevo"), data=iter([body[:1 << 20], body[1 << 20:]]),
                            params={"format": "json"})
    assert chunked.status_code == 413 and "larger than" in chunked.json()["error"]
    assert nothing_stored(redis_client)


def test_an_unsupported_method_is_refused(api, redis_client):
    answer = api.http.put(api.url("nuevo"), params={"dato": "1", "format": "json"})
    assert answer.status_code == 405 and "GET or POST" in answer.json()["error"]
    assert answer.headers["Allow"] == "GET, POST"  # what the function takes
    head = api.http.head(api.url("detectar"), params={"dato": "1"})
    assert head.status_code == 405 and head.headers["Allow"] == "GET, POST"
    assert api.http.head(api.url("listar")).status_code == 200
    assert api.http.delete(api.url("listar")).headers["Allow"] == "GET, HEAD, POST"
    assert nothing_stored(redis_client)


def test_options_is_answered_as_the_template_does_without_calling_the_function(api, redis_client):
    """Flask answers OPTIONS itself with its route's methods (README: Answers)."""
    answer = api.http.options(api.url("nuevo"), params={"dato": "1"})
    assert answer.status_code == 200 and answer.text == ""
    assert answer.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("function, query", [
    ("nuevo", "dato=1&sensr=horno-1"), ("detectar", "dato=1&count=5"),
    ("listar", "dato=1"), ("listar", "sensor=a&_=1700000000"),
])
def test_an_unknown_query_parameter_is_refused(api, redis_client, function, query):
    answer = api.http.get(f"{api.url(function)}?{query}&format=json")
    assert answer.status_code == 400
    assert "unknown parameter in the query string" in answer.json()["error"]
    assert nothing_stored(redis_client)


@pytest.mark.parametrize("chosen", ["xml", "", "JSONP", " json"])
def test_a_format_other_than_json_or_html_is_refused(api, redis_client, chosen):
    answer = api.http.get(api.url("nuevo"), params={"dato": "1", "format": chosen})
    assert answer.status_code == 400 and "format must be json or html" in answer.text
    json_asked = api.http.get(api.url("listar"), params={"format": chosen},
                              headers={"Accept": "application/json"})
    assert json_asked.status_code == 400 and "format" in json_asked.json()["error"]
    assert nothing_stored(redis_client)


def test_a_range_may_end_in_the_future_but_a_reading_may_not_be_from_it(api, redis_client):
    assert api.json("nuevo", dato="1", timestamp="1700000000000").status_code == 200
    listed = api.json("listar", **{"from": "1600000000000", "to": "9999-12-31T00:00:00Z"})
    assert listed.status_code == 200 and listed.json()["total"] == 1
    late = api.json("nuevo", dato="1", timestamp="9999-12-31T00:00:00Z")
    assert late.status_code == 400 and "more than a day in the future" in late.json()["error"]
