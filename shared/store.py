"""Readings, windows, anomaly marks and detector state in Redis TimeSeries.

Each method is one round trip: a Lua script, atomic, so that what is stored never depends
on how requests interleave (a reading or a batch is stored whole, once, or not at all);
replies are turned into plain Python values here and nowhere else.
Key layout: docs/architecture.md, and the key names below (the one place that makes them).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import redis
from redis.exceptions import ClusterDownError, TryAgainError

from .readings import HistoryQuery, Reading
from .redis_connection import NotReplicated, RedisConnection

MAX_CLOCK_BUMPS = 1000  # server-clock readings move at most this many ms forward


class StoreError(Exception):
    """A store operation that did not happen, for a reason the caller can be told."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached, or refused our credentials; trying again later may work."""


class TimestampTaken(StoreError):
    """The sensor already has a reading at that explicit timestamp; nothing was overwritten."""


class NotATimeSeries(StoreError):
    """The sensor's key holds something other than a time series."""


class NoFreeMillisecond(StoreError):
    """Server-clock readings came faster than the sensor's milliseconds free up."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class StoredWindow:
    """A reading just stored, with the readings before it and the sensor's detector state."""

    timestamp: int
    window: list[float]  # newest first
    state: dict[str, float]


@dataclass(frozen=True)
class History:
    total: int
    readings: list[tuple[int, float]]  # newest first
    anomalies: set[int]  # timestamps judged anomalous
    alerts: set[int]  # timestamps whose reading started an event (a subset of anomalies)


@dataclass(frozen=True)
class BatchResult:
    stored: int
    conflicts: list[int]  # explicit timestamps the sensor already had


# Key names. A sensor's readings are under its own id (`mediciones` stays the replaced
# system's series); the keys derived from it carry the id as a hash tag, `{<sensor>}/...`,
# so that Redis Cluster puts all of a sensor's keys in the slot of its readings key (a key
# without braces hashes whole) and one script can use them together. Sensor ids cannot hold
# braces or `/` (params.py), so no derived key is ever some sensor's readings key.
# Layouts before this one named them `<sensor>/<kind>`: shared/migrate.py renames those.
DERIVED_KINDS = ("anomalies", "alerts", "detector")
NONCE_PREFIX = "/signatures/"  # a sensor id cannot start with "/": no clash with its keys


def derived_key(sensor: str, kind: str) -> str:
    return f"{{{sensor}}}/{kind}"


def anomalies_key(sensor: str) -> str:
    return derived_key(sensor, "anomalies")


def alerts_key(sensor: str) -> str:
    return derived_key(sensor, "alerts")


def detector_key(sensor: str) -> str:
    return derived_key(sensor, "detector")


BAND_SERIES = ("expected", "lower", "upper")  # detectar's judgement of each reading


def band_keys(sensor: str) -> list[str]:
    return [derived_key(sensor, kind) for kind in BAND_SERIES]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextmanager
def _store_errors(sensor: str, writing: bool = True) -> Iterator[None]:
    """Redis failures as store errors."""
    try:
        yield
    except redis.AuthenticationError as exc:  # a ConnectionError too: test it first
        raise StoreUnavailable("Redis refused our credentials") from exc
    except NotReplicated as exc:
        # On the master, not yet safe from its failure: unacknowledged, and maybe kept.
        raise StoreUnavailable(f"Redis is unavailable: {exc}; try again (a reading re-sent "
                               "with its timestamp is never stored twice)") from exc
    except (redis.ConnectionError, redis.TimeoutError, ClusterDownError, TryAgainError) as exc:
        # A write may have been applied just before the connection broke: say so honestly.
        raise StoreUnavailable("Redis is unavailable; try again" + (
            " (a reading re-sent with its timestamp is never stored twice)" if writing else "")
        ) from exc
    except redis.ResponseError as exc:
        if "not a TSDB key" in str(exc) or "WRONGTYPE" in str(exc):
            raise NotATimeSeries(f"sensor {sensor!r} names a Redis key that is not a time series") from exc
        raise


# The hot paths are Lua scripts: one round trip each, atomic, and replies cheap to parse.
# Lists of numbers travel as one string (space-separated samples; the detector state as
# "field\nvalue\n..."): Python splits a string in one call, where redis-py's parser costs a
# few microseconds per RESP element, more than the script itself. In RESP2, RedisTimeSeries
# answers sample values as status replies, which Lua sees as {ok = text}.

