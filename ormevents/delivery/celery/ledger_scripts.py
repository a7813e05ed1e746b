"""The Lua scripts of the run ledger: one script per state change of a handler run.

Each script is one Redis round trip and does everything its state change needs, atomically:
the per-message delivery count (issue 11), the completion record, the run lease, the event's
status, the gauges and the counters. :mod:`ormevents.delivery.celery.run_ledger` calls them and
documents what they mean; the key and argument lists are given above each script.

Hash ``<queue>:runs:<event id>`` (one per event) holds, per run message id ``R``: ``R`` (how
many deliveries started it), ``R:end`` (an outcome was recorded) and ``R:q`` (a dispatch
already queued this run). ``<queue>:done:<event id>`` maps a handler to its JSON result, and
``<queue>:lease:<event id>:<handler>`` holds the token of the run in progress.
"""

from __future__ import annotations

from ...jobs.activity import ACTIVITY_TTL

# KEYS: status, gauges, stats, done, runs, this minute's activity (ormevents.jobs.activity)
# ARGV: status ttl, runs ttl, event wire JSON, dispatched state JSON, then per handler: name,
#       run id, queued status field/value pairs count, the pairs
# Returns the handlers that have not completed the event and whose run has not recorded an outcome
# (their run messages are sent). Only the first dispatch of a run marks it queued (status, gauge);
# a duplicate or redelivered dispatch sends the same deterministic run message again, which the
# ledger deduplicates, and leaves out a run that ended already (succeeded, scheduled a retry,
# failed, or was parked because its handler's condition raised).
DISPATCH = """
local out = {}
local fresh = 0
redis.call('HSET', KEYS[1], 'event', ARGV[3], 'state', ARGV[4])
local i = 5
while i <= #ARGV do
  local h, run, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call('HEXISTS', KEYS[4], h) == 0 and redis.call('HEXISTS', KEYS[5], run .. ':end') == 0 then
    table.insert(out, h)
    if redis.call('HSETNX', KEYS[5], run .. ':q', 1) == 1 then
      if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, i + 3, i + 2 + 2 * n)) end
      redis.call('HINCRBY', KEYS[2], 'queued|' .. h, 1)
      fresh = fresh + 1
    end
  end
  i = i + 3 + 2 * n
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[5], ARGV[2])
redis.call('HINCRBY', KEYS[3], fresh > 0 and 'dispatched' or 'duplicates', 1)
if fresh > 0 then
  redis.call('HINCRBY', KEYS[6], 'dispatched', 1)
  redis.call('EXPIRE', KEYS[6], {ACTIVITY_TTL})
end
return out
"""

# KEYS: runs, done, lease, status, gauges, stats
# ARGV: run id, runs ttl, handler, the gauge the run leaves (queued|scheduled), token, lease ms,
#       takeover (the token of a holder known dead, or ''), status ttl, then status field/value pairs
# Returns {state, starts, holder, pttl}: 'finished' (this message recorded an outcome), 'done'
# (the handler completed the event), 'busy' (another run holds the lease), 'lost' (an earlier
# delivery of this message started and no longer runs: its process died) or 'run'.
BEGIN = """
local run, h = ARGV[1], ARGV[3]
if redis.call('HEXISTS', KEYS[1], run .. ':end') == 1 then
  redis.call('HINCRBY', KEYS[6], 'duplicates', 1)
  return {'finished', 0, '', 0}
end
local starts = tonumber(redis.call('HGET', KEYS[1], run) or '0')
if redis.call('HEXISTS', KEYS[2], h) == 1 then
  local left = (starts > 0) and 'running' or ARGV[4]
  redis.call('HINCRBY', KEYS[5], left .. '|' .. h, -1)
  redis.call('HSET', KEYS[1], run .. ':end', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('HINCRBY', KEYS[6], 'duplicates', 1)
  return {'done', starts, '', 0}
end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[5] and holder ~= ARGV[7] then
  return {'busy', starts, holder, redis.call('PTTL', KEYS[3])}
end
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
starts = redis.call('HINCRBY', KEYS[1], run, 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
if starts > 1 then return {'lost', starts, holder or '', 0} end
redis.call('HINCRBY', KEYS[5], ARGV[4] .. '|' .. h, -1)
redis.call('HINCRBY', KEYS[5], 'running|' .. h, 1)
if #ARGV >= 10 then redis.call('HSET', KEYS[4], unpack(ARGV, 9, #ARGV)) end
redis.call('EXPIRE', KEYS[4], ARGV[8])
return {'run', starts, holder or '', 0}
"""

