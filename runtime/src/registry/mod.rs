//! Deployed functions and their versions, kept in the data folder so that a restart, a crash or
//! a power cut brings back every deploy that was acknowledged.
//!
//! Layout of the data folder:
//!
//! - `wisp.redb`: the registry, a redb database (crash-safe, each commit durable when it
//!   returns). Table `functions`: name → the function's record as JSON. Table `meta`: notes
//!   committed with the changes they describe ([`Mark`]), such as the last entry of a fleet's
//!   log this device applied.
//! - `modules/<sha256>.wasm`: module files by content ([`ModuleStore`]).
//! - `secrets/<function>.json`: each function's secrets, apart from its versions, readable by
//!   Wisp's user only ([`SecretStore`]).
//!
//! A deploy stores its module file first, then commits the record: after a crash in between,
//! the file is an orphan that the next start removes, and the record never names a missing file.
//! A delete commits first, then forgets the secrets; the next start forgets those a crash in
//! between left.

mod modules;
mod secrets;

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

pub use modules::{ModuleStore, hash, sync_dir};
pub use secrets::{
    MAX_SECRET_BYTES, MAX_SECRET_NAME, MAX_SECRETS, SecretError, SecretStore, Secrets,
    check_name as check_secret_name,
};

use crate::config::FunctionConfig;

const FUNCTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("functions");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// A note written in the same transaction as a change: after a crash, either both are there or
/// neither (the fleet keeps the last log entry it applied so).
#[derive(Debug, Clone, Copy)]
pub struct Mark<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

/// Versions kept per function for rollback; older ones go, the active one always stays.
pub const KEEP_VERSIONS: usize = 10;

/// A deployed function: its versions, oldest first, and which one serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub name: String,
    pub active: u32,
    pub versions: Vec<VersionRecord>,
}

/// One deployed version: the module (by hash) and the configuration it was deployed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u32,
    pub hash: String,
    pub size: u64,
    /// Unix seconds.
    pub deployed_at: u64,
    pub config: FunctionConfig,
}

impl FunctionRecord {
    /// The version that serves.
    pub fn active(&self) -> &VersionRecord {
        self.version(self.active)
            .expect("INVARIANT: the active version is kept")
    }

    pub fn version(&self, version: u32) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.version == version)
    }
}

/// Why the registry could not do what was asked.
#[derive(Debug)]
pub enum RegistryError {
    Io(std::io::Error),
    Database(redb::Error),
    /// A stored record does not parse: the data folder was written by something else.
    Corrupt(String),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Io(e) => write!(f, "registry I/O error: {e}"),
            RegistryError::Database(e) => write!(f, "registry database error: {e}"),
            RegistryError::Corrupt(why) => write!(f, "registry record is corrupt: {why}"),
        }
    }
}

impl std::error::Error for RegistryError {}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::Io(e)
    }
}

macro_rules! database_errors {
    ($($error:ident),*) => {$(
        impl From<redb::$error> for RegistryError {
            fn from(e: redb::$error) -> Self {
                RegistryError::Database(e.into())
            }
        }
    )*};
}

database_errors!(
    DatabaseError,
    TransactionError,
    TableError,
    StorageError,
    CommitError
);

