#!lua flags=no-writes
-- A sensor's newest readings in a range (HISTORY in shared/store/scripts.py names these positions).
local readings_key = KEYS[1]
local anomalies_key = KEYS[2]
local alerts_key = KEYS[3]
local range_start = ARGV[1]  -- ms or '-'
local range_end = ARGV[2]    -- ms or '+'
local count = ARGV[3]        -- at most this many readings, the newest

-- Replies {total, "t v t v ...", "t t ...", "t t ..."}: the sensor's total, the readings,
-- and the anomaly and alert marks among them; {} when the sensor has no readings yet.
local readings = redis.pcall('TS.REVRANGE', readings_key, range_start, range_end, 'COUNT', count)
if type(readings) == 'table' and readings.err then
  if string.find(readings.err, 'does not exist', 1, true) then return {} end
  return redis.error_reply(readings.err)
end
local info, total = redis.call('TS.INFO', readings_key), 0
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
  local found, out = redis.pcall('TS.REVRANGE', key, range_start, range_end, 'COUNT', count), {}
  if type(found) == 'table' and found.err then
    if not string.find(found.err, 'does not exist', 1, true) then return nil, found.err end
  else
    for i, sample in ipairs(found) do out[i] = string.format('%.0f', sample[1]) end
  end
  return table.concat(out, ' ')
end
local anomalies, err = marks_of(anomalies_key)
if err then return redis.error_reply(err) end
local alerts, err2 = marks_of(alerts_key)
if err2 then return redis.error_reply(err2) end
return {total, table.concat(flat, ' '), anomalies, alerts}
