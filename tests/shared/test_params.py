"""shared/params.py: every check on what a caller sends, before anything is stored."""

from __future__ import annotations

import time

import pytest
from werkzeug.datastructures import Headers, MultiDict

from shared import params
from shared.config import DEFAULT_SENSOR
from shared.errors import BadRequest
from shared.readings import HistoryQuery, Reading


def refused(call, *args, match: str, **kwargs) -> None:
    with pytest.raises(BadRequest, match=match):
        call(*args, **kwargs)


@pytest.mark.parametrize("body, expected", [
    (b"", {}), (b"  \n", {}),
    (b"25.4\n", {"dato": 25.4}),  # what `echo 25.4 | faas-cli invoke nuevo` sends
    (b"-3", {"dato": -3}),
    (b'{"dato": 25.4, "sensor": "horno"}', {"dato": 25.4, "sensor": "horno"}),
])
def test_a_body_is_an_object_a_bare_number_or_nothing(body, expected):
    assert params.parse_body(body) == expected


@pytest.mark.parametrize("body, match", [
    (b"\xff\xfe", "not UTF-8"),
    (b"{not json", "not valid JSON"),
    (b'{"dato": NaN}', "NaN is not a number"),
    (b"Infinity", "Infinity is not a number"),
    (b'{"dato": 1e-400}', "too small to store"),
    (b'{"dato": 1, "dato": 2}', "dato is given more than once in the body"),
    (b"true", "a JSON object or a number"),
    (b'["dato", 1]', "a JSON object or a number"),
    (b"[" * 100_000, "not valid JSON"),  # too deep: RecursionError, still a 400
])
def test_a_body_that_is_not_one_of_those_is_refused(body, match):
    refused(params.parse_body, body, match=match)


def test_a_three_level_topic_names_its_sensor_in_the_middle():
    assert params.topic_sensor("planta/horno-1/temperatura") == "horno-1"
    assert params.topic_sensor("planta/temperatura") is None
    assert params.topic_sensor("a/b/c/d") is None
    assert params.topic_sensor(None) is None and params.topic_sensor("") is None
    refused(params.topic_sensor, "planta/../temperatura", match="does not name a valid sensor")


def test_the_body_overrides_the_query_and_the_topic_names_the_sensor_last():
    query = MultiDict([("dato", "1.5"), ("sensor", "from-query"), ("format", "json")])
    merged = params.merged_params(query, b'{"dato": 2.5}', Headers({"X-Topic": "p/s-1/t"}))
    assert merged == {"dato": 2.5, "sensor": "from-query"}  # `format` is the answer's, not a parameter
    from_topic = params.merged_params(MultiDict([("dato", "1.5")]), b"",
                                      Headers({"X-Topic": "p/s-1/t"}))
    assert from_topic == {"dato": "1.5", "sensor": "s-1"}


@pytest.mark.parametrize("query, body, match", [
    ([("dato", "1"), ("dato", "2")], b"", "dato is given more than once in the query string"),
    ([("dato", "")], b"", "dato is empty or has spaces around it"),
    ([("sensor", " horno")], b"", "sensor is empty or has spaces around it"),
    ([("dato", "1"), ("sensr", "horno")], b"", r"unknown parameter in the query string: sensr \("),
    ([], b'{"dato": 1, "colour": "red", "size": 2}', "unknown parameters in the body: colour, size"),
    ([], b'{"dato": 1, "format": "json"}', r"format goes in the query string \(\?format=json\)"),
])
def test_repeated_blank_or_unknown_parameters_are_refused(query, body, match):
    refused(params.merged_params, MultiDict(query), body, None, frozenset({"dato", "sensor"}),
            match=match)


def test_the_format_is_json_or_html_in_any_case():
    for ok in ({}, {"format": "JSON"}, {"format": "html"}):
        params.parse_format(ok)
    refused(params.parse_format, {"format": "xml"}, match="format must be json or html, not 'xml'")
    refused(params.parse_format, {"format": ""}, match="format must be json or html")


@pytest.mark.parametrize("raw, value", [
    ("25.4", 25.4), ("-0.5", -0.5), (".5", 0.5), ("1e3", 1000.0), ("+7", 7.0), (12, 12.0),
    (1e9, 1e9), ("0", 0.0),
])
def test_a_dato_is_a_finite_decimal(raw, value):
    assert params.parse_dato(raw) == value


@pytest.mark.parametrize("raw, match", [
    (None, "dato is required"),
    (True, "decimal number"), ([25.4], "decimal number"),
    ("25,4", "with a point"), ("0x1A", "with a point"), (" 25.4", "with a point"),
    ("\uff11\uff12", "with a point"),  # fullwidth digits: float() would take them
    ("nan", "with a point"), ("inf", "with a point"),
    ("9" * 65, "too long"),
    ("1e-400", "too small to store"),
    ("1e400", r"finite number between -1e\+09 and 1e\+09"), (1e9 + 1, "finite number between"),
])
def test_a_dato_that_is_not_one_is_refused(raw, match):
    refused(params.parse_dato, raw, match=match)


