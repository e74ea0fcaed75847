"""shared/endpoint.py: one python3-http request start to finish, called in process (no HTTP)
with the template's Werkzeug types and a real Redis for the replay guard. The actions here are
the test's own, so what is checked is the endpoint: method, format, size, signature, and how
each failure is answered."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.datastructures import Headers, MultiDict

from shared import signing
from shared.actions import Action, Result
from shared.endpoint import serve
from shared.errors import BadRequest
from shared.services import Services
from shared.store.errors import StoreUnavailable

KEY = "an-api-key-for-the-tests"


@dataclass
class Event:
    """What the python3-http template hands a handler."""

    method: str = "GET"
    query: MultiDict = field(default_factory=MultiDict)
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    path: str = "/"


@dataclass
class Context:
    hostname: str = "fn-host"


def action(name: str = "probe", writes: bool = False, fails: Exception | None = None) -> Action:
    """An action that answers the parameters it was given, or raises `fails`."""
    def run(params: Mapping[str, Any], services: Services, host: str) -> Result:
        if fails is not None:
            raise fails
        return Result(200, {"params": dict(params), "host": host}, f"<p>{host}</p>")
    return Action(name, writes=writes, run=run, parameters=frozenset({"dato", "sensor"}))


@pytest.fixture
def services(redis_server, tmp_path) -> Services:
    """Services over the test Redis, with an API key and a small body limit."""
    key_file = tmp_path / "api-token"
    key_file.write_text(KEY)
    return Services({**redis_server.env(), "API_TOKEN_FILE": str(key_file),
                     "MAX_BODY_BYTES": "64"})


def call(services: Services, act: Action, event: Event) -> tuple[int, dict[str, str], str]:
    answer = serve(event, Context(), act, services)
    return answer["statusCode"], answer["headers"], answer["body"]


def test_a_read_answers_json_or_html_as_the_caller_asks(services):
    status, headers, body = call(services, action(), Event(query=MultiDict([("dato", "1.5"),
                                                                           ("format", "json")])))
    assert (status, headers["Content-Type"]) == (200, "application/json")
    assert json.loads(body) == {"params": {"dato": "1.5"}, "host": "fn-host"}
    accepts = Headers({"Accept": "application/json"})
    assert call(services, action(), Event(headers=accepts))[1]["Content-Type"] == "application/json"
    status, headers, body = call(services, action(), Event())
    assert (status, body) == (200, "<p>fn-host</p>") and headers["Content-Type"].startswith("text/html")


def test_a_method_a_function_does_not_take_is_a_405_naming_those_it_does(services):
    status, headers, body = call(services, action(writes=True),
                                 Event(method="HEAD", query=MultiDict([("format", "json")])))
    assert (status, headers["Allow"]) == (405, "GET, POST")
    assert json.loads(body) == {"error": "HEAD is not supported: use GET or POST"}
    assert call(services, action(), Event(method="PUT"))[1]["Allow"] == "GET, HEAD, POST"


def test_a_bad_format_and_an_oversized_body_are_refused_before_the_action_runs(services):
    never = action(fails=AssertionError("the action ran"))
    status, _, body = call(services, never, Event(query=MultiDict([("format", "xml")])))
    assert status == 400 and "format must be json or html" in body
    status, _, body = call(services, never, Event(method="POST", body=b"1" * 65,
                                                  query=MultiDict([("format", "json")])))
    assert (status, json.loads(body)) == (413, {"error": "body is larger than 64 bytes"})


def test_a_write_must_be_signed_for_this_very_call_and_only_once(services):
    query = [("sensor", "horno"), ("format", "json")]
    signed = signing.sign(KEY.encode(), "probe", query, b"25.4").header_value()
    event = Event(method="POST", query=MultiDict(query), body=b"25.4",
                  headers=Headers({signing.HEADER: signed}))
    status, _, body = call(services, action(writes=True), event)
    assert (status, json.loads(body)["params"]) == (200, {"sensor": "horno", "dato": 25.4})
    status, _, body = call(services, action(writes=True), event)  # the same signature again
    assert (status, json.loads(body)) == (401, {"error": "this signature was already used: "
                                                         "sign each call anew"})
    unsigned = Event(method="POST", query=MultiDict(query), body=b"25.4")
    assert call(services, action(writes=True), unsigned)[0] == 401
    other = signing.sign(KEY.encode(), "probe", query, b"99").header_value()  # another body
    forged = Event(method="POST", query=MultiDict(query), body=b"25.4",
                   headers=Headers({signing.HEADER: other}))
    assert call(services, action(writes=True), forged)[0] == 401
    assert call(services, action(writes=False), unsigned)[0] == 200  # reads need no signature


def test_each_failure_is_answered_in_the_callers_format_with_what_it_is_worth(services):
    as_json = MultiDict([("format", "json")])
    status, _, body = call(services, action(fails=BadRequest("dato is required")),
                           Event(query=as_json))
    assert (status, json.loads(body)) == (400, {"error": "dato is required"})
    status, _, body = call(services, action(fails=StoreUnavailable("Redis did not answer")),
                           Event(query=as_json))
    assert (status, json.loads(body)) == (503, {"error": "Redis did not answer"})
    status, headers, body = call(services, action(fails=BadRequest("<b>dato</b> is required")),
                                 Event())
    assert status == 400 and headers["Content-Type"].startswith("text/html")
    assert "&lt;b&gt;dato&lt;/b&gt;" in body and "<b>dato" not in body
    status, _, body = call(services, action(), Event(query=MultiDict([("colour", "red")])))
    assert status == 400 and "unknown parameter in the query string: colour" in body


def test_a_bug_is_a_plain_500_and_its_traceback_goes_to_the_log_only(services, caplog):
    with caplog.at_level(logging.ERROR, logger="shared.endpoint"):
        status, _, body = call(services, action(fails=KeyError("secret detail")),
                               Event(query=MultiDict([("format", "json")])))
    assert (status, json.loads(body)) == (500, {"error": "internal error; the details are in "
                                                         "the function's log"})
    assert "secret detail" not in body
    (record,) = [r for r in caplog.records if r.name == "shared.endpoint"]
    assert record.getMessage() == "probe failed" and record.exc_info is not None
    assert "secret detail" in caplog.text


def test_an_invalid_setting_is_a_500_that_names_it(redis_server):
    broken = Services({**redis_server.env(), "API_TOKEN_FILE": "", "MAX_BODY_BYTES": "lots"})
    status, _, body = call(broken, action(), Event(query=MultiDict([("format", "json")])))
    assert status == 500 and "MAX_BODY_BYTES='lots' is not valid" in json.loads(body)["error"]
