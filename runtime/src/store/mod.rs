//! The key-value shim: one [`Store`] trait, a few operations, and the scoping that gives each
//! function only the stores its configuration grants.
//!
//! A backend stores flat byte keys. [`Scoped`] puts every key a function names under its
//! namespace prefix, `store \0 owner \0` (owner: the function's name, or empty for a store
//! declared shared), so no key a function can construct reaches another's. Names are
//! `[a-z0-9-]`, so the prefix is unambiguous.
//!
//! Writes are committed at once but made durable in groups: after an invocation that wrote,
//! the server calls [`Store::sync`] before it answers, and concurrent invocations share one
//! `fsync` (DESIGN.md, "The key-value shim").
//!
//! A backend also keeps the durable queues of events ([`Queues`]): a [`Backend`] is both, so
//! that a write and the change event it causes, or an invocation's writes and the messages it
//! published, can share a transaction or a durable commit.
//!
//! The backends: [`Embedded`], a redb file in the data folder, and [`RedisStore`], the
//! key-value data and the queues a fleet of devices shares in Redis.

mod codec;
mod embedded;
mod pending;
pub mod queues;
pub(crate) mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use self::redis::{DEFAULT_VISIBILITY, RedisOptions, RedisStore};
pub use embedded::Embedded;
pub use pending::{Answer, Pending};
pub use queues::Queues;

/// Longest key a function may use, in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest value a function may store, in bytes.
pub const MAX_VALUE: usize = 1 << 20;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The function's configuration does not grant the store.
    NoSuchStore,
    /// Empty, or longer than [`MAX_KEY`].
    InvalidKey,
    /// Longer than [`MAX_VALUE`].
    ValueTooLarge,
    /// An increment of a value that is not a decimal `i64`, or one that overflows.
    NotANumber,
    /// A function watching the key has too many change events waiting; the write did not
    /// happen.
    QueueFull,
    /// The backend failed; a write did not happen.
    Failed(String),
    /// The shared store (Redis) cannot be reached, or did not answer in time. A write answered
    /// so may or may not have happened: its request may have reached Redis before the answer
    /// was lost.
    Unavailable(String),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NoSuchStore => f.write_str("the store is not granted to this function"),
            KvError::InvalidKey => write!(f, "a key is 1 to {MAX_KEY} bytes"),
            KvError::ValueTooLarge => write!(f, "a value is at most {MAX_VALUE} bytes"),
            KvError::NotANumber => f.write_str("the value is not a decimal i64 (or overflows)"),
            KvError::QueueFull => f.write_str("a watcher of the key has too many events waiting"),
            KvError::Failed(why) => write!(f, "the store failed: {why}"),
            KvError::Unavailable(why) => write!(f, "the shared store is unreachable: {why}"),
        }
    }
}

impl std::error::Error for KvError {}

/// A key-value backend: flat byte keys, each operation atomic.
///
/// Every write names who makes it (`by`: a function, or `None` for the operator), so that a
/// function watching the key is not invoked for its own writes. Every operation answers when
/// it is done ([`Pending`]; Redis answers over the network): an executor awaits the answer, a
/// thread where blocking is fine waits for it; a write is visible to every reader once
/// answered.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Pending<Option<Vec<u8>>>;
    fn set(&self, key: &[u8], value: &[u8], by: Option<&str>) -> Pending<()>;
    /// True if the key existed.
    fn delete(&self, key: &[u8], by: Option<&str>) -> Pending<bool>;
    fn exists(&self, key: &[u8]) -> Pending<bool> {
        self.get(key).map(|value| value.is_some())
    }
    /// Up to `limit` keys that start with `prefix`, in byte order, strictly after `after`.
    fn list(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Pending<Vec<Vec<u8>>>;
    /// Adds `delta` to the decimal counter at `key` (missing: 0); returns the new value.
    fn increment(&self, key: &[u8], delta: i64, by: Option<&str>) -> Pending<i64>;
    /// If the value is `expected` (`None`: absent), makes it `new` (`None`: deletes it).
    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        by: Option<&str>,
    ) -> Pending<bool>;
    /// Answers once every write answered before this call is durable, queue changes included.
    fn sync(&self) -> Pending<()>;
}

/// What a server keeps its state in: the key-value data and the queues of events, in one
/// backend so that they can share transactions and durable commits.
pub trait Backend: Store + Queues {
    fn as_store(self: Arc<Self>) -> Arc<dyn Store>;
}

impl<T: Store + Queues> Backend for T {
    fn as_store(self: Arc<Self>) -> Arc<dyn Store> {
        self
    }
}

