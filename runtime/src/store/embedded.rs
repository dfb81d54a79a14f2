//! The embedded backend: a redb database in the data folder (`kv.redb`).
//!
//! Each operation is its own write transaction, committed without an `fsync`
//! (`Durability::None`): visible at once, atomic, and cheap. [`Store::sync`] then makes every
//! commit so far durable with one durable commit. Callers that sync at the same time share it:
//! one of them commits, the others wait for it, and a caller whose writes came after a commit
//! began waits for the next. That is group commit, and it keeps the promise that a write is
//! durable before the response that depends on it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition};

use super::{KvError, Store};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

pub struct Embedded {
    db: Database,
    /// Non-durable commits so far.
    committed: AtomicU64,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Commits known durable.
    durable: u64,
    /// Whether a durable commit is under way.
    syncing: bool,
}

fn failed(e: impl std::fmt::Display) -> KvError {
    KvError::Failed(e.to_string())
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
        txn.commit().map_err(failed)?;
        Ok(Embedded {
            db,
            committed: AtomicU64::new(0),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
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

    /// Runs `f` in a write transaction committed without waiting for the disk; an error from
    /// `f` aborts it.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut Table<&[u8], &[u8]>) -> Result<R, KvError>,
    ) -> Result<R, KvError> {
        let mut txn = self.db.begin_write().map_err(failed)?;
        txn.set_durability(Durability::None).map_err(failed)?;
        let result = {
            let mut table = txn.open_table(KV).map_err(failed)?;
            f(&mut table)?
        };
        txn.commit().map_err(failed)?;
        self.committed.fetch_add(1, SeqCst);
        Ok(result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One durable commit; returns how many commits it covers.
    fn commit_durably(&self) -> Result<u64, KvError> {
        let txn = self.db.begin_write().map_err(failed)?;
        // The write lock is held: every commit counted now is in the database.
        let covered = self.committed.load(SeqCst);
        txn.commit().map_err(failed)?;
        Ok(covered)
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
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.read(|t| Ok(t.get(key)?.map(|v| v.value().to_vec())))
    }

    fn set(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.write(|t| t.insert(key, value).map(drop).map_err(failed))
    }

    fn delete(&self, key: &[u8]) -> Result<bool, KvError> {
        self.write(|t| Ok(t.remove(key).map_err(failed)?.is_some()))
    }

    fn exists(&self, key: &[u8]) -> Result<bool, KvError> {
        self.read(|t| Ok(t.get(key)?.is_some()))
    }

    fn list(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = match after {
            Some(after) if after >= prefix => Excluded(after),
            _ => Included(prefix),
        };
        self.read(|t| {
            let mut keys = Vec::new();
            for entry in t.range::<&[u8]>((start, Unbounded))? {
                let key = entry?.0.value().to_vec();
                if !key.starts_with(prefix) || keys.len() == limit {
                    break;
                }
                keys.push(key);
            }
            Ok(keys)
        })
    }

    fn increment(&self, key: &[u8], delta: i64) -> Result<i64, KvError> {
        self.write(|t| {
            let current = parse_counter(t.get(key).map_err(failed)?.as_ref().map(|v| v.value()))?;
            let next = current.checked_add(delta).ok_or(KvError::NotANumber)?;
            t.insert(key, next.to_string().as_bytes()).map_err(failed)?;
            Ok(next)
        })
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, KvError> {
        self.write(|t| {
            let current = t.get(key).map_err(failed)?.map(|v| v.value().to_vec());
            if current.as_deref() != expected {
                return Ok(false);
            }
            match new {
                Some(value) => drop(t.insert(key, value).map_err(failed)?),
                None => drop(t.remove(key).map_err(failed)?),
            }
            Ok(true)
        })
    }

    fn sync(&self) -> Result<(), KvError> {
        let target = self.committed.load(SeqCst);
        let mut state = self.lock();
        loop {
            if state.durable >= target {
                return Ok(());
            }
            if state.syncing {
                state = self.synced.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.syncing = true;
            drop(state);
            let result = self.commit_durably();
            state = self.lock();
            state.syncing = false;
            self.synced.notify_all();
            state.durable = state.durable.max(result?);
        }
    }
}
