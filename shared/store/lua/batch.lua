-- Store a batch (BATCH in shared/store/scripts.py names these positions).
local readings_key = KEYS[1]
local sensor = ARGV[1]      -- the readings key's label
local first_slot = ARGV[2]  -- ms of the first server-clock reading's slot
local max_bumps = ARGV[3]   -- server-clock readings end at most this many ms past the last slot
local pairs_from = 4        -- ARGV[4], ARGV[5], ...: (timestamp or '', value) per reading

-- Every server-clock reading is placed before anything is written: reading i goes to its
-- slot (first_slot + i) or the next free millisecond after it (stored samples and the
-- batch's own timestamps are taken), in batch order, at most max_bumps ms past the last
-- slot; if one cannot be, nothing is stored: {-2}. Else {stored, {conflicts}, already}: the
-- explicit timestamps the sensor already had with another value, which are not stored, and
-- the count of readings it already had with the very same value (retries), not stored again.
local first, bumps = tonumber(first_slot), tonumber(max_bumps)
local function ms(t) return string.format('%.0f', t) end
local places, last = {}, first + (#ARGV - pairs_from + 1) / 2 - 1 + bumps
local clock = false
for i = pairs_from, #ARGV, 2 do if ARGV[i] == '' then clock = true break end end
if clock then
  local taken = {}
  local samples = redis.pcall('TS.RANGE', readings_key, ms(first), ms(last))
  if type(samples) == 'table' and samples.err then
    if not string.find(samples.err, 'does not exist', 1, true) then return redis.error_reply(samples.err) end
  else
    for _, sample in ipairs(samples) do taken[sample[1]] = true end
  end
  for i = pairs_from, #ARGV, 2 do if ARGV[i] ~= '' then taken[tonumber(ARGV[i])] = true end end
  local t = first - 1
  for i = pairs_from, #ARGV, 2 do
    if ARGV[i] == '' then
      t = math.max(t + 1, first + (i - pairs_from) / 2)
      while taken[t] do t = t + 1 end
      if t > last then return {-2} end
      places[i] = t
    end
  end
end
local stored, conflicts, already = 0, {}, 0
for i = pairs_from, #ARGV, 2 do
  local reply = redis.pcall('TS.ADD', readings_key, places[i] and ms(places[i]) or ARGV[i], ARGV[i + 1],
                            'DUPLICATE_POLICY', 'BLOCK', 'ON_DUPLICATE', 'BLOCK',
                            'LABELS', 'kind', 'reading', 'sensor', sensor)
  if type(reply) == 'table' and reply.err then
    if places[i] or not string.find(reply.err, 'DUPLICATE_POLICY', 1, true) then
      return redis.error_reply(reply.err)
    end
    local held = redis.call('TS.RANGE', readings_key, ARGV[i], ARGV[i])[1]
    held = held and held[2]
    if type(held) == 'table' then held = held.ok end
    if held ~= nil and tonumber(held) == tonumber(ARGV[i + 1]) then
      already = already + 1
    else
      conflicts[#conflicts + 1] = ARGV[i]
    end
  else
    stored = stored + 1
  end
end
return {stored, conflicts, already}
