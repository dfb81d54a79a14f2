//! The writes, each one Lua script that Redis runs atomically: the value and the index change
//! together, and no other client's command runs in between (so two devices incrementing the
//! same key never lose an update).
//!
//! Every script takes the same first keys and arguments, so that what all writes will do
//! together can be added in one place:
//!
//! - `KEYS[1]`: the value's Redis key; `KEYS[2]`: the index (see `keys.rs`);
//! - `ARGV[1]`: who writes (a function's name, empty for the operator). Unused for now: the
//!   scripts will append the change event to the fleet's stream of key changes, in the same
//!   script as the write, and a watcher skips the events of its own writes by it;
//! - `ARGV[2]`: the key as the index holds it.
//!
//! The scripts are loaded on every connection (`SCRIPT LOAD`) and called by their SHA-1
//! (`EVALSHA`); the client thread loads them again and retries if Redis forgot them
//! (`NOSCRIPT`: a `SCRIPT FLUSH`, a failover to a replica that never saw them).

use std::sync::LazyLock;

use redis::{Cmd, Connection, RedisResult, Script};

use super::keys::Keys;

const SET: &str = r"
redis.call('SET', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
";

/// 1 if the key existed.
const DELETE: &str = r"
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
";

/// `ARGV[3]`: the delta, in decimal. The new value as decimal text, or nil when the value is
/// not a decimal i64 or the sum would overflow (and then nothing changed).
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
if stored then
  local n = canonical(stored)
  if not n then return false end
  if n ~= stored then redis.call('SET', KEYS[1], n) end
end
local sum = redis.pcall('INCRBY', KEYS[1], ARGV[3])
if type(sum) == 'table' and sum.err then
  if stored then redis.call('SET', KEYS[1], stored) end
  return false
end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return redis.call('GET', KEYS[1])
";

/// `ARGV[3]`: `1` if a value is expected, `0` if the key must be absent; `ARGV[4]`: the
/// expected value; `ARGV[5]`: `1` to set the new value `ARGV[6]`, `0` to delete. 1 if it
/// swapped.
const COMPARE_AND_SWAP: &str = r"
local stored = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if stored ~= ARGV[4] then return 0 end
elseif stored then
  return 0
end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
elseif stored then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 1
";

static SCRIPTS: LazyLock<[Script; 4]> =
    LazyLock::new(|| [SET, DELETE, INCREMENT, COMPARE_AND_SWAP].map(Script::new));

/// Makes Redis know every script, on a new connection or after `NOSCRIPT`.
pub(super) fn load(con: &mut Connection) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    for script in SCRIPTS.iter() {
        pipe.load_script(script).ignore();
    }
    pipe.query(con)
}

/// `EVALSHA` of `script` with the keys and arguments every write has.
fn call(script: &Script, keys: &Keys, key: &[u8], by: Option<&str>) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash())
        .arg(2)
        .arg(keys.value(key))
        .arg(keys.index())
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
