-- wrk script for the KV history benchmark (bench/kvhistory_bench.py).
--   wrk -s kvhist.lua URL            PUT /v1/kv/bench/<k>, 64-byte bodies
-- Like muster.lua's put, except that each thread alternates two values per key, so almost every
-- PUT changes the key (an identical re-set changes nothing and would record no version).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local report = require "report"

local reqs = {}
local flip = {}
non2xx = 0

function setup(thread) report.setup(thread) end

function init(args)
   report.seed()
   local headers = {["Content-Type"] = "application/octet-stream"}
   local other = string.rep("w", 64)
   for k = 0, report.KEYS - 1 do
      local path = "/v1/kv/bench/" .. k
      reqs[2 * k + 1] = wrk.format("PUT", path, headers, report.VALUE)
      reqs[2 * k + 2] = wrk.format("PUT", path, headers, other)
      flip[k + 1] = 0
   end
end

function request()
   local k = math.random(report.KEYS)
   local f = 1 - flip[k]
   flip[k] = f
   return reqs[2 * (k - 1) + 1 + f]
end

function response(status, headers, body)
   if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests) report.done(summary, latency, requests) end
