//! The fleet's log of registry changes: recording a change made on this device, and the
//! applier thread that applies every device's changes here, in the log's order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult, Value};
use serde_json::json;

use super::{APPLY_WAIT, Backoff, Outcome, REPLY_TIMEOUT, Shared, UPLOAD_TIMEOUT, lock};
use crate::config::FunctionConfig;
use crate::deployed::DeployError;
use crate::registry::{Mark, VersionRecord, hash};

/// How long one `XREAD` waits for new entries: also how soon the applier sees a stop.
pub const BLOCK: Duration = Duration::from_millis(1000);
/// Entries read at a time.
const BATCH: usize = 64;
/// Outcomes kept for the devices' own changes, and skipped entries kept for `wisp fleet`.
const KEEP_OUTCOMES: usize = 256;
const KEEP_SKIPS: usize = 16;

/// A Redis Stream entry id, `ms-seq`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    pub const ZERO: StreamId = StreamId(0, 0);

    pub fn parse(text: &str) -> Option<StreamId> {
        let (ms, seq) = text.split_once('-')?;
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A change this device could not apply.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Skip {
    pub id: String,
    pub op: String,
    pub function: String,
    pub version: u32,
    pub error: String,
}

/// The applier's progress, shared with the changes that wait for it.
#[derive(Default)]
pub struct Applier {
    state: Mutex<State>,
    progressed: Condvar,
    pub applied: AtomicU64,
    pub skipped: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The last entry applied (or skipped) in this run; None until the applier has caught up
    /// with the registry's mark after start.
    position: Option<StreamId>,
    /// What the recent entries did, for the device that made them.
    outcomes: VecDeque<(StreamId, Outcome)>,
    skips: VecDeque<Skip>,
}

impl Applier {
    fn advance(&self, id: StreamId, outcome: Option<Outcome>) {
        let mut state = lock(&self.state);
        state.position = Some(id);
        if let Some(outcome) = outcome {
            state.outcomes.push_back((id, outcome));
            if state.outcomes.len() > KEEP_OUTCOMES {
                state.outcomes.pop_front();
            }
        }
        drop(state);
        self.progressed.notify_all();
    }

    /// Waits, at most `timeout`, until entry `id` is applied; takes its outcome.
    fn take(&self, id: StreamId, timeout: Duration) -> Option<Outcome> {
        let guard = lock(&self.state);
        let (mut state, _) = self
            .progressed
            .wait_timeout_while(guard, timeout, |s| s.position.is_none_or(|p| p < id))
            .unwrap_or_else(|e| e.into_inner());
        let at = state.outcomes.iter().position(|(i, _)| *i == id)?;
        state.outcomes.remove(at).map(|(_, outcome)| outcome)
    }

    /// Waits, at most `timeout`, until the applier is at `id` or past it.
    fn reach(&self, id: StreamId, timeout: Duration) -> bool {
        let guard = lock(&self.state);
        let (state, _) = self
            .progressed
            .wait_timeout_while(guard, timeout, |s| s.position.is_none_or(|p| p < id))
            .unwrap_or_else(|e| e.into_inner());
        state.position.is_some_and(|p| p >= id)
    }

    pub fn position(&self) -> Option<StreamId> {
        lock(&self.state).position
    }

    pub fn skips(&self) -> Vec<Skip> {
        lock(&self.state).skips.iter().cloned().collect()
    }

    fn skip(&self, skip: Skip) {
        self.skipped.fetch_add(1, Relaxed);
        let mut state = lock(&self.state);
        state.skips.push_back(skip);
        if state.skips.len() > KEEP_SKIPS {
            state.skips.pop_front();
        }
    }
}

/// One entry of the log.
struct Entry {
    id: StreamId,
    op: String,
    name: String,
    version: u32,
    hash: String,
    size: u64,
    config: String,
    at: u64,
}

impl Entry {
    fn from_fields(id: StreamId, fields: &[(String, Vec<u8>)]) -> Entry {
        let text = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        Entry {
            id,
            op: text("op"),
            name: text("name"),
            version: text("version").parse().unwrap_or(0),
            hash: text("hash"),
            size: text("size").parse().unwrap_or(0),
            config: text("config"),
            at: text("at").parse().unwrap_or(0),
        }
    }

    /// The version a `deploy` or `rollback` entry makes active.
    fn version(&self) -> Result<VersionRecord, DeployError> {
        let config: FunctionConfig = serde_json::from_str(&self.config)
            .map_err(|e| DeployError::Config(format!("the entry's configuration: {e}")))?;
        if config.name != self.name || self.version == 0 {
            return Err(DeployError::Config("a malformed entry".into()));
        }
        Ok(VersionRecord {
            version: self.version,
            hash: self.hash.clone(),
            size: self.size,
            deployed_at: self.at,
            config,
        })
    }
}

/// The applier thread: applies the log's entries here, in order, reconnecting with backoff
/// whenever Redis goes away, until the fleet stops.
pub fn run(shared: &Shared) {
    let mut backoff = Backoff::new();
    while !shared.stopped() {
        if let Err(e) = session(shared, &mut backoff) {
            shared.link.down(&e.to_string());
            shared.sleep(backoff.next());
        }
    }
}

/// One connection's worth of applying: finds where to start, then reads and applies.
fn session(shared: &Shared, backoff: &mut Backoff) -> RedisResult<()> {
    let mut con = shared.connect(REPLY_TIMEOUT)?;
    let epoch = epoch(shared, &mut con)?;
    let mut position = start(shared, &mut con, &epoch)?;
    shared.applier.advance(position, None);
    shared.link.up();
    *backoff = Backoff::new();
    let block = BLOCK.as_millis().to_string();
    while !shared.stopped() {
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(&block)
            .arg("STREAMS")
            .arg(&shared.keys.log)
            .arg(position.to_string())
            .query(&mut con)?;
        shared.link.up();
        let entries = stream_entries(&reply);
        for (id, fields) in &entries {
            apply(shared, &mut con, &epoch, Entry::from_fields(*id, fields))?;
            position = *id;
        }
        if !entries.is_empty() {
            shared.nudge();
        }
    }
    Ok(())
}

/// The fleet's epoch: made once by the first device, so that a device whose registry marks a
/// place in another Redis's log (Redis replaced, or emptied) starts this log from its start.
fn epoch(shared: &Shared, con: &mut Connection) -> RedisResult<String> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("randomness");
    let fresh: String = random.iter().map(|b| format!("{b:02x}")).collect();
    redis::cmd("SET")
        .arg(&shared.keys.epoch)
        .arg(fresh)
        .arg("NX")
        .exec(con)?;
    redis::cmd("GET").arg(&shared.keys.epoch).query(con)
}