/// The registry of a data folder.
pub struct Registry {
    db: Database,
    modules: ModuleStore,
    secrets: SecretStore,
    /// Held by every change: a module stored for a deploy must not be collected as garbage
    /// before its record is committed.
    writer: Mutex<()>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn decode(bytes: &[u8]) -> Result<FunctionRecord, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

impl Registry {
    /// Opens (or creates) the registry in `data_dir`, and removes module files a crash left
    /// without a record.
    pub fn open(data_dir: &Path) -> Result<Registry, RegistryError> {
        let db = Database::create(data_dir.join("wisp.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(FUNCTIONS)?;
        txn.open_table(META)?;
        txn.commit()?;
        let modules = ModuleStore::open(data_dir.join("modules"))?;
        let secrets = SecretStore::open(data_dir.join("secrets"))?;
        let registry = Registry {
            db,
            modules,
            secrets,
            writer: Mutex::new(()),
        };
        registry.collect_garbage()?;
        let names = registry.functions()?.into_iter().map(|f| f.name).collect();
        registry.secrets.retain(&names)?;
        Ok(registry)
    }

    pub fn functions(&self) -> Result<Vec<FunctionRecord>, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FUNCTIONS)?;
        table
            .iter()?
            .map(|entry| decode(entry?.1.value()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Result<Option<FunctionRecord>, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FUNCTIONS)?;
        table.get(name)?.map(|v| decode(v.value())).transpose()
    }

    pub fn module(&self, hash: &str) -> Result<Vec<u8>, RegistryError> {
        Ok(self.modules.get(hash)?)
    }

    /// Whether the module of `hash` is stored here.
    pub fn has_module(&self, hash: &str) -> bool {
        self.modules.has(hash)
    }

    /// Stores `wasm`, whose [`hash`] is `hash`, and records it as a new version of
    /// `config.name`, made active. Returns the record and whether the function is new. Durable
    /// when it returns.
    pub fn add_version(
        &self,
        config: FunctionConfig,
        wasm: &[u8],
        hash: String,
    ) -> Result<(FunctionRecord, bool), RegistryError> {
        let _writer = self.lock();
        self.modules.put(wasm, &hash)?;
        let size = wasm.len() as u64;
        self.update(&config.name.clone(), |record| {
            let created = record.is_none();
            let mut record = record.unwrap_or_else(|| FunctionRecord {
                name: config.name.clone(),
                active: 0,
                versions: Vec::new(),
            });
            let version = record.versions.last().map_or(1, |v| v.version + 1);
            record.versions.push(VersionRecord {
                version,
                hash,
                size,
                deployed_at: now(),
                config,
            });
            record.active = version;
            trim(&mut record);
            Some((record, created))
        })
        .map(|r| r.expect("add_version always writes"))
    }

    /// Records `version` (its number given, as a fleet's log gives it) as the active version of
    /// its function, in place of a kept version with the same number; its module is `wasm`, or
    /// already stored. `mark`, if any, is committed with it. Returns the record and whether the
    /// function is new. Durable when it returns.
    pub fn put_version(
        &self,
        version: VersionRecord,
        wasm: Option<&[u8]>,
        mark: Option<Mark>,
    ) -> Result<(FunctionRecord, bool), RegistryError> {
        let _writer = self.lock();
        match wasm {
            Some(wasm) => self.modules.put(wasm, &version.hash)?,
            None if !self.modules.has(&version.hash) => {
                let why = format!("module {} is not stored", version.hash);
                return Err(RegistryError::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    why,
                )));
            }
            None => {}
        }
        let name = version.config.name.clone();
        self.update_marked(&name, mark, |record| {
            let created = record.is_none();
            let mut record = record.unwrap_or_else(|| FunctionRecord {
                name: name.clone(),
                active: 0,
                versions: Vec::new(),
            });
            record.active = version.version;
            record.versions.retain(|v| v.version != version.version);
            let at = record
                .versions
                .partition_point(|v| v.version < version.version);
            record.versions.insert(at, version);
            trim(&mut record);
            Some((record, created))
        })
        .map(|r| r.expect("put_version always writes"))
    }

