-- wrk script for Muster (Consul KV API).
--   wrk -s muster.lua URL -- put            PUT /v1/kv/bench/<k>  (64-byte body)
--   wrk -s muster.lua URL -- get [QUERY]    GET /v1/kv/bench/<k>[?QUERY]  (QUERY: stale | consistent)
-- Keys are uniform random in a 10k key space; GETs expect pre-populated keys (404 counts as non-2xx).
-- MUSTER_TOKEN in the environment is sent as X-Consul-Token (bench/acl_bench.py).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local report = require "report"

local requests_ = {}
non2xx = 0

function setup(thread) report.setup(thread) end

function init(args)
   report.seed()
   local mode, query = args[1] or "put", args[2]
   local suffix = (query and query ~= "" and query ~= "default") and ("?" .. query) or ""
   local token = os.getenv("MUSTER_TOKEN")
   for k = 0, report.KEYS - 1 do
      local path = "/v1/kv/bench/" .. k .. suffix
      local headers = {}
      if token and token ~= "" then headers["X-Consul-Token"] = token end
      if mode == "put" then
         headers["Content-Type"] = "application/octet-stream"
         requests_[k + 1] = wrk.format("PUT", path, headers, report.VALUE)
      else
         requests_[k + 1] = wrk.format("GET", path, headers)
      end
   end
end

function request()
   return requests_[math.random(report.KEYS)]
end

function response(status, headers, body)
   if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests) report.done(summary, latency, requests) end
