-- Readiness (PROBE in shared/store/scripts.py names these positions).
local probe_key = KEYS[1]  -- a key no sensor can name

-- TS.INFO on it: an unknown command means the TimeSeries module is missing; "does not
-- exist" means it answered. Replies 1.
local reply = redis.pcall('TS.INFO', probe_key)
if type(reply) == 'table' and reply.err and not string.find(reply.err, 'does not exist', 1, true) then
  return redis.error_reply(reply.err)
end
return 1