    /// The note kept under `key`, if any.
    pub fn mark(&self, key: &str) -> Result<Option<String>, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(key)?.map(|v| v.value().to_string()))
    }

    /// Writes a note alone, durably.
    pub fn set_mark(&self, mark: Mark) -> Result<(), RegistryError> {
        let _writer = self.lock();
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert(mark.key, mark.value)?;
        txn.commit()?;
        Ok(())
    }

    /// Makes `version` of `name` active. `None` if there is no such function or version.
    pub fn set_active(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<FunctionRecord>, RegistryError> {
        let _writer = self.lock();
        self.update(name, |record| {
            let mut record = record?;
            record.version(version)?;
            record.active = version;
            Some((record, ()))
        })
        .map(|r| r.map(|(record, ())| record))
    }

    /// Deletes a function and its versions. False if there was none.
    pub fn remove(&self, name: &str) -> Result<bool, RegistryError> {
        self.remove_marked(name, None)
    }

    /// [`Registry::remove`], with `mark` committed in the same transaction (whether or not
    /// there was a function).
    pub fn remove_marked(&self, name: &str, mark: Option<Mark>) -> Result<bool, RegistryError> {
        let _writer = self.lock();
        let txn = self.db.begin_write()?;
        let removed = txn.open_table(FUNCTIONS)?.remove(name)?.is_some();
        if let Some(mark) = mark {
            txn.open_table(META)?.insert(mark.key, mark.value)?;
        }
        txn.commit()?;
        self.collect_garbage()?;
        self.secrets.remove(name)?;
        Ok(removed)
    }

    /// The secrets of `name` (none for a function that has none, or is not here).
    pub fn secrets(&self, name: &str) -> Secrets {
        self.secrets.get(name)
    }

    /// Sets secret `secret` of function `name` to `value`, durably.
    pub fn set_secret(&self, name: &str, secret: &str, value: &[u8]) -> Result<(), SecretError> {
        let _writer = self.lock();
        if self.get(name)?.is_none() {
            return Err(SecretError::NoFunction(name.to_string()));
        }
        self.secrets.set(name, secret, value)
    }

    /// Deletes secret `secret` of function `name`, durably.
    pub fn delete_secret(&self, name: &str, secret: &str) -> Result<(), SecretError> {
        let _writer = self.lock();
        if self.get(name)?.is_none() {
            return Err(SecretError::NoFunction(name.to_string()));
        }
        match self.secrets.delete(name, secret)? {
            true => Ok(()),
            false => Err(SecretError::NoSecret {
                function: name.to_string(),
                name: secret.to_string(),
            }),
        }
    }

    /// Reads, changes and writes one record in one transaction. `change` returns the record to
    /// write, or `None` to write nothing.
    fn update<R>(
        &self,
        name: &str,
        change: impl FnOnce(Option<FunctionRecord>) -> Option<(FunctionRecord, R)>,
    ) -> Result<Option<(FunctionRecord, R)>, RegistryError> {
        self.update_marked(name, None, change)
    }

    /// [`Registry::update`], with `mark` committed in the same transaction when there is one.
    fn update_marked<R>(
        &self,
        name: &str,
        mark: Option<Mark>,
        change: impl FnOnce(Option<FunctionRecord>) -> Option<(FunctionRecord, R)>,
    ) -> Result<Option<(FunctionRecord, R)>, RegistryError> {
        let txn = self.db.begin_write()?;
        let result = {
            let mut table = txn.open_table(FUNCTIONS)?;
            let current = table.get(name)?.map(|v| decode(v.value())).transpose()?;
            let result = change(current);
            if let Some((record, _)) = &result {
                let bytes = serde_json::to_vec(record).expect("records serialize");
                table.insert(name, bytes.as_slice())?;
            }
            result
        };
        if let Some(mark) = mark {
            txn.open_table(META)?.insert(mark.key, mark.value)?;
        }
        if result.is_some() || mark.is_some() {
            txn.commit()?;
            self.collect_garbage()?;
        }
        Ok(result)
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes module files no kept version refers to. Callers hold the writer lock (or, at
    /// open, are the only user).
    fn collect_garbage(&self) -> Result<usize, RegistryError> {
        let keep: HashSet<String> = self
            .functions()?
            .into_iter()
            .flat_map(|f| f.versions.into_iter().map(|v| v.hash))
            .collect();
        Ok(self.modules.retain(&keep)?)
    }
}

/// Drops the oldest versions past [`KEEP_VERSIONS`]; the active one always stays.
fn trim(record: &mut FunctionRecord) {
    while record.versions.len() > KEEP_VERSIONS {
        let oldest = record
            .versions
            .iter()
            .position(|v| v.version != record.active);
        record
            .versions
            .remove(oldest.expect("more than one version"));
    }
}

#[cfg(test)]
mod secrets_tests;
#[cfg(test)]
mod tests;
