//! The writes, each one Lua script that Redis runs atomically: the value, the index and the
//! change events of the key's watchers change together, and no other client's command runs
//! in between (so two devices incrementing the same key never lose an update, and no change
//! is recorded without its event or the other way round).
//!
//! Every script takes the same first keys and arguments:
//!
//! - `KEYS[1]`: the value's Redis key; `KEYS[2]`: the index; `KEYS[3]`: the fleet's prefix,
//!   which the queues' keys are built on (see `keys.rs`);
//! - `ARGV[1]`: who writes (a function's name, empty for the operator), for the logs of a
//!   script error only: the client leaves the writer's own watches out;
//! - `ARGV[2]`: the key as the index holds it;
//! - then the operation's own arguments, then the watchers of the key (see [`WATCH`]).
//!
//! The scripts are loaded on every connection (`SCRIPT LOAD`) and called by their SHA-1
//! (`EVALSHA`); the client thread loads them again and retries if Redis forgot them
//! (`NOSCRIPT`: a `SCRIPT FLUSH`, a failover to a replica that never saw them).

use std::sync::LazyLock;

use redis::{Cmd, Connection, RedisResult, Script};

use super::keys::Keys;
use super::queue_scripts::HELPERS;

/// The watchers of a write: from `ARGV[first]`, the depth cap of their queues, then for each
/// watcher its queue's name, its consumer group, and the change event's stored form without
/// the payload (`codec::entry_head`). A write checks [`full`] before it changes anything, and
/// pushes its events with [`changed`] once it has.
const WATCH: &str = r"
local function full(first)
  local cap = tonumber(ARGV[first])
  for i = first + 1, #ARGV, 3 do
    if redis.call('XLEN', key('queue', ARGV[i])) >= cap then
      return redis.error_reply('QUEUE_FULL the watcher ' .. ARGV[i] .. ' holds ' .. cap)
    end
  end
  return nil
