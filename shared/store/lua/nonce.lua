-- Claim a signed call's nonce (NONCE in shared/store/scripts.py names these positions).
local nonce_key = KEYS[1]
local ttl_ms = ARGV[1]  -- how long the nonce stays claimed

-- Replies 1 once, nil while the nonce is held (SET NX PX, as a script so that it goes
-- where every other command goes).
return redis.call('SET', nonce_key, '1', 'NX', 'PX', ttl_ms) and 1
