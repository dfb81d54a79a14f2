//! Each function's secrets: environment variables kept apart from its configuration, so that no
//! version, deploy answer, listing or fleet log ever holds their values.
//!
//! On disk: `secrets/<function>.json`, one JSON object of name → value for each function that
//! has any. The folder is mode 0700 and each file 0600, whatever the umask or whoever made them
//! (both are set again at open). A change is written to a temporary file, synced, renamed over
//! the old one and the folder synced, as module files are: after a crash a function's file is
//! the old one or the new one, whole, and a change that returned is on disk. The files are read
//! once, at open; every later read is from memory.
//!
//! Nothing here puts a value in an error, a log line or a `Debug` output: [`Secrets`] shows
//! names only, and [`SecretError`] says how long a refused value was, never what it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::{RegistryError, sync_dir};

/// Secrets a function may have.
pub const MAX_SECRETS: usize = 64;
/// Largest value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 << 10;
/// Longest name, in bytes.
pub const MAX_SECRET_NAME: usize = 128;

/// The CGI variables (RFC 3875's, `HTTPS`, and WAGI's `X_*` ones the host sets): a secret must
/// not shadow what the host tells the function about its request.
const RESERVED: &[&str] = &[
    "AUTH_TYPE",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "GATEWAY_INTERFACE",
    "HTTPS",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_USER",
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "X_FULL_URL",
    "X_MATCHED_ROUTE",
    "X_RAW_PATH_INFO",
];
/// The request's headers (`HTTP_*`) and the variables of Wisp's own (`WISP_FUNCTION`, the
/// events' `WISP_TRIGGER` and companions, and any it adds later).
const RESERVED_PREFIXES: &[&str] = &["HTTP_", "WISP_"];

/// One function's secrets, by name. Its `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    /// Name and value of each, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// Why a secret was not set or deleted. Nothing changed.
#[derive(Debug)]
pub enum SecretError {
    /// The name breaks a rule; why.
    Name(String),
    /// The value is not UTF-8, or holds a NUL: an environment variable carries neither.
    NotText,
    /// The value's length in bytes, over [`MAX_SECRET_BYTES`].
    TooLarge(usize),
    /// The function has [`MAX_SECRETS`] already.
    TooMany(String),
    NoFunction(String),
    NoSecret {
        function: String,
        name: String,
    },
    Registry(RegistryError),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Name(why) => f.write_str(why),
            SecretError::NotText => f.write_str(
                "a secret's value must be UTF-8 text without NUL bytes (an environment \
                 variable holds nothing else)",
            ),
            SecretError::TooLarge(len) => write!(
                f,
                "the value is {len} bytes, over the limit of {MAX_SECRET_BYTES} bytes"
            ),
            SecretError::TooMany(function) => write!(
                f,
                "function `{function}` has {MAX_SECRETS} secrets, the most it may have; delete \
                 one first"
            ),
            SecretError::NoFunction(function) => write!(f, "no function `{function}`"),
            SecretError::NoSecret { function, name } => {
                write!(f, "function `{function}` has no secret `{name}`")
            }
            SecretError::Registry(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SecretError {}

impl From<RegistryError> for SecretError {
    fn from(e: RegistryError) -> Self {
        SecretError::Registry(e)
    }
}

impl From<io::Error> for SecretError {
    fn from(e: io::Error) -> Self {
        SecretError::Registry(RegistryError::Io(e))
    }
}

/// Checks a secret's name: an environment variable's (`[A-Za-z_][A-Za-z0-9_]*`), at most
/// [`MAX_SECRET_NAME`] bytes, and none the host sets itself.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    let b = name.as_bytes();
    let shape = !b.is_empty()
        && b.len() <= MAX_SECRET_NAME
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if !shape {
        // Not repeated back: a value typed in the name's place would be shown.
        return Err(SecretError::Name(format!(
            "invalid secret name: use 1 to {MAX_SECRET_NAME} of A-Z, a-z, 0-9 and _, not \
             starting with a digit (an environment variable's name)"
        )));
    }
    if RESERVED.contains(&name) || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(SecretError::Name(format!(
            "secret name `{name}` is the host's: the CGI variables and names starting with \
             HTTP_ or WISP_ are set by Wisp for each invocation"
        )));
    }
    Ok(())
}

/// A value as an environment variable can carry it.
pub fn check_value(value: &[u8]) -> Result<&str, SecretError> {
    if value.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge(value.len()));
    }
    match std::str::from_utf8(value) {
        Ok(text) if !text.contains('\0') => Ok(text),
        _ => Err(SecretError::NotText),
    }
}

