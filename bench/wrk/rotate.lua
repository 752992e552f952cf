-- wrk script: every request takes the next line of a request file, so that 64 connections
-- cycle through 64 different authorized sessions (or bearer tokens) instead of sharing one.
--
--   wrk -t2 -c64 -d20s -s bench/wrk/rotate.lua http://127.0.0.1:PORT -- REQUESTS_FILE
--
-- REQUESTS_FILE: one request per line, "PATH<TAB>Header-Name: value" (the header part is
-- optional). The file lives in bench/out (git-ignored) because it carries session cookies.
-- When the run ends, one JSON line prefixed "WRK_JSON " is printed with the totals and
-- latency percentiles in microseconds.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local n = 0
local i = 0

function init(args)
  local path = args[1]
  if path == nil then
    error("rotate.lua needs the request file: wrk ... -s rotate.lua URL -- FILE")
  end
  for line in io.lines(path) do
    if line ~= "" then
      local p, h = line:match("^([^\t]*)\t(.*)$")
      if p == nil then p = line end
      local headers = {}
      if h ~= nil and h ~= "" then
        local name, value = h:match("^([^:]+):%s*(.*)$")
        if name ~= nil then headers[name] = value end
      end
      n = n + 1
      reqs[n] = wrk.format("GET", p, headers)
    end
  end
  if n == 0 then error("rotate.lua: request file " .. path .. " is empty") end
  -- Threads start at different offsets so that they do not hit the same session in lockstep.
  i = (id or 1) * 7
end

function request()
  i = i + 1
  return reqs[(i % n) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
