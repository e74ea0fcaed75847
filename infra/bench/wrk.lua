-- wrk script of `python -m infra.bench`: one path, optionally a unique timestamp per request,
-- and a machine-readable summary (latency percentiles, non-2xx answers) on the last line.
--   wrk ... -s wrk.lua <url> -- <path> [<first timestamp> <threads> [<sensors>]]
-- With a first timestamp, request k of thread t gets timestamp first + k * threads + t:
-- unique across the run, so no write is refused as a duplicate. With a number of sensors,
-- SENSOR in the path becomes bench-spread-<n>, n going round them request by request.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  path = args[1]
  first = tonumber(args[2])
  stride = tonumber(args[3]) or 1
  sensors = tonumber(args[4])
  count = 0
  if not first then
    request = nil  -- a fixed request: wrk builds it once
    wrk.path = path
  end
end

function request()
  count = count + 1
  local n = count * stride + id
  local target = path
  if sensors then target = string.gsub(path, "SENSOR", "bench-spread-" .. (n % sensors)) end
  return wrk.format("GET", target .. "&timestamp=" .. string.format("%.0f", first + n))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
