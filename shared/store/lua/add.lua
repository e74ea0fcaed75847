-- Store one reading (ADD in shared/store/scripts.py names these positions).
local readings_key = KEYS[1]
local detector_key = KEYS[2]
local anomalies_key = KEYS[3]  -- read only when the very reading was stored before
local alerts_key = KEYS[4]
local timestamp = ARGV[1]    -- ms; the server's clock when not explicit
local value = ARGV[2]
local explicit = ARGV[3]     -- '1': the caller's timestamp, '0': the server's clock
local max_bumps = ARGV[4]    -- a server-clock reading moves at most this many ms forward
local sensor = ARGV[5]       -- the readings key's label
local window_size = ARGV[6]  -- readings to read before the new one; 0: none

-- TS.ADD creates the key when it is missing (labels, DUPLICATE_POLICY BLOCK) and never
-- overwrites a sample (ON_DUPLICATE BLOCK also guards keys the replaced system created,
-- policy unknown). A server-clock reading whose millisecond is taken moves to the next free
-- one, found with one TS.RANGE over the following max_bumps ms (a script runs alone: nobody
-- can take that millisecond in between). With a window size it also reads the readings just
-- before the new one (COUNT bounds the read: the cost stays flat however long the history
-- grows) and the detector state.
-- An explicit timestamp the sensor already has with this very value is a retry: nothing is
-- written, and the marks kept for that reading are returned.
-- Replies {timestamp, "v v ...", "field\nvalue..."}, {timestamp} without a window,
-- {-1} when an explicit timestamp holds another value, {-3, anomaly, alert} (1 or 0 each)
-- when it holds this one, {-2} when no millisecond is free.
local ts, bumps, size = tonumber(timestamp), tonumber(max_bumps), tonumber(window_size)
local function ms(t) return string.format('%.0f', t) end
local function marked(key)
  local found = redis.pcall('TS.RANGE', key, timestamp, timestamp)
  return (type(found) == 'table' and not found.err and #found > 0) and 1 or 0
end
local function add(t)
  return redis.pcall('TS.ADD', readings_key, ms(t), value, 'DUPLICATE_POLICY', 'BLOCK',
                     'ON_DUPLICATE', 'BLOCK', 'LABELS', 'kind', 'reading', 'sensor', sensor)
end
local reply = add(ts)
if type(reply) == 'table' and reply.err then
  if not string.find(reply.err, 'DUPLICATE_POLICY', 1, true) then return redis.error_reply(reply.err) end
  if explicit == '1' then
    local held = redis.call('TS.RANGE', readings_key, timestamp, timestamp)[1]
    held = held and held[2]
    if type(held) == 'table' then held = held.ok end
    if held == nil or tonumber(held) ~= tonumber(value) then return {-1} end
    return {-3, marked(anomalies_key), marked(alerts_key)}
  end
  local free = ts + 1
  for _, sample in ipairs(redis.call('TS.RANGE', readings_key, ms(free), ms(ts + bumps))) do
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
  for i, sample in ipairs(redis.call('TS.REVRANGE', readings_key, '-', ms(ts - 1), 'COUNT', size)) do
    local v = sample[2]
    if type(v) == 'table' then v = v.ok end
    values[i] = v
  end
end
return {ts, table.concat(values, ' '), table.concat(redis.call('HGETALL', detector_key), '\n')}
