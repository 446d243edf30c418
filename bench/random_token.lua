-- wrk script for svc-miss: every request presents a token picked at random from a file,
-- so requests spread over the whole working set (larger than authsvc's cache).
local tokens = {}
local path = os.getenv("BENCH_TOKENS")
for line in io.lines(path) do
  tokens[#tokens + 1] = "Bearer " .. line
end
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)

request = function()
  wrk.headers["Authorization"] = tokens[math.random(#tokens)]
  return wrk.format("GET", os.getenv("BENCH_PATH"))
end
