"""The store's Lua scripts (the files in lua/) and how each is called.

Each operation on Redis is one script: one round trip, atomic, so that what is stored never
depends on how requests interleave. A script's KEYS and ARGV positions have names here, in
order; its file binds the same names to the same positions at its top (a test checks that
they agree), and callers pass them by name. The connection runs a script on the master of
its first key's slot (shared/redis_connection.py); every key of a call shares that slot
(keys.py).

Lists of numbers travel as one string (space-separated samples; the detector state as
"field\\nvalue\\n..."): Python splits a string in one call, where redis-py's parser costs a
few microseconds per RESP element, more than the script itself. In RESP2, RedisTimeSeries
answers sample values as status replies, which Lua sees as {ok = text}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..redis_connection import RedisConnection

LUA_DIR = Path(__file__).with_name("lua")


@dataclass(frozen=True)
class LuaScript:
    name: str  # the file lua/<name>.lua
    keys: tuple[str, ...]  # KEYS[1], KEYS[2], ... by name
    args: tuple[str, ...]  # ARGV[1], ARGV[2], ... by name
    writes: bool = True  # a write waits for the replicas (REDIS_WAIT_REPLICAS)
    rest: str | None = None  # what follows the named ARGV, when a call passes a list

    @cached_property
    def source(self) -> str:
        return (LUA_DIR / f"{self.name}.lua").read_text()

    @cached_property
    def names(self) -> frozenset[str]:
        """What a call must name: its KEYS and ARGV."""
        return frozenset((*self.keys, *self.args))

    def run(self, connection: RedisConnection, rest: Sequence[Any] = (), **named: Any) -> Any:
        """Run the script with its KEYS and ARGV given by name (and `rest` after them)."""
        if named.keys() != self.names or (rest and not self.rest):
            raise TypeError(f"{self.name}.lua takes KEYS {self.keys} and ARGV {self.args}"
                            f"{f' + {self.rest}' if self.rest else ''}; got {sorted(named)}")
        return connection.run(self.source, [named[key] for key in self.keys],
                              [*(named[arg] for arg in self.args), *rest], writes=self.writes)


# One reading stored; with a window size, also the readings just before it and the detector
# state: {timestamp, "v v ...", "field\nvalue..."}, {timestamp} without a window, {-1} when an
# explicit timestamp holds another value, {-3, anomaly, alert} when it holds this very value
# (a retry: nothing written; the marks kept for it, 1 or 0), {-2} when no millisecond is free.
ADD = LuaScript("add", keys=("readings_key", "detector_key", "anomalies_key", "alerts_key"),
                args=("timestamp", "value", "explicit", "max_bumps", "sensor", "window_size"))
# A batch stored whole: {stored, {conflicts}, already stored}, or {-2} (nothing stored) when
# the server-clock readings cannot all be placed. `rest`: (timestamp or '', value) per reading.
BATCH = LuaScript("batch", keys=("readings_key",), args=("sensor", "first_slot", "max_bumps"),
                  rest="readings")
# A verdict's marks, the detector state's changed fields, its judgement (expected value and
# band, kept BAND_RETENTION_MS) and its outbox entries, written together: 1.
# `rest`: the outbox entries, each "field\nvalue\n..." (shared/outbox.py).
VERDICT = LuaScript("verdict", keys=("anomalies_key", "alerts_key", "detector_key", "expected_key",
                                     "lower_key", "upper_key", "outbox_key"),
                    args=("timestamp", "value", "sensor", "anomaly", "alert", "state", "judgement",
                          "band_retention", "max_entries"), rest="outbox entries")
# The newest readings in a range with the total and the marks among them:
# {total, "t v t v ...", "t t ...", "t t ..."}, or {} for a sensor without readings.
HISTORY = LuaScript("history", keys=("readings_key", "anomalies_key", "alerts_key"),
                    args=("range_start", "range_end", "count"), writes=False)
# What listar shows beside the readings: {"t e l u ...", anomalies total, {entry, ...}}.
EXTRAS = LuaScript("extras", keys=("expected_key", "lower_key", "upper_key", "anomalies_key",
                                   "outbox_key"), args=("range_start", "range_end"), writes=False)
# A nonce claimed: 1 once, nil while it is held. No wait for replicas: a nonce lost in a
# failover reopens a replay for the calls of its last moments, it never loses a reading.
NONCE = LuaScript("nonce", keys=("nonce_key",), args=("ttl_ms",), writes=False)
# Readiness: 1 when the TimeSeries module answers, else its error.
PROBE = LuaScript("probe", keys=("probe_key",), args=(), writes=False)

ALL = (ADD, BATCH, VERDICT, HISTORY, EXTRAS, NONCE, PROBE)
