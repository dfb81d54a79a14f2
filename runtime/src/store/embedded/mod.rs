//! The embedded backend: a redb database in the data folder (`kv.redb`) that holds the
//! key-value data, the queues of events and the triggers' small records.
//!
//! Each operation is atomic, and visible to every reader once answered. Writes are made by one
//! committer thread ([`commit`]): every write queued while it commits goes into its next
//! transaction, committed without an `fsync` unless someone waits for durability;
//! [`Store::sync`] answers once every write before it is durable, with one durable commit for
//! all who wait at the same time. That is group commit, and it keeps the promise that a write is
//! durable before the response that depends on it, without ever blocking an executor thread.
//!
//! A key-value write under a watched prefix pushes its change event in the same transaction
//! (`queues.rs`), so the event and the write are durable together or not at all.

mod commit;
mod queues;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::queues::{QueueCounts, QueueKey};
use super::{KvError, Pending, Store};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

pub struct Embedded {
    // Dropped first: the committer finishes what is queued, then lets go of the database.
    committer: commit::Committer,
    db: Arc<Database>,
    queues: Arc<queues::State>,
}

fn failed(e: impl std::fmt::Display) -> KvError {
    KvError::Failed(e.to_string())
}

/// One write transaction: the key-value table, and the queue tables once needed. What it
/// changed in the queues is applied to the in-memory counts only once it commits.
struct Tx<'t> {
    txn: &'t WriteTransaction,
    kv: Table<'t, &'static [u8], &'static [u8]>,
    queue: Option<Table<'t, &'static [u8], &'static [u8]>>,
    /// Changes to queue counts, and queues pushed to, by the writes in the transaction.
    delta: &'t mut HashMap<QueueKey, Delta>,
}

#[derive(Default, Clone, Copy)]
struct Delta {
    pending: i64,
    dead: i64,
    pushed: bool,
}

impl Embedded {
    /// Opens (or creates) the database at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Embedded, KvError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(failed)?;
        let txn = db.begin_write().map_err(failed)?;
        txn.open_table(KV).map_err(failed)?;
        queues::create_tables(&txn)?;
        txn.commit().map_err(failed)?;
        let queues = Arc::new(queues::State::load(&db)?);
        let db = Arc::new(db);
        let committer = commit::Committer::start(db.clone(), {
            let queues = queues.clone();
            move |deltas| queues.committed(deltas)
        });
        Ok(Embedded {
            committer,
            db,
            queues,
        })
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&redb::ReadOnlyTable<&[u8], &[u8]>) -> Result<R, redb::StorageError>,
    ) -> Result<R, KvError> {
        let txn = self.db.begin_read().map_err(failed)?;
        let table = txn.open_table(KV).map_err(failed)?;
        f(&table).map_err(failed)
    }

    /// Queues `f` for the committer's next transaction (see [`commit`]). `f` must write
    /// nothing if it fails on its own account; a database failure fails the whole transaction.
    fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx) -> Result<R, KvError> + Send + 'static,
    ) -> Pending<R> {
        self.committer.write(move |txn, delta| {
            let mut tx = Tx {
                txn,
                kv: txn.open_table(KV).map_err(failed)?,
                queue: None,
                delta,
            };
            f(&mut tx)
        })
    }
}

fn parse_counter(value: Option<&[u8]>) -> Result<i64, KvError> {
    match value {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(KvError::NotANumber),
    }
}

impl Store for Embedded {
    /// Reads answer at once, on the caller's thread: redb reads from its cache and the file.
    fn get(&self, key: &[u8]) -> Pending<Option<Vec<u8>>> {
        Pending::ready(self.read(|t| Ok(t.get(key)?.map(|v| v.value().to_vec()))))
    }

    fn set(&self, key: &[u8], value: &[u8], by: Option<&str>) -> Pending<()> {
        let (key, value, by) = (key.to_vec(), value.to_vec(), by.map(str::to_string));
        let queues = self.queues.clone();
        self.write(move |tx| {
            // The change event first: a full watcher refuses the write before anything is
            // written.
            queues.changed(tx, &key, Some(&value), by.as_deref())?;
            tx.kv
                .insert(key.as_slice(), value.as_slice())
                .map_err(failed)
                .map(drop)
        })
    }

    fn delete(&self, key: &[u8], by: Option<&str>) -> Pending<bool> {
        let (key, by) = (key.to_vec(), by.map(str::to_string));
        let queues = self.queues.clone();
        self.write(move |tx| {
            let exists = tx.kv.get(key.as_slice()).map_err(failed)?.is_some();
            if exists {
                queues.changed(tx, &key, None, by.as_deref())?;
                tx.kv.remove(key.as_slice()).map_err(failed)?;
            }
            Ok(exists)
        })
    }

    fn exists(&self, key: &[u8]) -> Pending<bool> {
        Pending::ready(self.read(|t| Ok(t.get(key)?.is_some())))
    }

    fn list(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Pending<Vec<Vec<u8>>> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = match after {
            Some(after) if after >= prefix => Excluded(after),
            _ => Included(prefix),
        };
        Pending::ready(self.read(|t| {
            let mut keys = Vec::new();
            for entry in t.range::<&[u8]>((start, Unbounded))? {
                let key = entry?.0.value().to_vec();
                if !key.starts_with(prefix) || keys.len() == limit {
                    break;
                }
                keys.push(key);
            }
            Ok(keys)
        }))
    }

    fn increment(&self, key: &[u8], delta: i64, by: Option<&str>) -> Pending<i64> {
        let (key, by) = (key.to_vec(), by.map(str::to_string));
        let queues = self.queues.clone();
        self.write(move |tx| {
            let stored = tx.kv.get(key.as_slice()).map_err(failed)?;
            let current = parse_counter(stored.as_ref().map(|v| v.value()))?;
            drop(stored);
            let next = current.checked_add(delta).ok_or(KvError::NotANumber)?;
            let text = next.to_string();
            queues.changed(tx, &key, Some(text.as_bytes()), by.as_deref())?;
            tx.kv
                .insert(key.as_slice(), text.as_bytes())
                .map_err(failed)?;
            Ok(next)
        })
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        by: Option<&str>,
    ) -> Pending<bool> {
        let key = key.to_vec();
        let (expected, new) = (expected.map(<[u8]>::to_vec), new.map(<[u8]>::to_vec));
        let by = by.map(str::to_string);
        let queues = self.queues.clone();
        self.write(move |tx| {
            let stored = tx.kv.get(key.as_slice()).map_err(failed)?;
            let current = stored.map(|v| v.value().to_vec());
            if current != expected {
                return Ok(false);
            }
            if new.is_none() && current.is_none() {
                return Ok(true);
            }
            queues.changed(tx, &key, new.as_deref(), by.as_deref())?;
            match &new {
                Some(value) => drop(
                    tx.kv
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(failed)?,
                ),
                None => drop(tx.kv.remove(key.as_slice()).map_err(failed)?),
            }
            Ok(true)
        })
    }

    fn sync(&self) -> Pending<()> {
        self.committer.sync()
    }
}

/// The counts of every queue, shared by the backend's readers and writers.
type Counts = RwLock<HashMap<QueueKey, QueueCounts>>;

/// Signals by queue, created on first use.
type Signals = Mutex<HashMap<QueueKey, Arc<event_listener::Event>>>;
