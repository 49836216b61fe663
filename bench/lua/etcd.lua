-- wrk script for etcd through its v3 HTTP/JSON gateway (base64 keys and values).
--   wrk -s etcd.lua URL -- put             POST /v3/kv/put   {"key": b64, "value": b64}
--   wrk -s etcd.lua URL -- serializable    POST /v3/kv/range {"key": b64, "serializable": true}
--   wrk -s etcd.lua URL -- linearizable    POST /v3/kv/range {"key": b64}
-- Keys are bench/<k>, uniform random in a 10k key space; reads expect pre-populated keys:
-- a range answer without "kvs" counts as a miss.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local report = require "report"

local requests_ = {}
local is_read = false
non2xx = 0
misses = 0

function setup(thread) report.setup(thread) end

function init(args)
   report.seed()
   local mode = args[1] or "put"
   local headers = { ["Content-Type"] = "application/json" }
   local value = report.b64(report.VALUE)
   is_read = mode ~= "put"
   for k = 0, report.KEYS - 1 do
      local key = report.b64("bench/" .. k)
      local body
      if mode == "put" then
         body = '{"key":"' .. key .. '","value":"' .. value .. '"}'
         requests_[k + 1] = wrk.format("POST", "/v3/kv/put", headers, body)
      else
         body = '{"key":"' .. key .. '"' .. (mode == "serializable" and ',"serializable":true' or "") .. '}'
         requests_[k + 1] = wrk.format("POST", "/v3/kv/range", headers, body)
      end
   end
end

function request()
   return requests_[math.random(report.KEYS)]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif is_read and not string.find(body, '"kvs"', 1, true) then
      misses = misses + 1
   end
end

function done(summary, latency, requests) report.done(summary, latency, requests) end
