-- The raw-asyncpg ceiling: GET /users/<id> for BENCH_DATA's user ids in turn (one primary-key SELECT).
dofile("/bench/wrk/common.lua")

local paths, next_index = {}, 0

function init(args)
  for _, id in ipairs(lines(os.getenv("BENCH_DATA"))) do
    table.insert(paths, "/users/" .. id)
  end
  next_index = thread_id
end

function request()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index])
end
