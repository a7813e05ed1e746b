"""The Lua scripts of the failed-job store (:mod:`ormevents.jobs.redis_store`), one per atomic step.

Each keeps a record, its index entries (``failed:index``, ``failed:<kind>:<value>``) and the
sets of values that have failed jobs (``failed:handlers``, ``failed:values:<kind>``) in agreement.
The scripts build the index key names of the jobs they drop from the queue prefix (``ARGV[1]``),
so the store needs a single, non-cluster Redis. Imported by the store only.
"""

from __future__ import annotations

EVICT_BATCH = 500

# KEYS[1] jobs hash, KEYS[2] main index, KEYS[3] handlers set; ARGV[1] the queue prefix.
DROP = """
local function facet_keys(job)
  local out = {}
  local p = ARGV[1] .. ':failed:'
  if type(job.handler) == 'string' then table.insert(out, p .. 'handler:' .. job.handler) end
  if type(job.event_name) == 'string' then table.insert(out, p .. 'event:' .. job.event_name) end
  if type(job.model) == 'string' then table.insert(out, p .. 'model:' .. job.model) end
  if type(job.error_type) == 'string' then table.insert(out, p .. 'exception:' .. job.error_type) end
  return out
end
local function drop(id)
  redis.call('ZREM', KEYS[2], id)
  local raw = redis.call('HGET', KEYS[1], id)
  if not raw then return 0 end
  local ok, job = pcall(cjson.decode, raw)
  if ok then
    for i, key in ipairs(facet_keys(job)) do redis.call('ZREM', key, id) end
    if type(job.handler) == 'string' and
       redis.call('ZCARD', ARGV[1] .. ':failed:handler:' .. job.handler) == 0 then
      redis.call('SREM', KEYS[3], job.handler)
    end
    for kind, value in pairs({event = job.event_name, model = job.model, exception = job.error_type}) do
      if type(value) == 'string' and redis.call('ZCARD', ARGV[1] .. ':failed:' .. kind .. ':' .. value) == 0 then
        redis.call('SREM', ARGV[1] .. ':failed:values:' .. kind, value)
      end
    end
  end
  redis.call('HDEL', KEYS[1], id)
  return 1
end
"""

# + KEYS[4] stats, KEYS[5..] the new job's facet indexes;
# ARGV[2] id, [3] json, [4] score, [5] handler, [6] max count, [7] oldest score kept, [8] batch.
RECORD = DROP + """
drop(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
for i = 5, #KEYS do redis.call('ZADD', KEYS[i], ARGV[4], ARGV[2]) end
redis.call('SADD', KEYS[3], ARGV[5])
local job = cjson.decode(ARGV[3])
for kind, value in pairs({event = job.event_name, model = job.model, exception = job.error_type}) do
  if type(value) == 'string' then redis.call('SADD', ARGV[1] .. ':failed:values:' .. kind, value) end
end
local budget = tonumber(ARGV[8])
local evicted = 0
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7], 'LIMIT', 0, budget)
for _, id in ipairs(old) do evicted = evicted + drop(id) end
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, math.min(over, budget) - 1)) do
    evicted = evicted + drop(id)
  end
end
if evicted > 0 then redis.call('HINCRBY', KEYS[4], 'failed_evicted', evicted) end
return evicted
"""

# ARGV[2] id, ARGV[3] the JSON the caller read ('' = remove whatever is there).
# Returns 1 removed, 0 absent, -1 the record changed since it was read (kept).
REMOVE = DROP + """
if ARGV[3] ~= '' then
  local current = redis.call('HGET', KEYS[1], ARGV[2])
  if current and current ~= ARGV[3] then return -1 end
end
return drop(ARGV[2])
"""

# Retry claims (see FailedJobStore.claim): KEYS jobs hash, claim key, tombstone key;
# ARGV id, claim token, claim ttl (ms). Returns {state, value}.
CLAIM = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'retried', redis.call('GET', KEYS[3]) or false} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {'claimed', redis.call('GET', KEYS[2]) or ''}
end
return {'ok', raw}
"""

# + KEYS[4] claim key, KEYS[5] tombstone; ARGV[2] id, [3] the claimed JSON, [4] token, [5] tombstone ttl (s).
RETRIED = DROP + """
local removed = -1
local current = redis.call('HGET', KEYS[1], ARGV[2])
if not current then removed = 0 elseif current == ARGV[3] then removed = drop(ARGV[2]) end
if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[5])
return removed
"""

# KEYS[1] claim key; ARGV[1] token: release a claim that is still ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

CLAIM_TTL = 60.0
"""The shortest time a retry claim holds a job while its message is sent; a retry asks for
more when its publish-retry policy allows longer sends."""

RETRIED_TTL = 3600
"""Seconds a retried job is remembered, so a late second retry hears "already retried"."""