# Store one reading. TS.ADD creates the key when it is missing (labels, DUPLICATE_POLICY
# BLOCK) and never overwrites a sample (ON_DUPLICATE BLOCK also guards keys the replaced
# system created, policy unknown). A server-clock reading whose millisecond is taken moves
# to the next free one, found with one TS.RANGE over the following MAX_CLOCK_BUMPS ms (a
# script runs alone: nobody can take that millisecond in between). With a window size it
# also reads the readings just before the new one (COUNT bounds the read: the cost stays
# flat however long the history grows) and the detector state.
# Replies {timestamp, "v v ...", "field\nvalue..."}, {timestamp} without a window,
# {-1} when an explicit timestamp is taken, {-2} when no millisecond is free.
ADD_SCRIPT = """
local key, value, sensor = KEYS[1], ARGV[2], ARGV[5]
local ts, explicit, bumps, size = tonumber(ARGV[1]), ARGV[3] == '1', tonumber(ARGV[4]), tonumber(ARGV[6])
local function ms(t) return string.format('%.0f', t) end
local function add(t)
  return redis.pcall('TS.ADD', key, ms(t), value, 'DUPLICATE_POLICY', 'BLOCK',
                     'ON_DUPLICATE', 'BLOCK', 'LABELS', 'kind', 'reading', 'sensor', sensor)
end
local reply = add(ts)
if type(reply) == 'table' and reply.err then
  if not string.find(reply.err, 'DUPLICATE_POLICY', 1, true) then return redis.error_reply(reply.err) end
  if explicit then return {-1} end
  local free = ts + 1
  for _, sample in ipairs(redis.call('TS.RANGE', key, ms(free), ms(ts + bumps))) do
    if sample[1] ~= free then break end
    free = free + 1
  end
  if free > ts + bumps then return {-2} end
  ts = free
  reply = add(ts)
  if type(reply) == 'table' and reply.err then return redis.error_reply(reply.err) end
end
if size == 0 then return {ts} end
local values = {}
if ts > 0 then
  for i, sample in ipairs(redis.call('TS.REVRANGE', key, '-', ms(ts - 1), 'COUNT', size)) do
    local v = sample[2]
    if type(v) == 'table' then v = v.ok end
    values[i] = v
  end
end
return {ts, table.concat(values, ' '), table.concat(redis.call('HGETALL', KEYS[2]), '\\n')}
"""

# Store a batch: ARGV = sensor, first slot, MAX_CLOCK_BUMPS, then (timestamp or '', value)
# per reading. Every server-clock reading is placed before anything is written: reading i
# goes to its slot (first + i) or the next free millisecond after it (stored samples and
# the batch's own timestamps are taken), in batch order, at most MAX_CLOCK_BUMPS ms past
# the last slot; if one cannot be, nothing is stored: {-2}. Else {stored, {conflicts}}: the
# explicit timestamps the sensor already had, which are not stored.
BATCH_SCRIPT = """
local key, sensor = KEYS[1], ARGV[1]
local first, bumps = tonumber(ARGV[2]), tonumber(ARGV[3])
local function ms(t) return string.format('%.0f', t) end
local places, last = {}, first + (#ARGV - 3) / 2 - 1 + bumps
local clock = false
for i = 4, #ARGV, 2 do if ARGV[i] == '' then clock = true break end end
if clock then
  local taken = {}
  local samples = redis.pcall('TS.RANGE', key, ms(first), ms(last))
  if type(samples) == 'table' and samples.err then
    if not string.find(samples.err, 'does not exist', 1, true) then return redis.error_reply(samples.err) end
  else
    for _, sample in ipairs(samples) do taken[sample[1]] = true end
  end
  for i = 4, #ARGV, 2 do if ARGV[i] ~= '' then taken[tonumber(ARGV[i])] = true end end
  local t = first - 1
  for i = 4, #ARGV, 2 do
    if ARGV[i] == '' then
      t = math.max(t + 1, first + (i - 4) / 2)
      while taken[t] do t = t + 1 end
      if t > last then return {-2} end
      places[i] = t
    end
  end
end
local stored, conflicts = 0, {}
for i = 4, #ARGV, 2 do
  local reply = redis.pcall('TS.ADD', key, places[i] and ms(places[i]) or ARGV[i], ARGV[i + 1],
                            'DUPLICATE_POLICY', 'BLOCK', 'ON_DUPLICATE', 'BLOCK',
                            'LABELS', 'kind', 'reading', 'sensor', sensor)
  if type(reply) == 'table' and reply.err then
    if places[i] or not string.find(reply.err, 'DUPLICATE_POLICY', 1, true) then
      return redis.error_reply(reply.err)
    end
    conflicts[#conflicts + 1] = ARGV[i]
  else
    stored = stored + 1
  end
end
return {stored, conflicts}
"""