/// Where this device starts reading: right after the last entry it applied. If entries it
/// never applied were trimmed from the log since, it first rebuilds from the snapshot.
fn start(shared: &Shared, con: &mut Connection, epoch: &str) -> RedisResult<StreamId> {
    let mark = match shared.deployed.mark(&shared.mark_key()) {
        Ok(mark) => mark,
        Err(e) => {
            eprintln!("wisp: fleet: cannot read where this device stopped ({e}); from the start");
            None
        }
    };
    let mark = mark.and_then(|m| {
        let (of, id) = m.split_once(' ')?;
        (of == epoch).then(|| StreamId::parse(id)).flatten()
    });
    let trimmed = stream_info(shared, con)?.map_or(StreamId::ZERO, |(_, deleted)| deleted);
    match mark {
        Some(mark) if mark >= trimmed => Ok(mark),
        None if trimmed == StreamId::ZERO => Ok(StreamId::ZERO),
        _ => {
            rebuild(shared, con, epoch, trimmed)?;
            Ok(trimmed)
        }
    }
}

/// The log's last id and the last id trimmed from it (`0-0` when none); None without a log.
fn stream_info(shared: &Shared, con: &mut Connection) -> RedisResult<Option<(StreamId, StreamId)>> {
    let exists: bool = redis::cmd("EXISTS").arg(&shared.keys.log).query(con)?;
    if !exists {
        return Ok(None);
    }
    let info: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&shared.keys.log)
        .query(con)?;
    let pairs = pairs(&info);
    let id = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| StreamId::parse(&text(v)?))
            .unwrap_or(StreamId::ZERO)
    };
    Ok(Some((id("last-generated-id"), id("max-deleted-entry-id"))))
}

