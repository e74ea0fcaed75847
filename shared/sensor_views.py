"""What listar's pages read beside a sensor's readings: the sensors overview, and a sensor's
judgements (expected value and normal band), alert log and anomaly count over a range.

Reads only, each one round trip per Redis master (the overview) or one script on the
sensor's slot (the rest); nothing here waits for replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from .outbox import outbox_key
from .readings import SensorSummary
from .redis_connection import RedisConnection
from .store import anomalies_key, band_keys, _store_errors

# A sensor's judgements in [start, end], its alert log and its anomaly count:
# {"t e l u t e l u ...", {entry fields...}..., anomalies total}.
EXTRAS_SCRIPT = """#!lua flags=no-writes
local function range(key)
  local found = redis.pcall('TS.RANGE', key, ARGV[1], ARGV[2])
  if type(found) == 'table' and found.err then
    if string.find(found.err, 'does not exist', 1, true) then return {} end
    error(found.err)
  end
  local out = {}
  for i, sample in ipairs(found) do
    local v = sample[2]
    if type(v) == 'table' then v = v.ok end
    out[string.format('%.0f', sample[1])] = v
  end
  return out
end
local expected, lower, upper = range(KEYS[1]), range(KEYS[2]), range(KEYS[3])
local band = {}
for t, e in pairs(expected) do
  if lower[t] and upper[t] then band[#band + 1] = t .. ' ' .. e .. ' ' .. lower[t] .. ' ' .. upper[t] end
end
local total = 0
local info = redis.pcall('TS.INFO', KEYS[4])
if not info.err then
  for i = 1, #info, 2 do
    local name = info[i]
    if type(name) == 'table' then name = name.ok end
    if name == 'totalSamples' then total = info[i + 1] break end
  end
end
local log = {}
if redis.call('EXISTS', KEYS[5]) == 1 then log = redis.call('XRANGE', KEYS[5], '-', '+') end
local entries = {}
for i, entry in ipairs(log) do entries[i] = table.concat(entry[2], '\\n') end
return {table.concat(band, ' '), total, entries}
"""


@dataclass(frozen=True)
class SensorExtras:
    band: dict[int, tuple[float, float, float]]  # timestamp -> (expected, lower, upper)
    flagged_total: int  # every reading of the sensor flagged as an anomaly
    events: list[dict[str, str]]  # the alert log entries of the range, oldest first


def _mget(client, kind: str) -> list[tuple[str, int, float]]:
    """(sensor, timestamp, value) of the newest sample of every series of `kind` there."""
    reply = client.execute_command("TS.MGET", "SELECTED_LABELS", "sensor", "FILTER", f"kind={kind}")
    found = []
    for _, labels, sample in reply:
        if sample and labels and labels[0][1] is not None:
            found.append((labels[0][1].decode(), int(sample[0]), float(sample[1])))
    return found


class SensorViews:
    def __init__(self, connection: RedisConnection):
        self.connection = connection

    def overview(self) -> list[SensorSummary]:
        """Every sensor with readings: its newest reading, its state and its last alert;
        those in an event first, then by name."""
        with _store_errors("(all)", writing=False):
            newest, judged, alerted = {}, {}, {}
            for client in self.connection.masters():
                newest.update({s: (t, v) for s, t, v in _mget(client, "reading")})
                judged.update({s: t for s, t, _ in _mget(client, "expected")})
                alerted.update({s: t for s, t, _ in _mget(client, "alert")})
            last_entries = {}
            for sensor in alerted:
                key = outbox_key(sensor)
                entry = self.connection.master_client(key).xrevrange(key, count=1)
                if entry:
                    last_entries[sensor] = {k.decode(): v.decode() for k, v in entry[0][1].items()}
        summaries = []
        for sensor, (t, value) in newest.items():
            entry = last_entries.get(sensor)
            if entry and entry["event"] == "alert":
                state = "in an event"
            elif judged.get(sensor) == t:
                state = "normal"
            else:
                state = "not judged"
            summaries.append(SensorSummary(sensor, t, value, state, alerted.get(sensor),
                                           entry["kind"] if entry else None))
        return sorted(summaries, key=lambda s: (s.state != "in an event", s.sensor))

    def extras(self, sensor: str, start: int | str, end: int | str) -> SensorExtras:
        keys = [*band_keys(sensor), anomalies_key(sensor), outbox_key(sensor)]
        with _store_errors(sensor, writing=False):
            band, total, log = self.connection.run(EXTRAS_SCRIPT, keys, [start, end], writes=False)
        numbers = band.split()
        judged = {int(numbers[i]): (float(numbers[i + 1]), float(numbers[i + 2]), float(numbers[i + 3]))
                  for i in range(0, len(numbers), 4)}
        low = start if isinstance(start, int) else 0
        high = end if isinstance(end, int) else float("inf")
        events = []
        for text in log:
            fields = text.decode().split("\n")
            entry = dict(zip(fields[::2], fields[1::2]))
            if low <= int(entry.get("timestamp", -1)) <= high:
                events.append(entry)
        return SensorExtras(judged, int(total), events)

    def newest(self, sensor: str) -> int | None:
        """The time of the sensor's newest reading, None when it has none."""
        with _store_errors(sensor, writing=False):
            client = self.connection.master_client(sensor)
            if not client.exists(sensor):
                return None
            return int(client.execute_command("TS.GET", sensor)[0])

