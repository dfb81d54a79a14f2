//! The queues' scripts: each change to the queues (a commit, a claim, a tick's lease) is one
//! Lua script that Redis runs atomically, so that two devices never see half of another's
//! change. Where the keys are and what they hold: `keys.rs`.
//!
//! Every script gets the fleet's prefix (`wisp:{FLEET}:`) as `KEYS[1]` and builds the keys of
//! a queue from it and the queue's name. Times are Redis's clock (`TIME`), so that the devices'
//! clocks never have to agree: a backoff is sent as a delay and a wake-up comes back as one.
//!
//! An entry's life in its queue's stream: pushed with `XADD` (ID `0-SEQ`); claimed by a device
//! with `XREADGROUP` (new entries) or `XCLAIM` (entries whose backoff is over, entries left by
//! a device that went silent for the visibility timeout, entries this device held before it
//! restarted), which puts it in that device's pending list; kept there while the device
//! delivers it (`touch` resets its idle time) and while it waits out a backoff after a failed
//! delivery (its `tries` record says until when), so that it keeps its place in the window;
//! acknowledged (`XACK` + `XDEL`), or moved to the dead letters. The window is the group's
//! pending list: a claim hands out new entries only while fewer than the queue's concurrency
//! are pending, across every device.

use std::sync::LazyLock;

use redis::{Cmd, Script};

/// The helpers of every script that changes a queue; `P` is the fleet's prefix.
pub(super) const HELPERS: &str = r"
local function key(kind, name) return P .. kind .. ':' .. name end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Adds an entry, stored as `blob`, at the end of queue `name` (consumer group `group`).
local function push(name, group, blob)
  local stream = key('queue', name)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  end
  local seq = redis.call('INCR', P .. 'seq')
  redis.call('XADD', stream, '0-' .. seq, 'e', blob)
  redis.call('SADD', P .. 'queues', name)
  return seq
end
-- The device delivering entry `seq` of `stream`, if any.
local function owner(stream, group, seq)
  if redis.call('EXISTS', stream) == 0 then return nil end
  local p = redis.call('XPENDING', stream, group, '0-' .. seq, '0-' .. seq, 1)
  if p[1] then return p[1][2] end
  return nil
end
-- An entry's `tries` record: attempts, and until when it waits out its backoff (0: it does not).
local function tries(name, seq)
  local t = redis.call('HGET', key('tries', name), seq)
  if not t then return 0, 0 end
  local a, nb = string.match(t, '^(%d+) (%d+)$')
  return tonumber(a), tonumber(nb)
end
";

/// Commits a batch of queue operations, all or none.
///
/// `ARGV[1]`: the depth cap of a queue that is pushed to; `ARGV[2]`: the device;
/// `ARGV[3]`: the most dead letters a queue keeps. Then the operations, each an opcode and its
/// arguments:
///
/// - `push NAME GROUP BLOB`; `ack NAME GROUP SEQ`; `retry NAME GROUP SEQ ATTEMPTS DELAY_MS`;
///   `bury NAME GROUP SEQ ATTEMPTS ERROR`; `replay NAME GROUP SEQ`; `purge NAME SEQ`;
///   `drop NAME`; `result ID BLOB DONE_AT` (`DONE_AT` empty while the call is not done).
///
/// A retry or a burial of an entry another device holds now (it took the entry over from
/// this one) is left to that device. Replies `QUEUE_FULL` (an error) and changes nothing if
/// a push would take a queue past the cap; else, for each queue it touched, `{NAME, PENDING,
/// DEAD, PUSHED}`.
const APPLY: &str = r"
local cap, me, max_dead = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local arity = {push = 3, ack = 3, retry = 5, bury = 5, replay = 3, purge = 2, drop = 1,
  result = 3}
