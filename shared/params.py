"""Turn a python3-http event into typed, validated parameters.

Parameters come from the query string or from a JSON body (POST); a body that is a bare
number is taken as `dato` (what `echo 25.4 | faas-cli invoke nuevo` sends). An event
connector's call (MQTT) names its topic in `X-Topic`; a topic `<area>/<sensor>/<measure>`
gives the sensor when the parameters name none. Every check happens here, before anything
is stored, so bad input never reaches Redis.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from .config import DEFAULT_SENSOR
from .errors import BadRequest
from .readings import HistoryQuery, Reading
from .timestamps import clock, iso_to_ms

# A sensor id starts with a letter or digit: `.`, `..` or `-` alone would name no sensor
# anyone meant, and read as paths or options wherever an id is used as one.
SENSOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
SENSOR_RULE = "1 to 64 letters, digits or . _ : -, starting with a letter or digit"
DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# ASCII digits only: str.isdigit() also accepts '²' and the Arabic-Indic digits
DIGITS_RE = re.compile(r"[0-9]{1,16}")

MAX_DATO_CHARS = 64
DATO_LIMIT = 1e9  # far beyond any temperature; keeps model arithmetic finite
MAX_TIMESTAMP_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
FUTURE_TOLERANCE_MS = 24 * 3600 * 1000  # clock skew we accept from a sensor
TOPIC_HEADER = "X-Topic"  # set by the OpenFaaS event connectors (connector-sdk)


def _reject_constant(token: str) -> float:
    raise BadRequest(f"body is not valid JSON: {token} is not a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it names a key twice (which one was meant is a guess, as
    for a parameter repeated in the query string)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BadRequest(f"{key[:64]} is given more than once in the body")
            seen.add(key)
    return data


def _underflows(text: str, value: float) -> bool:
    """A decimal with a digit other than 0 that float() made 0 (1e-400): too small to store."""
    return value == 0.0 and re.search(r"[1-9]", text.lower().partition("e")[0]) is not None


def _short(text: str) -> str:
    """A JSON number's text, refused past MAX_DATO_CHARS (as a `dato` in the query string is):
    no parameter needs more, and a million digits would be read, then rounded away."""
    if len(text) > MAX_DATO_CHARS:
        raise BadRequest(f"body holds a number of more than {MAX_DATO_CHARS} characters")
    return text


def _int(text: str) -> int:
    return int(_short(text))


def _float(text: str) -> float:
    """A JSON number with a fraction or exponent; refused when too small to be told from 0."""
    value = float(_short(text))
    if _underflows(text, value):
        raise BadRequest(f"body holds {text[:64]}, a number too small to store (it would be 0)")
    return value


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON body as parameters: an object, a bare number (`dato`), or nothing."""
    if not body or not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_float,
                          parse_int=_int, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8 text") from None
    except (ValueError, RecursionError):  # ValueError also: an integer of over 4,300 digits
        raise BadRequest("body is not valid JSON, or holds a number too long to read") from None
    if isinstance(data, dict):
        return data
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return {"dato": data}
    raise BadRequest("body must be a JSON object or a number")


def topic_sensor(topic: str | None) -> str | None:
    """The sensor an event connector's topic names, or None when it names none.

    The OpenFaaS connectors (connector-sdk) send the topic a message arrived on in the
    `X-Topic` header. A topic of three levels `<area>/<sensor>/<measure>` names its sensor
    in the middle level (`planta/horno-1/temperatura`); any other (`planta/temperatura`)
    names none. A middle level that is no valid sensor id is refused like a bad `sensor`.
    """
    if not topic:
        return None
    levels = topic.split("/")
    if len(levels) != 3:
        return None
    if not SENSOR_RE.fullmatch(levels[1]):
        raise BadRequest(f"topic {topic[:200]!r} does not name a valid sensor: its middle level "
                         f"must be {SENSOR_RULE}")
    return levels[1]


def _refuse_unknown(names: Any, accepted: frozenset[str], where: str) -> None:
    unknown = sorted(str(name)[:64] for name in names if name not in accepted)
    if unknown:
        raise BadRequest(f"unknown parameter{'s' if len(unknown) > 1 else ''} in the {where}: "
                         f"{', '.join(unknown[:5])} (this function takes "
                         f"{', '.join(sorted(accepted))})")