/// Brings this device to the snapshot the appliers keep, for a device that was away longer
/// than the log holds: every function the snapshot has is served as it says (or deleted);
/// functions it never heard of stay. Then the log's entries from `upto` on are applied as
/// usual (replaying one the snapshot already has is harmless: each sets a whole state).
fn rebuild(shared: &Shared, con: &mut Connection, epoch: &str, upto: StreamId) -> RedisResult<()> {
    eprintln!(
        "wisp: fleet: this device missed entries the log no longer holds; rebuilding from the \
         snapshot"
    );
    let snapshot: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(&shared.keys.functions)
        .query(con)?;
    let mut records: Vec<(StreamId, String, Option<VersionRecord>)> = snapshot
        .into_iter()
        .filter_map(|(name, json)| {
            let value: serde_json::Value = serde_json::from_str(&json).ok()?;
            let id = StreamId::parse(value["id"].as_str()?)?;
            let version = serde_json::from_value(value["version"].clone()).ok();
            Some((id, name, version))
        })
        .collect();
    // In the order the changes were made, as the log would have applied them.
    records.sort_by_key(|(id, ..)| *id);
    let key = shared.mark_key();
    // Until the rebuild is done, a crash starts it again.
    let unfinished = format!("{epoch} 0-0");
    let mark = Mark {
        key: &key,
        value: &unfinished,
    };
    for (id, name, version) in records {
        let result = match version {
            None => shared.deployed.remove_marked(&name, mark).map(drop),
            Some(version) => match module(shared, con, &version.hash)? {
                Ok(wasm) => shared
                    .deployed
                    .apply_version(version, wasm.as_deref().map(Vec::as_slice), mark)
                    .map(drop),
                Err(why) => Err(DeployError::NotFound(why)),
            },
        };
        if let Err(e) = result {
            eprintln!("wisp: fleet: cannot apply the snapshot of `{name}` ({id}): {e}");
        }
    }
    let done = format!("{epoch} {upto}");
    if let Err(e) = shared.deployed.set_mark(Mark {
        key: &key,
        value: &done,
    }) {
        eprintln!("wisp: fleet: cannot record the rebuild: {e}");
    }
    Ok(())
}

/// The bytes of module `hash` when this device lacks them: from a change made here, else from
/// Redis (checked against the hash). `Ok(Err)` when Redis does not have them either.
#[allow(clippy::type_complexity)]
fn module(
    shared: &Shared,
    con: &mut Connection,
    hash: &str,
) -> RedisResult<Result<Option<Arc<Vec<u8>>>, String>> {
    if let Some(wasm) = lock(&shared.staged).get(hash) {
        return Ok(Ok(Some(wasm.clone())));
    }
    if shared.deployed.has_module(hash) {
        return Ok(Ok(None));
    }
    let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(shared.keys.module(hash)).query(con)?;
    Ok(match bytes {
        Some(bytes) if self::hash(&bytes) == hash => Ok(Some(Arc::new(bytes))),
        Some(_) => Err(format!("module {hash} in Redis does not match its hash")),
        None => Err(format!("module {hash} is not in Redis")),
    })
}

/// Applies one entry here and records what it did. Only a Redis error is an error: a change
/// that cannot be applied is skipped, and said so.
fn apply(shared: &Shared, con: &mut Connection, epoch: &str, entry: Entry) -> RedisResult<()> {
    let (key, value) = (shared.mark_key(), format!("{epoch} {}", entry.id));
    let mark = Mark {
        key: &key,
        value: &value,
    };
    let deployed = &shared.deployed;
    let result = match entry.op.as_str() {
        "deploy" | "rollback" => match (entry.version(), module(shared, con, &entry.hash)?) {
            (Ok(version), Ok(wasm)) => deployed
                .apply_version(version, wasm.as_deref().map(Vec::as_slice), mark)
                .map(|(f, created)| Outcome::Served(f, created)),
            (Err(e), _) => Err(e),
            (_, Err(why)) => Err(DeployError::NotFound(why)),
        },
        "delete" => deployed
            .remove_marked(&entry.name, mark)
            .map(|_| Outcome::Removed),
        other => Err(DeployError::Config(format!(
            "unknown change `{other}` (made by a newer wisp?)"
        ))),
    };
    let snapshot = match &result {
        Ok(Outcome::Served(f, _)) => Some(json!({
            "id": entry.id.to_string(),
            "version": {
                "version": f.version,
                "hash": f.hash,
                "size": entry.size,
                "deployed_at": f.deployed_at,
                "config": f.config,
            },
        })),
        Ok(_) => Some(json!({ "id": entry.id.to_string(), "deleted": true })),
        Err(e) => {
            eprintln!(
                "wisp: fleet: skipped {} of `{}` version {} ({}): {e}",
                entry.op, entry.name, entry.version, entry.id
            );
            if let Err(e) = deployed.set_mark(mark) {
                eprintln!("wisp: fleet: cannot record the skip: {e}");
            }
            shared.applier.skip(Skip {
                id: entry.id.to_string(),
                op: entry.op.clone(),
                function: entry.name.clone(),
                version: entry.version,
                error: e.to_string(),
            });
            None
        }
    };
    if result.is_ok() {
        shared.applier.applied.fetch_add(1, Relaxed);
    }
    shared
        .applier
        .advance(entry.id, Some(result.unwrap_or_else(Outcome::Failed)));
    if let Some(snapshot) = snapshot {
        SNAPSHOT
            .key(&shared.keys.functions)
            .arg(&entry.name)
            .arg(entry.id.to_string())
            .arg(snapshot.to_string())
            .invoke::<i64>(con)?;
    }
    Ok(())
}

