-- Shared helpers for the wrk scripts in this folder (loaded with require "report").
-- Each script counts non-2xx responses (and, for reads, misses) per thread; done() sums
-- them over the threads and prints ONE line: "BENCHJSON {...}" that bench/run.py parses.
local M = {}

local threads = {}
local counter = 0

M.KEYS = 10000          -- key space: bench/0 .. bench/9999
M.VALUE = string.rep("v", 64)   -- 64-byte value

function M.setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
   table.insert(threads, thread)
end

-- Seed each thread differently: LuaJIT states all start from the same seed otherwise.
function M.seed()
   local id = thread_id or 0
   math.randomseed(os.time() * 1000 + id * 7919)
   for _ = 1, 10 do math.random() end
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function M.b64(data)
   return ((data:gsub(".", function(x)
      local r, b = "", x:byte()
      for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
      return r
   end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
      if #x < 6 then return "" end
      local c = 0
      for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
      return B64:sub(c + 1, c + 1)
   end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

function M.done(summary, latency, requests)
   local non2xx, misses = 0, 0
   for _, t in ipairs(threads) do
      non2xx = non2xx + (t:get("non2xx") or 0)
      misses = misses + (t:get("misses") or 0)
   end
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests": %d, "duration_s": %.3f, "rps": %.1f, "ok_rps": %.1f, ' ..
      '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f, ' ..
      '"non2xx": %d, "misses": %d, "err_connect": %d, "err_read": %d, "err_write": %d, ' ..
      '"err_timeout": %d, "bytes": %d}\n',
      summary.requests, secs, summary.requests / secs,
      (summary.requests - non2xx - misses - e.timeout) / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
      non2xx, misses, e.connect, e.read, e.write, e.timeout, summary.bytes))
end

return M
