-- wrk script for bench/run.sh: POST /query with random parameters per request.
--
--   wrk -t2 -c16 -d10s -s bench/query.lua http://127.0.0.1:PORT -- WORKLOAD [ROWS [CHECK [USE_CACHE]]]
--
-- WORKLOAD  A  point read:   SELECT abalance FROM pgbench_accounts WHERE aid = $1
--           B  range read:   SELECT aid, bid, abalance, filler FROM pgbench_accounts
--                            WHERE aid BETWEEN $1 AND $1::int + 99        (100 rows)
--           C  single update: UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2
-- ROWS      rows in pgbench_accounts (100000 * scale); default 1000000 (scale 10). Keys are
--           drawn from 1..ROWS, so a smaller ROWS gives a hot key set (bench/cache.sh).
-- CHECK     1 (default): every response is checked in Lua: status must be 2xx and the body
--           must start with {"success":true (counted as non2xx / bad_body).
--           0: no response() callback, so wrk skips handing headers and bodies to Lua
--           (about 20 % less wrk CPU on these small requests, which matters on a 2-core
--           machine where wrk shares the CPUs with dbagent and PostgreSQL). wrk itself still
--           counts every status > 399 (status_gt399) and every socket error.
-- USE_CACHE 1: send "use_cache": true (bench/cache.sh). Default 0.
-- KEY       an API key, sent as "Authorization: Bearer KEY" (bench/run.sh with BENCH_KEY=1).
-- TIMING    a file prefix: write each answer's Server-Timing header (dbagent with
--           server.server_timing on), a line per answer, to PREFIX.<thread> (bench/run.sh
--           BENCH_TIMING=1 turns them into per-stage percentiles). Empty or 0: off.
--
-- done() prints one machine-readable line:
--   WRK_RESULT requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N p999_us=N max_us=N
--              non2xx=N bad_body=N connect=N read=N write=N timeout=N status_gt399=N

local ROWS = 1000000 -- pgbench_accounts rows (100000 * scale); second script argument

local threads = {}

-- Server-Timing values, one line per answer, to this thread's file (TIMING_FILE.<id>); the
-- script computes the percentiles. (wrk's thread:get() cannot hand a nested table to done().)
local timing_out
local timing_lines = 0

-- setup/done run in one environment, the threads in their own: give each thread an id.
function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

-- per-thread state; non2xx and bad_body are globals so that done() can read them with
-- thread:get()
local workload, prefix, body_start
non2xx, bad_body = 0, 0

local SQL = {
   A = '{"sql":"SELECT abalance FROM pgbench_accounts WHERE aid = $1","params":[',
   B = '{"sql":"SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1::int + 99","params":[',
   C = '{"sql":"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2","params":[',
}

function init(args)
   workload = args[1] or "A"
   ROWS = tonumber(args[2] or ROWS) or ROWS
   if args[6] ~= nil and args[6] ~= "" and args[6] ~= "0" then
      timing_out = assert(io.open(args[6] .. "." .. tostring(id or 1), "w"))
   end
   if args[3] == "0" and not timing_out then
      response = nil -- wrk then ignores headers and bodies (see wrk's SCRIPTING)
   end
   check = args[3] ~= "0"
   if SQL[workload] == nil then
      error("unknown workload " .. tostring(workload) .. " (want A, B or C)")
   end
   -- distinct seeds per thread and per run
   math.randomseed(os.time() + (id or 1) * 7919 + math.floor(os.clock() * 1e6))
   for _ = 1, 10 do math.random() end
   body_start = SQL[workload]
   if args[4] == "1" then
      body_start = '{"use_cache":true,' .. body_start:sub(2)
   end
   -- wrk.init has put the Host header in wrk.headers before calling us
   local auth = ""
   if args[5] ~= nil and args[5] ~= "" then
      auth = "\r\nAuthorization: Bearer " .. args[5]
   end
   prefix = "POST /query HTTP/1.1\r\nHost: " .. wrk.headers["Host"] .. auth ..
      "\r\nContent-Type: application/json\r\nContent-Length: "
   non2xx, bad_body = 0, 0
end

function request()
   local body
   if workload == "A" then
      body = body_start .. math.random(1, ROWS) .. ']}'
   elseif workload == "B" then
      body = body_start .. math.random(1, ROWS - 99) .. ']}'
   else
      body = body_start .. math.random(-5000, 5000) .. ',' .. math.random(1, ROWS) .. ']}'
   end
   return prefix .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
   if timing_out then
      timing_out:write(headers["server-timing"] or headers["Server-Timing"] or "none", "\n")
      timing_lines = timing_lines + 1
      if timing_lines % 256 == 0 then timing_out:flush() end -- wrk may not close it at the end
      if not check then return end
   end
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif body == nil or body:sub(1, 15) ~= '{"success":true' then
      bad_body = bad_body + 1
   end
end

function done(summary, latency, requests)
   local n2, bb = 0, 0
   for _, t in ipairs(threads) do
      n2 = n2 + (t:get("non2xx") or 0)
      bb = bb + (t:get("bad_body") or 0)
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "WRK_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d " ..
      "non2xx=%d bad_body=%d connect=%d read=%d write=%d timeout=%d status_gt399=%d\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
      n2, bb, e.connect, e.read, e.write, e.timeout, e.status))
end