/// Keeps a function's snapshot at the latest entry that changed it: a device that applies an
/// old entry late leaves a newer record alone.
static SNAPSHOT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local function newer(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and not newer(ARGV[2], cjson.decode(current)['id']) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
",
    )
});

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

/// Waits, at most `timeout`, until this device has applied what the log holds now.
pub fn catch_up(shared: &Shared, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let last = match shared.connect(REPLY_TIMEOUT) {
        Ok(mut con) => match stream_info(shared, &mut con) {
            Ok(info) => info.map_or(StreamId::ZERO, |(last, _)| last),
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    let left = deadline.saturating_duration_since(Instant::now());
    shared.applier.reach(last, left)
}

/// The text of a simple reply.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// A reply that is a list of key-value pairs: a flat array (RESP2) or a map (RESP3).
fn pairs(value: &Value) -> Vec<(String, &Value)> {
    match value {
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|pair| Some((text(&pair[0])?, &pair[1])))
            .collect(),
        Value::Map(map) => map
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The entries of an `XREAD` reply on one stream: id and fields.
#[allow(clippy::type_complexity)]
fn stream_entries(reply: &Value) -> Vec<(StreamId, Vec<(String, Vec<u8>)>)> {
    let streams: Vec<&Value> = match reply {
        // RESP2: [[key, entries], ...]; RESP3: {key: entries}.
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => Some(&pair[1]),
                _ => None,
            })
            .collect(),
        Value::Map(map) => map.iter().map(|(_, entries)| entries).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            let Value::Array(parts) = entry else { continue };
            let [id, fields] = parts.as_slice() else {
                continue;
            };
            let Some(id) = text(id).and_then(|id| StreamId::parse(&id)) else {
                continue;
            };
            let fields = pairs(fields)
                .into_iter()
                .map(|(k, v)| {
                    let bytes = match v {
                        Value::BulkString(bytes) => bytes.clone(),
                        other => text(other).unwrap_or_default().into_bytes(),
                    };
                    (k, bytes)
                })
                .collect();
            out.push((id, fields));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_as_redis_orders_them() {
        let a = StreamId::parse("1700000000000-9").unwrap();
        let b = StreamId::parse("1700000000001-0").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "1700000000000-9");
        assert!(StreamId::parse("17").is_none());
        assert!(StreamId::ZERO < a);
    }

    #[test]
    fn xread_replies_parse_in_both_protocols() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = Value::Array(vec![
            bulk("5-1"),
            Value::Array(vec![bulk("op"), bulk("deploy"), bulk("name"), bulk("date")]),
        ]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("wisp:default:registry"),
            Value::Array(vec![entry.clone()]),
        ])]);
        let resp3 = Value::Map(vec![(
            bulk("wisp:default:registry"),
            Value::Array(vec![entry]),
        )]);
        for reply in [resp2, resp3] {
            let entries = stream_entries(&reply);
            assert_eq!(entries.len(), 1);
            let e = Entry::from_fields(entries[0].0, &entries[0].1);
            assert_eq!(
                (e.id, e.op.as_str(), e.name.as_str()),
                (StreamId(5, 1), "deploy", "date")
            );
        }
        assert!(stream_entries(&Value::Nil).is_empty());
    }
}
