"""The alert outbox: what detectar records, in the verdict's own atomic round trip, for the
forwarder (infra/alert_forwarder.py) to deliver to Alertmanager.

Each sensor has one Redis stream, `{<sensor>}/outbox`: the sensor's hash tag puts it in the
slot of the sensor's other keys, so the verdict script can XADD to it on a Redis Cluster
too. The forwarder finds the streams by SCANning every master for `{*}/outbox` (at start and
every half minute) and hears of new entries at once from a PUBLISH on the channel
`/outbox` (the sensor id as the message), sent by the same script; a lost message costs
only latency, never an entry. A stream keeps at most MAX_ENTRIES entries (XADD MAXLEN ~):
delivered ones stay as the sensor's alert log (listar's table of alerts), and only a
forwarder that has been off for a thousand alerts of one sensor would lose its oldest.

An entry is flat text fields: `event` (`alert`: the reading starts an event that pages
someone; `resolved`: it closes one), `sensor`, `kind`, `timestamp` (ms, the reading's) and
`value`, and for an alert what the verdict holds of `severity`, `expected`, `lower`, `upper`
and `explanation`. A reading that closes one event and opens another gives two entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHANNEL = "/outbox"  # a sensor id cannot start with "/": no clash with any key or sensor
GROUP = "alert-forwarder"  # the consumer group the forwarder reads with
MAX_ENTRIES = 1000
DEFAULT_KIND = "anomaly"  # an alert whose verdict names no kind
ALERT_FIELDS = ("severity", "expected", "lower", "upper", "explanation")


def outbox_key(sensor: str) -> str:
    return f"{{{sensor}}}/outbox"


OUTBOX_PATTERN = outbox_key("*")  # SCAN MATCH: braces are literal in a glob


def sensor_of(key: str) -> str:
    """The sensor of an outbox key (`{horno-3}/outbox` -> `horno-3`)."""
    return key[1:key.index("}")]


def _text(value: Any) -> str:
    """A field's value as one line of text (the verdict script splits entries at newlines)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return " ".join(str(value).split())


def entries(verdict: Mapping[str, Any]) -> list[dict[str, str]]:
    """The outbox entries of a judged verdict document (detectar's JSON answer): none for
    most readings, one when it starts or closes an event, two when it does both."""
    base = {"sensor": verdict["sensor"], "timestamp": str(int(verdict["timestamp"])),
            "value": _text(verdict["value"])}
    found = []
    if verdict.get("resolved"):
        found.append({"event": "resolved", **base, "kind": str(verdict["resolved"])})
    if verdict.get("alert"):
        kind = verdict.get("kind") or next(iter(verdict.get("kinds") or ()), DEFAULT_KIND)
        entry = {"event": "alert", **base, "kind": str(kind)}
        entry.update({name: _text(verdict[name]) for name in ALERT_FIELDS
                      if verdict.get(name) is not None and _text(verdict[name])})
        found.append(entry)
    return found
