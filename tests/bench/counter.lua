-- wrk: the counter function, `POST /api/counter/NAME` (a durable increment) or
-- `GET /api/counter/NAME` (a read), NAME spread over BENCH_KEYS counters (default 1000).
--
--   BENCH_METHOD=POST wrk -t1 -c32 -d10s -s tests/bench/counter.lua http://127.0.0.1:8080
local method = os.getenv("BENCH_METHOD") or "POST"
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
-- POST with an empty body still sends `Content-Length: 0`.
local body = nil
if method == "POST" then
   body = ""
end

function init(args)
   math.randomseed(os.time())
end

function request()
   return wrk.format(method, "/api/counter/bench-" .. math.random(keys), nil, body)
end
