-- wrk script for the mix paths (bench/mix.py): walks the generated request file, one line
-- per request (method, target, client address, Authorization, tab-separated), from
-- BENCH_MIX_START on, wrapping around. The client address travels in X-Bench-Client, which
-- the mix server blocks turn into $remote_addr (nginx's realip module). Counts the answers
-- by status; done() prints them and where the walk started and how many requests it sent,
-- for bench/wrk.py to read.
local threads = {}
local queue = {}
local position = 1

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_MIX")) do
    local method, target, client, authorization =
      line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$")
    queue[#queue + 1] = wrk.format(
      method, target, { ["Authorization"] = authorization, ["X-Bench-Client"] = client }
    )
  end
  start = (tonumber(os.getenv("BENCH_MIX_START")) + id * 50021) % #queue
  position = start + 1
  sent = 0
  counts = {}
end

function request()
  local text = queue[position]
  position = position % #queue + 1
  sent = sent + 1
  return text
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do
      io.write(string.format("bench-status %d %d\n", status, count))
    end
    io.write(string.format("bench-walk %d %d\n", thread:get("start"), thread:get("sent")))
  end
end
