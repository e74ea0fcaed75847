#!lua flags=no-writes
-- What listar shows beside a sensor's readings (EXTRAS in shared/store/scripts.py names these positions).
local expected_key = KEYS[1]
local lower_key = KEYS[2]
local upper_key = KEYS[3]
local anomalies_key = KEYS[4]
local outbox_key = KEYS[5]
local range_start = ARGV[1]  -- ms or '-'
local range_end = ARGV[2]    -- ms or '+'

-- Replies {"t e l u t e l u ...", anomalies total, {"field\nvalue...", ...}}: the judgements
-- (expected value and band) in the range, every anomaly mark the sensor has, and its alert log.
local function range(key)
  local found = redis.pcall('TS.RANGE', key, range_start, range_end)
  if type(found) == 'table' and found.err then
    if string.find(found.err, 'does not exist', 1, true) then return {} end
    error(found.err)
  end
  local out = {}
  for _, sample in ipairs(found) do
    local v = sample[2]
    if type(v) == 'table' then v = v.ok end
    out[string.format('%.0f', sample[1])] = v
  end
  return out
end
local expected, lower, upper = range(expected_key), range(lower_key), range(upper_key)
local band = {}
for t, e in pairs(expected) do
  if lower[t] and upper[t] then band[#band + 1] = t .. ' ' .. e .. ' ' .. lower[t] .. ' ' .. upper[t] end
end
local total = 0
local info = redis.pcall('TS.INFO', anomalies_key)
if not info.err then
  for i = 1, #info, 2 do
    local name = info[i]
    if type(name) == 'table' then name = name.ok end
    if name == 'totalSamples' then total = info[i + 1] break end
  end
end
local log = {}
if redis.call('EXISTS', outbox_key) == 1 then
  for i, entry in ipairs(redis.call('XRANGE', outbox_key, '-', '+')) do
    log[i] = table.concat(entry[2], '\n')
  end
end
return {table.concat(band, ' '), total, log}
