-- `refresh`: POST /auth/token with grant_type=refresh_token. Every refresh spends its token, so each
-- thread holds its own share of BENCH_DATA's token chains (one session each) in a queue: a request
-- takes a chain's latest token, and its answer puts the chain's new token back. A chain is never in
-- two requests at once, so no request is a concurrent reuse. The driver hands over one spare chain per
-- thread (wrk builds one request before the run to check it, which takes a token and never sends it).
dofile("/bench/wrk/common.lua")

local queue, head, tail = {}, 1, 0

function init(args)
  for _, token in ipairs(share(lines(os.getenv("BENCH_DATA")))) do
    tail = tail + 1
    queue[tail] = token
  end
end

local function headers()
  return {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Forwarded-For"] = client_address()}
end

function request()
  local token = "no-chain-left"  -- only after an error broke a chain: answered 400, counted
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
  end
  return wrk.format("POST", "/auth/token", headers(),
    "grant_type=refresh_token&refresh_token=" .. token)
end

function on_response(status, body)
  if status == 200 then
    local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if token ~= nil then
      tail = tail + 1
      queue[tail] = token
    end
  end
end
