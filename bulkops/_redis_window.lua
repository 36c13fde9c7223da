-- One turn of one bulkops process on an account's shared budget (bulkops/_redis_pacer.py).
-- Runs atomically on the Redis server, on the server's clock (TIME), so the clocks of the
-- hosts never enter the window. The window is the moving-window (sliding log) of the `limits`
-- library's acquire_moving_window.lua, kept in a sorted set so that a process that paced
-- alone while Redis was away can put its sends back in time order when it rejoins.
--
-- KEYS: 1 log (zset of sends, score = ms), 2 next send (GCRA), 3 pause-until, 4 shared cut
--       limit, 5 processes (zset, score = last seen ms), 6 today's request count
--       9 the limit and window last learned from HubSpot's headers by any process
-- ARGV: 1 limit, 2 window ms, 3 learned ('1': the caller's limit comes from HubSpot's headers
--       or the user; '0': a starting guess), 4 since ms (sends after it are returned),
--       5 process id, 6 pause-until to publish (server ms; 0: none), 7 cut limit to publish (0: none),
--       8 daily budget (0: none), 9 seconds the daily count lives, 10 burst (the window's
--       budget may go at this many times the even pace; 1: even spacing), 11 the least
--       spacing of a burst (ms), 12.. sends to put back (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local learned = ARGV[3] == '1'
local since = tonumber(ARGV[4])
local proc = ARGV[5]
local pause = tonumber(ARGV[6])
local cut = tonumber(ARGV[7])
local budget = tonumber(ARGV[8])
local burst = math.max(1, tonumber(ARGV[10]))
local least = tonumber(ARGV[11])
local keep = math.ceil(3 * window)
-- A process that has not seen HubSpot's headers yet (its first request) paces by what the
-- account's other processes learned, not by its starting guess: a guess below the window's
-- current use would hold it back until the others drained the window for it.
if learned then
  redis.call('SET', KEYS[9], tostring(limit) .. ':' .. tostring(window), 'PX', keep)
else
  local known = redis.call('GET', KEYS[9])
  if known then
    local sep = string.find(known, ':', 1, true)
    limit = tonumber(string.sub(known, 1, sep - 1))
    window = tonumber(string.sub(known, sep + 1))
  end
end

redis.call('ZADD', KEYS[5], now, proc)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - keep)
redis.call('PEXPIRE', KEYS[5], keep)
local procs = redis.call('ZCARD', KEYS[5])

if pause > now then
  local current = tonumber(redis.call('GET', KEYS[3]) or '0')
  if pause > current then
    redis.call('SET', KEYS[3], tostring(pause), 'PX', math.ceil(pause - now) + 1)
  end
end
if cut > 0 then
  local current = tonumber(redis.call('GET', KEYS[4]) or '0')
  if current == 0 or cut < current then
    redis.call('SET', KEYS[4], tostring(cut), 'PX', math.ceil(window))
  end
end
for i = 12, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i] .. ':' .. proc .. ':back')
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 2 * window)
local seen = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. since, '+inf', 'WITHSCORES')

local wait = 0
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then wait = paused - now end
local shared_cut = tonumber(redis.call('GET', KEYS[4]) or '0')
if shared_cut > 0 and shared_cut < limit then limit = shared_cut end
limit = math.max(1, math.floor(limit))
-- GCRA at burst times the account's even pace, but no closer than the least spacing
local spacing = math.max(window / (limit * burst), math.min(window / limit, least))
local next_at = tonumber(redis.call('GET', KEYS[2]) or '0')
if next_at > now then wait = math.max(wait, next_at - now) end
local inside = redis.call('ZCOUNT', KEYS[1], '(' .. (now - window), '+inf')
if inside >= limit then
  -- The limit-th most recent send must leave the window before another may go.
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - window), '+inf',
    'WITHSCORES', 'LIMIT', inside - limit, 1)
  wait = math.max(wait, tonumber(oldest[2]) + window - now)
end
-- First come, first served across processes: a free turn goes to the process that has
-- waited longest, if it is still coming back for it (due), not to whoever asks first.
local grace = math.max(250, 2 * spacing)
if wait == 0 then
  while true do
    local oldest = redis.call('ZRANGE', KEYS[7], 0, 0)
    if #oldest == 0 or oldest[1] == proc then break end
    local due = tonumber(redis.call('HGET', KEYS[8], oldest[1]) or '0')
    if due >= now then
      wait = math.max(1, math.min(spacing, due - now))
      break
    end
    redis.call('ZREM', KEYS[7], oldest[1])  -- gone (or very late): it lost its place
    redis.call('HDEL', KEYS[8], oldest[1])
  end
end
if wait > 0 then
  redis.call('ZADD', KEYS[7], 'NX', now, proc)
  redis.call('HSET', KEYS[8], proc, tostring(now + wait + grace))
  redis.call('PEXPIRE', KEYS[7], keep)
  redis.call('PEXPIRE', KEYS[8], keep)
  return {0, tostring(wait), tostring(now), procs, seen}
end
redis.call('ZREM', KEYS[7], proc)
redis.call('HDEL', KEYS[8], proc)
if budget > 0 then
  local used = redis.call('INCR', KEYS[6])
  if used == 1 then redis.call('EXPIRE', KEYS[6], tonumber(ARGV[9])) end
  if used > budget then
    return {-1, '0', tostring(now), procs, seen}
  end
end
redis.call('ZADD', KEYS[1], now, tostring(now) .. ':' .. proc)
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * window))
-- GCRA: the schedule advances from where it should be unless it fell behind (a stall):
-- later than a quarter spacing, or than a timer's lateness (2 ms) where that is more, as in
-- bulkops/_limiter.py.
local following
if next_at > 0 and now - next_at <= math.max(spacing / 4, 0.002) then
  following = next_at + spacing
else
  following = now + spacing
end
redis.call('SET', KEYS[2], tostring(following), 'PX', math.ceil(2 * window))
return {1, '0', tostring(now), procs, seen}
