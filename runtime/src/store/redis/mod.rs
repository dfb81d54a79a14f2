//! The Redis backend: the key-value data and the queues of events that the devices of a fleet
//! share, in one Redis (DESIGN.md, "Fleet"). The queues are `queues.rs`.
//!
//! **How it works.** One thread (`wisp-redis`, `client.rs`) owns the connection, redis-rs's
//! synchronous one: no async runtime. Every operation is a request to that thread, answered
//! through a [`Pending`] (executors await it, the admin API and tests wait). The thread sends
//! every request waiting as one pipeline, then answers each from its reply, so 32 concurrent
//! callers share round trips instead of queueing for one each, as the embedded store's
//! committer groups its commits. Reads ride the same pipelines, in order: a read made after a
//! write was answered sees it.
//!
//! **Keys.** Everything of the fleet `F` is under `wisp:{F}:` (`keys.rs`): the value of key `K`
//! is the string `wisp:{F}:kv:K`, byte for byte, and the sorted set `wisp:{F}:kv-index` holds
//! every `K` with score 0, so that listing by prefix is a `ZRANGE ... BYLEX` over a range of
//! the index, never a `SCAN` of the keyspace.
//!
//! **Writes** are Lua scripts (`scripts.rs`), one per operation: the value, the index and the
//! change events of the key's watchers change together, atomically across every device, and
//! counters follow the embedded store's rules exactly. A watcher's queue at its depth cap
//! refuses the write ([`KvError::QueueFull`]), which then does not happen. The watches are
//! this device's (those of the functions it serves): a device applies a deploy that adds a
//! watch within moments of the others, and its writes reach the watcher from then on.
//!
//! **Durability.** Redis answers a write once it has applied it. Whether it is on disk by then
//! is the server's configuration: with `appendonly yes` and `appendfsync always` (what the
//! tests run), Redis writes and `fsync`s its append-only file before it answers, so every
//! answered write survives a crash of Redis or of its machine; with Redis's default
//! `appendfsync everysec`, up to about a second of answered writes can be lost. So
//! [`Store::sync`] has nothing of its own to wait for: it rides the pipeline and answers once
//! every request made before it is answered.
//!
//! **When Redis is away.** Making a connection, and each read or write on it, time out after
//! 3 s. When the connection fails, every request Redis did not answer is answered
//! [`KvError::Unavailable`], and so is every operation made until the thread has connected
//! again (it retries after 100 ms, doubling to 5 s): at once, without queueing. A write
//! answered `Unavailable` may or may not have happened: it may have reached Redis before the
//! connection broke. A store opened while Redis cannot be reached starts that way, so that a
//! device starts and serves what needs no shared state while Redis is away.

pub(crate) mod address;
mod client;
mod keys;
mod queue_replies;
mod queue_scripts;
#[cfg(test)]
mod queue_tests;
mod queues;
mod scripts;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Value};

use self::client::Client;
use self::keys::{Keys, lex_range};
use super::{KvError, Pending, Store};

#[cfg(test)]
use queues::REFRESH;

/// How long entries and timer ticks claimed by a device that went silent stay claimed, unless
/// set: 30 s.
pub const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);

/// How a device uses the fleet's Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The device's name: the consumer its claims are held under, and the holder of the timer
    /// ticks it runs. Each device of a fleet needs its own. Default `wisp`.
    pub device: String,
    /// How long the entries a device claimed (and the ticks it leased) stay its own after it
    /// last said it is alive: a device that dies holding them loses them to another after
    /// this long. A live device says so every third of it, however long its deliveries run.
    /// Default [`DEFAULT_VISIBILITY`].
    pub visibility: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            device: "wisp".into(),
            visibility: DEFAULT_VISIBILITY,
        }
    }
}