/// The `secrets/` folder, and what it holds, in memory.
pub struct SecretStore {
    dir: PathBuf,
    /// Every function's secrets as on disk; changed only once its file is, under this lock,
    /// which also keeps writes to one file from interleaving.
    all: Mutex<HashMap<String, Secrets>>,
}

fn file_name(function: &str) -> String {
    format!("{function}.json")
}

impl SecretStore {
    /// Opens (or creates) the folder and reads every function's secrets. A file that does not
    /// parse is an error that names it (and says nothing of what is in it).
    pub fn open(dir: PathBuf) -> Result<SecretStore, RegistryError> {
        DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        fs::set_permissions(&dir, Permissions::from_mode(0o700))?;
        let mut all = HashMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.ends_with(".tmp") {
                // A write a crash interrupted: its file is still the old one.
                fs::remove_file(&path)?;
                continue;
            }
            let Some(function) = name.strip_suffix(".json") else {
                continue;
            };
            let function = function.to_string();
            fs::set_permissions(&path, Permissions::from_mode(0o600))?;
            all.insert(function, read(&path)?);
        }
        Ok(SecretStore {
            dir,
            all: Mutex::new(all),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Secrets>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The secrets of `function` (none if it has none).
    pub fn get(&self, function: &str) -> Secrets {
        self.lock().get(function).cloned().unwrap_or_default()
    }

    /// Sets secret `name` of `function` to `value`, durably. The caller checked that the
    /// function exists.
    pub fn set(&self, function: &str, name: &str, value: &[u8]) -> Result<(), SecretError> {
        check_name(name)?;
        let value = check_value(value)?;
        let mut all = self.lock();
        let mut secrets = all.get(function).cloned().unwrap_or_default();
        if !secrets.contains(name) && secrets.len() >= MAX_SECRETS {
            return Err(SecretError::TooMany(function.to_string()));
        }
        secrets.0.insert(name.to_string(), value.to_string());
        self.write(function, &secrets)?;
        all.insert(function.to_string(), secrets);
        Ok(())
    }

    /// Deletes secret `name` of `function`, durably; false if it had none of that name.
    pub fn delete(&self, function: &str, name: &str) -> io::Result<bool> {
        let mut all = self.lock();
        let Some(mut secrets) = all.get(function).cloned() else {
            return Ok(false);
        };
        if secrets.0.remove(name).is_none() {
            return Ok(false);
        }
        self.write(function, &secrets)?;
        match secrets.is_empty() {
            true => all.remove(function),
            false => all.insert(function.to_string(), secrets),
        };
        Ok(true)
    }

    /// Forgets every secret of `function`, durably.
    pub fn remove(&self, function: &str) -> io::Result<()> {
        let mut all = self.lock();
        self.write(function, &Secrets::default())?;
        all.remove(function);
        Ok(())
    }

    /// Forgets the secrets of every function not in `keep`: a crash between a function's
    /// delete and its secrets' leaves them behind, and a new function of the same name must
    /// not inherit them.
    pub fn retain(&self, keep: &HashSet<String>) -> io::Result<()> {
        let gone: Vec<String> = self
            .lock()
            .keys()
            .filter(|f| !keep.contains(*f))
            .cloned()
            .collect();
        gone.iter().try_for_each(|function| self.remove(function))
    }

    /// Replaces the file of `function` with `secrets`, or removes it when there are none.
    fn write(&self, function: &str, secrets: &Secrets) -> io::Result<()> {
        // `function` is a registered function's name (checked at its deploy), or the name of a
        // file found in this folder: never a path elsewhere.
        let path = self.dir.join(file_name(function));
        if secrets.is_empty() {
            match fs::remove_file(&path) {
                Ok(()) => return sync_dir(&self.dir),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let tmp = self.dir.join(format!(".{function}.tmp"));
        // Made anew, so that it has the mode below from its first byte.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask can only take bits away; this puts back the owner's, and no more.
        file.set_permissions(Permissions::from_mode(0o600))?;
        file.write_all(&serde_json::to_vec(secrets).expect("strings serialize"))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)
    }
}

/// Reads one function's file; an error names the file and where it breaks, never a value.
fn read(path: &Path) -> Result<Secrets, RegistryError> {
    let bytes = fs::read(path)?;
    let secrets: Secrets = serde_json::from_slice(&bytes).map_err(|e| {
        RegistryError::Corrupt(format!(
            "{}: not a JSON object of secret names and values (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    for (name, value) in secrets.iter() {
        check_name(name)
            .and_then(|()| check_value(value.as_bytes()).map(drop))
            .map_err(|e| RegistryError::Corrupt(format!("{}: {e}", path.display())))?;
    }
    Ok(secrets)
}
