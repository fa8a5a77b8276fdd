-- The token bucket rule, prepended to take_token.lua and admit.lua.
-- A key holds one or more independent buckets, its lanes (a user's action
-- budget and send rate share a key, so that a send writes both with one
-- SET). Its value is a string of space-separated groups
-- "<lane> <tokens> <at> <full_at>": `at` the server time of the lane's
-- last update and `full_at` when it will be full again, both in
-- microseconds. Lanes are refilled lazily by each call; a lane full again
-- is dropped at the next write and the key expires once every lane would
-- be full again, so idle users cost no memory. Read with MGET (never an
-- error: a key of another type, or a value of another form such as an
-- older version's "<tokens> <at>", reads as no lanes, i.e. full buckets,
-- and is replaced by the next write).

-- The server's time in microseconds (one TIME per script).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The lanes held in `value` (nil or false: none), by name:
-- {tokens, at, full_at}.
local function lanes_of(value)
  local lanes = {}
  if type(value) == 'string' then
    for name, t, a, f in string.gmatch(value, '(%S+) (%S+) (%S+) (%S+)') do
      local tokens, at, full_at = tonumber(t), tonumber(a), tonumber(f)
      if tokens ~= nil and at ~= nil and full_at ~= nil then
        lanes[name] = {tokens, at, full_at}
      end
    end
  end
  return lanes
end

-- The tokens of `lane` (nil: none kept, i.e. full) at `now`, refilled.
local function refilled(lane, now, rate, burst)
  if lane == nil then
    return burst
  end
  local elapsed = math.max(0, now - lane[2]) / 1000000
  return math.min(burst, lane[1] + elapsed * rate)
end

-- Takes `count` tokens (absent: 1) from `tokens`, all or none; more than
-- the burst never. Answers the tokens left and 0 when allowed, or `tokens`
-- unchanged and the seconds until they are available (more than 0; for a
-- count over the burst, the wait for a full bucket, at least a microsecond).
local function take(tokens, rate, count, burst)
  count = count or 1
  if tokens >= count and (burst == nil or count <= burst) then
    return tokens - count, 0
  end
  local wanted = count
  if burst ~= nil then
    wanted = math.min(count, burst)
  end
  return tokens, math.max(0.000001, (wanted - tokens) / rate)
end

-- Sets lane `name` of `lanes` to `tokens` at `now`, with the time it will
-- be full again (bounded for absurdly slow rates).
local function set_lane(lanes, name, tokens, now, rate, burst)
  local full_in_ms = math.min(math.ceil((burst - tokens) / rate * 1000) + 1, 2592000000)
  lanes[name] = {tokens, now, now + full_in_ms * 1000}
end

-- Writes `lanes` back to `key` in one SET, without the lanes full again
-- by `now`, to expire when the last of them is full.
local function store(key, lanes, now)
  local groups = {}
  local last = now
  for name, lane in pairs(lanes) do
    if lane[3] > now then
      table.insert(groups, string.format('%s %.17g %.17g %.17g', name, lane[1], lane[2], lane[3]))
      last = math.max(last, lane[3])
    end
  end
  if #groups > 0 then
    redis.call('SET', key, table.concat(groups, ' '), 'PX', math.ceil((last - now) / 1000))
  end
end