# Keep a verdict: mark an anomalous reading (ARGV[1] == '1'), and one that starts an event
# (ARGV[6] == '1'), and write the detector state ("field\nvalue\n...", empty when
# unchanged), atomically.
VERDICT_SCRIPT = """
for _, mark in ipairs({{ARGV[1], KEYS[1], 'anomaly'}, {ARGV[6], KEYS[3], 'alert'}}) do
  if mark[1] == '1' then
    local reply = redis.pcall('TS.ADD', mark[2], ARGV[2], ARGV[3], 'LABELS', 'kind', mark[3], 'sensor', ARGV[4])
    if type(reply) == 'table' and reply.err then return redis.error_reply(reply.err) end
  end
end
if ARGV[5] ~= '' then
  local fields = {}
  for item in string.gmatch(ARGV[5], '[^\\n]+') do fields[#fields + 1] = item end
  redis.call('HSET', KEYS[2], unpack(fields))
end
return 1
"""

# A sensor's newest readings in a range, its total and its anomaly and alert marks among
# them: {total, "t v t v ...", "t t ...", "t t ..."}, or {} when the sensor has no readings yet.
HISTORY_SCRIPT = """#!lua flags=no-writes
local readings = redis.pcall('TS.REVRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
if type(readings) == 'table' and readings.err then
  if string.find(readings.err, 'does not exist', 1, true) then return {} end
  return redis.error_reply(readings.err)
end
local info, total = redis.call('TS.INFO', KEYS[1]), 0
for i = 1, #info, 2 do
  local name = info[i]
  if type(name) == 'table' then name = name.ok end
  if name == 'totalSamples' then total = info[i + 1] break end
end
local flat = {}
for i, sample in ipairs(readings) do
  local v = sample[2]
  if type(v) == 'table' then v = v.ok end
  flat[2 * i - 1], flat[2 * i] = string.format('%.0f', sample[1]), v
end
-- The newest `count` marks in the range cover every one among the readings.
local function marks_of(key)
  local found, out = redis.pcall('TS.REVRANGE', key, ARGV[1], ARGV[2], 'COUNT', ARGV[3]), {}
  if type(found) == 'table' and found.err then
    if not string.find(found.err, 'does not exist', 1, true) then return nil, found.err end
  else
    for i, sample in ipairs(found) do out[i] = string.format('%.0f', sample[1]) end
  end
  return table.concat(out, ' ')
end
local anomalies, err = marks_of(KEYS[2])
if err then return redis.error_reply(err) end
local alerts, err2 = marks_of(KEYS[3])
if err2 then return redis.error_reply(err2) end
return {total, table.concat(flat, ' '), anomalies, alerts}
"""


# Claim a nonce: {1} once, nil while it is held (SET NX PX, as a script so that it goes
# where every other command goes).
NONCE_SCRIPT = """
return redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) and 1
"""


# Readiness: TS.INFO on a key no sensor can name ('/' is never in a sensor id): an unknown
# command means the TimeSeries module is missing; "does not exist" means it answered.
PROBE_KEY = "/readiness"
PROBE_SCRIPT = """
local reply = redis.pcall('TS.INFO', KEYS[1])
if type(reply) == 'table' and reply.err and not string.find(reply.err, 'does not exist', 1, true) then
  return redis.error_reply(reply.err)
end
return 1
"""


SCRIPTS = (ADD_SCRIPT, VERDICT_SCRIPT, BATCH_SCRIPT, HISTORY_SCRIPT, NONCE_SCRIPT)


def _state_text(state: dict[str, float]) -> str:
    return "\n".join(f"{key}\n{float(value)!r}" for key, value in state.items())