# KEYS: runs, done, lease, status, gauges, stats, schedule, schedule payloads, handler totals,
#       this minute's activity
# ARGV: run id, runs ttl, handler, token, result JSON, status ttl, number of status pairs,
#       the status field/value pairs, then per chained event: member, payload, due
# Returns {verdict, the token of another run holding the lease or ''}: 'ok' (this run held the lease), 'ok-late' (its lease had lapsed and
# nobody took it), 'fenced' (another run took the lease over: the effect may have happened twice)
# or 'already' (the handler had completed the event already: result and chained events kept).
COMPLETE = """
local run, h, token = ARGV[1], ARGV[3], ARGV[4]
local holder = redis.call('GET', KEYS[3])
if holder == token then redis.call('DEL', KEYS[3]) end
local verdict = 'already'
if redis.call('HEXISTS', KEYS[2], h) == 0 then
  redis.call('HSET', KEYS[2], h, ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  local n = tonumber(ARGV[7])
  if n > 0 then redis.call('HSET', KEYS[4], unpack(ARGV, 8, 7 + 2 * n)) end
  redis.call('EXPIRE', KEYS[4], ARGV[6])
  for i = 8 + 2 * n, #ARGV, 3 do
    redis.call('HSET', KEYS[8], ARGV[i], ARGV[i + 1])
    redis.call('ZADD', KEYS[7], ARGV[i + 2], ARGV[i])
  end
  if holder == token then verdict = 'ok' elseif holder then verdict = 'fenced' else verdict = 'ok-late' end
end
if redis.call('HSETNX', KEYS[1], run .. ':end', 1) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('HINCRBY', KEYS[6], 'succeeded', 1)
  redis.call('HINCRBY', KEYS[5], 'running|' .. h, -1)
  redis.call('HINCRBY', KEYS[9], 'succeeded|' .. h, 1)
  redis.call('HINCRBY', KEYS[10], 'succeeded', 1)
  redis.call('EXPIRE', KEYS[10], {ACTIVITY_TTL})
end
if verdict == 'fenced' or verdict == 'already' then redis.call('HINCRBY', KEYS[6], 'fenced', 1) end
if holder == token then holder = '' end
return {verdict, holder or ''}
"""

# KEYS: runs, gauges, stats, lease, handler totals, this minute's activity; ARGV: run id, runs ttl,
# stats counter, token ('' for none), handler, then gauge field / delta pairs. Ends a run with a
# retry or a failed job: releases its lease and moves the gauges and counts the outcome (in
# total, per handler and per minute) once per message.
END = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
if redis.call('HSETNX', KEYS[1], ARGV[1] .. ':end', 1) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('HINCRBY', KEYS[5], ARGV[3] .. '|' .. ARGV[5], 1)
redis.call('HINCRBY', KEYS[6], ARGV[3], 1)
redis.call('EXPIRE', KEYS[6], {ACTIVITY_TTL})
for i = 6, #ARGV, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS: runs, gauges, lease; ARGV: run id, handler, the gauge the run left, token. Undoes a start
# whose outcome could not be recorded (Redis failed under it), so the requeued message runs
# again, not "lost".
ABANDON = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
if redis.call('HEXISTS', KEYS[1], ARGV[1] .. ':end') == 1 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') < 1 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
redis.call('HINCRBY', KEYS[2], 'running|' .. ARGV[2], -1)
redis.call('HINCRBY', KEYS[2], ARGV[3] .. '|' .. ARGV[2], 1)
return 1
"""

# KEYS: leases; ARGV: lease ms, then one token per key. Extends the leases still held by their
# token; returns 1 (renewed) or 0 (lost: taken over, or expired) per key.
RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""


def _with_activity_ttl(script: str) -> str:
    return script.replace("{ACTIVITY_TTL}", str(ACTIVITY_TTL))


DISPATCH, COMPLETE, END = (_with_activity_ttl(script) for script in (DISPATCH, COMPLETE, END))

# DISPATCH, then BEGIN of one of its handlers (the run the dispatch makes itself), in one round
# trip. The two scripts run unchanged as Lua functions whose parameters shadow KEYS and ARGV.
# KEYS: DISPATCH's six, then the lease of that handler's run; ARGV: the number of DISPATCH's
# arguments, DISPATCH's arguments, then BEGIN's (its handler third).
# Returns {DISPATCH's answer, BEGIN's answer or {} if that handler is not in DISPATCH's answer}.
DISPATCH_BEGIN = f"""
local function dispatch(KEYS, ARGV)
{DISPATCH}
end
local function begin(KEYS, ARGV)
{BEGIN}
end
local n = tonumber(ARGV[1])
local dispatch_args, begin_args = {{}}, {{}}
for i = 2, n + 1 do table.insert(dispatch_args, ARGV[i]) end
for i = n + 2, #ARGV do table.insert(begin_args, ARGV[i]) end
local out = dispatch({{KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}}, dispatch_args)
for _, h in ipairs(out) do
  if h == begin_args[3] then
    return {{out, begin({{KEYS[5], KEYS[4], KEYS[7], KEYS[1], KEYS[2], KEYS[3]}}, begin_args)}}
  end
end
return {{out, {{}}}}
"""
