-- `login-mfa`: a password login with a TOTP second factor, two requests per login. POST /auth/token
-- grant_type=password (argon2id verify) is answered 403 `mfa_required` with an mfa_token; then
-- grant_type=urn:pyauth:params:oauth:grant-type:mfa with that mfa_token and the account's TOTP code is
-- answered 200 with the tokens. A login counts once, when its second answer is a 200 (`completed`), and
-- its latency runs from sending the first request to the second answer (`durations_us`).
--
-- BENCH_DATA (written by the driver): a line `steps <S>`, then one line per account with TOTP enrolled:
-- `<email> <last step> <code of step S> <code of step S+1> …`, the codes precomputed for the whole run
-- (wrk's Lua has no HMAC-SHA-1) and the last step the account spent (its confirmation's).
--
-- A code is single use: pyauth accepts a step only if it is later than the account's last accepted one.
-- So each thread owns its share of the accounts, and a password request takes an account that is idle
-- (no login of it in flight) and whose last step is before the current one (os time, the same host
-- clock as the API's); its mfa request sends the code of the step current when it is sent, and that step
-- becomes the account's last. An account therefore logs in at most once per 30-second step, and the
-- driver makes enough accounts for the run's rate (see driver.py). Should a thread find none free, it
-- sends GET /health/live instead and counts that as an error ("no free account"), never a replayed code.
--
-- wrk's request() and response() do not say which connection they serve: every request carries an
-- X-Request-ID naming its account (`bmfa-<p|m|s>-<account>-t<thread>-<n>`, which pyauth echoes), so that
-- an answer finds its account; the mfa_tokens wait in a queue that the next request of any connection
-- of the thread serves first.
dofile("/bench/wrk/common.lua")

local ffi = require("ffi") -- Debian's wrk runs LuaJIT
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local function monotonic_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end

local STEP_SECONDS = 30
local MFA_GRANT = urlencode("urn:pyauth:params:oauth:grant-type:mfa")

local accounts, first_step, cursor, sent = {}, 0, 0, 0
local pending, pending_head, pending_tail = {}, 1, 0
completed, durations_us = 0, {}

local function current_step()
  return math.floor(os.time() / STEP_SECONDS)
end

function init(args)
  local data = lines(os.getenv("BENCH_DATA"))
  first_step = tonumber(string.match(table.remove(data, 1), "^steps (%d+)$"))
  local password = urlencode(os.getenv("BENCH_PASSWORD"))
  for _, line in ipairs(share(data)) do
    local fields = {}
    for field in string.gmatch(line, "%S+") do
      table.insert(fields, field)
    end
    table.insert(accounts, {
      body = "grant_type=password&username=" .. urlencode(fields[1]) .. "&password=" .. password,
      last_step = tonumber(fields[2]),
      codes = {unpack(fields, 3)},
      busy = false,
      started = 0,
    })
  end
end

local function headers(kind, index)
  sent = sent + 1
  return {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Forwarded-For"] = client_address(),
    ["X-Request-ID"] = string.format("bmfa-%s-%d-t%d-%d", kind, index, thread_id or 0, sent),
  }
end

-- The next idle account whose last step is before `step`, round robin, or nil.
local function free_account(step)
  for _ = 1, #accounts do
    cursor = cursor % #accounts + 1
    local account = accounts[cursor]
    if not account.busy and account.last_step < step then
      return cursor
    end
  end
  return nil
end

local function none_free()
  return wrk.format("GET", "/health/live", headers("s", 0))
end

function request()
  local step = current_step()
  if pending_head <= pending_tail then
    local waiting = pending[pending_head]
    pending[pending_head] = nil
    pending_head = pending_head + 1
    local account = accounts[waiting.index]
    local code = account.codes[step - first_step + 1]
    if code == nil or step <= account.last_step then
      account.busy = false
      return none_free()
    end
    account.last_step = step
    return wrk.format("POST", "/auth/token", headers("m", waiting.index),
      "grant_type=" .. MFA_GRANT .. "&mfa_token=" .. urlencode(waiting.token) .. "&otp=" .. code)
  end
  local index = free_account(step)
  if index == nil then
    return none_free()
  end
  local account = accounts[index]
  account.busy = true
  account.started = monotonic_us()
  return wrk.format("POST", "/auth/token", headers("p", index), account.body)
end

local function request_id(answer_headers)
  for name, value in pairs(answer_headers) do
    if string.lower(name) == "x-request-id" then
      return value
    end
  end
  return ""
end

function response(status, answer_headers, body)
  local kind, index = string.match(request_id(answer_headers), "^bmfa%-(%a)%-(%d+)%-")
  local account = accounts[tonumber(index) or 0]
  if kind == "s" then
    count_unexpected("no free account", "no account of this thread was idle with an unspent TOTP step")
  elseif account == nil then
    count_unexpected(tostring(status), body)
  elseif kind == "p" then
    local token = status == 403 and string.match(body or "", '"mfa_token"%s*:%s*"([^"]+)"')
    if token then
      pending_tail = pending_tail + 1
      pending[pending_tail] = {index = tonumber(index), token = token}
    else
      account.busy = false
      count_unexpected(tostring(status), body)
    end
  else
    account.busy = false
    if status == 200 then
      completed = completed + 1
      table.insert(durations_us, monotonic_us() - account.started)
    else
      count_unexpected(tostring(status), body)
    end
  end
end