class ReadingStore:
    def __init__(self, connection: RedisConnection):
        self.connection = connection

    def claim_nonce(self, nonce: str, ttl_ms: int) -> bool:
        """Record a signed call's nonce for `ttl_ms`; False when it was recorded before."""
        with _store_errors(nonce, writing=False):
            # No wait for replicas: a nonce lost in a failover reopens a replay for the
            # calls of its last moments, it never loses a reading.
            return bool(self.connection.run(NONCE_SCRIPT, [NONCE_PREFIX + nonce], [ttl_ms],
                                            writes=False))

    def problem(self) -> str | None:
        """What would keep the functions from working with this Redis now, or None: it is
        unreachable, refuses our password, lacks RedisTimeSeries, or cannot run our scripts."""
        try:
            for client in self.connection.masters():
                for source in SCRIPTS:
                    client.script_load(source)
            self.connection.run(PROBE_SCRIPT, [PROBE_KEY], [], writes=False)
        except redis.AuthenticationError:  # a ConnectionError too: test it first
            return "Redis refused our credentials"
        except (redis.ConnectionError, redis.TimeoutError):
            return "Redis is unavailable"
        except redis.ResponseError as exc:
            if "unknown" in str(exc).lower() and "command" in str(exc).lower():
                return "Redis has no RedisTimeSeries module (TS.* commands unknown)"
            return f"Redis cannot run our scripts: {str(exc)[:200]}"
        except redis.RedisError as exc:  # e.g. a cluster without a master for a slot
            return f"Redis cannot serve: {str(exc)[:200]}"
        return None

    def close(self) -> None:
        self.connection.close()

    def _store(self, sensor: str, reading: Reading, size: int) -> list:
        """Run ADD_SCRIPT: the reading stored (and, with `size`, its window and state).

        A server-clock reading whose millisecond is taken moves to the next free one, so
        concurrent readings are all kept; an explicit timestamp that is taken is TimestampTaken.
        """
        explicit = reading.timestamp is not None
        timestamp = reading.timestamp if explicit else now_ms()
        with _store_errors(sensor):
            reply = self.connection.run(ADD_SCRIPT, [sensor, detector_key(sensor)],
                                        [timestamp, repr(float(reading.value)), int(explicit),
                                         MAX_CLOCK_BUMPS, sensor, size])
        if reply[0] == -1:
            raise TimestampTaken(f"sensor {sensor!r} already has a reading at timestamp "
                                 f"{timestamp}; it was not overwritten")
        if reply[0] == -2:
            raise NoFreeMillisecond(f"sensor {sensor!r} has no free millisecond near the server's "
                                    "clock (at most one server-clock reading per ms); nothing "
                                    "was stored, retry after 1 s or send a timestamp",
                                    retry_after_s=1)
        return reply

    def add(self, sensor: str, reading: Reading) -> int:
        """Store one reading; returns the timestamp it was stored at."""
        return int(self._store(sensor, reading, 0)[0])

    def add_and_window(self, sensor: str, reading: Reading, size: int) -> StoredWindow:
        """Store a reading and read the `size` readings before it and the detector state."""
        if size < 1:
            raise ValueError(f"a window holds at least one reading, got size {size}")
        timestamp, window, state = self._store(sensor, reading, size)
        fields = state.decode().split("\n") if state else []
        return StoredWindow(int(timestamp), [float(value) for value in window.split()],
                            dict(zip(fields[::2], map(float, fields[1::2]))))

    def add_batch(self, sensor: str, readings: Sequence[Reading]) -> BatchResult:
        """Store a batch in one round trip, atomically: server-clock readings end at the
        current millisecond (reading i of n at now - n + 1 + i) or move to the next free
        one; explicit timestamps the sensor already has are reported, not stored. When the
        server-clock readings cannot all be placed, nothing is stored (NoFreeMillisecond: the
        clock must move on by about one ms per reading first)."""
        args: list = []
        for reading in readings:
            args += ("" if reading.timestamp is None else reading.timestamp, repr(reading.value))
        with _store_errors(sensor):
            reply = self.connection.run(BATCH_SCRIPT, [sensor], [
                sensor, now_ms() - len(readings) + 1, MAX_CLOCK_BUMPS, *args])
        if reply[0] == -2:
            retry = max(1, math.ceil(len(readings) / 1000))
            raise NoFreeMillisecond(f"sensor {sensor!r} has no room for {len(readings)} "
                                    "server-clock readings near the server's clock (one per "
                                    f"ms); nothing was stored, retry after {retry} s or send "
                                    "timestamps", retry_after_s=retry)
        return BatchResult(int(reply[0]), [int(t) for t in reply[1]])

    def history(self, sensor: str, query: HistoryQuery) -> History:
        with _store_errors(sensor, writing=False):
            reply = self.connection.run(HISTORY_SCRIPT,
                                        [sensor, anomalies_key(sensor), alerts_key(sensor)],
                                        [query.start, query.end, query.count], writes=False)
        if not reply:  # no such sensor yet
            return History(0, [], set(), set())
        total, readings, anomalies, alerts = reply
        flat = readings.split()
        return History(int(total), list(zip(map(int, flat[::2]), map(float, flat[1::2]))),
                       set(map(int, anomalies.split())), set(map(int, alerts.split())))

    def record_verdict(self, sensor: str, timestamp: int, value: float, anomaly: bool,
                       alert: bool, old_state: dict[str, float],
                       new_state: dict[str, float]) -> None:
        """Mark an anomalous reading (and one that starts an event) and keep the detector's
        updated state, atomically.

        Only the fields that changed are written: the hash ends up the same, and a reading
        costs Redis (and the append-only file) a few fields, not the whole state.
        """
        changed = {field: number for field, number in new_state.items()
                   if field not in old_state or old_state[field] != number}
        if not anomaly and not changed:
            return
        with _store_errors(sensor):
            self.connection.run(VERDICT_SCRIPT,
                                [anomalies_key(sensor), detector_key(sensor), alerts_key(sensor)],
                                [int(anomaly), timestamp, repr(float(value)), sensor,
                                 _state_text(changed), int(alert)])