local ops = {}
local adding = {}
local i = 4
while i <= #ARGV do
  local op = ARGV[i]
  local n = arity[op]
  if not n then return redis.error_reply('ERR unknown queue operation ' .. tostring(op)) end
  ops[#ops + 1] = {op, i + 1}
  if op == 'push' then adding[ARGV[i + 1]] = (adding[ARGV[i + 1]] or 0) + 1 end
  i = i + 1 + n
end
for name, n in pairs(adding) do
  if redis.call('XLEN', key('queue', name)) + n > cap then
    return redis.error_reply('QUEUE_FULL the queue ' .. name .. ' holds ' .. cap .. ' entries')
  end
end
local now = now_ms()
local touched, order = {}, {}
local function touch(name, pushed)
  if not touched[name] then
    touched[name] = 0
    order[#order + 1] = name
  end
  if pushed then touched[name] = 1 end
end
for _, o in ipairs(ops) do
  local op, a = o[1], o[2]
  local name = ARGV[a]
  if op == 'push' then
    push(name, ARGV[a + 1], ARGV[a + 2])
    touch(name, true)
  elseif op == 'ack' then
    local stream, seq = key('queue', name), ARGV[a + 2]
    if redis.call('EXISTS', stream) == 1 then
      redis.call('XACK', stream, ARGV[a + 1], '0-' .. seq)
      redis.call('XDEL', stream, '0-' .. seq)
    end
    redis.call('HDEL', key('tries', name), seq)
    touch(name, false)
  elseif op == 'retry' then
    local stream, seq = key('queue', name), ARGV[a + 2]
    local held = owner(stream, ARGV[a + 1], seq)
    if (not held or held == me) and redis.call('XRANGE', stream, '0-' .. seq, '0-' .. seq)[1] then
      local at = now + tonumber(ARGV[a + 4])
      redis.call('HSET', key('tries', name), seq, ARGV[a + 3] .. ' ' .. math.max(at, 1))
    end
    touch(name, false)
  elseif op == 'bury' then
    local stream, group, seq = key('queue', name), ARGV[a + 1], ARGV[a + 2]
    local held = owner(stream, group, seq)
    local found = redis.call('EXISTS', stream) == 1
      and redis.call('XRANGE', stream, '0-' .. seq, '0-' .. seq)[1]
    if found and (not held or held == me) then
      local blob
      local fields = found[2]
      for j = 1, #fields, 2 do
        if fields[j] == 'e' then blob = fields[j + 1] end
      end
      redis.call('XACK', stream, group, '0-' .. seq)
      redis.call('XDEL', stream, '0-' .. seq)
      redis.call('HDEL', key('tries', name), seq)
      local err = ARGV[a + 4]
      redis.call('HSET', key('dead', name), seq, blob or '')
      redis.call('HSET', key('dead-info', name), seq,
        ARGV[a + 3] .. ' ' .. now .. ' ' .. #err .. ' ' .. err)
      redis.call('ZADD', key('dead-order', name), seq, seq)
      while redis.call('ZCARD', key('dead-order', name)) > max_dead do
        local oldest = redis.call('ZPOPMIN', key('dead-order', name))[1]
        redis.call('HDEL', key('dead', name), oldest)
        redis.call('HDEL', key('dead-info', name), oldest)
      end
    end
    touch(name, false)
  elseif op == 'replay' then
    local seq = ARGV[a + 2]
    local blob = redis.call('HGET', key('dead', name), seq)
    if blob then
      push(name, ARGV[a + 1], blob)
      redis.call('HDEL', key('dead', name), seq)
      redis.call('HDEL', key('dead-info', name), seq)
      redis.call('ZREM', key('dead-order', name), seq)
    end
    touch(name, true)
  elseif op == 'purge' then
    local seq = ARGV[a + 1]
    redis.call('HDEL', key('dead', name), seq)
    redis.call('HDEL', key('dead-info', name), seq)
    redis.call('ZREM', key('dead-order', name), seq)
    touch(name, false)
  elseif op == 'drop' then
    for _, kind in ipairs({'queue', 'tries', 'dead', 'dead-info', 'dead-order'}) do
      redis.call('DEL', key(kind, name))
    end
    redis.call('SREM', P .. 'queues', name)
    touch(name, false)
  elseif op == 'result' then
    redis.call('HSET', P .. 'results', name, ARGV[a + 1])
    if ARGV[a + 2] ~= '' then
      redis.call('ZADD', P .. 'results-by-time', ARGV[a + 2], name)
    end
  end
end
local out = {}
for _, name in ipairs(order) do
  local stream = key('queue', name)
  out[#out + 1] = {name, redis.call('XLEN', stream), redis.call('HLEN', key('dead', name)),
    touched[name]}
end
return out
";

/// Claims entries of a queue for a device.
///
/// `ARGV`: `NAME GROUP DEVICE WANT WINDOW VISIBILITY_MS`, then the sequence numbers the device
/// is delivering now. Replies `{ENTRIES, WAKE}`: each entry `{ID, BLOB, TRIES}` (`TRIES`
/// the `tries` record, or empty), and in how many ms a claim may find more without a push
/// (-1: not before a push).
const CLAIM: &str = r"
local name, group, me = ARGV[1], ARGV[2], ARGV[3]
local want, window, vis = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local stream = key('queue', name)
if redis.call('EXISTS', stream) == 0 then return {{}, -1} end
local now = now_ms()
local held = {}
for i = 7, #ARGV do held['0-' .. ARGV[i]] = true end
local wake = -1
local function later(at)
  if wake < 0 or at < wake then wake = at end
end
local take = {}
local pending = redis.call('XPENDING', stream, group, '-', '+', 10000)
for _, p in ipairs(pending) do
  local id, holder, idle = p[1], p[2], tonumber(p[3])
  local _, not_before = tries(name, string.sub(id, 3))
  if held[id] then
    -- Being delivered here.
  elseif not_before > 0 then
    -- Waiting out its backoff: whoever claims once it is due delivers it.
    if not_before <= now then take[#take + 1] = id else later(not_before) end
  elseif holder == me or idle >= vis then
    -- Left by an earlier run of this device, or by a device that went silent.
    take[#take + 1] = id
  else
    later(now + vis - idle)
  end
end
while #take > want do table.remove(take) end
local out = {}
local function emit(entry)
  local id, fields = entry[1], entry[2]
  local blob = ''
  for j = 1, #fields, 2 do
    if fields[j] == 'e' then blob = fields[j + 1] end
  end
  out[#out + 1] = {id, blob, redis.call('HGET', key('tries', name), string.sub(id, 3)) or ''}
end
if #take > 0 then
  for _, entry in ipairs(redis.call('XCLAIM', stream, group, me, 0, unpack(take))) do
    if entry then
      local seq = string.sub(entry[1], 3)
      local attempts, not_before = tries(name, seq)
      if not_before > 0 then
        redis.call('HSET', key('tries', name), seq, attempts .. ' 0')
      end
      emit(entry)
    end
  end
end
local room = math.min(want - #take, window - #pending)
if room > 0 then
  local read = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', room, 'STREAMS', stream, '>')
  if read and read[1] then
    for _, entry in ipairs(read[1][2]) do
      local _, not_before = tries(name, string.sub(entry[1], 3))
      if not_before > now then later(not_before) else emit(entry) end
    end
  end
end
if wake >= 0 then wake = math.max(wake - now, 0) end
return {out, wake}
";

/// Resets the idle time of the entries a device is delivering, so that no other device
/// takes them over. `ARGV`: `NAME GROUP DEVICE SEQ...`. Replies how many it still held.
const TOUCH: &str = r"
local name, group, me = ARGV[1], ARGV[2], ARGV[3]
local stream = key('queue', name)
local n = 0
for i = 4, #ARGV do
  if owner(stream, group, ARGV[i]) == me then
    redis.call('XCLAIM', stream, group, me, 0, '0-' .. ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
";

/// The first entries of a queue. `ARGV`: `NAME COUNT`. Replies entries as [`CLAIM`] does.
const PEEK: &str = r"
local name = ARGV[1]
local out = {}
for _, entry in ipairs(redis.call('XRANGE', key('queue', name), '-', '+', 'COUNT', ARGV[2])) do
  local blob = ''
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 'e' then blob = fields[j + 1] end
  end
  out[#out + 1] = {entry[1], blob,
    redis.call('HGET', key('tries', name), string.sub(entry[1], 3)) or ''}
end
return out
";

/// The oldest dead letters of a queue. `ARGV`: `NAME LAST` (the index of the last one, 0 for
/// one). Replies `{SEQ, BLOB, INFO}` for each.
const DEAD_LETTERS: &str = r"
local name = ARGV[1]
local out = {}
for _, seq in ipairs(redis.call('ZRANGE', key('dead-order', name), 0, ARGV[2])) do
  out[#out + 1] = {seq, redis.call('HGET', key('dead', name), seq) or '',
    redis.call('HGET', key('dead-info', name), seq) or ''}
end
return out
";

/// What every queue of the fleet holds: `{NAME, PENDING, DEAD}` for each; a name whose queue
/// holds nothing any more leaves the set of queues.
const COUNTS: &str = r"
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', P .. 'queues')) do
  local stream = key('queue', name)
  local pending, dead = redis.call('XLEN', stream), redis.call('HLEN', key('dead', name))
  if pending == 0 and dead == 0 and redis.call('EXISTS', stream) == 0 then
    redis.call('SREM', P .. 'queues', name)
  else
    out[#out + 1] = {name, pending, dead}
  end
end
return out
";

/// Forgets the results of calls done before `ARGV[1]` (Unix ms), and the oldest done ones
/// beyond the newest `ARGV[2]`. Replies how many went.
const EXPIRE_RESULTS: &str = r"
local before, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local by_time, results = P .. 'results-by-time', P .. 'results'
local excess = math.max(0, redis.call('ZCARD', by_time) - keep)
local gone = 0
while true do
  local batch = redis.call('ZRANGE', by_time, 0, 999, 'WITHSCORES')
  if #batch == 0 then break end
  local stop = false
  for j = 1, #batch, 2 do
    if tonumber(batch[j + 1]) >= before and excess == 0 then
      stop = true
      break
    end
    redis.call('ZREM', by_time, batch[j])
    redis.call('HDEL', results, batch[j])
    excess = math.max(0, excess - 1)
    gone = gone + 1
  end
  if stop then break end
end
return gone
";

/// Claims a timer's tick. `ARGV`: `TIMER TICK DEVICE LEASE_MS FLEET` (`FLEET` 0: the timer
/// runs on every device, and `TIMER` names this device's own record). Replies `{'run'}`,
/// `{'done'}` or `{'busy', OLDER, LEASE_LEFT_MS}`.
///
/// A device's timer is recorded when its run starts, as on a device alone. A fleet's is
/// leased to the device that claims it first (`tick:TIMER` = `TICK DEVICE`, expiring after
/// the lease; claiming it again renews it) and recorded when the run ends
/// ([`FINISH_TICK`]): a device that dies mid-run leaves a lease that runs out, and the tick
/// to the next device that claims.
const CLAIM_TICK: &str = r"
local timers, lease = P .. 'timers', P .. 'tick:' .. ARGV[1]
local tick = tonumber(ARGV[2])
local done = tonumber(redis.call('HGET', timers, ARGV[1]) or '-1')
if done >= tick then return {'done'} end
if ARGV[5] == '0' then
  redis.call('HSET', timers, ARGV[1], ARGV[2])
  return {'run'}
end
local mine = ARGV[2] .. ' ' .. ARGV[3]
local held = redis.call('GET', lease)
if held and held ~= mine then
  local other = tonumber(string.match(held, '^(%d+) ') or '0')
  return {'busy', other < tick and 1 or 0, math.max(redis.call('PTTL', lease), 0)}
end
redis.call('SET', lease, mine, 'PX', ARGV[4])
return {'run'}
";

/// Records that a run of a timer's tick ended, and gives up its lease if this device holds
/// it. `ARGV`: `TIMER TICK DEVICE`.
const FINISH_TICK: &str = r"
local timers, lease = P .. 'timers', P .. 'tick:' .. ARGV[1]
local done = tonumber(redis.call('HGET', timers, ARGV[1]) or '-1')
if tonumber(ARGV[2]) > done then redis.call('HSET', timers, ARGV[1], ARGV[2]) end
if redis.call('GET', lease) == ARGV[2] .. ' ' .. ARGV[3] then redis.call('DEL', lease) end
return 1
";

/// The scripts, in the order of [`Name`].
pub(super) static SCRIPTS: LazyLock<Vec<Script>> = LazyLock::new(|| {
    [
        APPLY,
        CLAIM,
        TOUCH,
        PEEK,
        DEAD_LETTERS,
        COUNTS,
        EXPIRE_RESULTS,
        CLAIM_TICK,
        FINISH_TICK,
    ]
    .iter()
    .map(|body| Script::new(&format!("local P = KEYS[1]\n{HELPERS}{body}")))
    .collect()
});

/// Which script.
#[derive(Clone, Copy)]
pub(super) enum Name {
    Apply,
    Claim,
    Touch,
    Peek,
    DeadLetters,
    Counts,
    ExpireResults,
    ClaimTick,
    FinishTick,
}

/// `EVALSHA` of `script` with the fleet's `prefix` as its key; add the arguments.
pub(super) fn call(script: Name, prefix: &[u8]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(SCRIPTS[script as usize].get_hash())
        .arg(1)
        .arg(prefix);
    cmd
}
