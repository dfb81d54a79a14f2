//! Changes made on this device, for the fleet: each is checked here, then recorded in the log
//! in one Lua script (version number, module, entry), then awaited until this device's applier
//! has applied it; and the collection of the modules Redis no longer needs.

use std::sync::Arc;
use std::time::Duration;

use redis::{Connection, RedisResult};

use super::log::{StreamId, stream_info};
use super::{APPLY_WAIT, Outcome, REPLY_TIMEOUT, Shared, UPLOAD_TIMEOUT, lock};
use crate::config::FunctionConfig;
use crate::deployed::DeployError;

/// Records a change in the log, atomically with its version number and its module: a deploy
/// takes the next number of its function (and at least `floor`, the next one this device knows
/// of); a delete starts the numbers again, as a local delete does. The module's bytes are
/// stored if Redis lacks them, and its hash marked as named now, in the same step, so that
/// [`COLLECT`] never takes a module an entry names.
static RECORD: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local op, name, version = ARGV[1], ARGV[2], ARGV[3]
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[4], ARGV[11], 'NX')
end
if op == 'deploy' then
  version = redis.call('HINCRBY', KEYS[1], name, 1)
  local floor = tonumber(ARGV[4])
  if version < floor then
    redis.call('HSET', KEYS[1], name, floor)
    version = floor
  end
elseif op == 'delete' then
  redis.call('HDEL', KEYS[1], name)
end
local now = redis.call('TIME')[1]
local at = ARGV[9]
if at == '' then at = now end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[10], '*',
  'op', op, 'name', name, 'version', tostring(version), 'hash', ARGV[5], 'size', ARGV[6],
  'config', ARGV[7], 'origin', ARGV[8], 'at', at)
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[3], tonumber(string.match(id, '^(%d+)-')), ARGV[5])
end
return {tostring(version), id}
",
    )
});

/// Removes the modules that no entry left in the log names and that the snapshot does not
/// serve: the log is bounded, and so, with this, is what Redis keeps of modules. A device that
/// rolls back to an older version sends its module again.
static COLLECT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first == 0 then return 0 end
local oldest = tonumber(string.match(first[1][1], '^(%d+)-'))
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. oldest)
if #stale == 0 then return 0 end
local keep = {}
for _, record in ipairs(redis.call('HVALS', KEYS[3])) do
  local ok, d = pcall(cjson.decode, record)
  if ok and type(d['version']) == 'table' and d['version']['hash'] then
    keep[d['version']['hash']] = true
  end
end
local removed = 0
for _, hash in ipairs(stale) do
  if not keep[hash] then
    redis.call('DEL', ARGV[1] .. hash)
    redis.call('ZREM', KEYS[2], hash)
    removed = removed + 1
  end
end
return removed
",
    )
});

/// Runs [`COLLECT`]; the number of modules removed.
pub fn collect_modules(shared: &Shared, con: &mut Connection) -> RedisResult<u64> {
    let keys = &shared.keys;
    COLLECT
        .key(&keys.log)
        .key(&keys.modules)
        .key(&keys.functions)
        .arg(keys.module(""))
        .invoke(con)
}

/// A change to record.
struct Change<'a> {
    op: &'a str,
    name: &'a str,
    /// A rollback's version; a deploy's is handed out, at least `floor`.
    version: Option<u32>,
    floor: u32,
    hash: &'a str,
    /// The module's bytes, stored in Redis for the devices that lack them.
    wasm: &'a [u8],
    size: u64,
    config: String,
    /// A rollback's version keeps its deploy time.
    at: Option<u64>,
}

/// Records `change` and waits for this device to apply it: its outcome here is the answer.
fn record(shared: &Shared, con: &mut Connection, change: Change) -> Result<Outcome, DeployError> {
    let keys = &shared.keys;
    let recorded: RedisResult<(String, String)> = RECORD
        .key(&keys.versions)
        .key(&keys.log)
        .key(&keys.modules)
        .key(keys.module(change.hash))
        .arg(change.op)
        .arg(change.name)
        .arg(change.version.map_or_else(String::new, |v| v.to_string()))
        .arg(change.floor)
        .arg(change.hash)
        .arg(change.size)
        .arg(&change.config)
        .arg(&shared.device)
        .arg(change.at.map_or_else(String::new, |at| at.to_string()))
        .arg(shared.log_len)
        .arg(change.wasm)
        .invoke(con);
    let (version, id) = recorded.map_err(|e| {
        shared.link.down(&e.to_string());
        DeployError::FleetAway(format!(
            "the fleet's Redis ({}) went away during the {} ({e}): it may or may not be in the \
             fleet's log; `wisp fleet` and `wisp versions {}` tell",
            shared.shown, change.op, change.name
        ))
    })?;
    let id = StreamId::parse(&id).expect("XADD answers an id");
    match shared.applier.take(id, APPLY_WAIT) {
        Some(outcome) => Ok(outcome),
        None => Err(DeployError::NotApplied(format!(
            "the {} of `{}` is in the fleet's log (version {version}, entry {id}), but this \
             device has not applied it within {} s; it will as soon as it can",
            change.op,
            change.name,
            APPLY_WAIT.as_secs()
        ))),
    }
}