def merged_params(query: Any, body: bytes, headers: Any = None,
                  accepted: frozenset[str] | None = None) -> dict[str, Any]:
    """Query-string parameters, overridden by those of a JSON body; the sensor of the
    `X-Topic` header (an event connector's call) when neither names one. With `accepted`,
    a name outside it is refused, as a batch item's unknown field is (a misspelt `sensor`
    would otherwise store under the default sensor); `format` is for the query string."""
    getlist = getattr(query, "getlist", None)  # a plain dict cannot repeat a key
    repeated = [key for key in query if getlist and len(getlist(key)) > 1]
    if repeated:  # which one was meant is a guess; storing a guess is worse than refusing
        raise BadRequest(f"{repeated[0][:64]} is given more than once in the query string")
    params: dict[str, Any] = {key: query.get(key) for key in query if key != "format"}
    from_body = parse_body(body)
    if accepted is not None:
        _refuse_unknown(params, accepted, "query string")
        if "format" in from_body:
            raise BadRequest("format goes in the query string (?format=json), not in the body")
        _refuse_unknown(from_body, accepted, "body")
    params.update(from_body)
    for name, value in params.items():
        if isinstance(value, str) and (value == "" or value != value.strip()):
            raise BadRequest(f"{name[:64]} is empty or has spaces around it: give its value "
                             f"alone, or leave {name[:64]} out")
    if headers is not None and params.get("sensor") is None:
        sensor = topic_sensor(headers.get(TOPIC_HEADER))
        if sensor is not None:
            params["sensor"] = sensor
    return params


FORMATS = ("json", "html")  # of the answer, chosen by `format` in the query string


def parse_format(query: Any) -> None:
    """Refuse a `format` other than json or html (xml, an empty one): not a silent HTML."""
    chosen = query.get("format")
    if chosen is not None and chosen.lower() not in FORMATS:
        raise BadRequest(f"format must be json or html, not {chosen[:20]!r}")


def parse_dato(raw: Any) -> float:
    if raw is None:
        raise BadRequest("dato is required: the reading, e.g. dato=25.4")
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise BadRequest("dato must be a decimal number, e.g. 25.4")
    if isinstance(raw, str):
        if len(raw) > MAX_DATO_CHARS:
            raise BadRequest(f"dato is too long (more than {MAX_DATO_CHARS} characters)")
        if not DECIMAL_RE.fullmatch(raw):  # no spaces around it either
            raise BadRequest("dato must be a decimal number with a point, e.g. 25.4")
    try:
        value = float(raw)
    except OverflowError:
        value = math.inf
    if isinstance(raw, str) and _underflows(raw, value):
        raise BadRequest("dato is too small to store: it would be 0")
    if not math.isfinite(value) or abs(value) > DATO_LIMIT:
        raise BadRequest(f"dato must be a finite number between {-DATO_LIMIT:g} and {DATO_LIMIT:g}")
    return value


def parse_sensor(raw: Any) -> str:
    if raw is None:
        return DEFAULT_SENSOR
    if not isinstance(raw, str) or not SENSOR_RE.fullmatch(raw):
        raise BadRequest(f"sensor must be {SENSOR_RULE}")
    return raw


