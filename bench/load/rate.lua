-- wrk script for bench/load: a fixed request rate over keep-alive connections,
-- rotating through a list of requests. Debian's wrk has no rate option (wrk2's -R);
-- delay() gives one. Each wrk thread owns a share of the rate and a schedule of
-- send times (slots); whenever one of its connections is free, delay() hands it the
-- next slot and wrk waits until then (wrk's timers have 1 ms steps: a send may be
-- up to 1 ms early, the schedule itself never drifts). When no connection was free
-- at a slot's time, the request goes out late; how late ("lag") is recorded here,
-- since wrk's own latency counts from the send. Requests come from the file named
-- by the environment variable LOAD_REQUESTS, one per line: path, and optionally a
-- tab and an If-None-Match value. LOAD_RATE: requests/s for all threads together.
-- done() prints one machine-readable line per figure (bench/load parses them).

local ffi = require("ffi")
ffi.cdef([[
typedef long time_t;
typedef struct { time_t tv_sec; long tv_nsec; } timespec;
int clock_gettime(int clk_id, timespec *tp);
]])
local ts = ffi.new("timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local requests = {}
local interval, next_slot, n
-- Lag histogram: 0.1 ms buckets up to 100 ms, then 10 ms buckets up to 10 s (the
-- last bucket: 10 s and more).
local lag = {}
local LAG_BUCKETS = 1990
local function bucket_of(late)
  if late < 100 then
    return math.floor(late * 10)
  end
  return math.min(LAG_BUCKETS, 1000 + math.floor((late - 100) / 10))
end
local function ms_of(bucket)
  if bucket < 1000 then
    return bucket / 10
  end
  return 100 + (bucket - 1000) * 10
end
lag_hist = ""

function init(args)
  local nthreads = tonumber(os.getenv("LOAD_THREADS"))
  local rate = tonumber(os.getenv("LOAD_RATE"))
  interval = 1000 * nthreads / rate
  for line in io.lines(os.getenv("LOAD_REQUESTS")) do
    local path, etag = line:match("^([^\t]+)\t?(.*)$")
    local headers = {}
    if etag ~= "" then
      headers["If-None-Match"] = etag
    end
    table.insert(requests, wrk.format("GET", path, headers))
  end
  for i = 0, LAG_BUCKETS do
    lag[i] = 0
  end
  -- The threads' schedules interleave: thread k starts k/threads of an interval later.
  next_slot = now_ms() + 100 + interval * index / nthreads
  n = index
end

local function export()
  local parts = {}
  for i = 0, LAG_BUCKETS do
    if lag[i] > 0 then
      table.insert(parts, i .. ":" .. lag[i])
    end
  end
  lag_hist = table.concat(parts, ",")
end

-- wrk calls delay() before every send (there is no per-thread hook at the end of
-- a run): the histogram done() reads is refreshed every 256 sends, so up to 255
-- of each thread's last sends are left out of the lag figures.
local calls = 0

function delay()
  calls = calls + 1
  if calls % 256 == 0 then
    export()
  end
  local now = now_ms()
  local slot = next_slot
  next_slot = slot + interval
  if slot >= now then
    lag[0] = lag[0] + 1
    return math.floor(slot - now)
  end
  local bucket = bucket_of(now - slot)
  lag[bucket] = lag[bucket] + 1
  return 0
end

function request()
  n = n + 1
  return requests[n % #requests + 1]
end

function done(summary, latency, requests_)
  local hist = {}
  for _, thread in ipairs(threads) do
    local text = thread:get("lag_hist") or ""
    for bucket, count in text:gmatch("(%d+):(%d+)") do
      bucket = tonumber(bucket)
      hist[bucket] = (hist[bucket] or 0) + tonumber(count)
    end
  end
  local total = 0
  for _, count in pairs(hist) do
    total = total + count
  end
  local function lag_percentile(q)
    local seen, target = 0, q * total
    for bucket = 0, LAG_BUCKETS do
      seen = seen + (hist[bucket] or 0)
      if seen >= target and seen > 0 then
        return ms_of(bucket)
      end
    end
    return 0
  end
  local e = summary.errors
  io.write(string.format("load requests %d\n", summary.requests))
  io.write(string.format("load duration_us %d\n", summary.duration))
  io.write(
    string.format(
      "load errors connect %d read %d write %d status %d timeout %d\n",
      e.connect, e.read, e.write, e.status, e.timeout
    )
  )
  for _, q in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("load latency_ms p%s %.3f\n", q, latency:percentile(q) / 1000))
  end
  io.write(string.format("load latency_ms max %.3f\n", latency.max / 1000))
  for _, q in ipairs({ 0.5, 0.99, 0.999, 1.0 }) do
    io.write(string.format("load lag_ms p%s %.1f\n", q * 100, lag_percentile(q)))
  end
  io.write(string.format("load lag_sends %d\n", total))
end
