//! The fleet's log of registry changes, and the applier thread that applies every device's
//! changes here, in the log's order (from a snapshot first, when it missed entries the log no
//! longer holds). Changes made here are recorded by [`super::changes`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult, Value};
use serde_json::json;

use super::{Backoff, Outcome, REPLY_TIMEOUT, Shared, lock};
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
    pub(super) fn take(&self, id: StreamId, timeout: Duration) -> Option<Outcome> {
        let guard = lock(&self.state);
        let (mut state, _) = self
            .progressed
            .wait_timeout_while(guard, timeout, |s| s.position.is_none_or(|p| p < id))
            .unwrap_or_else(|e| e.into_inner());
        let at = state.outcomes.iter().position(|(i, _)| *i == id)?;
        state.outcomes.remove(at).map(|(_, outcome)| outcome)
    }

    /// Waits, at most `timeout`, until the applier is at `id` or past it.
    pub(super) fn reach(&self, id: StreamId, timeout: Duration) -> bool {
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
pub(super) fn stream_info(
    shared: &Shared,
    con: &mut Connection,
) -> RedisResult<Option<(StreamId, StreamId)>> {
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