/// The time now in milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The prefix of `owner`'s namespace in `store`; `None` is the store's shared namespace.
pub fn namespace(store: &str, owner: Option<&str>) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(store.len() + owner.map_or(0, str::len) + 2);
    prefix.extend_from_slice(store.as_bytes());
    prefix.push(0);
    prefix.extend_from_slice(owner.unwrap_or("").as_bytes());
    prefix.push(0);
    prefix
}

/// One namespace of a store, with the caps on keys and values, as one writer uses it.
#[derive(Clone)]
pub struct Scoped {
    store: Arc<dyn Store>,
    prefix: Vec<u8>,
    /// The function writing through it; `None` for the operator.
    writer: Option<Arc<str>>,
}

impl Scoped {
    pub fn new(store: Arc<dyn Store>, prefix: Vec<u8>) -> Scoped {
        Scoped {
            store,
            prefix,
            writer: None,
        }
    }

    /// The same namespace, written by `function`.
    pub fn written_by(self, function: &str) -> Scoped {
        Scoped {
            writer: Some(function.into()),
            ..self
        }
    }

    fn by(&self) -> Option<&str> {
        self.writer.as_deref()
    }

    fn key(&self, key: &[u8]) -> Result<Vec<u8>, KvError> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(KvError::InvalidKey);
        }
        Ok([self.prefix.as_slice(), key].concat())
    }

    fn value(value: &[u8]) -> Result<&[u8], KvError> {
        if value.len() > MAX_VALUE {
            return Err(KvError::ValueTooLarge);
        }
        Ok(value)
    }

    pub fn get(&self, key: &[u8]) -> Pending<Option<Vec<u8>>> {
        match self.key(key) {
            Ok(key) => self.store.get(&key),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    pub fn set(&self, key: &[u8], value: &[u8]) -> Pending<()> {
        match (self.key(key), Self::value(value)) {
            (Ok(key), Ok(value)) => self.store.set(&key, value, self.by()),
            (Err(e), _) | (_, Err(e)) => Pending::ready(Err(e)),
        }
    }

    pub fn delete(&self, key: &[u8]) -> Pending<bool> {
        match self.key(key) {
            Ok(key) => self.store.delete(&key, self.by()),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    pub fn exists(&self, key: &[u8]) -> Pending<bool> {
        match self.key(key) {
            Ok(key) => self.store.exists(&key),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    pub fn increment(&self, key: &[u8], delta: i64) -> Pending<i64> {
        match self.key(key) {
            Ok(key) => self.store.increment(&key, delta, self.by()),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    pub fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Pending<bool> {
        match (self.key(key), new.map(Self::value).transpose()) {
            (Ok(key), Ok(new)) => self.store.compare_and_swap(&key, expected, new, self.by()),
            (Err(e), _) | (_, Err(e)) => Pending::ready(Err(e)),
        }
    }

    /// Keys (without the namespace) that start with `prefix`, strictly after `after`.
    pub fn list(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Pending<Vec<Vec<u8>>> {
        let full_prefix = [self.prefix.as_slice(), prefix].concat();
        let after = after.map(|a| [self.prefix.as_slice(), a].concat());
        let namespace = self.prefix.len();
        self.store
            .list(&full_prefix, after.as_deref(), limit)
            .map(move |keys| keys.into_iter().map(|k| k[namespace..].to_vec()).collect())
    }

    pub fn sync(&self) -> Pending<()> {
        self.store.sync()
    }
}

/// The stores one function may use, by name.
#[derive(Clone, Default)]
pub struct Grants {
    stores: Vec<(String, Scoped)>,
}

impl Grants {
    /// Grants `function` its private `stores` and the `shared` ones, all in `store`.
    pub fn new(
        store: &Arc<dyn Store>,
        function: &str,
        stores: &[String],
        shared: &[String],
    ) -> Grants {
        let private = stores.iter().map(|s| (s, Some(function)));
        let shared = shared.iter().map(|s| (s, None));
        let stores = private
            .chain(shared)
            .map(|(name, owner)| {
                let scoped = Scoped::new(store.clone(), namespace(name, owner));
                (name.clone(), scoped.written_by(function))
            })
            .collect();
        Grants { stores }
    }

    pub fn get(&self, name: &[u8]) -> Option<&Scoped> {
        self.stores
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, s)| s)
    }

    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// Makes the writes answered so far durable.
    pub fn sync(&self) -> Pending<()> {
        match self.stores.first() {
            Some((_, s)) => s.sync(),
            None => Pending::ready(Ok(())),
        }
    }
}

#[cfg(test)]
#[macro_use]
mod test_support;
#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod tests;