/// The key-value data and the queues of one fleet, in Redis.
pub struct RedisStore {
    // Stopped first: it asks through the client.
    _refresher: queues::Refresher,
    client: Arc<Client>,
    keys: Keys,
    queues: Arc<queues::State>,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:PASSWORD@]HOST:PORT/DB`, `PORT` 6379 and
    /// `DB` 0 when left out) for the fleet `fleet` (1 to 63 of `a-z`, `A-Z`, `0-9`, `-`, `_`,
    /// `.`): devices
    /// that name the same Redis and fleet share their data. The device is `wisp`, with the
    /// default visibility timeout ([`RedisStore::open`] names them).
    ///
    /// A Redis that cannot be reached (within the connect timeout, 3 s) is no failure: the
    /// store starts disconnected, answers [`KvError::Unavailable`] until it has connected,
    /// and connects in the background. Fails with [`KvError::Failed`] for a URL or fleet name
    /// that is not valid, or a password that Redis refuses.
    pub fn connect(url: &str, fleet: &str) -> Result<RedisStore, KvError> {
        RedisStore::open(url, fleet, RedisOptions::default())
    }

    /// [`RedisStore::connect`], as the device `options` names.
    pub fn open(url: &str, fleet: &str, options: RedisOptions) -> Result<RedisStore, KvError> {
        // The fleet's own rule (`fleet::check_name`): never a brace, which would end the
        // keys' hash tag.
        let valid = (1..=63).contains(&fleet.len())
            && fleet
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(KvError::Failed(format!(
                "the fleet name `{fleet}` is not 1 to 63 of a-z, A-Z, 0-9, -, _ and ."
            )));
        }
        let info = address::connection_info(url)?;
        let address = info.addr().to_string();
        let client = Arc::new(Client::connect(info).map_err(|e| connect_error(&address, &e))?);
        let keys = Keys::new(fleet);
        let visibility = options.visibility.max(Duration::from_millis(10));
        let queues = Arc::new(queues::State::new(options.device, visibility));
        let refresher =
            queues::Refresher::start(client.clone(), queues.clone(), keys.prefix().to_vec());
        Ok(RedisStore {
            _refresher: refresher,
            client,
            keys,
            queues,
        })
    }
}

fn connect_error(address: &str, e: &RedisError) -> KvError {
    KvError::Failed(format!("Redis at {address} refused the connection: {e}"))
}

/// A reply Redis should not have given: a script or command answered another type.
fn unexpected(value: &Value) -> KvError {
    KvError::Failed(format!("unexpected reply from Redis: {value:?}"))
}

fn integer(value: Value) -> Result<i64, KvError> {
    match value {
        Value::Int(n) => Ok(n),
        other => Err(unexpected(&other)),
    }
}

fn bytes(value: Value) -> Result<Option<Vec<u8>>, KvError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        other => Err(unexpected(&other)),
    }
}

impl Store for RedisStore {
    fn get(&self, key: &[u8]) -> Pending<Option<Vec<u8>>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.keys.value(key));
        self.client.ask(Some(cmd), bytes)
    }

    fn set(&self, key: &[u8], value: &[u8], by: Option<&str>) -> Pending<()> {
        let mut cmd = scripts::set(&self.keys, key, value, by);
        let watchers = self.queues.watchers(key, by, false);
        watchers.add_to(&mut cmd);
        let state = self.queues.clone();
        self.client.ask(Some(cmd), move |v| {
            integer(v)?;
            state.pushed(&watchers.queues);
            Ok(())
        })
    }

    fn delete(&self, key: &[u8], by: Option<&str>) -> Pending<bool> {
        let mut cmd = scripts::delete(&self.keys, key, by);
        let watchers = self.queues.watchers(key, by, true);
        watchers.add_to(&mut cmd);
        let state = self.queues.clone();
        self.client.ask(Some(cmd), move |v| {
            let existed = integer(v)? == 1;
            if existed {
                state.pushed(&watchers.queues);
            }
            Ok(existed)
        })
    }

    fn exists(&self, key: &[u8]) -> Pending<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.keys.value(key));
        self.client.ask(Some(cmd), |v| integer(v).map(|n| n > 0))
    }

    fn list(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Pending<Vec<Vec<u8>>> {
        if limit == 0 {
            return Pending::ready(Ok(Vec::new()));
        }
        let (start, end) = lex_range(prefix, after);
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys.index())
            .arg(start)
            .arg(end)
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(limit.min(i64::MAX as usize));
        self.client.ask(Some(cmd), |value| match value {
            Value::Array(keys) => keys
                .into_iter()
                .map(|key| bytes(key)?.ok_or_else(|| unexpected(&Value::Nil)))
                .collect(),
            other => Err(unexpected(&other)),
        })
    }

    fn increment(&self, key: &[u8], delta: i64, by: Option<&str>) -> Pending<i64> {
        let mut cmd = scripts::increment(&self.keys, key, delta, by);
        let watchers = self.queues.watchers(key, by, false);
        watchers.add_to(&mut cmd);
        let state = self.queues.clone();
        self.client.ask(Some(cmd), move |value| {
            // Nil: not a number, or the sum would overflow; nothing changed.
            let text = bytes(value)?.ok_or(KvError::NotANumber)?;
            match std::str::from_utf8(&text).ok().and_then(|s| s.parse().ok()) {
                Some(n) => {
                    state.pushed(&watchers.queues);
                    Ok(n)
                }
                None => Err(unexpected(&Value::BulkString(text))),
            }
        })
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        by: Option<&str>,
    ) -> Pending<bool> {
        let mut cmd = scripts::compare_and_swap(&self.keys, key, expected, new, by);
        let watchers = self.queues.watchers(key, by, new.is_none());
        watchers.add_to(&mut cmd);
        let state = self.queues.clone();
        self.client.ask(Some(cmd), move |v| {
            let swapped = integer(v)? == 1;
            if swapped {
                state.pushed(&watchers.queues);
            }
            Ok(swapped)
        })
    }

    fn sync(&self) -> Pending<()> {
        self.client.ask(None, |_| Ok(()))
    }
}
