//! Module files, stored by content: `modules/<sha256>.wasm`, each written to a temporary file,
//! synced, renamed into place and the folder synced, so a file that has its name is whole.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The folder of module files.
#[derive(Debug, Clone)]
pub struct ModuleStore {
    dir: PathBuf,
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_hash(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ModuleStore {
    pub fn open(dir: PathBuf) -> io::Result<ModuleStore> {
        fs::create_dir_all(&dir)?;
        Ok(ModuleStore { dir })
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.wasm"))
    }

    /// Stores `bytes`, whose [`hash`] is `hash`, durably. Storing the same bytes twice is a
    /// no-op.
    pub fn put(&self, bytes: &[u8], hash: &str) -> io::Result<()> {
        debug_assert_eq!(hash, self::hash(bytes));
        let path = self.path(hash);
        if path.exists() {
            return Ok(());
        }
        let tmp = self.dir.join(format!(".{hash}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Whether the module of `hash` is stored.
    pub fn has(&self, hash: &str) -> bool {
        valid_hash(hash) && self.path(hash).exists()
    }

    pub fn get(&self, hash: &str) -> io::Result<Vec<u8>> {
        if !valid_hash(hash) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a module hash",
            ));
        }
        fs::read(self.path(hash))
    }

    /// Removes module files no version refers to, and temporary files a crash left behind.
    pub fn retain(&self, keep: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let stale = match name.strip_suffix(".wasm") {
                Some(hash) => !keep.contains(hash),
                None => name.ends_with(".tmp"),
            };
            if stale {
                fs::remove_file(self.dir.join(name.as_ref()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_retain() {
        let dir = std::env::temp_dir().join(format!("wisp-modules-{}", std::process::id()));
        let store = ModuleStore::open(dir.clone()).unwrap();
        let put = |bytes: &[u8]| {
            let hash = hash(bytes);
            store.put(bytes, &hash).unwrap();
            hash
        };
        let a = put(b"\0asm one");
        let b = put(b"\0asm two");
        assert_eq!(put(b"\0asm one"), a);
        assert_eq!(store.get(&a).unwrap(), b"\0asm one");
        assert!(store.get("../../etc/passwd").is_err());
        std::fs::write(dir.join(".x.tmp"), b"half").unwrap();
        assert_eq!(store.retain(&HashSet::from([b.clone()])).unwrap(), 2);
        assert!(store.get(&a).is_err());
        assert_eq!(store.get(&b).unwrap(), b"\0asm two");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
