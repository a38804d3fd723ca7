-- `me-distinct`: GET /users/me like `me`, but with a valid access token of its own session per request in
-- turn: BENCH_DATA holds many (driver.py DISTINCT_TOKENS), each thread cycles through its own share in
-- order, so a token comes back only after every other token of that share has been sent.
dofile("/bench/wrk/common.lua")

local tokens, next_index = {}, 0

function init(args)
  tokens = share(lines(os.getenv("BENCH_DATA")))
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("GET", "/users/me", {["Authorization"] = "Bearer " .. tokens[next_index]})
end
