-- Shared by every scenario script of `make bench` (loaded with dofile). wrk runs one Lua state per
-- thread plus a main one: setup() and done() run in the main state, init(), request() and response()
-- in each thread's. Each thread counts the answers whose status is not the scenario's expected one;
-- done() adds them up and writes the run's numbers as JSON to $BENCH_OUT for the driver. A scenario whose
-- unit is not one request (`login-mfa`: two) also counts its completed units (`completed`) and their
-- latencies in microseconds (`durations_us`), which done() reports beside wrk's per-request numbers.

expected_status = 200
unexpected = 0
statuses = {}
sample = nil

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

-- The lines of a data file the driver wrote (tokens, emails, ids).
function lines(path)
  local result = {}
  for line in io.lines(path) do
    if line ~= "" then
      table.insert(result, line)
    end
  end
  return result
end

-- The share of `items` that belongs to this thread, so no two threads use the same item.
function share(items)
  local threads_count = tonumber(os.getenv("BENCH_THREADS"))
  local mine = {}
  for index, item in ipairs(items) do
    if (index - 1) % threads_count == thread_id then
      table.insert(mine, item)
    end
  end
  return mine
end

-- A client address of its own for each request, in 198.18.0.0/16 (RFC 2544's benchmarking range), sent
-- as X-Forwarded-For: the API under test trusts the load generator as a proxy, so its per-IP rate limits
-- count each request as a real client's instead of refusing one address's load.
local address_counter = 0

function client_address()
  local threads_count = tonumber(os.getenv("BENCH_THREADS"))
  address_counter = address_counter + 1
  local n = (address_counter * threads_count + thread_id) % 65536
  return string.format("198.18.%d.%d", math.floor(n / 256), n % 256)
end

function urlencode(text)
  return (string.gsub(text, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- One answer that is not what the scenario expects: `kind` is its status, or what went wrong.
function count_unexpected(kind, body)
  unexpected = unexpected + 1
  statuses[kind] = (statuses[kind] or 0) + 1
  if sample == nil then
    sample = kind .. " " .. string.sub(body or "", 1, 200)
  end
end

function response(status, headers, body)
  if status ~= expected_status then
    count_unexpected(tostring(status), body)
  end
  if on_response ~= nil then
    on_response(status, body)
  end
end

local function json_string(text)
  return '"' .. string.gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

-- `{"count":…,"mean":…,"max":…,"percentiles":{…}}` of a list of microseconds (nearest rank), or null.
local function latency_json(values)
  if #values == 0 then
    return "null"
  end
  table.sort(values)
  local sum = 0
  for _, value in ipairs(values) do
    sum = sum + value
  end
  local percentiles = {}
  for _, p in ipairs({50, 75, 90, 95, 99, 99.9}) do
    local rank = math.max(1, math.ceil(p / 100 * #values))
    table.insert(percentiles, string.format('"%s":%d', tostring(p), values[rank]))
  end
  return string.format('{"count":%d,"mean":%.1f,"max":%d,"percentiles":{%s}}',
    #values, sum / #values, values[#values], table.concat(percentiles, ","))
end

function done(summary, latency, requests)
  local total_unexpected, by_status, first_sample = 0, {}, nil
  local completed_total, unit_durations = nil, {}
  for _, thread in ipairs(threads) do
    total_unexpected = total_unexpected + (thread:get("unexpected") or 0)
    for status, count in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + count
    end
    first_sample = first_sample or thread:get("sample")
    local thread_completed = thread:get("completed")
    if thread_completed ~= nil then
      completed_total = (completed_total or 0) + thread_completed
    end
    for _, duration in ipairs(thread:get("durations_us") or {}) do
      table.insert(unit_durations, duration)
    end
  end
  local status_parts = {}
  for status, count in pairs(by_status) do
    table.insert(status_parts, json_string(status) .. ":" .. count)
  end
  local percentiles = {}
  for _, p in ipairs({50, 75, 90, 95, 99, 99.9}) do
    table.insert(percentiles, string.format('"%s":%d', tostring(p), latency:percentile(p)))
  end
  -- wrk's latency histogram holds only the answers that came within the timeout (a later one counts as
  -- a timeout and is left out of it): its (value, count) pairs go to the driver, which puts the others
  -- (summary.requests minus these) at >= the timeout in the percentiles it reports.
  local histogram = {}
  for index = 1, #latency do
    local value, count = latency(index)
    table.insert(histogram, string.format("[%d,%d]", value, count))
  end
  local errors = summary.errors
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  out:write(string.format(
    '{"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"unexpected":%d,"unexpected_by_status":{%s},"sample":%s,' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"percentiles":{%s}},' ..
    '"completed":%s,"unit_latency_us":%s,"histogram_us":[%s]}',
    summary.duration, summary.requests, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    total_unexpected, table.concat(status_parts, ","),
    first_sample and json_string(first_sample) or "null",
    latency.min, latency.mean, latency.max, latency.stdev, table.concat(percentiles, ","),
    completed_total and tostring(completed_total) or "null", latency_json(unit_durations),
    table.concat(histogram, ",")
  ))
  out:close()
end