end
local function u32(n)
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 16777216) % 256)
end
local function changed(first, value)
  for i = first + 1, #ARGV, 3 do
    push(ARGV[i], ARGV[i + 1], ARGV[i + 2] .. u32(#value) .. value)
  end
end
";

/// `ARGV[3]`: the value; watchers from `ARGV[4]`.
const SET: &str = r"
local refused = full(4)
if refused then return refused end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
changed(4, ARGV[3])
return 1
";

/// 1 if the key existed. Watchers from `ARGV[3]`.
const DELETE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local refused = full(3)
if refused then return refused end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
changed(3, '')
return 1
";

/// `ARGV[3]`: the delta, in decimal; watchers from `ARGV[4]`. The new value as decimal text, or
/// nil when the value is not a decimal i64 or the sum would overflow (and then nothing
/// changed).
///
/// The embedded store's rule, exactly: the stored bytes, with Unicode white space trimmed
/// from both ends (Rust's `str::trim`), must be an optional sign and ASCII digits that fit an
/// i64. Redis's INCRBY is stricter (no white space, `+` or leading zeros), so the script first
/// rewrites such a value in Redis's form, then lets INCRBY add (Lua's numbers are doubles,
/// which cannot hold every i64), and puts the value back if INCRBY refuses an overflow. The
/// stored result is the sum's plain decimal text, as the embedded store stores it.
const INCREMENT: &str = r"
local space = {}
for _, c in ipairs({'\t', '\n', '\v', '\f', '\r', ' ', '\194\133', '\194\160', '\225\154\128',
    '\226\128\168', '\226\128\169', '\226\128\175', '\226\129\159', '\227\128\128'}) do
  space[c] = true
end
for b = 128, 138 do space['\226\128' .. string.char(b)] = true end

local function trimmed(s)
  local i, j = 1, #s
  while i <= j do
    local w = space[s:sub(i, i)] and 1 or space[s:sub(i, i + 1)] and 2
      or space[s:sub(i, i + 2)] and 3
    if not w then break end
    i = i + w
  end
  while j >= i do
    local w = space[s:sub(j, j)] and 1 or space[s:sub(math.max(i, j - 1), j)] and 2
      or space[s:sub(math.max(i, j - 2), j)] and 3
    if not w then break end
    j = j - w
  end
  return s:sub(i, j)
end

local function canonical(s)
  local sign, digits = trimmed(s):match('^([+-]?)(%d+)$')
  if not digits then return nil end
  digits = digits:gsub('^0+', '')
  if digits == '' then return '0' end
  if #digits > 19 then return nil end
  if #digits == 19 then
    local high, low = tonumber(digits:sub(1, 10)), tonumber(digits:sub(11))
    local most = sign == '-' and 854775808 or 854775807
    if high > 9223372036 or (high == 9223372036 and low > most) then return nil end
  end
  if sign == '-' then return '-' .. digits end
  return digits
end

local stored = redis.call('GET', KEYS[1])
local n
if stored then
  n = canonical(stored)
  if not n then return false end
end
local refused = full(4)
if refused then return refused end
if stored and n ~= stored then redis.call('SET', KEYS[1], n) end
local sum = redis.pcall('INCRBY', KEYS[1], ARGV[3])
if type(sum) == 'table' and sum.err then
  if stored then redis.call('SET', KEYS[1], stored) end
  return false
end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
local value = redis.call('GET', KEYS[1])
changed(4, value)
return value
";

/// `ARGV[3]`: `1` if a value is expected, `0` if the key must be absent; `ARGV[4]`: the
/// expected value; `ARGV[5]`: `1` to set the new value `ARGV[6]`, `0` to delete; watchers
/// from `ARGV[7]`. 1 if it swapped.
const COMPARE_AND_SWAP: &str = r"
local stored = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if stored ~= ARGV[4] then return 0 end
elseif stored then
  return 0
end
if ARGV[5] == '1' then
  local refused = full(7)
  if refused then return refused end
  redis.call('SET', KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  changed(7, ARGV[6])
elseif stored then
  local refused = full(7)
  if refused then return refused end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  changed(7, '')
end
return 1
";

static SCRIPTS: LazyLock<[Script; 4]> = LazyLock::new(|| {
    [SET, DELETE, INCREMENT, COMPARE_AND_SWAP]
        .map(|body| Script::new(&format!("local P = KEYS[3]\n{HELPERS}{WATCH}{body}")))
});

/// Makes Redis know every script, the queues' too, on a new connection or after `NOSCRIPT`.
pub(super) fn load(con: &mut Connection) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    for script in SCRIPTS.iter().chain(super::queue_scripts::SCRIPTS.iter()) {
        pipe.load_script(script).ignore();
    }
    pipe.query(con)
}

/// `EVALSHA` of `script` with the keys and arguments every write has.
fn call(script: &Script, keys: &Keys, key: &[u8], by: Option<&str>) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash())
        .arg(3)
        .arg(keys.value(key))
        .arg(keys.index())
        .arg(keys.prefix())
        .arg(by.unwrap_or(""))
        .arg(key);
    cmd
}

pub(super) fn set(keys: &Keys, key: &[u8], value: &[u8], by: Option<&str>) -> Cmd {
    let mut cmd = call(&SCRIPTS[0], keys, key, by);
    cmd.arg(value);
    cmd
}

pub(super) fn delete(keys: &Keys, key: &[u8], by: Option<&str>) -> Cmd {
    call(&SCRIPTS[1], keys, key, by)
}

pub(super) fn increment(keys: &Keys, key: &[u8], delta: i64, by: Option<&str>) -> Cmd {
    let mut cmd = call(&SCRIPTS[2], keys, key, by);
    cmd.arg(delta);
    cmd
}

pub(super) fn compare_and_swap(
    keys: &Keys,
    key: &[u8],
    expected: Option<&[u8]>,
    new: Option<&[u8]>,
    by: Option<&str>,
) -> Cmd {
    let flag = |v: Option<&[u8]>| if v.is_some() { "1" } else { "0" };
    let mut cmd = call(&SCRIPTS[3], keys, key, by);
    cmd.arg(flag(expected))
        .arg(expected.unwrap_or_default())
        .arg(flag(new))
        .arg(new.unwrap_or_default());
    cmd
}
