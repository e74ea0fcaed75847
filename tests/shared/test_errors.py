"""shared/errors.py: what each failure of any layer is worth in HTTP, and what it tells the
caller beside its message."""

from __future__ import annotations

import pytest

from shared import errors
from shared.detection import ModelUnavailable
from shared.store import errors as store_errors


@pytest.mark.parametrize("exc, kind, status", [
    (store_errors.TimestampTaken("taken"), errors.Conflict, 409),
    (store_errors.NotATimeSeries("a string key"), errors.Conflict, 409),
    (store_errors.StoreUnavailable("Redis is down"), errors.Unavailable, 503),
    (ModelUnavailable("TF Serving is down"), errors.Unavailable, 503),
])
def test_each_layers_failure_gets_its_status_and_keeps_its_message(exc, kind, status):
    answer = errors.as_api_error(exc)
    assert type(answer) is kind
    assert answer is not None and (answer.status, answer.message) == (status, str(exc))
    assert not answer.unexpected


def test_no_free_millisecond_is_a_429_that_says_when_to_come_back():
    answer = errors.as_api_error(store_errors.NoFreeMillisecond("no millisecond free", 3))
    assert isinstance(answer, errors.TooManyRequests)
    assert (answer.status, answer.headers()) == (429, {"Retry-After": "3"})


def test_an_api_error_is_its_own_answer_and_anything_else_is_a_bug():
    refused = errors.BadRequest("dato is required")
    assert errors.as_api_error(refused) is refused
    for bug in (KeyError("x"), ValueError("y"), store_errors.StoreError("an unnamed failure")):
        assert errors.as_api_error(bug) is None


def test_a_405_names_the_methods_it_allows_and_other_errors_add_nothing():
    answer = errors.MethodNotAllowed("PUT is not supported", ("GET", "POST"))
    assert (answer.status, answer.headers()) == (405, {"Allow": "GET, POST"})
    plain = errors.BadRequest("x")
    assert (plain.status, plain.headers(), plain.fields()) == (400, {}, {})


@pytest.mark.parametrize("cause, status, unexpected, reason", [
    (ModelUnavailable("TF Serving did not answer"), 503, False, "TF Serving did not answer"),
    (errors.Misconfigured("WINDOW_SIZE does not match"), 500, False, "WINDOW_SIZE does not match"),
    (ZeroDivisionError("a bug's own words"), 500, True, "internal error"),
])
def test_a_stored_reading_that_was_not_judged_says_so_and_why(cause, status, unexpected, reason):
    stored = {"sensor": "horno", "dato": 70.5, "timestamp": 1_700_000_000_000}
    answer = errors.StoredButNotJudged(stored, cause)
    assert (answer.status, answer.unexpected) == (status, unexpected)
    assert answer.message == (f"reading stored at 1700000000000 but not judged: {reason}; "
                              "do not send it again")
    assert answer.fields() == {**stored, "stored": True, "anomaly": None}