def test_a_sensor_is_an_id_or_the_default():
    assert params.parse_sensor(None) == DEFAULT_SENSOR
    assert params.parse_sensor("horno-1.a:b_c") == "horno-1.a:b_c"
    assert params.parse_sensor("x" * 64) == "x" * 64
    for bad in ("", "-x", ".", "..", "a/b", "x" * 65, "hörno", 7):
        refused(params.parse_sensor, bad, match="sensor must be 1 to 64 letters")


@pytest.mark.parametrize("raw, millis", [
    (None, None), (0, 0), ("1700000000000", 1_700_000_000_000), (1.7e12, 1_700_000_000_000),
    ("2024-01-31T12:00:00Z", 1_706_702_400_000),
    ("2024-01-31T12:00:00", 1_706_702_400_000),  # no offset: UTC
    ("2024-01-31T13:00:00+01:00", 1_706_702_400_000),
    ("1970-01-01T00:00:00.001Z", 1),
])
def test_a_timestamp_is_milliseconds_or_iso_8601(raw, millis):
    assert params.parse_timestamp(raw) == millis


@pytest.mark.parametrize("raw, match", [
    (True, "milliseconds since the epoch or ISO-8601"),
    ("", "milliseconds since the epoch or ISO-8601"),
    (" 1700000000000", "milliseconds since the epoch or ISO-8601"),
    ("yesterday", "e.g. 2024-01-31T12:00:00Z"),
    (1.5, "milliseconds since the epoch or ISO-8601"),
    (-1, r"out of range \(1970 to 9999\)"),
    ("1969-12-31T23:59:59Z", "out of range"),
    (params.MAX_TIMESTAMP_MS + 1, "out of range"),
])
def test_a_timestamp_that_is_not_one_or_is_out_of_range_is_refused(raw, match):
    refused(params.parse_timestamp, raw, match=match)


def test_a_reading_may_be_a_day_ahead_of_the_clock_and_no_more():
    now_ms = int(time.time() * 1000)
    ahead = now_ms + params.FUTURE_TOLERANCE_MS - 60_000
    assert params.parse_timestamp(ahead) == ahead
    refused(params.parse_timestamp, now_ms + params.FUTURE_TOLERANCE_MS + 60_000,
            match="more than a day in the future")


def test_only_a_range_may_end_in_the_future_and_names_its_bound():
    later = int(time.time() * 1000) + 10 * params.FUTURE_TOLERANCE_MS
    assert params.parse_timestamp(later, "to", future=True) == later
    refused(params.parse_timestamp, "soon", "to", match="to must be milliseconds")


def test_a_batch_is_read_whole():
    readings = params.parse_batch({"readings": [{"dato": 1.5, "timestamp": 1000}, {"dato": "2"}]}, 5)
    assert readings == [Reading(1.5, 1000), Reading(2.0, None)]


@pytest.mark.parametrize("request_params, match", [
    ({"readings": []}, "non-empty list"),
    ({"readings": {"dato": 1}}, "non-empty list"),
    ({"readings": [{"dato": 1}] * 4}, "at most 3 readings"),
    ({"readings": [{"dato": 1}, 5]}, r"readings\[1\] must be an object"),
    ({"readings": [{"dato": 1, "sensor": "other"}]}, r"readings\[0\] has fields other than dato"),
    ({"readings": [{"dato": 1}, {"dato": "x"}]}, r"readings\[1\]: dato must be a decimal"),
    ({"readings": [{"dato": 1, "timestamp": 5}, {"dato": 2, "timestamp": 5}]},
     "the same timestamp twice"),
    ({"readings": [{"dato": 1}], "dato": 2}, "dato cannot be given beside readings"),
])
def test_one_bad_reading_refuses_the_whole_batch(request_params, match):
    refused(params.parse_batch, request_params, 3, match=match)


def test_a_count_is_a_whole_number_within_the_maximum():
    assert params.parse_count(None, 100, 500) == 100
    assert params.parse_count("20", 100, 500) == params.parse_count(20.0, 100, 500) == 20
    for bad in ("0", 0, 501, "2.5", 2.5, True, "-1", "ten"):
        refused(params.parse_count, bad, 100, 500, match="count must be a whole number from 1 to 500")


def test_a_history_is_a_count_and_a_range_open_at_either_end():
    assert params.parse_history({}, 100, 500) == HistoryQuery(100, "-", "+")
    assert params.parse_history({"from": "1000", "to": 2000, "count": "5"}, 100, 500) == \
        HistoryQuery(5, 1000, 2000)
    refused(params.parse_history, {"from": 2000, "to": 1000}, 100, 500,
            match="from must not be after to")
