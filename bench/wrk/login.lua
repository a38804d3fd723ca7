-- `login`: POST /auth/token with grant_type=password (argon2id verify + session creation), for the
-- accounts of BENCH_DATA in turn, all with the password BENCH_PASSWORD.
dofile("/bench/wrk/common.lua")

local bodies, next_index = {}, 0

function init(args)
  local password = urlencode(os.getenv("BENCH_PASSWORD"))
  for _, email in ipairs(lines(os.getenv("BENCH_DATA"))) do
    table.insert(bodies, "grant_type=password&username=" .. urlencode(email) .. "&password=" .. password)
  end
  next_index = thread_id
end

local function headers()
  return {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Forwarded-For"] = client_address()}
end

function request()
  next_index = next_index % #bodies + 1
  return wrk.format("POST", "/auth/token", headers(),
    bodies[next_index])
end