def parse_timestamp(raw: Any, name: str = "timestamp", future: bool = False) -> int | None:
    """Milliseconds since the epoch or ISO-8601 (UTC when no offset is given). A reading's
    time is at most a day ahead of the server's clock (`future` lifts that, for a range)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or (isinstance(raw, str) and (not raw or raw != raw.strip())):
        raise BadRequest(f"{name} must be milliseconds since the epoch or ISO-8601")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and DIGITS_RE.fullmatch(raw):
        raw = int(raw)
    if isinstance(raw, int):
        millis = raw
    elif isinstance(raw, str) and len(raw) <= 64:
        try:
            millis = iso_to_ms(raw)
        except ValueError:
            raise BadRequest(f"{name} must be milliseconds since the epoch or ISO-8601, "
                             "e.g. 2024-01-31T12:00:00Z") from None
    else:
        raise BadRequest(f"{name} must be milliseconds since the epoch or ISO-8601")
    if not 0 <= millis <= MAX_TIMESTAMP_MS:
        raise BadRequest(f"{name} is out of range (1970 to 9999)")
    if not future and millis > time.time() * 1000 + FUTURE_TOLERANCE_MS:
        raise BadRequest(f"{name} is more than a day in the future")
    return millis


def check_not_before(millis: int | None, earliest_ms: int) -> int | None:
    """A reading's timestamp, refused before EARLIEST_READING: seconds sent for milliseconds
    (1706702400: January 1970) or a 0 are mistakes, not readings of 1970."""
    if millis is not None and millis < earliest_ms:
        hint = (f" (did you mean {millis * 1000}, in milliseconds?)"
                if earliest_ms <= millis * 1000 <= MAX_TIMESTAMP_MS else "")
        raise BadRequest(f"timestamp {millis} is before {clock(earliest_ms)} "
                         f"(EARLIEST_READING): timestamps are milliseconds since the epoch, "
                         f"not seconds{hint}")
    return millis


def parse_reading(params: Mapping[str, Any], earliest_ms: int) -> Reading:
    return Reading(parse_dato(params.get("dato")),
                   check_not_before(parse_timestamp(params.get("timestamp")), earliest_ms))


BATCH_ITEM_FIELDS = frozenset({"dato", "timestamp"})


def parse_batch(params: Mapping[str, Any], max_readings: int, earliest_ms: int) -> list[Reading]:
    """The request's `readings`, valid only as a whole: one bad reading rejects it all. They
    belong to the request's sensor, so an item naming anything else (its own `sensor`), or a
    `dato` beside the batch, is refused rather than stored where its sender did not mean."""
    beside = [key for key in ("dato", "timestamp") if params.get(key) is not None]
    if beside:
        raise BadRequest(f"{beside[0]} cannot be given beside readings: put it in the batch")
    raw = params["readings"]
    if not isinstance(raw, list) or not raw:
        raise BadRequest("readings must be a non-empty list of {\"dato\", \"timestamp\"}")
    if len(raw) > max_readings:
        raise BadRequest(f"a batch holds at most {max_readings} readings")
    readings = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"readings[{index}] must be an object with dato")
        unknown = sorted(set(item) - BATCH_ITEM_FIELDS)
        if unknown:
            raise BadRequest(f"readings[{index}] has fields other than dato and timestamp: "
                             f"{', '.join(str(key)[:64] for key in unknown[:5])} (a batch's "
                             "sensor is the request's `sensor`)")
        try:
            readings.append(parse_reading(item, earliest_ms))
        except BadRequest as exc:
            raise BadRequest(f"readings[{index}]: {exc.message}") from None
    stamps = [r.timestamp for r in readings if r.timestamp is not None]
    if len(stamps) != len(set(stamps)):
        raise BadRequest("readings holds the same timestamp twice")
    return readings


def parse_count(raw: Any, default: int, maximum: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, str) and DIGITS_RE.fullmatch(raw):
        raw = int(raw)
    if isinstance(raw, float) and raw.is_integer():  # JSON 20.0, as timestamps accept
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= maximum:
        raise BadRequest(f"count must be a whole number from 1 to {maximum}")
    return raw


DAY_MS = 86_400_000
SPANS = {"day": DAY_MS, "week": 7 * DAY_MS, "month": 31 * DAY_MS}  # listar's `span`


def parse_span(params: Mapping[str, Any]) -> str | None:
    """listar's `span` (day, week, month: up to the sensor's newest reading), or None."""
    span = params.get("span")
    if span is None:
        return None
    if not isinstance(span, str) or span not in SPANS:
        raise BadRequest(f"span must be one of {', '.join(SPANS)}")
    beside = [name for name in ("from", "to", "count") if params.get(name) is not None]
    if beside:
        raise BadRequest(f"span cannot be given beside {beside[0]}: it chooses the range itself")
    return span


def wants_overview(params: Mapping[str, Any]) -> bool:
    """listar's `sensors=all`: every sensor's state rather than one sensor's readings."""
    chosen = params.get("sensors")
    if chosen is None:
        return False
    if chosen != "all":
        raise BadRequest("sensors takes one value: all (the overview of every sensor)")
    beside = sorted(name for name in params if name != "sensors" and params[name] is not None)
    if beside:
        raise BadRequest(f"sensors=all takes no other parameter (got {beside[0][:64]})")
    return True


def parse_history(params: Mapping[str, Any], default_count: int, max_count: int) -> HistoryQuery:
    start = parse_timestamp(params.get("from"), "from", future=True)
    end = parse_timestamp(params.get("to"), "to", future=True)
    if start is not None and end is not None and start > end:
        raise BadRequest("from must not be after to")
    return HistoryQuery(parse_count(params.get("count"), default_count, max_count),
                        "-" if start is None else start, "+" if end is None else end)
