-- Keep a verdict (VERDICT in shared/store/scripts.py names these positions).
local anomalies_key = KEYS[1]
local alerts_key = KEYS[2]
local detector_key = KEYS[3]
local timestamp = ARGV[1]  -- the judged reading's
local value = ARGV[2]
local sensor = ARGV[3]     -- the marks' label
local anomaly = ARGV[4]    -- '1': mark the reading anomalous
local alert = ARGV[5]      -- '1': mark it as starting an event
local state = ARGV[6]      -- the detector state's changed fields, "field\nvalue\n...", or ''

-- The marks and the state are written together, atomically. Replies 1.
for _, mark in ipairs({{anomaly, anomalies_key, 'anomaly'}, {alert, alerts_key, 'alert'}}) do
  if mark[1] == '1' then
    local reply = redis.pcall('TS.ADD', mark[2], timestamp, value, 'LABELS', 'kind', mark[3], 'sensor', sensor)
    if type(reply) == 'table' and reply.err then return redis.error_reply(reply.err) end
  end
end
if state ~= '' then
  local fields = {}
  for item in string.gmatch(state, '[^\n]+') do fields[#fields + 1] = item end
  redis.call('HSET', detector_key, unpack(fields))
end
return 1
