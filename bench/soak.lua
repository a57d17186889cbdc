-- wrk script for bench/soak.sh: a mix of what a real client sends, at random.
--
--   wrk -t2 -c64 -dNs -s bench/soak.lua http://127.0.0.1:PORT
--
--   40 %  small cached read     SELECT v FROM soak WHERE id = $1      (use_cache, 20000 keys)
--   15 %  small read            SELECT id, v, note FROM soak WHERE id = $1
--   15 %  write                 UPDATE soak SET v = v + 1 WHERE id = $1   (invalidates the cache)
--    5 %  transaction           two updates in one /transaction
--   10 %  large result          5000 rows (about 300 KB of JSON)
--    2 %  truncated             20000 rows, cut at max_rows
--    3 %  too large             one 2 MB value over max_response_bytes (422)
--   10 %  errors                syntax error, unknown table, division by zero (400)
--
-- done() prints: SOAK_RESULT requests=N rps=F p50_us=N p99_us=N max_us=N s2xx=N s4xx=N s5xx=N
--                socket_errors=N

local threads = {}
function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

s2xx, s4xx, s5xx = 0, 0, 0
local prefix

local function q(sql, params, cache)
   local body = '{"sql":"' .. sql .. '"'
   if params then body = body .. ',"params":[' .. params .. ']' end
   if cache then body = body .. ',"use_cache":true' end
   return "/query", body .. "}"
end

function init(args)
   math.randomseed(os.time() + (id or 1) * 7919 + math.floor(os.clock() * 1e6))
   for _ = 1, 10 do math.random() end
   prefix = "\r\nHost: " .. wrk.headers["Host"] .. "\r\nContent-Type: application/json\r\nContent-Length: "
end

local function pick()
   local r = math.random(1, 100)
   local id = math.random(1, 20000)
   if r <= 40 then return q("SELECT v FROM soak WHERE id = $1", id, true)
   elseif r <= 55 then return q("SELECT id, v, note FROM soak WHERE id = $1", id)
   elseif r <= 70 then return q("UPDATE soak SET v = v + 1 WHERE id = $1", id)
   elseif r <= 75 then
      return "/transaction", '{"queries":[{"sql":"UPDATE soak SET v = v - 1 WHERE id = $1","params":[' .. id ..
         ']},{"sql":"UPDATE soak SET v = v + 1 WHERE id = $1","params":[' .. math.random(1, 20000) .. ']}]}'
   elseif r <= 85 then return q("SELECT id, v, note FROM soak WHERE id > $1 ORDER BY id LIMIT 5000", math.random(1, 15000))
   elseif r <= 87 then return q("SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g")
   elseif r <= 90 then return q("SELECT repeat('x', 2000000) AS big")
   elseif r <= 94 then return q("SELEC 1")
   elseif r <= 97 then return q("SELECT * FROM no_such_table")
   else return q("SELECT 1 / (id - id) FROM soak WHERE id = $1", id)
   end
end

function request()
   local path, body = pick()
   return "POST " .. path .. " HTTP/1.1" .. prefix .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
   if status >= 500 then s5xx = s5xx + 1
   elseif status >= 400 then s4xx = s4xx + 1
   else s2xx = s2xx + 1 end
end

function done(summary, latency, requests)
   local a, b, c = 0, 0, 0
   for _, t in ipairs(threads) do
      a = a + (t:get("s2xx") or 0)
      b = b + (t:get("s4xx") or 0)
      c = c + (t:get("s5xx") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "SOAK_RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d s2xx=%d s4xx=%d s5xx=%d socket_errors=%d\n",
      summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50),
      latency:percentile(99), latency.max, a, b, c, e.connect + e.read + e.write + e.timeout))
end
