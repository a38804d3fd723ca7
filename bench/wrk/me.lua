-- `me`: GET /users/me with a valid access token (verify the JWT, check the session, load the user).
-- The tokens belong to BENCH_DATA's sessions, one per line, used in turn.
dofile("/bench/wrk/common.lua")

local tokens, next_index = {}, 0

function init(args)
  tokens = lines(os.getenv("BENCH_DATA"))
  next_index = thread_id
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("GET", "/users/me", {["Authorization"] = "Bearer " .. tokens[next_index]})
end