/// Module bytes handed to this device's applier while a change made here is recorded.
struct Staged<'a> {
    shared: &'a Shared,
    hash: String,
}

impl<'a> Staged<'a> {
    fn new(shared: &'a Shared, hash: &str, wasm: Arc<Vec<u8>>) -> Staged<'a> {
        lock(&shared.staged).insert(hash.to_string(), wasm);
        Staged {
            shared,
            hash: hash.to_string(),
        }
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        lock(&self.shared.staged).remove(&self.hash);
    }
}

/// A connection for a change made on this device, once this device has applied every change
/// the log holds: what the change is checked against here is the fleet's latest state (a
/// delete right after a deploy answered by another device finds the function).
fn current(shared: &Shared, timeout: Duration) -> Result<Connection, DeployError> {
    let mut con = shared.connect(timeout).map_err(|e| shared.away(&e))?;
    let info = stream_info(shared, &mut con).map_err(|e| shared.away(&e))?;
    let last = info.map_or(StreamId::ZERO, |(last, _)| last);
    if !shared.applier.reach(last, APPLY_WAIT) {
        return Err(DeployError::NotApplied(format!(
            "this device has not caught up with the fleet's log (entry {last}) within {} s; \
             try again, or make the change on another device",
            APPLY_WAIT.as_secs()
        )));
    }
    Ok(con)
}

/// A deploy made on this device, for the fleet: checked here first (nothing is recorded for a
/// module that does not compile or a route that is taken), then recorded and applied.
pub fn deploy(
    shared: &Shared,
    config: FunctionConfig,
    wasm: Vec<u8>,
) -> Result<Outcome, DeployError> {
    let mut con = current(shared, UPLOAD_TIMEOUT)?;
    // The compiled module stays in the cache while it is held: applying it compiles nothing.
    let (hash, _module) = shared.deployed.check(&config, &wasm)?;
    let floor = shared
        .deployed
        .record(&config.name)?
        .and_then(|r| r.versions.last().map(|v| v.version + 1))
        .unwrap_or(1);
    let wasm = Arc::new(wasm);
    let _staged = Staged::new(shared, &hash, wasm.clone());
    let name = config.name.clone();
    let config = serde_json::to_string(&config).expect("configurations serialize");
    record(
        shared,
        &mut con,
        Change {
            op: "deploy",
            name: &name,
            version: None,
            floor,
            hash: &hash,
            wasm: &wasm,
            size: wasm.len() as u64,
            config,
            at: None,
        },
    )
}

/// A rollback made on this device: the version must be kept here, compile and have its routes
/// free; the entry carries the whole version, so a device that lacks it gets it.
pub fn rollback(shared: &Shared, name: &str, version: u32) -> Result<Outcome, DeployError> {
    let mut con = current(shared, UPLOAD_TIMEOUT)?;
    let v = shared.deployed.check_rollback(name, version)?;
    let wasm = shared.deployed.module_bytes(&v.hash)?;
    record(
        shared,
        &mut con,
        Change {
            op: "rollback",
            name,
            version: Some(v.version),
            floor: 0,
            hash: &v.hash,
            wasm: &wasm,
            size: v.size,
            config: serde_json::to_string(&v.config).expect("configurations serialize"),
            at: Some(v.deployed_at),
        },
    )
}

/// A delete made on this device.
pub fn remove(shared: &Shared, name: &str) -> Result<Outcome, DeployError> {
    let mut con = current(shared, REPLY_TIMEOUT)?;
    if shared.deployed.record(name)?.is_none() {
        return Err(DeployError::NotFound(format!("no function `{name}`")));
    }
    record(
        shared,
        &mut con,
        Change {
            op: "delete",
            name,
            version: None,
            floor: 0,
            hash: "",
            wasm: &[],
            size: 0,
            config: String::new(),
            at: None,
        },
    )
}
