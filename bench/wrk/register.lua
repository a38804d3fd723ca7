-- `register`: POST /auth/register (argon2id hash + insert), each request with a new email
-- bench-<run>-t<thread>-<n>@bench.example (the .example domain is reserved: RFC 2606); expects 201.
dofile("/bench/wrk/common.lua")
expected_status = 201

local prefix, password, counter = "", "", 0

function init(args)
  prefix = "bench-" .. os.getenv("BENCH_RUN") .. "-t" .. thread_id .. "-"
  password = os.getenv("BENCH_PASSWORD")
end

local function headers()
  return {["Content-Type"] = "application/json", ["X-Forwarded-For"] = client_address()}
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/auth/register", headers(),
    '{"email":"' .. prefix .. counter .. '@bench.example","password":"' .. password .. '"}')
end
