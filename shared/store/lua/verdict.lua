-- Keep a verdict (VERDICT in shared/store/scripts.py names these positions).
local anomalies_key = KEYS[1]
local alerts_key = KEYS[2]
local detector_key = KEYS[3]
local expected_key = KEYS[4]
local lower_key = KEYS[5]
local upper_key = KEYS[6]
local outbox_key = KEYS[7]
local timestamp = ARGV[1]  -- the judged reading's
local value = ARGV[2]
local sensor = ARGV[3]     -- the marks' label
local anomaly = ARGV[4]    -- '1': mark the reading anomalous
local alert = ARGV[5]      -- '1': mark it as starting an event
local state = ARGV[6]      -- the detector state's changed fields, "field\nvalue\n...", or ''
local judgement = ARGV[7]  -- "expected lower upper", or '' when the verdict has no band
local band_retention = ARGV[8]  -- ms the judgements are kept
local max_entries = ARGV[9]     -- the outbox stream's length (MAXLEN ~)
-- ARGV[10...]: the outbox entries, each "field\nvalue\n..."

-- The marks, the state, the judgement and the outbox entries are written together,
-- atomically; the channel then tells the forwarder (a lost message costs only latency).
-- Replies 1.
local function fields_of(text)
  local fields = {}
  for item in string.gmatch(text, '[^\n]+') do fields[#fields + 1] = item end
  return fields
end
for _, mark in ipairs({{anomaly, anomalies_key, 'anomaly'}, {alert, alerts_key, 'alert'}}) do
  if mark[1] == '1' then
    local reply = redis.pcall('TS.ADD', mark[2], timestamp, value, 'LABELS', 'kind', mark[3], 'sensor', sensor)
    if type(reply) == 'table' and reply.err then return redis.error_reply(reply.err) end
  end
end
if judgement ~= '' then
  local i = 0
  for number in string.gmatch(judgement, '%S+') do
    i = i + 1
    local key, kind = ({expected_key, lower_key, upper_key})[i], ({'expected', 'lower', 'upper'})[i]
    local reply = redis.pcall('TS.ADD', key, timestamp, number, 'RETENTION', band_retention,
                              'ON_DUPLICATE', 'LAST', 'LABELS', 'kind', kind, 'sensor', sensor)
    -- a reading judged long after newer ones: older than the band keeps, so not kept
    if type(reply) == 'table' and reply.err and not string.find(reply.err, 'retention', 1, true) then
      return redis.error_reply(reply.err)
    end
  end
end
if state ~= '' then
  redis.call('HSET', detector_key, unpack(fields_of(state)))
end
if #ARGV > 9 then
  for i = 10, #ARGV do
    redis.call('XADD', outbox_key, 'MAXLEN', '~', max_entries, '*', unpack(fields_of(ARGV[i])))
  end
  redis.call('PUBLISH', '/outbox', sensor)
end
return 1
